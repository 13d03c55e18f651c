//! The command lines of `recorderctl publish` and `pull`, and the fleet
//! options of `images --registry`: image profiles through an OCI registry
//! (docs/fleet.md).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::output::{FormatParser, OutputFormat, out_file};

/// The ready rule's thresholds; each not given is recorderd's (asked over
/// `--socket`).
#[derive(Args, Debug, Clone, Default)]
pub struct RuleArgs {
    /// Ready after at least N runs, summed over the nodes [default:
    /// recorderd's]
    #[arg(long, value_name = "N")]
    pub ready_min_runs: Option<u64>,
    /// ...with no new syscall in the last N runs of every node [default:
    /// recorderd's]
    #[arg(long, value_name = "N")]
    pub ready_quiet_runs: Option<u64>,
    /// ...nor in the last SECONDS on any node [default: recorderd's]
    #[arg(long, value_name = "SECONDS")]
    pub ready_quiet_secs: Option<u64>,
}

impl RuleArgs {
    /// Whether every threshold was given (recorderd need not be asked).
    pub fn complete(&self) -> bool {
        self.ready_min_runs.is_some()
            && self.ready_quiet_runs.is_some()
            && self.ready_quiet_secs.is_some()
    }
}

/// Which registries may be reached over plain HTTP.
#[derive(Args, Debug, Clone, Default)]
pub struct InsecureArgs {
    /// Reach this registry (host[:port]) over plain HTTP; loopback ones
    /// always may be. Repeatable.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,
}

/// `images --registry`: the fleet's view instead of recorderd's.
#[derive(Args, Debug, Clone, Default)]
pub struct FleetArgs {
    /// Show the images of the OCI repository REPO (host[:port]/path), one
    /// row per image over every node's contribution, instead of
    /// recorderd's.
    #[arg(long, value_name = "REPO")]
    pub registry: Option<String>,
    #[command(flatten)]
    pub rule: RuleArgs,
    #[command(flatten)]
    pub insecure: InsecureArgs,
}

#[derive(Subcommand, Debug)]
pub enum RegistryCommand {
    /// Merge every node's contribution to an image's profile in the
    /// registry (a union, runs summed) and push it under the image's fleet
    /// tag; prints REPO@sha256:... for a pod spec or CRI-O's annotation.
    /// Refuses an image that is not ready fleet-wide (the ready rule with
    /// runs summed over the nodes, and every node quiet), saying which
    /// node it waits for, unless --force.
    Publish {
        /// The image: a reference it ran as, its id (or a prefix), or its
        /// key as `images` shows it.
        #[arg(long, value_name = "IMAGE")]
        image: String,
        /// The OCI repository (host[:port]/path) [default: recorderd's
        /// [registry] repository, asked over --socket]
        #[arg(long, value_name = "REPO", env = "RECORDER_REGISTRY")]
        registry: Option<String>,
        /// Publish even when the image is not ready fleet-wide.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        rule: RuleArgs,
        #[command(flatten)]
        insecure: InsecureArgs,
        /// Print the result as text (the reference) or as JSON.
        #[arg(
            short,
            long,
            value_name = "FORMAT",
            value_parser = FormatParser,
            default_value = "text"
        )]
        output: OutputFormat,
    },
    /// Fetch a profile artifact (REPO@sha256:... or REPO:TAG), check its
    /// media type, size and digest and the profile itself, and print it or
    /// write it atomically. Needs no daemon.
    Pull {
        /// The artifact's reference.
        #[arg(value_name = "REF")]
        reference: String,
        /// Write the profile here (atomically) instead of to stdout.
        #[arg(long = "out", value_name = "FILE", value_parser = out_file, conflicts_with = "install_dir")]
        out_file: Option<PathBuf>,
        /// Write it as DIR/recorder/<image>.json, e.g. /var/lib/kubelet/seccomp
        /// where a pod's localhostProfile finds it (printed).
        #[arg(long, value_name = "DIR")]
        install_dir: Option<PathBuf>,
        #[command(flatten)]
        insecure: InsecureArgs,
    },
}

//! The command line of recorderctl's profile commands (convert, merge,
//! diff, check; run by [`crate::profile_commands`]) and the output options
//! of every command that writes a profile.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::profile::{
    DefaultAction,
    format::{Format, FormatOptions},
};

/// The profile commands, to flatten into recorderctl's command enum.
#[derive(Subcommand, Debug, Clone)]
pub enum ProfileCommand {
    /// Convert a docker-format profile to another format (docker, oci, spo,
    /// kafel).
    Convert {
        /// The profile to convert ("-" for standard input).
        #[arg(value_name = "IN")]
        input: PathBuf,
        /// Write here (atomically) instead of to standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Merge profiles into one that allows what any of them allows.
    Merge {
        /// The profiles; the first one's default action and flags win.
        #[arg(required = true, num_args = 2.., value_name = "PROFILE")]
        inputs: Vec<PathBuf>,
        /// Write here (atomically) instead of to standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Show the syscalls B allows that A does not (+) and the reverse (-),
    /// per architecture. Exits 0 when they are the same, 1 when they
    /// differ, 2 on trouble (like diff).
    Diff {
        #[arg(value_name = "A")]
        a: PathBuf,
        #[arg(value_name = "B")]
        b: PathBuf,
    },
    /// Validate a docker-format profile: unknown syscalls, actions,
    /// operators and architectures, argument indexes above 5, architectures
    /// together with archMap, duplicate names. Exits 1 when it finds
    /// problems, 2 when the file cannot be read or parsed.
    Check {
        #[arg(value_name = "PROFILE")]
        profile: PathBuf,
    },
}

impl ProfileCommand {
    /// The exit code for an error of this command (2 for diff and check,
    /// whose 1 means "differ" / "has problems").
    pub fn error_exit_code(&self) -> u8 {
        match self {
            Self::Diff { .. } | Self::Check { .. } => 2,
            _ => 1,
        }
    }
}

/// The output options of a command that writes a profile, to flatten into
/// a clap command (`record`, `convert`, the daemon's `stop` and `profile`).
#[derive(Clone, Debug, Default, Args)]
pub struct OutputArgs {
    /// The output format.
    #[arg(long, value_enum, default_value_t = Format::Docker)]
    pub format: Format,
    /// What happens to syscalls the profile does not allow (log: audit mode).
    #[arg(long, value_enum, value_name = "ACTION")]
    pub default_action: Option<DefaultAction>,
    /// The errno returned by `--default-action errno` (default 1, EPERM).
    #[arg(long, value_name = "N")]
    pub errno: Option<u32>,
    /// Name of the `spo` resource (and of the `kafel` policy).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Namespace of the `spo` resource.
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// A capability the container has (e.g. CAP_SYS_ADMIN), for rules that
    /// depend on capabilities in the oci, spo and kafel formats. Repeatable.
    #[arg(long = "cap", value_name = "CAP")]
    pub caps: Vec<String>,
}

impl OutputArgs {
    /// The rendering options these arguments ask for.
    pub fn options(&self) -> FormatOptions {
        FormatOptions {
            format: self.format,
            default_action: self.default_action,
            errno_ret: self.errno,
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            caps: self.caps.clone(),
        }
    }
}

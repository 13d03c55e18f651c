//! The command line of recorderctl's commands that talk to recorderd
//! (run by [`crate::client`]).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{
    output::{FormatParser, NoReport, OutputFormat, out_file},
    profile::OutputArgs,
};
use crate::control::Target;

/// How to print the daemon's answers (where it is and how long to wait
/// for it: recorderctl's global `--socket` and `--timeout`).
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// Print the report as text or as JSON (for scripts).
    #[arg(
        short,
        long,
        value_name = "FORMAT",
        value_parser = FormatParser,
        default_value = "text"
    )]
    pub output: OutputFormat,
}

/// How a listing's text table is laid out.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct TableArgs {
    /// Show every cell whole: without it, cells longer than 40 characters
    /// are cut with an ellipsis (`-o json` always has them whole).
    #[arg(long)]
    pub wide: bool,
}

/// A timeout in seconds: positive and finite.
pub fn timeout_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err("expected a number of seconds, more than 0 and at most 86400".to_owned()),
    }
}

/// What to act on: a container, a process's cgroup, or a cgroup.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// A container id, unique id prefix, or name.
    #[arg(value_name = "CONTAINER", value_parser = container_spec)]
    pub container: Option<String>,
    /// The cgroup of this process.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// A cgroup2 path, e.g. /libpod_parent/libpod-<id>.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,
}

/// What `profile` prints: a recording's (a container, a process's cgroup,
/// or a cgroup), or an image's.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct ProfileTargetArgs {
    /// A container id, unique id prefix, or name.
    #[arg(value_name = "CONTAINER", value_parser = container_spec)]
    pub container: Option<String>,
    /// The cgroup of this process.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// A cgroup2 path, e.g. /libpod_parent/libpod-<id>.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,
    /// The profile of an image (see `recorderctl images`): any reference
    /// it ran as, its label, or its id or an id prefix.
    #[arg(long, value_name = "IMAGE", value_parser = container_spec)]
    pub image: Option<String>,
}

impl ProfileTargetArgs {
    /// The recording the arguments name, or `Err(image)`.
    pub fn target(&self) -> Result<Target, String> {
        match &self.image {
            Some(image) => Err(image.clone()),
            None => Ok(TargetArgs {
                container: self.container.clone(),
                pid: self.pid,
                cgroup: self.cgroup.clone(),
            }
            .target()),
        }
    }
}

/// Refuses an empty or blank container (it would match every recording).
fn container_spec(s: &str) -> Result<String, String> {
    crate::container::check_container(s).map(|()| s.to_owned())
}

impl TargetArgs {
    /// What the arguments name.
    pub fn target(&self) -> Target {
        match (&self.container, self.pid, &self.cgroup) {
            (_, Some(pid), _) => Target::Pid(pid),
            (_, _, Some(cg)) => Target::Cgroup(cg.clone()),
            (Some(c), _, _) => Target::Container(c.clone()),
            // clap's required group makes this unreachable; be explicit anyway.
            (None, None, None) => Target::Container(String::new()),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum DaemonCommand {
    /// Start recording a running container (and its sub-cgroups).
    Start {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        target: TargetArgs,
        /// Merge this profile into the result when it is written.
        #[arg(long, value_name = "FILE")]
        base: Option<PathBuf>,
    },
    /// Stop recording and write the profile to <profiles-dir>/<container-id>.json
    /// (with --format, also the converted profile beside it); prints its path.
    Stop {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        target: TargetArgs,
        /// Merge this profile into the result.
        #[arg(long, value_name = "FILE")]
        base: Option<PathBuf>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Print the profile recorded so far (recording goes on), the stored
    /// profile of a container that is gone, or with --image an image's
    /// profile.
    Profile {
        #[command(flatten)]
        no_report: NoReport,
        #[command(flatten)]
        target: ProfileTargetArgs,
        /// Merge this profile into the result.
        #[arg(long, value_name = "FILE")]
        base: Option<PathBuf>,
        /// Write the profile here (atomically) instead of to standard output.
        #[arg(long = "out", value_name = "FILE", value_parser = out_file)]
        out_file: Option<PathBuf>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// List the recordings.
    List {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        table: TableArgs,
    },
    /// List the profiles recorderd has written (also of containers that are gone).
    Profiles {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        table: TableArgs,
    },
    /// List the image profiles: runs, syscalls, when the union last grew,
    /// and whether the image is ready to enforce, or what it waits for
    /// (docs/usage.md).
    Images {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        table: TableArgs,
        #[command(flatten)]
        fleet: super::registry::FleetArgs,
    },
    /// Show the daemon's state.
    Status {
        #[command(flatten)]
        conn: Conn,
    },
    /// Name the syscalls a container made outside the seccomp profile it
    /// runs under (one someone chose, best in complain mode: defaultAction
    /// SCMP_ACT_LOG), with when each was first seen; while it runs and
    /// after it exited. A name means the watched container of that name
    /// that runs, else the last one that ran.
    ///
    /// With --widen it prints a profile, not a report: --out, --format and
    /// the other profile options go with --widen only, -o without it.
    Drift {
        #[command(flatten)]
        conn: Conn,
        /// A container id, unique id prefix, or name.
        #[arg(
            value_name = "CONTAINER",
            value_parser = container_spec,
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        container: Option<String>,
        /// Every watched container with a non-empty drift.
        #[arg(long)]
        all: bool,
        /// Write the profile plus the drift (the profile to enforce next)
        /// instead of the report.
        #[arg(long, conflicts_with = "all")]
        widen: bool,
        /// With --widen: write the profile here (atomically) instead of to
        /// standard output.
        #[arg(
            long,
            value_name = "FILE",
            value_parser = out_file,
            requires = "widen",
            conflicts_with = "all"
        )]
        out: Option<PathBuf>,
        #[command(flatten)]
        profile: OutputArgs,
    },
}

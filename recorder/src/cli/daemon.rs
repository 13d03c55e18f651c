//! `recorderd`'s command line.
//!
//! A placeholder for the daemon: the flags are settled, their defaults and
//! meaning are filled in with the daemon itself.

use std::path::PathBuf;

use clap::Parser;

/// The recorder daemon: records containers as they start and keeps their
/// seccomp profiles.
#[derive(Parser, Debug)]
#[command(
    name = "recorderd",
    version,
    about = "The recorder daemon: records the syscalls of containers and keeps their seccomp profiles"
)]
pub struct Cli {
    /// The configuration file.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/recorder/recorderd.toml"
    )]
    pub config: PathBuf,
    /// The control socket recorderctl talks to (overrides the configuration).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Where profiles are written (overrides the configuration).
    #[arg(long, value_name = "DIR")]
    pub profiles_dir: Option<PathBuf>,
    /// Log level: off, error, warn, info, debug or trace.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: log::LevelFilter,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn log_level_parses() {
        let cli = Cli::try_parse_from(["recorderd", "--log-level", "debug"]).unwrap();
        assert_eq!(cli.log_level, log::LevelFilter::Debug);
        assert!(Cli::try_parse_from(["recorderd", "--log-level", "loud"]).is_err());
    }
}

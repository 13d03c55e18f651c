//! `recorderd`'s command line.

use std::path::PathBuf;

use clap::Parser;

use crate::config::{Config, ConfigError};

/// A metrics address, checked here so that a bad flag is blamed on the
/// flag, not on the config file.
fn metrics_addr(s: &str) -> Result<String, String> {
    crate::metrics::parse_addr(s)
        .map(|_| s.to_owned())
        .map_err(|e| e.to_string())
}

#[derive(Parser, Debug)]
#[command(
    name = "recorderd",
    version,
    about = "Record the syscalls of containers as seccomp profiles"
)]
pub struct Cli {
    /// Config file (TOML). A missing default file means the defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Control socket.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Group allowed to use the control socket besides root.
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,
    /// Where profiles are written.
    #[arg(long, value_name = "DIR")]
    pub profiles_dir: Option<PathBuf>,
    /// Where recordings are kept across restarts.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// bpffs directory for pinned maps and links.
    #[arg(long, value_name = "DIR")]
    pub pin_dir: Option<PathBuf>,
    /// error, warn, info, debug or trace.
    #[arg(long, value_name = "LEVEL", value_parser = crate::config::LOG_LEVELS)]
    pub log_level: Option<String>,
    /// Record every new container from its first syscall.
    #[arg(long)]
    pub all: bool,
    /// How many cgroups can be recorded at once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub capacity: Option<u32>,
    /// Keep the program attached even when nothing is recorded.
    #[arg(long)]
    pub no_detach_when_idle: bool,
    /// Kernel BTF file.
    #[arg(long, value_name = "FILE")]
    pub btf: Option<PathBuf>,
    /// Prometheus endpoint, host:port ("off" disables it).
    #[arg(long, value_name = "ADDR", value_parser = metrics_addr)]
    pub metrics_addr: Option<String>,
    /// Enable the kernel's BPF run-time statistics for the metrics
    /// (costs some 20-30 ns per BPF program run).
    #[arg(long)]
    pub bpf_stats: bool,
    /// Remove the pinned maps and links (stops all recording) and exit.
    #[arg(long)]
    pub unpin: bool,
}

impl Cli {
    /// The configuration: the file (a missing default file means the
    /// defaults), overridden by the flags.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let (path, optional) = match &self.config {
            Some(p) => (p.clone(), false),
            None => (PathBuf::from(crate::config::DEFAULT_CONFIG), true),
        };
        let mut c = Config::load(&path, optional)?;
        if let Some(v) = &self.socket {
            c.socket = v.clone();
        }
        if let Some(v) = &self.socket_group {
            c.socket_group = v.clone();
        }
        if let Some(v) = &self.profiles_dir {
            c.profiles_dir = v.clone();
        }
        if let Some(v) = &self.state_dir {
            c.state_dir = v.clone();
        }
        if let Some(v) = &self.pin_dir {
            c.pin_dir = v.clone();
        }
        if let Some(v) = &self.log_level {
            c.log_level = v.clone();
        }
        if self.all {
            c.record_all = true;
        }
        if let Some(v) = self.capacity {
            c.capacity = v;
        }
        if self.no_detach_when_idle {
            c.detach_when_idle = false;
        }
        if let Some(v) = &self.btf {
            c.btf = v.clone();
        }
        if let Some(v) = &self.metrics_addr {
            c.metrics_addr = v.clone();
        }
        if self.bpf_stats {
            c.bpf_stats = true;
        }
        c.validate(&path)?;
        Ok(c)
    }
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
    fn flags_override_the_config() {
        let cli = Cli::try_parse_from(["recorderd", "--config", "/nonexistent-but-explicit.toml"])
            .unwrap();
        assert!(
            cli.config().is_err(),
            "an explicit missing file is an error"
        );
        let cli = Cli::try_parse_from([
            "recorderd",
            "--all",
            "--capacity",
            "7",
            "--log-level",
            "debug",
        ])
        .unwrap();
        let c = cli.config().unwrap();
        assert!(c.record_all);
        assert_eq!(c.capacity, 7);
        assert_eq!(c.log_level, "debug");
    }

    #[test]
    fn bad_flags_are_usage_errors_that_name_the_flag() {
        for (flag, value) in [
            ("--log-level", "loud"),
            ("--metrics-addr", "notanaddr"),
            ("--capacity", "0"),
        ] {
            let e = Cli::try_parse_from(["recorderd", flag, value]).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{flag}");
            assert!(e.to_string().contains(flag), "{flag}: {e}");
        }
        let cli = Cli::try_parse_from(["recorderd", "--metrics-addr", "off"]).unwrap();
        assert_eq!(cli.config().unwrap().metrics_addr, "off");
    }
}

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

/// A `--include-image`/`--exclude-image`/`--…-name` glob, checked here so
/// that a bad one is blamed on the flag, not on the config file.
fn glob(s: &str) -> Result<String, String> {
    crate::scope::compile(s, crate::scope::On::Name).map(|_| s.to_owned())
}

/// A `--include-label`/`--exclude-label` glob: `KEY=VALUE`, checked here.
fn label_glob(s: &str) -> Result<String, String> {
    crate::scope::compile(s, crate::scope::On::Label).map(|_| s.to_owned())
}

/// The built-in configuration, whose values the help shows.
fn defaults() -> Config {
    Config::default()
}

/// A flag's help with the value used when neither the flag nor the config
/// file sets it.
fn with_default(help: &str, default: impl std::fmt::Display) -> String {
    format!("{help} [default: {default}, unless the config file sets it]")
}

#[derive(Parser, Debug)]
#[command(
    name = "recorderd",
    version,
    about = "Record the syscalls of containers as seccomp profiles"
)]
pub struct Cli {
    /// Config file (TOML). A missing default file means the defaults.
    #[arg(long, value_name = "FILE", help = format!("Config file (TOML); a missing default file means the defaults [default: {}]", crate::config::DEFAULT_CONFIG))]
    pub config: Option<PathBuf>,
    /// Control socket.
    #[arg(long, value_name = "PATH", help = with_default("Control socket", defaults().socket.display()))]
    pub socket: Option<PathBuf>,
    /// Group allowed to use the control socket besides root.
    #[arg(long, value_name = "GROUP", help = with_default("Group allowed to use the control socket besides root", defaults().socket_group))]
    pub socket_group: Option<String>,
    /// Where profiles are written.
    #[arg(long, value_name = "DIR", help = with_default("Where profiles are written", defaults().profiles_dir.display()))]
    pub profiles_dir: Option<PathBuf>,
    /// Where recordings are kept across restarts.
    #[arg(long, value_name = "DIR", help = with_default("Where recordings are kept across restarts", defaults().state_dir.display()))]
    pub state_dir: Option<PathBuf>,
    /// bpffs directory for pinned maps and links.
    #[arg(long, value_name = "DIR", help = with_default("bpffs directory for pinned maps and links", defaults().pin_dir.display()))]
    pub pin_dir: Option<PathBuf>,
    /// error, warn, info, debug or trace.
    #[arg(long, value_name = "LEVEL", value_parser = crate::config::LOG_LEVELS, help = with_default("error, warn, info, debug or trace", defaults().log_level))]
    pub log_level: Option<String>,
    /// Record every new container from its first syscall.
    #[arg(long)]
    pub all: bool,
    /// How many cgroups can be recorded at once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), help = with_default("How many cgroups can be recorded at once", defaults().capacity))]
    pub capacity: Option<u32>,
    /// Keep the program attached even when nothing is recorded.
    #[arg(long)]
    pub no_detach_when_idle: bool,
    /// Kernel BTF file.
    #[arg(long, value_name = "FILE", help = with_default("Kernel BTF file", defaults().btf.display()))]
    pub btf: Option<PathBuf>,
    /// Prometheus endpoint, host:port ("off" disables it).
    #[arg(long, value_name = "ADDR", value_parser = metrics_addr, help = with_default("Prometheus endpoint, host:port (\"off\" disables it)", defaults().metrics_addr))]
    pub metrics_addr: Option<String>,
    /// Enable the kernel's BPF run-time statistics for the metrics
    /// (costs some 20-30 ns per BPF program run).
    #[arg(long)]
    pub bpf_stats: bool,
    /// Outside systemd, stay attached and pinned after SIGTERM, so that
    /// recording goes on until the next start.
    #[arg(long)]
    pub keep_attached: bool,
    /// Auto mode records only containers whose image matches GLOB (or
    /// another include); repeatable, added to `[scope]` include_images.
    #[arg(long, value_name = "GLOB", value_parser = glob)]
    pub include_image: Vec<String>,
    /// Auto mode does not record containers whose image matches GLOB.
    #[arg(long, value_name = "GLOB", value_parser = glob)]
    pub exclude_image: Vec<String>,
    /// Auto mode records only containers whose name matches GLOB (or
    /// another include).
    #[arg(long, value_name = "GLOB", value_parser = glob)]
    pub include_name: Vec<String>,
    /// Auto mode does not record containers whose name matches GLOB.
    #[arg(long, value_name = "GLOB", value_parser = glob)]
    pub exclude_name: Vec<String>,
    /// Auto mode records only containers with a label (as KEY=VALUE)
    /// matching KEY=GLOB, e.g. app=* (or another include).
    #[arg(long, value_name = "KEY=GLOB", value_parser = label_glob)]
    pub include_label: Vec<String>,
    /// Auto mode does not record containers with a label (as KEY=VALUE)
    /// matching KEY=GLOB.
    #[arg(long, value_name = "KEY=GLOB", value_parser = label_glob)]
    pub exclude_label: Vec<String>,
    /// An image profile is ready after at least N runs...
    #[arg(long, value_name = "N", help = with_default("An image profile is ready after at least N runs", defaults().images.ready_min_runs))]
    pub ready_min_runs: Option<u64>,
    /// ...with no new syscall in the last N runs...
    #[arg(long, value_name = "N", help = with_default("...with no new syscall in the last N runs", defaults().images.ready_quiet_runs))]
    pub ready_quiet_runs: Option<u64>,
    /// ...nor in the last SECONDS.
    #[arg(long, value_name = "SECONDS", help = with_default("...nor in the last SECONDS", defaults().images.ready_quiet_secs))]
    pub ready_quiet_secs: Option<u64>,
    /// A run counts toward ready only if its workload started and did not
    /// exit non-zero within SECONDS.
    #[arg(long, value_name = "SECONDS", help = with_default("A run counts toward ready only if its workload started and did not exit non-zero within SECONDS", defaults().images.ready_min_run_secs))]
    pub ready_min_run_secs: Option<u64>,
    /// Per-container profile files kept per image (0: all).
    #[arg(long, value_name = "N", help = with_default("Per-container profile files kept per image (0: all)", defaults().images.keep_per_image))]
    pub keep_per_image: Option<usize>,
    /// Per-container profile files are removed after DAYS (0: never).
    #[arg(long, value_name = "DAYS", help = with_default("Per-container profile files are removed after DAYS (0: never)", defaults().images.keep_days))]
    pub keep_days: Option<u64>,
    /// Leave containers that run under a chosen seccomp profile out of the
    /// image profiles (true or false).
    #[arg(long, value_name = "BOOL", help = with_default("Leave containers that run under a chosen seccomp profile out of the image profiles", defaults().images.skip_chosen_profile))]
    pub skip_chosen_profile: Option<bool>,
    /// Push this node's image profiles to the OCI repository REPO
    /// (host[:port]/path), one artifact per image and node.
    #[arg(long, value_name = "REPO", value_parser = repository)]
    pub registry: Option<String>,
    /// This node's name in what it pushes [default: the hostname].
    #[arg(long, value_name = "NAME", value_parser = node_name)]
    pub node: Option<String>,
    /// Reach this registry (host[:port]) over plain HTTP; loopback ones
    /// always may be. Repeatable.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,
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
        if self.keep_attached {
            c.keep_attached = true;
        }
        let scope = &mut c.scope;
        for (list, flags) in [
            (&mut scope.include_images, &self.include_image),
            (&mut scope.exclude_images, &self.exclude_image),
            (&mut scope.include_names, &self.include_name),
            (&mut scope.exclude_names, &self.exclude_name),
            (&mut scope.include_labels, &self.include_label),
            (&mut scope.exclude_labels, &self.exclude_label),
        ] {
            list.extend(flags.iter().cloned());
        }
        let images = &mut c.images;
        if let Some(v) = self.ready_min_runs {
            images.ready_min_runs = v;
        }
        if let Some(v) = self.ready_quiet_runs {
            images.ready_quiet_runs = v;
        }
        if let Some(v) = self.ready_quiet_secs {
            images.ready_quiet_secs = v;
        }
        if let Some(v) = self.ready_min_run_secs {
            images.ready_min_run_secs = v;
        }
        if let Some(v) = self.keep_per_image {
            images.keep_per_image = v;
        }
        if let Some(v) = self.keep_days {
            images.keep_days = v;
        }
        if let Some(v) = self.skip_chosen_profile {
            images.skip_chosen_profile = v;
        }
        if let Some(r) = &self.registry {
            c.registry.repository = Some(r.clone());
        }
        if let Some(n) = &self.node {
            c.registry.node = Some(n.clone());
        }
        c.registry
            .insecure
            .extend(self.insecure_registry.iter().cloned());
        // A relative flag means the working directory at start, as a
        // shell would read it: made absolute now, so that the daemon's
        // messages and replies name where things really are. (A relative
        // path in the file is refused by `validate`.)
        for (flag, value) in [
            (&self.socket, &mut c.socket),
            (&self.profiles_dir, &mut c.profiles_dir),
            (&self.state_dir, &mut c.state_dir),
            (&self.pin_dir, &mut c.pin_dir),
            (&self.btf, &mut c.btf),
        ] {
            if flag.is_some()
                && let Ok(abs) = std::path::absolute(&*value)
            {
                *value = abs;
            }
        }
        c.validate(&path)?;
        Ok(c)
    }
}

/// `--registry`, refused at the flag (naming it) rather than later as
/// the config's `[registry] repository`.
fn repository(s: &str) -> Result<String, String> {
    crate::registry::Repo::parse(s)
        .map(|_| s.to_owned())
        .map_err(|e| e.to_string())
}

/// `--node`: [`crate::registry::check_node`].
fn node_name(s: &str) -> Result<String, String> {
    crate::registry::check_node(s).map(|()| s.to_owned())
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
        let cli = Cli::try_parse_from([
            "recorderd",
            "--exclude-image",
            "test/*",
            "--exclude-image",
            "x",
            "--include-label",
            "tier=web",
            "--ready-min-runs",
            "2",
            "--skip-chosen-profile",
            "false",
        ])
        .unwrap();
        let c = cli.config().unwrap();
        assert_eq!(c.scope.exclude_images, ["test/*", "x"]);
        assert_eq!(c.scope.include_labels, ["tier=web"]);
        assert_eq!(c.images.ready_min_runs, 2);
        assert!(!c.images.skip_chosen_profile);
    }

    #[test]
    fn relative_path_flags_are_made_absolute_at_start() {
        let cli = Cli::try_parse_from([
            "recorderd",
            "--profiles-dir",
            "profs",
            "--pin-dir",
            "/sys/fs/bpf/x",
            "--socket",
            "./s.sock",
        ])
        .unwrap();
        let c = cli.config().unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(c.profiles_dir, cwd.join("profs"));
        assert_eq!(c.socket, cwd.join("s.sock"));
        assert_eq!(c.pin_dir, PathBuf::from("/sys/fs/bpf/x"));
    }

    #[test]
    fn bad_scope_globs_are_usage_errors_that_name_the_flag() {
        for (flag, value, says) in [
            ("--include-image", "foo[*", "bad glob"),
            ("--exclude-name", "[", "bad glob"),
            ("--include-label", "app", "'app=*'"),
            ("--exclude-label", "tier*", "KEY=VALUE"),
        ] {
            let e = Cli::try_parse_from(["recorderd", flag, value]).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{flag}");
            let first = e.to_string();
            let first = first.lines().next().unwrap_or_default();
            assert!(first.contains(flag) && first.contains(value), "{first}");
            assert!(first.contains(says), "{first}");
            assert!(!first.contains("config"), "{first}");
        }
        let cli = Cli::try_parse_from(["recorderd", "--include-label", "app=*"]).unwrap();
        assert_eq!(cli.config().unwrap().scope.include_labels, ["app=*"]);
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

    #[test]
    fn help_shows_the_defaults() {
        use clap::CommandFactory as _;
        let d = Config::default();
        for help in [
            Cli::command().render_help().to_string(),
            Cli::command().render_long_help().to_string(),
        ] {
            for (flag, value) in [
                ("--socket", d.socket.display().to_string()),
                ("--state-dir", d.state_dir.display().to_string()),
                ("--pin-dir", d.pin_dir.display().to_string()),
                ("--profiles-dir", d.profiles_dir.display().to_string()),
                ("--config", crate::config::DEFAULT_CONFIG.to_owned()),
            ] {
                // The flag's entry: its line, and in the long help the
                // indented lines below it, up to the next flag.
                let at = help
                    .find(&format!("{flag} <"))
                    .unwrap_or_else(|| panic!("{flag} missing from {help}"));
                let rest = &help[at..];
                let end = rest
                    .match_indices('\n')
                    .map(|(i, _)| i)
                    .find(|&i| rest[i + 1..].trim_start().starts_with('-'))
                    .unwrap_or(rest.len());
                let line = &rest[..end];
                assert!(
                    line.contains(&format!("[default: {value}")),
                    "{flag}: {line}"
                );
            }
        }
    }
}

//! recorderd's configuration: an optional TOML file with serde defaults,
//! overridden by command-line flags.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{images::ImagesConfig, registry::RegistryConfig, scope::ScopeConfig};

/// The default config file.
pub const DEFAULT_CONFIG: &str = "/etc/recorder/recorderd.toml";
/// The default control socket.
pub const DEFAULT_SOCKET: &str = "/run/recorder/recorder.sock";
/// The default profiles directory.
pub const DEFAULT_PROFILES_DIR: &str = "/var/lib/recorder/profiles";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {err}")]
    Read { path: PathBuf, err: io::Error },
    #[error("malformed config {path}: line {line}, column {column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("invalid config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The values of `log_level`.
pub const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// Everything recorderd can be told. Every field has a default, so the
/// daemon runs with no file at all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The control socket.
    pub socket: PathBuf,
    /// The group whose members may use the control socket (besides root).
    pub socket_group: String,
    /// Where profiles are written.
    pub profiles_dir: PathBuf,
    /// Where the daemon keeps its state (recordings, profile index).
    pub state_dir: PathBuf,
    /// Where maps and links are pinned in bpffs.
    pub pin_dir: PathBuf,
    /// error, warn, info, debug or trace.
    pub log_level: String,
    /// Record every new container from its first syscall (auto mode).
    pub record_all: bool,
    /// How many cgroups can be recorded at once.
    pub capacity: u32,
    /// Detach the program while nothing is recorded and auto mode is off.
    pub detach_when_idle: bool,
    /// Tell 32-bit compat syscalls apart (x86_64).
    pub compat: bool,
    /// The kernel's BTF.
    pub btf: PathBuf,
    /// Container cgroups enrolled in auto mode: `{id}` stands for the
    /// 64-hex container id in the last component; a pattern starting with
    /// `/` is a whole path with `*` components and a `{name}`.
    pub auto_patterns: Vec<String>,
    /// How often to look for removed cgroups besides the kernel's notices.
    pub poll_interval_ms: u64,
    /// Prometheus endpoint ("off" disables it).
    pub metrics_addr: String,
    /// Enable the kernel's BPF run-time statistics (BPF_ENABLE_STATS) for
    /// `recorder_bpf_run_*`; costs some 20-30 ns per program run.
    pub bpf_stats: bool,
    /// Outside systemd, leave the programs attached and pinned at SIGTERM,
    /// so recording goes on until the next start (as after a crash).
    pub keep_attached: bool,
    /// How long (seconds) the drift series of a watched container stays on
    /// /metrics after its recording ended, so that alerts see short runs.
    pub drift_series_secs: u64,
    /// Image profiles: the `ready` rule, retention, what feeds them.
    pub images: ImagesConfig,
    /// Which containers auto mode records (globs on image, name, label).
    pub scope: ScopeConfig,
    /// Where this node pushes its image profiles (none: nowhere).
    pub registry: RegistryConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(DEFAULT_SOCKET),
            socket_group: "root".to_owned(),
            profiles_dir: PathBuf::from(DEFAULT_PROFILES_DIR),
            state_dir: PathBuf::from("/var/lib/recorder"),
            pin_dir: PathBuf::from("/sys/fs/bpf/recorder"),
            log_level: "info".to_owned(),
            record_all: false,
            capacity: 1024,
            detach_when_idle: true,
            compat: true,
            btf: PathBuf::from(crate::btf::VMLINUX),
            auto_patterns: crate::container::DEFAULT_PATTERNS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            poll_interval_ms: 1000,
            metrics_addr: "127.0.0.1:9977".to_owned(),
            bpf_stats: false,
            keep_attached: false,
            drift_series_secs: 600,
            images: ImagesConfig::default(),
            scope: ScopeConfig::default(),
            registry: RegistryConfig::default(),
        }
    }
}

impl Config {
    /// Reads `path`. A missing file is the defaults only when `optional`.
    pub fn load(path: &Path, optional: bool) -> Result<Self, ConfigError> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if optional && e.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    err: source,
                });
            }
        };
        Self::parse(path, &text)
    }

    /// Parses a config text; errors carry the line and column.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                column,
                message: match unknown_key_hint(e.message()) {
                    Some(hint) => format!("{}; {hint}", e.message().trim_end()),
                    None => e.message().to_owned(),
                },
            }
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// The paths of the config, by key.
    pub fn paths(&self) -> [(&'static str, &PathBuf); 5] {
        [
            ("socket", &self.socket),
            ("profiles_dir", &self.profiles_dir),
            ("state_dir", &self.state_dir),
            ("pin_dir", &self.pin_dir),
            ("btf", &self.btf),
        ]
    }

    /// Checks values serde cannot.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        if self.capacity == 0 {
            return Err(invalid("capacity must be at least 1".to_owned()));
        }
        for (key, p) in self.paths() {
            if !p.is_absolute() {
                return Err(invalid(format!(
                    "{key} '{}' is not an absolute path (it would depend on recorderd's working directory)",
                    p.display()
                )));
            }
        }
        for p in &self.auto_patterns {
            crate::container::compile_pattern(p)
                .map_err(|e| invalid(format!("auto_patterns: {e}")))?;
        }
        if self.auto_patterns.len() > recorder_common::MAX_LEAF_PATTERNS as usize {
            return Err(invalid(format!(
                "auto_patterns: at most {} patterns",
                recorder_common::MAX_LEAF_PATTERNS
            )));
        }
        crate::metrics::parse_addr(&self.metrics_addr)
            .map_err(|e| invalid(format!("metrics_addr: {e}")))?;
        crate::scope::Scope::new(&self.scope).map_err(|e| invalid(format!("[scope] {e}")))?;
        if !self.registry.install_dir.is_absolute() {
            return Err(invalid(
                "[registry] install_dir must be an absolute path".to_owned(),
            ));
        }
        if let Some(r) = &self.registry.repository {
            crate::registry::Repo::parse(r)
                .map_err(|e| invalid(format!("[registry] repository: {e}")))?;
        }
        if let Some(n) = &self.registry.node {
            crate::registry::check_node(n).map_err(|e| invalid(format!("[registry] node: {e}")))?;
        }
        if !LOG_LEVELS.contains(&self.log_level.as_str()) {
            return Err(invalid(format!(
                "log_level '{}' is not one of error, warn, info, debug, trace",
                self.log_level
            )));
        }
        Ok(())
    }

    /// The kernel's auto-mode patterns: the compiled `auto_patterns` when
    /// recording all containers, else none.
    pub fn leaf_patterns(&self) -> Vec<recorder_common::LeafPattern> {
        if !self.record_all {
            return Vec::new();
        }
        self.auto_patterns
            .iter()
            .filter_map(|p| crate::container::compile_pattern(p).ok())
            .collect()
    }
}

/// For an unknown key, the known key it likely meant: the plural of a
/// `[scope]` list given as its flag is spelt (`include_image`,
/// `include-image`), or `_` for `-`.
fn unknown_key_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    // The known keys, each between backquotes after "expected".
    let known: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    let snake = key.trim_start_matches('-').replace('-', "_");
    let plural = format!("{snake}s");
    if known.contains(&plural.as_str()) {
        let flag = snake.replace('_', "-");
        Some(format!(
            "did you mean `{plural}`? (the key is a list, plural; the flag --{flag} is singular and repeatable)"
        ))
    } else if snake != key && known.contains(&snake.as_str()) {
        Some(format!("did you mean `{snake}`?"))
    } else {
        // A misspelling (`profile_dir`): the closest known key, if close.
        known
            .iter()
            .map(|k| (strsim::damerau_levenshtein(&snake, k), *k))
            .filter(|(d, k)| *d <= 2 && *d < k.len() / 2)
            .min()
            .map(|(_, k)| format!("did you mean `{k}`?"))
    }
}

/// 1-based line and column of byte offset `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |n| before.len() - n - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_defaults() {
        assert_eq!(
            Config::parse(Path::new("c"), "").unwrap(),
            Config::default()
        );
    }

    #[test]
    fn values_override_defaults() {
        let c = Config::parse(Path::new("c"), "record_all = true\ncapacity = 8\n").unwrap();
        assert!(c.record_all);
        assert_eq!(c.capacity, 8);
        assert_eq!(c.socket, Path::new(DEFAULT_SOCKET));
        assert_eq!(c.drift_series_secs, 600);
        let c = Config::parse(Path::new("c"), "drift_series_secs = 0\n").unwrap();
        assert_eq!(c.drift_series_secs, 0);
    }

    #[test]
    fn errors_have_line_and_column() {
        let err = Config::parse(
            Path::new("/etc/r.toml"),
            "capacity = 8\nrecord_all = maybe\n",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/etc/r.toml: line 2, column 14"), "{msg}");
        let err = Config::parse(Path::new("r.toml"), "no_such_key = 1\n").unwrap_err();
        assert!(err.to_string().contains("line 1, column 1"), "{err}");
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Config::parse(Path::new("c"), "capacity = 0\n").is_err());
        for key in ["socket", "profiles_dir", "state_dir", "pin_dir", "btf"] {
            let msg = Config::parse(Path::new("c"), &format!("{key} = \"rel/x\"\n"))
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains(&format!("{key} 'rel/x' is not an absolute path")),
                "{msg}"
            );
        }
        assert!(Config::parse(Path::new("c"), "auto_patterns = [\"no-id-here\"]\n").is_err());
        assert!(Config::parse(Path::new("c"), "log_level = \"loud\"\n").is_err());
        assert!(Config::parse(Path::new("c"), "metrics_addr = \"nowhere\"\n").is_err());
        assert!(Config::parse(Path::new("c"), "metrics_addr = \"off\"\n").is_ok());
        assert!(Config::parse(Path::new("c"), "[scope]\nexclude_images = [\"a[\"]\n").is_err());
    }

    #[test]
    fn a_scope_key_spelt_like_its_flag_gets_the_plural_suggested() {
        for key in ["include_image", "include-image", "exclude_label"] {
            let text = format!("[scope]\n{key} = [\"a=b\"]\n");
            let msg = Config::parse(Path::new("r.toml"), &text)
                .unwrap_err()
                .to_string();
            let plural = format!("{}s", key.replace('-', "_"));
            assert!(msg.contains(&format!("did you mean `{plural}`?")), "{msg}");
            assert!(!msg.contains('\n'), "one line: {msg}");
        }
        let msg = Config::parse(Path::new("r.toml"), "record-all = true\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("did you mean `record_all`?"), "{msg}");
        let msg = Config::parse(Path::new("r.toml"), "nonsense = 1\n")
            .unwrap_err()
            .to_string();
        assert!(!msg.contains("did you mean"), "{msg}");
        for (typo, meant) in [
            ("profile_dir", "profiles_dir"),
            ("pin-dirs", "pin_dir"),
            ("capacty", "capacity"),
        ] {
            let msg = Config::parse(Path::new("r.toml"), &format!("{typo} = 1\n"))
                .unwrap_err()
                .to_string();
            assert!(msg.contains(&format!("did you mean `{meant}`?")), "{msg}");
        }
    }

    #[test]
    fn scope_errors_name_the_key_and_the_value() {
        let msg = Config::parse(Path::new("r.toml"), "[scope]\ninclude_labels = [\"app\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("invalid config r.toml: [scope] include_labels: 'app': "),
            "{msg}"
        );
        assert!(msg.contains("KEY=VALUE") && msg.contains("app=*"), "{msg}");
    }

    #[test]
    fn images_and_scope_tables() {
        let c = Config::parse(
            Path::new("c"),
            "[images]\nready_min_runs = 2\nkeep_days = 0\n[scope]\nexclude_images = [\"test/*\"]\n",
        )
        .unwrap();
        assert_eq!(c.images.ready_min_runs, 2);
        assert_eq!(c.images.ready_quiet_runs, 3);
        assert_eq!(c.images.keep_days, 0);
        assert_eq!(c.scope.exclude_images, ["test/*"]);
        assert!(Config::parse(Path::new("c"), "[images]\nready = 1\n").is_err());
    }

    #[test]
    fn registry_table() {
        let c = Config::parse(
            Path::new("c"),
            "[registry]\nrepository = \"127.0.0.1:5000/p\"\nnode = \"n1\"\ninsecure = [\"r:5000\"]\n",
        )
        .unwrap();
        assert_eq!(c.registry.repository.as_deref(), Some("127.0.0.1:5000/p"));
        assert_eq!(c.registry.node_name(), "n1");
        assert_eq!(c.registry.insecure, ["r:5000"]);
        assert!(!c.registry.install);
        assert_eq!(
            c.registry.install_dir,
            Path::new("/var/lib/kubelet/seccomp")
        );
        let e = Config::parse(
            Path::new("c"),
            "[registry]\nrepository = \"r:5000/p:tag\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("[registry] repository"), "{e}");
        let e = Config::parse(Path::new("c"), "[registry]\nnode = \"a,b\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[registry] node"), "{e}");
        assert!(Config::parse(Path::new("c"), "[registry]\nrepo = \"x\"\n").is_err());
        assert!(Config::parse(Path::new("c"), "[registry]\ninstall_dir = \"k\"\n").is_err());
        assert!(Config::default().registry.repository.is_none());
    }
}

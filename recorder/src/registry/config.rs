//! The `[registry]` table of recorderd.toml: where the node pushes its
//! contributions, as which node, and which registries may be reached over
//! plain HTTP. `config.rs` holds it as `registry`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where `install` writes by default: kubelet's seccomp root.
const INSTALL_DIR: &str = "/var/lib/kubelet/seccomp";

/// The `[registry]` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// The repository contributions go to (`host[:port]/path`); none: no
    /// pushing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// This node's name in its contributions; default: the hostname.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Registries (`host[:port]`) reached over plain HTTP; loopback ones
    /// always may be.
    pub insecure: Vec<String>,
    /// Pull the published profiles of the images this node records into
    /// `install_dir` (for `localhostProfile`).
    pub install: bool,
    pub install_dir: PathBuf,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            repository: None,
            node: None,
            insecure: Vec::new(),
            install: false,
            install_dir: PathBuf::from(INSTALL_DIR),
        }
    }
}

/// The hostname (for `--node`'s default), or `localhost`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Whether `name` will do as a node's name: 1 to 253 characters of
/// `[A-Za-z0-9._-]` (a hostname, a Kubernetes node name). It goes into
/// tags, logs and the comma-separated `dev.recorder.node` of a merge, so
/// an empty name, a comma or a control character is refused.
pub fn check_node(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err(format!(
            "a node name has 1 to 253 characters, not {}",
            name.len()
        ));
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => Err(format!(
            "{:?} is no node name: {:?} is not one of A-Z a-z 0-9 . _ -",
            name.escape_debug().to_string(),
            c
        )),
        None => Ok(()),
    }
}

impl RegistryConfig {
    /// The node's name: `node`, else the hostname.
    pub fn node_name(&self) -> String {
        self.node.clone().unwrap_or_else(hostname)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_hostnames() {
        for ok in ["node-a", "worker-1.example.org", "ip_10_0_0_1", "N1"] {
            assert!(check_node(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a,b", "ev\x1bil", "a b", "a/b", &"x".repeat(254)] {
            let e = check_node(bad).unwrap_err();
            assert_eq!(e.lines().count(), 1, "{e}");
        }
        assert!(check_node(&hostname()).is_ok(), "this host's name");
    }
}

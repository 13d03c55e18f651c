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

impl RegistryConfig {
    /// The node's name: `node`, else the hostname.
    pub fn node_name(&self) -> String {
        self.node.clone().unwrap_or_else(hostname)
    }
}

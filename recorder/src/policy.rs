//! The seccomp policy a container runs under while it is recorded: the
//! `linux.seccomp` of its OCI bundle's config.json, found where each
//! runtime keeps it (docker's and containerd's task directories,
//! containers/storage's roots from storage.conf for podman and CRI-O), or
//! given by the OCI hook's state, read into a [`Policy`]. Read it while the container runs: the bundle goes with it.
//!
//! Parsed with serde into the docker model ([`Profile`]), which has the
//! shape of the runtime-spec's `LinuxSeccomp`; only `linux.seccomp` is read.

use std::{
    io,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::{
    container::{ContainerRef, Runtime},
    containerd,
    profile::{Policy, Profile},
};

/// containers/storage's config files (podman, CRI-O), the first that exists.
const STORAGE_CONF: &[&str] = &[
    "/etc/containers/storage.conf",
    "/usr/share/containers/storage.conf",
];
/// containers/storage's run root and graph root when its config does not say.
const DEFAULT_RUNROOT: &str = "/run/containers/storage";
const DEFAULT_GRAPHROOT: &str = "/var/lib/containers/storage";

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read {path}: {err}")]
    Read { path: PathBuf, err: io::Error },
    #[error("malformed OCI config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("no OCI bundle found for container {0}")]
    NotFound(String),
}

/// The part of an OCI config.json read here.
#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    linux: Option<Linux>,
}

#[derive(Deserialize)]
struct Linux {
    #[serde(default)]
    seccomp: Option<Profile>,
}

/// The policy in the OCI config `text`: its `linux.seccomp`, or
/// [`Policy::Unconfined`] when it has none.
pub fn parse_config(path: &Path, text: &str) -> Result<Policy, PolicyError> {
    let config: Config = serde_json::from_str(text).map_err(|e| PolicyError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    Ok(match config.linux.and_then(|l| l.seccomp) {
        Some(filter) => Policy::Filter(Box::new(filter)),
        None => Policy::Unconfined,
    })
}

/// Reads the OCI config at `path`.
pub fn read_config(path: &Path) -> Result<Policy, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
        path: path.to_owned(),
        err: source,
    })?;
    parse_config(path, &text)
}

/// Reads the config.json of the OCI bundle `bundle` (the OCI hook's
/// `state.bundle`).
pub fn read_bundle(bundle: &Path) -> Result<Policy, PolicyError> {
    read_config(&bundle.join("config.json"))
}

/// containers/storage's run root and graph root (`runroot`, `graphroot` of
/// its storage.conf): CRI-O keeps a container's bundle under the first,
/// podman (4.x) under the second.
pub fn storage_roots() -> [PathBuf; 2] {
    storage_roots_in(STORAGE_CONF)
}

/// The run root and graph root set by the first of `confs` that can be
/// read (containers/storage's defaults for what it does not set).
pub fn storage_roots_in<P: AsRef<Path>>(confs: &[P]) -> [PathBuf; 2] {
    #[derive(Deserialize, Default)]
    struct Conf {
        #[serde(default)]
        storage: Storage,
    }
    #[derive(Deserialize, Default)]
    struct Storage {
        #[serde(default)]
        runroot: Option<PathBuf>,
        #[serde(default)]
        graphroot: Option<PathBuf>,
    }
    let conf = confs
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| toml::from_str::<Conf>(&text).ok())
        .unwrap_or_default()
        .storage;
    let or = |p: Option<PathBuf>, default: &str| {
        p.filter(|p| p.is_absolute())
            .unwrap_or_else(|| PathBuf::from(default))
    };
    [
        or(conf.runroot, DEFAULT_RUNROOT),
        or(conf.graphroot, DEFAULT_GRAPHROOT),
    ]
}

/// The config.json of container `id` under a containers/storage root:
/// `<root>/<driver>-containers/<id>/userdata/config.json`.
fn storage_config(root: &Path, id: &str) -> Option<PathBuf> {
    std::fs::read_dir(root)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("-containers"))
        .map(|e| e.path().join(id).join("userdata/config.json"))
        .find(|p| p.is_file())
}

/// Where the runtime of `c` keeps its OCI config, if it is there: docker's
/// and containerd's in containerd's task directories (docker's in the
/// `moby` namespace, Kubernetes' in `k8s.io`), podman's and CRI-O's under
/// containers/storage's roots.
pub fn config_path(c: &ContainerRef) -> Option<PathBuf> {
    let task = |ns: &str| containerd::bundle_config(&containerd::roots(), ns, &c.id);
    let storage = || {
        storage_roots()
            .iter()
            .find_map(|root| storage_config(root, &c.id))
    };
    match c.runtime {
        Runtime::Docker => task("moby"),
        Runtime::Containerd => task(c.namespace.as_deref().unwrap_or("default")),
        Runtime::Kubernetes => task("k8s.io").or_else(storage),
        Runtime::Podman | Runtime::Crio => storage(),
        Runtime::None => None,
    }
}

/// The policy container `c` runs under, from its runtime's bundle.
pub fn of_container(c: &ContainerRef) -> Result<Policy, PolicyError> {
    let path = config_path(c).ok_or_else(|| PolicyError::NotFound(c.id.clone()))?;
    read_config(&path)
}

/// The policy a child of this process starts under: unconfined when this
/// process has no seccomp filter (`Seccomp:` in /proc/self/status), unknown
/// otherwise (a filter cannot be read back).
pub fn of_self() -> Policy {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mode = status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .map(str::trim);
    match mode {
        Some("0") => Policy::Unconfined,
        _ => Policy::Unknown,
    }
}

/// A seccomp profile someone chose for a container, rather than the
/// runtime's default (or none).
///
/// STUB: the `drift` branch owns this type and its predicate
/// ([`chosen_profile`]); this stand-in is replaced at the merge.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct ChosenProfile {
    /// Where it came from (here: the bundle).
    pub source: String,
    /// Its default action.
    pub default_action: String,
}

/// Whether `policy` is a chosen profile. STUB (see [`ChosenProfile`]): the
/// runtimes' default profiles allow some 300 and more syscalls, a
/// workload's own profile far fewer.
pub fn chosen_profile(policy: &Policy) -> Option<ChosenProfile> {
    const DEFAULT_PROFILES_ALLOW_MORE: usize = 250;
    match policy {
        Policy::Filter(p) if crate::images::syscalls(p) < DEFAULT_PROFILES_ALLOW_MORE => {
            Some(ChosenProfile {
                source: "bundle".to_owned(),
                default_action: p.default_action.clone(),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{ACT_ERRNO, ENOSYS};

    #[test]
    fn reads_linux_seccomp() {
        let text = r#"{"ociVersion":"1.0.2","process":{"args":["sh"]},
          "linux":{"namespaces":[{"type":"pid"}],"seccomp":{
            "defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
            "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
            "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"},
              {"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
              {"names":["personality"],"action":"SCMP_ACT_ALLOW",
               "args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}}}"#;
        let Policy::Filter(p) = parse_config(Path::new("c.json"), text).unwrap() else {
            panic!("no filter")
        };
        assert_eq!(p.default_action, ACT_ERRNO);
        assert_eq!(p.syscalls.len(), 3);
        assert_eq!(p.syscalls[1].errno_ret, Some(ENOSYS));
        assert_eq!(p.syscalls[2].args[0].value, 8);
    }

    #[test]
    fn no_seccomp_is_unconfined() {
        for text in [
            r#"{"ociVersion":"1.0.2"}"#,
            r#"{"linux":{"namespaces":[]}}"#,
        ] {
            assert_eq!(
                parse_config(Path::new("c.json"), text).unwrap(),
                Policy::Unconfined
            );
        }
        assert!(matches!(
            parse_config(Path::new("c.json"), "{nope"),
            Err(PolicyError::Parse { .. })
        ));
    }

    #[test]
    fn finds_storage_configs_by_driver() {
        let dir = tempfile::tempdir().unwrap();
        let id = "a".repeat(64);
        let user = dir.path().join("vfs-containers").join(&id).join("userdata");
        std::fs::create_dir_all(&user).unwrap();
        std::fs::write(user.join("config.json"), "{}").unwrap();
        std::fs::create_dir_all(dir.path().join("overlay-layers")).unwrap();
        assert_eq!(
            storage_config(dir.path(), &id),
            Some(user.join("config.json"))
        );
        assert_eq!(storage_config(dir.path(), &"b".repeat(64)), None);
    }

    #[test]
    fn missing_bundle_is_an_error() {
        let c = ContainerRef {
            id: "0".repeat(64),
            runtime: Runtime::Docker,
            pod_uid: None,
            namespace: None,
        };
        assert!(matches!(of_container(&c), Err(PolicyError::NotFound(_))));
        assert!(matches!(
            read_bundle(Path::new("/nonexistent-bundle")),
            Err(PolicyError::Read { .. })
        ));
    }

    #[test]
    fn own_policy_is_unconfined_or_unknown() {
        // Either, depending on how the tests run; never a filter.
        assert!(matches!(of_self(), Policy::Unconfined | Policy::Unknown));
    }
}

//! The seccomp policy a container runs under while it is recorded: the
//! `linux.seccomp` of its OCI bundle's config.json, found where each
//! runtime keeps it (docker's and containerd's task directories,
//! containers/storage's roots from storage.conf for podman and CRI-O), or
//! given by the OCI hook's state, read into a [`Policy`]. Read it while the container runs: the bundle goes with it.
//!
//! Parsed with serde into the docker model ([`Profile`]), which has the
//! shape of the runtime-spec's `LinuxSeccomp`; only `linux.seccomp` and
//! `annotations` are read. The annotations give a Kubernetes container's
//! pod and namespace names ([`pod_names`]), as CRI runtimes write them.
//!
//! Also whether that policy is a profile someone chose ([`chosen`]) rather
//! than the runtime's default or none: what `recorderctl drift` compares a
//! container's syscalls with.

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use sha2::Digest as _;

use crate::{
    container::{ContainerRef, Runtime},
    containerd,
    profile::{ACT_LOG, Policy, Profile},
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
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    root: Option<Root>,
}

#[derive(Deserialize)]
struct Root {
    #[serde(default)]
    path: String,
}

#[derive(Deserialize)]
struct Linux {
    #[serde(default)]
    seccomp: Option<Profile>,
}

/// What a bundle's config.json tells of its seccomp policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bundle {
    pub policy: Policy,
    /// The config's `annotations` (podman and CRI-O name the profile there).
    pub annotations: BTreeMap<String, String>,
    /// The root filesystem's path (`root.path`), when absolute: a
    /// `--rootfs` container's own directory (else the runtime's mount of
    /// its image, or a path relative to the bundle).
    pub root: Option<String>,
}

/// The policy in the OCI config `text`: its `linux.seccomp`, or
/// [`Policy::Unconfined`] when it has none.
pub fn parse_config(path: &Path, text: &str) -> Result<Policy, PolicyError> {
    parse_bundle(path, text).map(|b| b.policy)
}

/// The policy and the annotations in the OCI config `text`.
pub fn parse_bundle(path: &Path, text: &str) -> Result<Bundle, PolicyError> {
    let config: Config = serde_json::from_str(text).map_err(|e| PolicyError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let policy = match config.linux.and_then(|l| l.seccomp) {
        Some(filter) => Policy::Filter(Box::new(filter)),
        None => Policy::Unconfined,
    };
    Ok(Bundle {
        policy,
        annotations: config.annotations,
        root: config.root.map(|r| r.path).filter(|p| p.starts_with('/')),
    })
}

/// Reads the OCI config at `path`.
pub fn read_config(path: &Path) -> Result<Policy, PolicyError> {
    read_config_bundle(path).map(|b| b.policy)
}

/// Reads the OCI config at `path`, annotations too.
pub fn read_config_bundle(path: &Path) -> Result<Bundle, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
        path: path.to_owned(),
        err: source,
    })?;
    parse_bundle(path, &text)
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
/// `moby` namespace, Kubernetes' in `k8s.io`, else in whichever namespace
/// has a task of that id), podman's and CRI-O's under containers/storage's
/// roots.
pub fn config_path(c: &ContainerRef) -> Option<PathBuf> {
    let task = |ns: &str| containerd::bundle_config(&containerd::roots(), ns, &c.id);
    // CRI's namespace first, then any that has a task of this id.
    let cri =
        || task("k8s.io").or_else(|| containerd::find_bundle_config(&containerd::roots(), &c.id));
    let storage = || {
        storage_roots()
            .iter()
            .find_map(|root| storage_config(root, &c.id))
    };
    match c.runtime {
        Runtime::Docker => task("moby"),
        Runtime::Containerd => match &c.namespace {
            Some(ns) => task(ns),
            None => cri(),
        },
        Runtime::Kubernetes => cri().or_else(storage),
        Runtime::Podman | Runtime::Crio => storage(),
        Runtime::None => None,
    }
}

/// The policy container `c` runs under, from its runtime's bundle.
pub fn of_container(c: &ContainerRef) -> Result<Policy, PolicyError> {
    bundle_of(c).map(|b| b.policy)
}

/// The policy and annotations of container `c`'s bundle.
pub fn bundle_of(c: &ContainerRef) -> Result<Bundle, PolicyError> {
    let path = config_path(c).ok_or_else(|| PolicyError::NotFound(c.id.clone()))?;
    read_config_bundle(&path)
}

/// podman (4.x) names the profile given with `--security-opt seccomp=` here
/// (a path, or `unconfined`); absent under its default profile.
pub const PODMAN_SECCOMP: &str = "io.podman.annotations.seccomp";
/// CRI-O names a container's profile here: `runtime/default`, `unconfined`
/// or empty, or the path of a `localhost/` profile.
pub const CRIO_SECCOMP: &str = "io.kubernetes.cri-o.SeccompProfilePath";

pub use recorder_api::chosen::{ChosenBy, ChosenProfile, denies, enforcing};

/// `sha256:<hex>` of `filter`'s canonical JSON.
pub fn digest(filter: &Profile) -> String {
    // Serialising a tree of strings, numbers and maps cannot fail.
    let json = serde_json::to_vec(filter).unwrap_or_default();
    let hash = sha2::Sha256::digest(&json);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// What the runtime says of a container's seccomp profile.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Said {
    /// Chosen: by whom, and the file where known.
    Chosen(ChosenBy, Option<String>),
    /// The runtime's default, or none.
    NotChosen,
    /// The runtime does not say.
    Nothing,
}

/// What the annotations (podman, CRI-O) or docker's `seccomp=` security
/// option (`docker_seccomp`: its value, from the Engine API) say.
fn said(annotations: &BTreeMap<String, String>, docker_seccomp: Option<&str>) -> Said {
    if let Some(v) = annotations.get(PODMAN_SECCOMP) {
        return match v.as_str() {
            "" | "unconfined" => Said::NotChosen,
            path => Said::Chosen(ChosenBy::Podman, Some(path.to_owned())),
        };
    }
    // podman writes the annotation only for a chosen profile.
    if annotations.get("io.container.manager").map(String::as_str) == Some("libpod") {
        return Said::NotChosen;
    }
    if let Some(v) = annotations.get(CRIO_SECCOMP) {
        return match v.as_str() {
            "" | "unconfined" | "runtime/default" | "docker/default" => Said::NotChosen,
            other => {
                let path = other.strip_prefix("localhost/").unwrap_or(other);
                Said::Chosen(ChosenBy::Crio, Some(path.to_owned()))
            }
        };
    }
    match docker_seccomp.map(str::trim) {
        Some("unconfined" | "builtin" | "") => Said::NotChosen,
        Some(_) => Said::Chosen(ChosenBy::Docker, None),
        None => Said::Nothing,
    }
}

/// Whether `bundle`'s policy is a profile someone chose, and which.
/// `docker_seccomp` is the value of docker's `seccomp=` security option
/// (`HostConfig.SecurityOpt`), for docker containers.
///
/// What the runtime says wins; a filter whose default action is
/// `SCMP_ACT_LOG` (complain mode) is chosen whatever it says. containerd
/// (ctr, nerdctl, Kubernetes through containerd's CRI) marks nothing in the
/// bundle: only its complain-mode profiles are told apart from its default.
pub fn chosen(bundle: &Bundle, docker_seccomp: Option<&str>) -> Option<ChosenProfile> {
    let Policy::Filter(filter) = &bundle.policy else {
        return None;
    };
    let (chosen_by, path) = match said(&bundle.annotations, docker_seccomp) {
        Said::Chosen(by, path) => (by, path),
        Said::NotChosen | Said::Nothing if filter.default_action == ACT_LOG => {
            (ChosenBy::ComplainMode, None)
        }
        Said::NotChosen | Said::Nothing => return None,
    };
    Some(ChosenProfile {
        path,
        digest: digest(filter),
        default_action: filter.default_action.clone(),
        chosen_by,
    })
}

/// A Kubernetes container's names, from the annotations its CRI runtime
/// wrote into its bundle (its kubepods cgroup path has only the pod's UID);
/// `names::describe` keeps them in the container's `Container`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodNames {
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
}

/// The annotation keys of the namespace, pod and container names:
/// containerd's CRI plugin's, then CRI-O's (kubelet's label names).
const POD_ANNOTATIONS: [[&str; 3]; 2] = [
    [
        "io.kubernetes.cri.sandbox-namespace",
        "io.kubernetes.cri.sandbox-name",
        "io.kubernetes.cri.container-name",
    ],
    [
        "io.kubernetes.pod.namespace",
        "io.kubernetes.pod.name",
        "io.kubernetes.container.name",
    ],
];

impl PodNames {
    /// `namespace/pod/container` (`namespace/pod` without a container
    /// name), the name of a container that has no other; none without
    /// both the namespace and the pod.
    pub fn name(&self) -> Option<String> {
        let (ns, pod) = (self.namespace.as_deref()?, self.pod.as_deref()?);
        Some(match &self.container {
            Some(c) => format!("{ns}/{pod}/{c}"),
            None => format!("{ns}/{pod}"),
        })
    }
}

/// The pod names in the OCI config `text`'s annotations; none when it has
/// none of them (or is not an OCI config).
pub fn parse_pod_names(text: &str) -> Option<PodNames> {
    #[derive(Deserialize)]
    struct Annotated {
        #[serde(default)]
        annotations: std::collections::HashMap<String, serde_json::Value>,
    }
    let a = serde_json::from_str::<Annotated>(text).ok()?.annotations;
    let get = |i: usize| {
        POD_ANNOTATIONS
            .iter()
            .find_map(|keys| a.get(keys[i])?.as_str().filter(|v| !v.is_empty()))
            .map(str::to_owned)
    };
    let names = PodNames {
        namespace: get(0),
        pod: get(1),
        container: get(2),
    };
    (names != PodNames::default()).then_some(names)
}

/// The pod names of container `c`, from its runtime's bundle (where
/// [`config_path`] finds it).
pub fn pod_names(c: &ContainerRef) -> Option<PodNames> {
    parse_pod_names(&std::fs::read_to_string(config_path(c)?).ok()?)
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
    fn pod_names_from_cri_annotations() {
        // containerd's CRI plugin.
        let containerd = r#"{"ociVersion":"1.1.0","annotations":{
          "io.kubernetes.cri.container-type":"container",
          "io.kubernetes.cri.sandbox-name":"web-7d4b9c",
          "io.kubernetes.cri.sandbox-namespace":"shop",
          "io.kubernetes.cri.sandbox-uid":"0f6c1e9e-1d2b-4c3a-9e8f-0a1b2c3d4e5f",
          "io.kubernetes.cri.container-name":"nginx",
          "io.kubernetes.cri.image-name":"docker.io/library/nginx:1"}}"#;
        let p = parse_pod_names(containerd).unwrap();
        assert_eq!(p.namespace.as_deref(), Some("shop"));
        assert_eq!(p.pod.as_deref(), Some("web-7d4b9c"));
        assert_eq!(p.name().as_deref(), Some("shop/web-7d4b9c/nginx"));
        // CRI-O.
        let crio = r#"{"annotations":{"io.kubernetes.pod.name":"db-0",
          "io.kubernetes.pod.namespace":"default",
          "io.kubernetes.container.name":"postgres",
          "io.kubernetes.cri-o.ContainerType":"container"}}"#;
        assert_eq!(
            parse_pod_names(crio).unwrap().name().as_deref(),
            Some("default/db-0/postgres")
        );
        // The pause container: no container name.
        let sandbox = r#"{"annotations":{"io.kubernetes.cri.sandbox-name":"web",
          "io.kubernetes.cri.sandbox-namespace":"shop"}}"#;
        assert_eq!(
            parse_pod_names(sandbox).unwrap().name().as_deref(),
            Some("shop/web")
        );
        // A pod without its namespace names nothing; no annotations, none.
        let half = r#"{"annotations":{"io.kubernetes.cri.sandbox-name":"web"}}"#;
        assert_eq!(parse_pod_names(half).unwrap().name(), None);
        for text in [
            r#"{"ociVersion":"1.0.2"}"#,
            r#"{"annotations":{"org.opencontainers.image.ref.name":"x"}}"#,
            r#"{"annotations":{"io.kubernetes.pod.name":""}}"#,
            "{nope",
        ] {
            assert_eq!(parse_pod_names(text), None, "{text}");
        }
    }

    #[test]
    fn own_policy_is_unconfined_or_unknown() {
        // Either, depending on how the tests run; never a filter.
        assert!(matches!(of_self(), Policy::Unconfined | Policy::Unknown));
    }

    /// A config.json with `annotations` and a filter with `default`.
    fn bundle(annotations: &str, default: &str) -> Bundle {
        let text = format!(
            r#"{{"ociVersion":"1.0.2","annotations":{{{annotations}}},
              "linux":{{"seccomp":{{"defaultAction":"{default}",
                "architectures":["SCMP_ARCH_X86_64"],
                "syscalls":[{{"names":["read","mkdir"],"action":"SCMP_ACT_ALLOW"}}]}}}}}}"#
        );
        parse_bundle(Path::new("config.json"), &text).unwrap()
    }

    const PODMAN: &str = r#""io.container.manager":"libpod","io.kubernetes.cri-o.TTY":"false","io.podman.annotations.privileged":"FALSE""#;

    #[test]
    fn podman_names_a_chosen_profile_in_its_annotation() {
        let chosen_one = bundle(
            &format!(r#"{PODMAN},"io.podman.annotations.seccomp":"/etc/p/web.json""#),
            "SCMP_ACT_ERRNO",
        );
        let c = chosen(&chosen_one, None).unwrap();
        assert_eq!(c.path.as_deref(), Some("/etc/p/web.json"));
        assert_eq!(c.name(), "/etc/p/web.json");
        assert_eq!(c.chosen_by, ChosenBy::Podman);
        assert!(c.enforcing());
        // podman's default profile: no annotation.
        assert_eq!(chosen(&bundle(PODMAN, "SCMP_ACT_ERRNO"), None), None);
        // A complain-mode profile is chosen even where nothing says so.
        let log = chosen(&bundle(PODMAN, "SCMP_ACT_LOG"), None).unwrap();
        assert_eq!(log.chosen_by, ChosenBy::ComplainMode);
        assert!(!log.enforcing());
        assert!(log.name().starts_with("sha256:"), "{}", log.name());
    }

    #[test]
    fn crio_annotation_tells_localhost_profiles() {
        let local = bundle(
            r#""io.kubernetes.cri-o.SeccompProfilePath":"localhost/profiles/web.json""#,
            "SCMP_ACT_ERRNO",
        );
        let c = chosen(&local, None).unwrap();
        assert_eq!(
            (c.chosen_by, c.path.as_deref()),
            (ChosenBy::Crio, Some("profiles/web.json"))
        );
        for default in ["runtime/default", "", "unconfined"] {
            let b = bundle(
                &format!(r#""io.kubernetes.cri-o.SeccompProfilePath":"{default}""#),
                "SCMP_ACT_ERRNO",
            );
            assert_eq!(chosen(&b, None), None, "{default}");
        }
    }

    #[test]
    fn docker_security_opt_tells_a_chosen_profile() {
        // docker's bundle says nothing; the Engine API's SecurityOpt does
        // (the CLI sends the profile's JSON, not its path).
        let b = bundle("", "SCMP_ACT_ERRNO");
        let c = chosen(&b, Some(r#"{"defaultAction":"SCMP_ACT_ERRNO"}"#)).unwrap();
        assert_eq!((c.chosen_by, c.path.as_deref()), (ChosenBy::Docker, None));
        assert_eq!(c.name(), c.digest);
        assert_eq!(chosen(&b, None), None, "docker's default profile");
        assert_eq!(chosen(&b, Some("unconfined")), None);
        // containerd says nothing either: only complain mode is told.
        let log = chosen(&bundle("", "SCMP_ACT_LOG"), None).unwrap();
        assert_eq!(log.chosen_by, ChosenBy::ComplainMode);
    }

    #[test]
    fn unconfined_is_never_chosen_and_digests_are_stable() {
        let none = parse_bundle(
            Path::new("c.json"),
            r#"{"annotations":{"io.podman.annotations.seccomp":"/p.json"}}"#,
        )
        .unwrap();
        assert_eq!(chosen(&none, Some("/p.json")), None);
        let (a, b) = (bundle("", "SCMP_ACT_LOG"), bundle(PODMAN, "SCMP_ACT_LOG"));
        let (Policy::Filter(fa), Policy::Filter(fb)) = (&a.policy, &b.policy) else {
            panic!("no filter")
        };
        assert_eq!(digest(fa), digest(fb));
        assert_eq!(digest(fa).len(), "sha256:".len() + 64);
        assert_ne!(
            digest(fa),
            chosen(&bundle("", "SCMP_ACT_ERRNO"), Some("x"))
                .unwrap()
                .digest
        );
        // Round trip as the state file keeps it.
        let c = chosen(&a, None).unwrap();
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<ChosenProfile>(&text).unwrap(), c);
    }
}

//! Containers as the cgroup tree shows them: which cgroup belongs to which
//! container of which runtime, and finding a container by id or prefix.

use std::fmt;

use recorder_common::{ID_HEX_LEN, LEAF_PREFIX_MAX, LEAF_SUFFIX_MAX, LeafPattern};
use serde::{Deserialize, Serialize};

use crate::cgroup::{CgroupError, Hierarchy};

/// The container cgroup names recognised by default. `{id}` is the 64-hex
/// container id.
pub const DEFAULT_PATTERNS: &[&str] = &[
    // podman, cgroupfs manager: /libpod_parent/libpod-<id>
    "libpod-{id}",
    // podman, systemd manager: /machine.slice/libpod-<id>.scope
    "libpod-{id}.scope",
    // docker, systemd driver: /system.slice/docker-<id>.scope
    "docker-{id}.scope",
    // docker (cgroupfs: /docker/<id>), containerd's ctr (/<ns>/<id>),
    // kubelet with the cgroupfs driver (/kubepods/<qos>/pod<uid>/<id>)
    "{id}",
    // containerd CRI, systemd driver
    "cri-containerd-{id}.scope",
    // CRI-O, systemd driver
    "crio-{id}.scope",
];

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("pattern '{0}' must contain {{id}} exactly once")]
    NoId(String),
    #[error(
        "pattern '{pattern}': the text around {{id}} is too long (at most {max} bytes before, {max2} after)"
    )]
    TooLong {
        pattern: String,
        max: usize,
        max2: usize,
    },
    #[error("pattern '{0}' must not contain '/'")]
    Slash(String),
    #[error("no running container matches '{0}'")]
    NoMatch(String),
    #[error("'{prefix}' is ambiguous; it matches: {}", candidates.join(", "))]
    Ambiguous {
        prefix: String,
        candidates: Vec<String>,
    },
    #[error("'{0}' is not a container id or id prefix (hex digits only)")]
    BadId(String),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
}

/// Compiles `prefix{id}suffix` into the kernel's pattern form.
pub fn compile_pattern(pattern: &str) -> Result<LeafPattern, ContainerError> {
    if pattern.contains('/') {
        return Err(ContainerError::Slash(pattern.to_owned()));
    }
    let (prefix, suffix) = pattern
        .split_once("{id}")
        .filter(|(_, s)| !s.contains("{id}"))
        .ok_or_else(|| ContainerError::NoId(pattern.to_owned()))?;
    if prefix.len() > LEAF_PREFIX_MAX || suffix.len() > LEAF_SUFFIX_MAX {
        return Err(ContainerError::TooLong {
            pattern: pattern.to_owned(),
            max: LEAF_PREFIX_MAX,
            max2: LEAF_SUFFIX_MAX,
        });
    }
    let mut p = LeafPattern::EMPTY;
    p.prefix[..prefix.len()].copy_from_slice(prefix.as_bytes());
    p.suffix[..suffix.len()].copy_from_slice(suffix.as_bytes());
    p.prefix_len = prefix.len() as u32;
    p.suffix_len = suffix.len() as u32;
    p.enabled = 1;
    Ok(p)
}

/// The container runtime a cgroup belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Runtime {
    Podman,
    Docker,
    Containerd,
    Crio,
    /// A kubelet cgroupfs-driver container whose runtime the path does not tell.
    Kubernetes,
    /// Not a container: a cgroup or process the user named.
    None,
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Podman => "podman",
            Self::Docker => "docker",
            Self::Containerd => "containerd",
            Self::Crio => "cri-o",
            Self::Kubernetes => "kubernetes",
            Self::None => "-",
        })
    }
}

/// A container found in the cgroup tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRef {
    /// The full 64-hex id.
    pub id: String,
    pub runtime: Runtime,
    /// The pod's UID, for Kubernetes layouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// containerd's namespace (ctr: /<namespace>/<id>).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

fn is_id(s: &str) -> bool {
    s.len() == ID_HEX_LEN
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Splits a leaf name into its runtime and id.
pub fn parse_leaf(leaf: &str) -> Option<(Option<Runtime>, String)> {
    let strip = |prefix: &str, suffix: &str| {
        leaf.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
            .filter(|id| is_id(id))
            .map(str::to_owned)
    };
    if let Some(id) = strip("libpod-", "").or_else(|| strip("libpod-", ".scope")) {
        return Some((Some(Runtime::Podman), id));
    }
    if let Some(id) = strip("docker-", ".scope") {
        return Some((Some(Runtime::Docker), id));
    }
    if let Some(id) = strip("cri-containerd-", ".scope") {
        return Some((Some(Runtime::Containerd), id));
    }
    if let Some(id) = strip("crio-", ".scope") {
        return Some((Some(Runtime::Crio), id));
    }
    if is_id(leaf) {
        return Some((None, leaf.to_owned()));
    }
    None
}

/// Recognises a container cgroup path such as /libpod_parent/libpod-<id>,
/// /docker/<id>, /system.slice/docker-<id>.scope, /<ns>/<id>, or the
/// kubepods layouts of both cgroup drivers.
pub fn parse_cgroup_path(path: &str) -> Option<ContainerRef> {
    let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let leaf = parts.pop()?;
    let (runtime, id) = parse_leaf(leaf)?;
    let kube = parts.iter().any(|p| p.starts_with("kubepods"));
    let pod_uid = parts.iter().rev().find_map(|p| pod_uid(p));
    let parent = parts.last().copied();
    let (runtime, namespace) = match runtime {
        Some(r) => (r, None),
        None if kube => (Runtime::Kubernetes, None),
        None if parent == Some("docker") => (Runtime::Docker, None),
        None => (Runtime::Containerd, parent.map(str::to_owned)),
    };
    Some(ContainerRef {
        id,
        runtime,
        pod_uid,
        namespace,
    })
}

/// The pod UID in a kubepods path component: `pod<uid>` (cgroupfs) or
/// `kubepods-<qos>-pod<uid_with_underscores>.slice` (systemd).
fn pod_uid(part: &str) -> Option<String> {
    let raw = if let Some(rest) = part.strip_suffix(".slice") {
        rest.rsplit_once("-pod").map(|(_, uid)| uid)?
    } else {
        part.strip_prefix("pod")?
    };
    let uid = raw.replace('_', "-");
    (uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')).then_some(uid)
}

/// A container cgroup found by walking the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub container: ContainerRef,
    /// Its cgroup2 path.
    pub cgroup: String,
}

/// Every container cgroup in the tree (the outermost cgroup per id).
pub fn scan(hierarchy: &Hierarchy) -> Result<Vec<Found>, ContainerError> {
    let mut found: Vec<Found> = Vec::new();
    let mut paths = hierarchy.descendants("")?;
    paths.sort();
    for path in paths {
        if let Some(container) = parse_cgroup_path(&path) {
            // A container's own sub-cgroups that happen to match too.
            if found
                .iter()
                .any(|f| path.starts_with(&format!("{}/", f.cgroup)))
            {
                continue;
            }
            found.push(Found {
                container,
                cgroup: path,
            });
        }
    }
    Ok(found)
}

/// Finds the one running container whose id is `spec` or starts with it.
pub fn resolve(hierarchy: &Hierarchy, spec: &str) -> Result<Found, ContainerError> {
    if spec.is_empty() || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ContainerError::BadId(spec.to_owned()));
    }
    let spec_l = spec.to_ascii_lowercase();
    let mut matches: Vec<Found> = scan(hierarchy)?
        .into_iter()
        .filter(|f| f.container.id.starts_with(&spec_l))
        .collect();
    matches.dedup_by(|a, b| a.container.id == b.container.id);
    match matches.len() {
        0 => Err(ContainerError::NoMatch(spec.to_owned())),
        1 => Ok(matches.remove(0)),
        _ => Err(ContainerError::Ambiguous {
            prefix: spec.to_owned(),
            candidates: matches
                .iter()
                .map(|f| format!("{} ({})", f.container.id, f.container.runtime))
                .collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn podman_paths() {
        let c = parse_cgroup_path(&format!("/libpod_parent/libpod-{ID}")).unwrap();
        assert_eq!((c.id.as_str(), c.runtime), (ID, Runtime::Podman));
        let c = parse_cgroup_path(&format!("/machine.slice/libpod-{ID}.scope")).unwrap();
        assert_eq!(c.runtime, Runtime::Podman);
        assert!(parse_cgroup_path(&format!("/machine.slice/libpod-conmon-{ID}.scope")).is_none());
    }

    #[test]
    fn docker_paths() {
        let c = parse_cgroup_path(&format!("/docker/{ID}")).unwrap();
        assert_eq!(c.runtime, Runtime::Docker);
        let c = parse_cgroup_path(&format!("/system.slice/docker-{ID}.scope")).unwrap();
        assert_eq!(c.runtime, Runtime::Docker);
    }

    #[test]
    fn containerd_paths() {
        let c = parse_cgroup_path(&format!("/default/{ID}")).unwrap();
        assert_eq!(c.runtime, Runtime::Containerd);
        assert_eq!(c.namespace.as_deref(), Some("default"));
    }

    #[test]
    fn kubepods_paths() {
        let uid = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
        let c = parse_cgroup_path(&format!("/kubepods/burstable/pod{uid}/{ID}")).unwrap();
        assert_eq!(c.runtime, Runtime::Kubernetes);
        assert_eq!(c.pod_uid.as_deref(), Some(uid));
        let u = uid.replace('-', "_");
        let c = parse_cgroup_path(&format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice/cri-containerd-{ID}.scope"
        ))
        .unwrap();
        assert_eq!(c.runtime, Runtime::Containerd);
        assert_eq!(c.pod_uid.as_deref(), Some(uid));
        let c = parse_cgroup_path(&format!(
            "/kubepods.slice/kubepods-pod{u}.slice/crio-{ID}.scope"
        ))
        .unwrap();
        assert_eq!(c.runtime, Runtime::Crio);
        assert_eq!(c.pod_uid.as_deref(), Some(uid));
    }

    #[test]
    fn not_containers() {
        assert!(parse_cgroup_path("/system.slice/sshd.service").is_none());
        assert!(parse_cgroup_path("/user.slice/abc").is_none());
        assert!(parse_cgroup_path(&format!("/docker/{}", &ID[1..])).is_none());
    }

    #[test]
    fn patterns_compile() {
        let p = compile_pattern("docker-{id}.scope").unwrap();
        assert_eq!(&p.prefix[..p.prefix_len as usize], b"docker-");
        assert_eq!(&p.suffix[..p.suffix_len as usize], b".scope");
        assert!(compile_pattern("docker").is_err());
        assert!(compile_pattern("a/{id}").is_err());
        assert!(compile_pattern("{id}{id}").is_err());
        for d in DEFAULT_PATTERNS {
            compile_pattern(d).unwrap();
        }
    }
}

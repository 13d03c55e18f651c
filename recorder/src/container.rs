//! Containers as the cgroup tree shows them: which cgroup belongs to which
//! container of which runtime, and finding a container by id or prefix.
//! What is known of a container, [`Container`], is `recorder_api::container`
//! (re-exported here): the control protocol carries it.

use recorder_common::{
    ID_HEX_LEN, LEAF_PREFIX_MAX, LEAF_SUFFIX_MAX, LeafPattern, PATTERN_DEPTH_MAX, PATTERN_PATH,
};

use crate::{
    cgroup::{CgroupError, Hierarchy},
    containerd,
};
pub use recorder_api::container::{
    Container, ContainerRef, MAX_LABEL_BYTES, MAX_LABELS, Runtime, bounded_labels, check_container,
    clean, sanitize,
};

/// The container cgroups recognised by default. `{id}` is the 64-hex
/// container id, matched in the last path component; a pattern that starts
/// with `/` is a whole path, where `*` is any one component and `{name}`
/// any last component (see [`compile_pattern`]).
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
    // containerd's ctr with any container id (/<ns>/<id>): every cgroup at
    // depth two is enrolled, and user space drops those that containerd's
    // task directories do not own (docs/runtimes.md)
    "/*/{name}",
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
    #[error("path pattern '{pattern}': {reason}")]
    BadPath {
        pattern: String,
        reason: &'static str,
    },
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

/// Compiles a pattern into the kernel's form: `prefix{id}suffix`, matched
/// against a new cgroup's last path component, or a whole path such as
/// `/*/{name}` or `/machine.slice/machine-{name}.scope`: literal components,
/// then `*` components, then a last component holding `{name}` (any name),
/// preceded by literal text only when no `*` came before.
pub fn compile_pattern(pattern: &str) -> Result<LeafPattern, ContainerError> {
    if pattern.starts_with('/') {
        return compile_path_pattern(pattern);
    }
    if pattern.contains('/') {
        return Err(ContainerError::Slash(pattern.to_owned()));
    }
    let (prefix, suffix) = pattern
        .split_once("{id}")
        .filter(|(_, s)| !s.contains("{id}"))
        .ok_or_else(|| ContainerError::NoId(pattern.to_owned()))?;
    kernel_pattern(pattern, prefix, suffix)
}

/// The kernel's form of `pattern`: text before and after the name, both
/// within the kernel's bounds.
fn kernel_pattern(
    pattern: &str,
    prefix: &str,
    suffix: &str,
) -> Result<LeafPattern, ContainerError> {
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

fn compile_path_pattern(pattern: &str) -> Result<LeafPattern, ContainerError> {
    let bad = |reason| ContainerError::BadPath {
        pattern: pattern.to_owned(),
        reason,
    };
    let parts: Vec<&str> = pattern[1..].split('/').collect();
    let depth = u16::try_from(parts.len())
        .ok()
        .filter(|d| *d <= PATTERN_DEPTH_MAX)
        .ok_or_else(|| bad("too many components"))?;
    let (last, dirs) = parts.split_last().ok_or_else(|| bad("no components"))?;
    let (before, suffix) = last
        .split_once("{name}")
        .filter(|(_, s)| !s.contains("{name}"))
        .ok_or_else(|| bad("the last component must contain {name} once"))?;
    let mut prefix = String::from("/");
    let mut wild = false;
    for d in dirs {
        match *d {
            "" => return Err(bad("empty component")),
            "*" => wild = true,
            _ if wild => return Err(bad("a literal component after '*'")),
            _ if d.contains(['*', '{', '}']) => return Err(bad("'*' must be a whole component")),
            _ => {
                prefix.push_str(d);
                prefix.push('/');
            }
        }
    }
    if wild && !before.is_empty() {
        return Err(bad("text before {name} after a '*' component"));
    }
    if [before, suffix].iter().any(|t| t.contains(['*', '{', '}'])) {
        return Err(bad("'*', '{' or '}' around {name}"));
    }
    prefix.push_str(before);
    let mut p = kernel_pattern(pattern, &prefix, suffix)?;
    p.kind = PATTERN_PATH;
    p.depth = depth;
    Ok(p)
}

/// The name of a profile file for recording `key`: bytes other than ASCII
/// letters, digits, `.`, `_` and `-` are escaped (`/` as `+`, the rest as
/// `%XX`), and so is a leading `.`, so that no key escapes the directory or
/// hides a file, and two keys never share a file.
pub fn file_stem(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for (i, b) in key.bytes().enumerate() {
        match b {
            b'.' if i == 0 => out.push_str("%2E"),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'-' => out.push(char::from(b)),
            b'/' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
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

impl From<&containerd::Task> for ContainerRef {
    fn from(task: &containerd::Task) -> Self {
        Self {
            id: task.id.clone(),
            runtime: Runtime::Containerd,
            pod_uid: None,
            namespace: Some(task.namespace.clone()),
        }
    }
}

/// Every container cgroup in the tree (the outermost cgroup per id): those
/// the recognisers know by their path, and containerd's tasks' cgroups.
pub fn scan(hierarchy: &Hierarchy) -> Result<Vec<Found>, ContainerError> {
    let mut found: Vec<Found> = Vec::new();
    let mut paths = hierarchy.descendants("")?;
    paths.sort();
    let tasks = containerd::tasks(&containerd::roots());
    for path in paths {
        let task = || {
            tasks
                .iter()
                .find(|t| t.cgroup.as_deref() == Some(path.as_str()))
                .map(ContainerRef::from)
        };
        if let Some(container) = parse_cgroup_path(&path).or_else(task) {
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

/// Parents whose children are all expected to be containers: docker's and
/// podman's cgroupfs parents, and the cgroups of containerd's namespaces.
/// Returns the parent of `path` if it is one, and its runtime.
pub fn runtime_parent(path: &str) -> Option<(&str, Runtime)> {
    let parent = path.rsplit_once('/')?.0;
    let runtime = match parent {
        "/docker" => Runtime::Docker,
        "/libpod_parent" => Runtime::Podman,
        _ => parent
            .strip_prefix('/')
            .filter(|ns| containerd::is_namespace(&containerd::roots(), ns))
            .map(|_| Runtime::Containerd)?,
    };
    Some((parent, runtime))
}

/// Cgroups runtimes make next to their containers for their own helpers
/// (podman's conmon), which are not containers.
pub fn is_runtime_helper(path: &str) -> bool {
    let leaf = path.rsplit('/').next().unwrap_or_default();
    leaf == "conmon" || leaf.starts_with("libpod-conmon-")
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
    fn keys_and_file_names() {
        let c = ContainerRef {
            id: "myapp".to_owned(),
            runtime: Runtime::Containerd,
            pod_uid: None,
            namespace: Some("demo".to_owned()),
        };
        assert_eq!(c.key(), "demo/myapp");
        assert_eq!(file_stem(&c.key()), "demo+myapp");
        assert_eq!(file_stem(ID), ID);
        for (key, stem) in [
            ("..", "%2E."),
            ("../../etc/passwd", "%2E.+..+etc+passwd"),
            ("a/../b", "a+..+b"),
            (".hidden", "%2Ehidden"),
            ("", "%00"),
            ("a+b", "a%2Bb"),
            ("a b\n%", "a%20b%0A%25"),
        ] {
            assert_eq!(file_stem(key), stem, "{key}");
            assert!(!stem.contains('/') && !stem.starts_with('.'));
        }
        // Distinct keys, distinct files.
        assert_ne!(file_stem("a/b"), file_stem("a+b"));
        assert_ne!(file_stem("ns1/x"), file_stem("ns2/x"));
    }

    #[test]
    fn path_patterns_compile() {
        let p = compile_pattern("/*/{name}").unwrap();
        assert_eq!((p.kind, p.depth), (PATTERN_PATH, 2));
        assert_eq!(&p.prefix[..p.prefix_len as usize], b"/");
        assert_eq!(p.suffix_len, 0);
        let p = compile_pattern("/machine.slice/machine-{name}.scope").unwrap();
        assert_eq!(
            &p.prefix[..p.prefix_len as usize],
            b"/machine.slice/machine-"
        );
        assert_eq!(&p.suffix[..p.suffix_len as usize], b".scope");
        assert_eq!(p.depth, 2);
        let p = compile_pattern("/lxc.payload.{name}").unwrap();
        assert_eq!(p.depth, 1);
        let p = compile_pattern("/a/*/*/{name}").unwrap();
        assert_eq!(
            (&p.prefix[..p.prefix_len as usize], p.depth),
            (&b"/a/"[..], 4)
        );
        for bad in [
            "/",
            "/*/x",
            "/*/a/{name}",
            "/*/x-{name}",
            "/a*/{name}",
            "//{name}",
            "/{name}/{name}",
            "/a/{name}/b",
            "/{id}",
        ] {
            assert!(compile_pattern(bad).is_err(), "{bad}");
        }
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

//! What is known of a container, in one type. [`ContainerRef`] is what the
//! cgroup tree tells (the runtime, the id, the pod's UID, containerd's
//! namespace); [`Container`] is that and what the runtime's metadata tell
//! (name, image, image id, labels, Kubernetes pod and namespace), filled in
//! by `names.rs` and kept as it is by the recordings, the profile index,
//! the control protocol and the metrics. Its JSON is one flat form, the
//! form the index and the protocol used before it: `key`, `runtime`,
//! `pod_uid`, `name`, `image`, `image_id`, `labels`, `pod`, `namespace`.

use std::{collections::BTreeMap, fmt};

use serde::{Deserialize, Serialize};

/// The container runtime a cgroup belongs to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Runtime {
    Podman,
    Docker,
    Containerd,
    Crio,
    /// A kubelet cgroupfs-driver container whose runtime the path does not tell.
    Kubernetes,
    /// Not a container: a cgroup or process the user named.
    #[default]
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

/// A container found in the cgroup tree (or a cgroup that is none, with
/// [`Runtime::None`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Keyed", into = "Keyed")]
pub struct ContainerRef {
    /// The full id: 64 hex digits, or whatever containerd's user chose
    /// (`cgroup-<inode>` for a cgroup that is no container).
    pub id: String,
    pub runtime: Runtime,
    /// The pod's UID, for Kubernetes layouts.
    pub pod_uid: Option<String>,
    /// containerd's namespace (ctr: /<namespace>/<id>).
    pub namespace: Option<String>,
}

impl ContainerRef {
    /// What its recording and profile are known by: `<namespace>/<id>` for
    /// containerd's namespaced containers (the same id may live in two
    /// namespaces), else the id.
    pub fn key(&self) -> String {
        match (&self.runtime, &self.namespace) {
            (Runtime::Containerd, Some(ns)) => format!("{ns}/{}", self.id),
            _ => self.id.clone(),
        }
    }

    /// Cgroup `owner`, recorded because a user named it (by its path or a
    /// process in it) and not a container.
    pub fn cgroup(owner: u64) -> Self {
        Self {
            id: format!("cgroup-{owner}"),
            ..Self::default()
        }
    }

    /// Whether it is a container (not a cgroup a user named).
    pub fn is_container(&self) -> bool {
        self.runtime != Runtime::None
    }
}

/// The JSON form of a [`ContainerRef`]: its key, which gives the id and
/// containerd's namespace back (containerd allows no `/` in either).
#[derive(Serialize, Deserialize)]
struct Keyed {
    key: String,
    runtime: Runtime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pod_uid: Option<String>,
}

impl From<Keyed> for ContainerRef {
    fn from(k: Keyed) -> Self {
        let (namespace, id) = match (k.runtime, k.key.split_once('/')) {
            (Runtime::Containerd, Some((ns, id))) => (Some(ns.to_owned()), id.to_owned()),
            _ => (None, k.key),
        };
        Self {
            id,
            runtime: k.runtime,
            pod_uid: k.pod_uid,
            namespace,
        }
    }
}

impl From<ContainerRef> for Keyed {
    fn from(c: ContainerRef) -> Self {
        Self {
            key: c.key(),
            runtime: c.runtime,
            pod_uid: c.pod_uid,
        }
    }
}

/// What is known of a container: where the cgroup tree found it, and what
/// its runtime says of it. Every string in it came from a container (or
/// whoever started it) and is hostile: names are sanitised where they are
/// filled in ([`clean`]), and everything is escaped on output.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// The runtime, the id (as `key`), the pod's UID.
    #[serde(flatten)]
    pub found: ContainerRef,
    /// Its name: the runtime's, containerd's id, or `namespace/pod/container`
    /// for a Kubernetes container that has no other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The image reference it was created from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The image's id or digest, where the runtime tells it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// Its labels (docker), at most [`MAX_LABELS`] ([`bounded_labels`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// A Kubernetes container's pod (its bundle's CRI annotations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// ...and the pod's namespace (not containerd's).
    #[serde(default, rename = "namespace", skip_serializing_if = "Option::is_none")]
    pub pod_namespace: Option<String>,
    /// Without an image: the root filesystem's path from its bundle
    /// (`podman --rootfs`), which keys its image profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<String>,
}

impl From<ContainerRef> for Container {
    fn from(found: ContainerRef) -> Self {
        Self {
            found,
            ..Self::default()
        }
    }
}

impl Container {
    /// [`ContainerRef::key`].
    pub fn key(&self) -> String {
        self.found.key()
    }

    pub fn runtime(&self) -> Runtime {
        self.found.runtime
    }
}

/// Keeps printable characters only, and at most 128 of them.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '@'))
        .take(128)
        .collect()
}

/// `s` sanitised, none when nothing is left.
pub fn clean(s: &str) -> Option<String> {
    Some(sanitize(s)).filter(|s| !s.is_empty())
}

/// The most labels kept of a container.
pub const MAX_LABELS: usize = 64;
/// The longest label (key and value, in bytes) kept.
pub const MAX_LABEL_BYTES: usize = 1024;

/// The labels kept of a container: at most [`MAX_LABELS`], none longer
/// than [`MAX_LABEL_BYTES`] (left out whole, not cut: a cut label would
/// say something else), so that what is kept of a container stays small
/// in the state, the index and the replies.
pub fn bounded_labels(
    labels: impl IntoIterator<Item = (String, String)>,
) -> BTreeMap<String, String> {
    labels
        .into_iter()
        .filter(|(k, v)| k.len() + v.len() <= MAX_LABEL_BYTES)
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .take(MAX_LABELS)
        .collect()
}

/// Refuses an empty or whitespace-only container id (or prefix, or name).
pub fn check_container(spec: &str) -> Result<(), String> {
    if spec.trim().is_empty() {
        Err("a container id, prefix or name cannot be empty".to_owned())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn found(id: &str, runtime: Runtime, namespace: Option<&str>) -> ContainerRef {
        ContainerRef {
            id: id.to_owned(),
            runtime,
            pod_uid: None,
            namespace: namespace.map(str::to_owned),
        }
    }

    #[test]
    fn a_ref_is_kept_as_its_key() {
        let uid = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
        let cases = [
            (
                found("myapp", Runtime::Containerd, Some("demo")),
                json!({"key": "demo/myapp", "runtime": "containerd"}),
            ),
            // containerd under kubepods' systemd driver: no namespace.
            (
                found("ab12", Runtime::Containerd, None),
                json!({"key": "ab12", "runtime": "containerd"}),
            ),
            (
                found("ab12", Runtime::Docker, None),
                json!({"key": "ab12", "runtime": "docker"}),
            ),
            (
                ContainerRef {
                    pod_uid: Some(uid.to_owned()),
                    ..found("ab12", Runtime::Kubernetes, None)
                },
                json!({"key": "ab12", "runtime": "kubernetes", "pod_uid": uid}),
            ),
            (
                ContainerRef::cgroup(42),
                json!({"key": "cgroup-42", "runtime": "none"}),
            ),
        ];
        for (r, want) in cases {
            assert_eq!(serde_json::to_value(&r).unwrap(), want);
            assert_eq!(serde_json::from_value::<ContainerRef>(want).unwrap(), r);
        }
        assert!(!ContainerRef::cgroup(42).is_container());
    }

    /// The flat form, as the index, the protocol and the state keep it,
    /// beside the fields of the struct that holds it.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Holder {
        #[serde(flatten)]
        container: Container,
        written: u64,
    }

    #[test]
    fn one_flat_form_without_empty_fields() {
        let c = Container {
            name: Some("shop/web/nginx".into()),
            image: Some("busybox:1".into()),
            image_id: Some("sha256:ab".into()),
            labels: [("app".to_owned(), "shop".to_owned())].into(),
            pod: Some("web".into()),
            pod_namespace: Some("shop".into()),
            ..found("myapp", Runtime::Containerd, Some("k8s.io")).into()
        };
        let h = Holder {
            container: c,
            written: 5,
        };
        let want = json!({
            "key": "k8s.io/myapp", "runtime": "containerd", "name": "shop/web/nginx",
            "image": "busybox:1", "image_id": "sha256:ab", "labels": {"app": "shop"},
            "pod": "web", "namespace": "shop", "written": 5
        });
        assert_eq!(serde_json::to_value(&h).unwrap(), want);
        assert_eq!(serde_json::from_value::<Holder>(want).unwrap(), h);
        // Nothing known but the key: nothing else written; fields it does
        // not know are ignored (a newer recorderd's).
        let bare = Holder {
            container: ContainerRef::cgroup(7).into(),
            written: 1,
        };
        let want = json!({"key": "cgroup-7", "runtime": "none", "written": 1});
        assert_eq!(serde_json::to_value(&bare).unwrap(), want);
        let newer = json!({"key": "cgroup-7", "runtime": "none", "written": 1, "later": [1]});
        assert_eq!(serde_json::from_value::<Holder>(newer).unwrap(), bare);
        assert!(
            serde_json::from_value::<Holder>(json!({"runtime": "none", "written": 1})).is_err()
        );
    }

    #[test]
    fn sanitizes() {
        assert_eq!(sanitize("web-1"), "web-1");
        assert_eq!(sanitize("a\nb$(x)"), "abx");
        assert_eq!(sanitize(&"x".repeat(500)).len(), 128);
        assert_eq!(clean("$()"), None);
    }

    #[test]
    fn labels_are_bounded() {
        let many = (0..MAX_LABELS + 10).map(|i| (format!("k{i:03}"), "v".to_owned()));
        let kept = bounded_labels(many);
        assert_eq!(kept.len(), MAX_LABELS);
        assert!(kept.contains_key("k000"));
        let long = [
            ("big".to_owned(), "x".repeat(MAX_LABEL_BYTES)),
            ("ok".to_owned(), "x".repeat(MAX_LABEL_BYTES - 2)),
        ];
        assert_eq!(bounded_labels(long).keys().collect::<Vec<_>>(), ["ok"]);
    }
}

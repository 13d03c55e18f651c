//! Container names and images from the runtimes' own metadata on disk, read
//! without talking to the runtime (so without its socket). Names are shown
//! and accepted wherever an id is; they never form a path.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use crate::{
    cgroup::Hierarchy,
    container::{self, ContainerError, ContainerRef, Found, Runtime},
    containerd,
    policy::{self, PodNames},
};

/// docker's data root, unless /etc/docker/daemon.json sets `data-root`.
const DOCKER_ROOT: &str = "/var/lib/docker";
const DOCKER_DAEMON_JSON: &str = "/etc/docker/daemon.json";

/// The directory of docker's per-container configs.
fn docker_containers() -> PathBuf {
    let root = fs::read_to_string(DOCKER_DAEMON_JSON)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["data-root"].as_str().map(PathBuf::from))
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| DOCKER_ROOT.into());
    root.join("containers")
}

/// Keeps printable characters only, and at most 128 of them.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '@'))
        .take(128)
        .collect()
}

/// The name a runtime gave container `id`, if it can be found.
pub fn lookup(runtime: Runtime, id: &str) -> Option<String> {
    let name = match runtime {
        Runtime::Podman => podman(&policy::storage_roots(), id)
            .as_ref()
            .and_then(podman_name),
        Runtime::Docker => docker(&docker_containers(), id),
        _ => None,
    }?;
    let name = sanitize(&name);
    (!name.is_empty()).then_some(name)
}

/// What the runtimes' metadata on disk tell of a container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Described {
    pub name: Option<String>,
    /// The image reference.
    pub image: Option<String>,
    /// The image's id or digest (docker, podman).
    pub image_id: Option<String>,
    /// Its labels (docker).
    pub labels: BTreeMap<String, String>,
    /// A Kubernetes container's pod and namespace (bundle annotations).
    pub pod: Option<PodNames>,
}

impl From<crate::docker_api::Inspected> for Described {
    fn from(i: crate::docker_api::Inspected) -> Self {
        Self {
            name: i.name,
            image: i.image,
            image_id: i.image_id,
            labels: i.labels,
            pod: None,
        }
    }
}

fn clean(s: &str) -> Option<String> {
    Some(sanitize(s)).filter(|s| !s.is_empty())
}

/// A container's name, image, labels and pod from its runtime's metadata
/// on disk. containerd has no names: the id its user chose is the name. A
/// container with no other name is called `namespace/pod/container` when
/// its bundle names its pod.
pub fn describe(c: &ContainerRef) -> Described {
    let pod = policy::pod_names(c).map(|p| PodNames {
        namespace: p.namespace.and_then(|n| clean(&n)),
        pod: p.pod.and_then(|n| clean(&n)),
        container: p.container.and_then(|n| clean(&n)),
    });
    let mut d = match (c.runtime, &c.namespace) {
        (Runtime::Containerd, Some(ns)) => Described {
            name: clean(&c.id),
            image: containerd::task(&containerd::roots(), ns, &c.id)
                .and_then(|t| t.image)
                .and_then(|i| clean(&i)),
            ..Described::default()
        },
        (Runtime::Podman, _) => {
            let found = podman(&policy::storage_roots(), &c.id);
            Described {
                name: found.as_ref().and_then(podman_name).and_then(|n| clean(&n)),
                image: found
                    .as_ref()
                    .and_then(podman_image)
                    .and_then(|i| clean(&i)),
                image_id: found
                    .as_ref()
                    .and_then(|v| v["image"].as_str().and_then(clean)),
                ..Described::default()
            }
        }
        (Runtime::Docker, _) => {
            let config = docker_config(&docker_containers(), &c.id);
            let config = config.as_ref();
            Described {
                name: config.and_then(docker_name).and_then(|n| clean(&n)),
                image: config.and_then(|v| v["Config"]["Image"].as_str().and_then(clean)),
                image_id: config.and_then(|v| v["Image"].as_str().and_then(clean)),
                labels: config
                    .and_then(|v| v["Config"]["Labels"].as_object())
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                            .collect()
                    })
                    .unwrap_or_default(),
                ..Described::default()
            }
        }
        // The other runtimes keep no names or images on disk.
        _ => Described::default(),
    };
    if d.name.is_none() {
        d.name = pod.as_ref().and_then(PodNames::name);
    }
    d.pod = pod;
    d
}

/// Whether `spec` names container `c`: its key (`ns/id` for containerd),
/// a containerd id, or the name its runtime gave it.
fn is_named(c: &ContainerRef, spec: &str) -> bool {
    c.key() == spec
        || (c.runtime == Runtime::Containerd && c.id == spec)
        || lookup(c.runtime, &c.id).as_deref() == Some(spec)
}

/// Finds the one running container whose id is `spec`, starts with it, or
/// whose runtime calls it `spec` (an id or prefix wins over a name); a
/// containerd container also by `id` or `namespace/id`.
pub fn resolve(hierarchy: &Hierarchy, spec: &str) -> Result<Found, ContainerError> {
    let by_id = match container::resolve(hierarchy, spec) {
        Err(ContainerError::NoMatch(_) | ContainerError::BadId(_)) => None,
        other => Some(other),
    };
    if let Some(result) = by_id {
        return result;
    }
    let mut named: Vec<Found> = container::scan(hierarchy)?
        .into_iter()
        .filter(|f| is_named(&f.container, spec))
        .collect();
    named.dedup_by(|a, b| a.container.key() == b.container.key());
    match named.len() {
        0 => Err(ContainerError::NoMatch(spec.to_owned())),
        1 => Ok(named.remove(0)),
        _ => Err(ContainerError::Ambiguous {
            prefix: spec.to_owned(),
            candidates: named
                .iter()
                .map(|f| format!("{} ({})", f.container.key(), f.container.runtime))
                .collect(),
        }),
    }
}

/// The image a runtime says container `id` runs, if it can be found.
pub fn image(runtime: Runtime, id: &str) -> Option<String> {
    let image = match runtime {
        Runtime::Podman => podman(&policy::storage_roots(), id)
            .as_ref()
            .and_then(podman_image),
        Runtime::Docker => docker_config(&docker_containers(), id)
            .and_then(|v| v["Config"]["Image"].as_str().map(str::to_owned)),
        _ => None,
    }?;
    let image = sanitize(&image);
    (!image.is_empty()).then_some(image)
}

/// podman's container `id` in containers/storage's lists under `roots`
/// (its storage.conf's `runroot` and `graphroot`): `containers.json`, and
/// `volatile-containers.json` (`--rm` and transient containers), in each
/// `<driver>-containers` directory.
fn podman(roots: &[PathBuf], id: &str) -> Option<serde_json::Value> {
    let dirs = roots
        .iter()
        .filter_map(|root| fs::read_dir(root).ok())
        .flat_map(|dir| dir.flatten())
        .filter(|e| e.file_name().to_string_lossy().ends_with("-containers"));
    let lists = dirs
        .flat_map(|d| ["containers.json", "volatile-containers.json"].map(|f| d.path().join(f)));
    lists
        .filter_map(|list| fs::read_to_string(list).ok())
        .filter_map(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .find_map(|v| v.as_array()?.iter().find(|c| c["id"] == id).cloned())
}

fn podman_name(c: &serde_json::Value) -> Option<String> {
    c["names"][0].as_str().map(str::to_owned)
}

fn podman_image(c: &serde_json::Value) -> Option<String> {
    // "metadata" is a JSON document in a string.
    let meta: serde_json::Value = serde_json::from_str(c["metadata"].as_str()?).ok()?;
    meta["image-name"].as_str().map(str::to_owned)
}

fn docker_config(dir: &Path, id: &str) -> Option<serde_json::Value> {
    if !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let text = fs::read_to_string(dir.join(id).join("config.v2.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn docker(dir: &Path, id: &str) -> Option<String> {
    docker_name(&docker_config(dir, id)?)
}

/// The name in a docker container's config.v2.json (without docker's `/`).
fn docker_name(config: &serde_json::Value) -> Option<String> {
    config["Name"]
        .as_str()
        .map(|n| n.trim_start_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes() {
        assert_eq!(sanitize("web-1"), "web-1");
        assert_eq!(sanitize("a\nb$(x)"), "abx");
        assert_eq!(sanitize(&"x".repeat(500)).len(), 128);
    }

    #[test]
    fn reads_podman_lists_where_storage_conf_says() {
        let dir = tempfile::tempdir().unwrap();
        let (graph, run) = (dir.path().join("graph"), dir.path().join("run"));
        let conf = dir.path().join("storage.conf");
        fs::write(
            &conf,
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                graph.display(),
                run.display()
            ),
        )
        .unwrap();
        fs::create_dir_all(graph.join("vfs-containers")).unwrap();
        fs::create_dir_all(run.join("vfs-containers")).unwrap();
        fs::write(
            graph.join("vfs-containers/containers.json"),
            r#"[{"id":"abc","names":["web"],"metadata":"{\"image-name\":\"docker.io/library/nginx:1\"}"}]"#,
        )
        .unwrap();
        fs::write(
            run.join("vfs-containers/volatile-containers.json"),
            r#"[{"id":"def","names":["gone-soon"]}]"#,
        )
        .unwrap();
        let roots = policy::storage_roots_in(&[dir.path().join("absent.conf"), conf]);
        assert_eq!(roots, [run, graph]);
        let name = |id| podman(&roots, id).as_ref().and_then(podman_name);
        assert_eq!(name("abc").as_deref(), Some("web"));
        assert_eq!(name("def").as_deref(), Some("gone-soon"));
        assert_eq!(name("xyz"), None);
        assert_eq!(
            podman(&roots, "abc")
                .as_ref()
                .and_then(podman_image)
                .as_deref(),
            Some("docker.io/library/nginx:1")
        );
        // No storage.conf: containers/storage's defaults.
        let roots = policy::storage_roots_in(&[dir.path().join("absent.conf")]);
        assert_eq!(roots[1], Path::new("/var/lib/containers/storage"));
    }

    #[test]
    fn reads_docker_configs() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("ab12")).unwrap();
        fs::write(
            dir.path().join("ab12/config.v2.json"),
            r#"{"Name":"/web","Config":{"Image":"busybox:1"}}"#,
        )
        .unwrap();
        assert_eq!(docker(dir.path(), "ab12").as_deref(), Some("web"));
        let c = docker_config(dir.path(), "ab12").unwrap();
        assert_eq!(c["Config"]["Image"], "busybox:1");
    }
}

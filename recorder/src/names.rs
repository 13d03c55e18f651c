//! Container names and images from the runtimes' own metadata on disk, read
//! without talking to the runtime (so without its socket). Names are shown
//! and accepted wherever an id is; they never form a path.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::{
    cgroup::Hierarchy,
    container::{self, Container, ContainerError, ContainerRef, Found, Runtime, clean},
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

/// The name a runtime gave container `id`, if it can be found.
pub fn lookup(runtime: Runtime, id: &str) -> Option<String> {
    let name = match runtime {
        Runtime::Podman => podman(&policy::storage_roots(), id)
            .as_ref()
            .and_then(podman_name),
        Runtime::Docker => docker_config(&docker_containers(), id)?.name,
        _ => None,
    }?;
    clean(name.trim_start_matches('/'))
}

/// What docker says of a container, in its own form: its config.v2.json
/// on disk, and the Engine API's inspect answer (the same names; see
/// `docker_api.rs`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerConfig {
    /// Its name, with docker's leading `/`.
    #[serde(default)]
    pub name: Option<String>,
    /// The image's id (`sha256:…`).
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub config: Option<DockerContainerConfig>,
}

/// The `Config` of a [`DockerConfig`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerContainerConfig {
    /// The image reference it was created from.
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

impl DockerConfig {
    /// Container `found` as docker describes it (sanitised).
    pub fn describe(self, found: ContainerRef) -> Container {
        let config = self.config.unwrap_or_default();
        Container {
            name: self
                .name
                .as_deref()
                .and_then(|n| clean(n.trim_start_matches('/'))),
            image: config.image.as_deref().and_then(clean),
            image_id: self.image.as_deref().and_then(clean),
            labels: container::bounded_labels(config.labels.unwrap_or_default()),
            ..Container::from(found)
        }
    }
}

/// What the runtimes' metadata on disk tell of container `found`: its
/// name, image, labels and pod; `docker` is the Engine API's answer,
/// when it gave one (else docker's config on disk is read). containerd
/// has no names: the id its user chose is the name. A container with no
/// other name is called `namespace/pod/container` when its bundle names
/// its pod. Image and image id are only what the runtime vouches for:
/// docker's record and image store, podman's storage lists, containerd's
/// metadata ([`containerd::image_of`]); never an annotation or label.
pub fn describe(found: ContainerRef, docker: Option<DockerConfig>) -> Container {
    let pod = policy::pod_names(&found).map(|p| PodNames {
        namespace: p.namespace.and_then(|n| clean(&n)),
        pod: p.pod.and_then(|n| clean(&n)),
        container: p.container.and_then(|n| clean(&n)),
    });
    let mut c = match (found.runtime, &found.namespace) {
        // The image from containerd's metadata and image store, never
        // from the bundle's annotations (its creator's to write).
        (Runtime::Containerd, Some(ns)) => {
            let of = containerd::image_of(ns, &found.id);
            Container {
                name: clean(&found.id),
                image: of.image.as_deref().and_then(clean),
                image_id: of.digest.as_deref().and_then(clean),
                ..Container::from(found)
            }
        }
        (Runtime::Podman, _) => {
            let listed = podman(&policy::storage_roots(), &found.id);
            let listed = listed.as_ref();
            Container {
                name: listed.and_then(podman_name).and_then(|n| clean(&n)),
                image: listed.and_then(podman_image).and_then(|i| clean(&i)),
                image_id: listed.and_then(|v| v["image"].as_str().and_then(clean)),
                ..Container::from(found)
            }
        }
        (Runtime::Docker, _) => docker
            .or_else(|| docker_config(&docker_containers(), &found.id))
            .unwrap_or_default()
            .describe(found),
        // The other runtimes keep no names or images on disk.
        _ => Container::from(found),
    };
    if let Some(p) = pod {
        if c.name.is_none() {
            c.name = p.name();
        }
        c.pod = p.pod;
        c.pod_namespace = p.namespace;
    }
    c
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

/// docker's config.v2.json of container `id` in `dir`.
fn docker_config(dir: &Path, id: &str) -> Option<DockerConfig> {
    if !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let text = fs::read_to_string(dir.join(id).join("config.v2.json")).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // The parts of a real config.v2.json that matter, and some that do not.
        fs::write(
            dir.path().join("ab12/config.v2.json"),
            r#"{"ID":"ab12","Name":"/web$(x)","Image":"sha256:b209f6eb",
               "State":{"Running":true,"Pid":1},"Driver":"overlay2",
               "Config":{"Image":"busybox:1","Labels":{"app":"shop","x":"a b"},"Cmd":["sh"]}}"#,
        )
        .unwrap();
        let found = ContainerRef {
            id: "ab12".to_owned(),
            runtime: Runtime::Docker,
            ..ContainerRef::default()
        };
        let c = docker_config(dir.path(), "ab12")
            .unwrap()
            .describe(found.clone());
        assert_eq!(c.found, found);
        assert_eq!(c.name.as_deref(), Some("webx"), "sanitised");
        assert_eq!(c.image.as_deref(), Some("busybox:1"));
        assert_eq!(c.image_id.as_deref(), Some("sha256:b209f6eb"));
        assert_eq!(c.labels["app"], "shop");
        assert_eq!(c.labels["x"], "a b", "labels are kept as they are");
        // Null labels, no config at all: no facts, no failure.
        fs::write(
            dir.path().join("ab12/config.v2.json"),
            r#"{"Name":"/web","Config":{"Labels":null}}"#,
        )
        .unwrap();
        let c = docker_config(dir.path(), "ab12").unwrap().describe(found);
        assert_eq!((c.name.as_deref(), c.labels.len()), (Some("web"), 0));
        assert_eq!(
            DockerConfig::default()
                .describe(ContainerRef::default())
                .name,
            None
        );
        assert!(docker_config(dir.path(), "../etc").is_none());
    }
}

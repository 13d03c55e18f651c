//! What the manager looks up outside the kernel: which cgroup a target
//! names, a container's name and image, and profiles written earlier. The
//! file system reads run on the blocking pool, off the manager's task.

use super::{
    DaemonError,
    outcome::{ManagerError, Outcome},
};
use crate::{
    cgroup::Hierarchy,
    container::{self, ContainerError, ContainerRef, Runtime},
    containerd,
    control::Target,
    index, names,
    policy::{self, ChosenProfile, PodNames},
    profile::{Policy, Profile},
};

/// Runs blocking work (file system reads and writes, fsync) off the
/// manager's task.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DaemonError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DaemonError::Blocking(e.to_string()))
}

/// How a target reads in messages.
pub fn describe(target: &Target) -> String {
    match target {
        Target::Container(c) => format!("container '{c}'"),
        Target::Pid(p) => format!("process {p}"),
        Target::Cgroup(c) => format!("cgroup {c}"),
    }
}

/// What a cgroup the kernel enrolled by itself turned out to be.
#[derive(Debug)]
pub enum Enrolled {
    /// A container, with its cgroup path (`None`: already removed).
    Container {
        container: ContainerRef,
        cgroup: Option<String>,
    },
    /// No container: `parent` (and its runtime) when a runtime made it
    /// where only containers are expected.
    Unrecognised {
        path: String,
        parent: Option<(String, Runtime)>,
    },
}

/// Recognises the cgroup `owner` the kernel enrolled, from the leaf name
/// or the whole path (starting with `/`) it saved (blocking).
pub fn enrolled(hierarchy: &Hierarchy, owner: u64, saved: &str) -> Enrolled {
    let alive = |p: &str| hierarchy.id(p).ok() == Some(owner);
    if saved.starts_with('/') {
        return recognise(saved.to_owned(), alive(saved));
    }
    if let Some((leaf_runtime, leaf_id)) = container::parse_leaf(saved) {
        // Find the cgroup's path (it may already be gone).
        let path = container::scan(hierarchy)
            .unwrap_or_default()
            .into_iter()
            .find(|f| alive(&f.cgroup))
            .map(|f| f.cgroup);
        let container = path
            .as_deref()
            .and_then(container::parse_cgroup_path)
            .unwrap_or(ContainerRef {
                id: leaf_id,
                runtime: leaf_runtime.unwrap_or(Runtime::Containerd),
                pod_uid: None,
                namespace: None,
            });
        return Enrolled::Container {
            container,
            cgroup: path,
        };
    }
    // A path too long for the kernel to save whole: found by its id.
    match hierarchy
        .descendants("")
        .unwrap_or_default()
        .into_iter()
        .find(|p| alive(p))
    {
        Some(path) => recognise(path, true),
        None => Enrolled::Unrecognised {
            path: format!("(removed)/{saved}"),
            parent: None,
        },
    }
}

/// Whether cgroup `path` is a container: by its path, or because one of
/// containerd's task bundles names it.
fn recognise(path: String, alive: bool) -> Enrolled {
    let task = || containerd::task_at(&containerd::roots(), &path).map(|t| ContainerRef::from(&t));
    if let Some(container) = container::parse_cgroup_path(&path).or_else(task) {
        return Enrolled::Container {
            container,
            cgroup: alive.then_some(path),
        };
    }
    let parent = if alive && !container::is_runtime_helper(&path) {
        container::runtime_parent(&path).map(|(p, r)| (p.to_owned(), r))
    } else {
        None
    };
    Enrolled::Unrecognised { path, parent }
}

/// What the manager learns of a container when its recording starts.
#[derive(Debug, Default)]
pub struct Seen {
    pub name: Option<String>,
    pub image: Option<String>,
    /// The image's id or digest, where the runtime tells it.
    pub image_id: Option<String>,
    /// Its labels (docker), for `[scope]`.
    pub labels: std::collections::BTreeMap<String, String>,
    /// The seccomp policy it runs under, from its runtime's bundle; unknown
    /// when that cannot be read or it is no container.
    pub policy: Policy,
    /// Whether that policy is a profile someone chose ([`policy::chosen`]).
    pub chosen: Option<ChosenProfile>,
    /// A Kubernetes container's pod and namespace (bundle annotations).
    pub pod: Option<PodNames>,
    /// Without an image: the root filesystem's path from the bundle
    /// (`podman --rootfs`), which keys its image profile.
    pub rootfs: Option<String>,
}

/// A container's name, image (and id), labels and seccomp policy; `given`
/// is the policy the OCI hook read from the bundle (used instead of
/// reading it again). For docker, the Engine API is asked once (name,
/// image, labels and `seccomp=`), else the runtime's metadata on disk.
pub async fn seen(c: Option<&ContainerRef>, given: Option<Policy>) -> Seen {
    let Some(c) = c.cloned() else {
        let policy = given.unwrap_or_default();
        let bundle = policy::Bundle {
            policy,
            ..policy::Bundle::default()
        };
        let chosen = policy::chosen(&bundle, None);
        return Seen {
            policy: bundle.policy,
            chosen,
            ..Seen::default()
        };
    };
    let inspected = match c.runtime {
        Runtime::Docker => crate::docker_api::inspect(&c.id).await,
        _ => None,
    };
    let docker_seccomp = inspected.as_ref().and_then(|i| i.seccomp.clone());
    let named = inspected.map(names::Described::from);
    blocking(move || {
        let meta = named.unwrap_or_else(|| names::describe(&c));
        let bundle = match given {
            Some(policy) => Ok(policy::Bundle {
                policy,
                ..policy::Bundle::default()
            }),
            None => policy::bundle_of(&c),
        };
        let bundle = bundle.unwrap_or_else(|e| {
            log::info!("{}: seccomp policy unknown: {e}", c.id);
            policy::Bundle::default()
        });
        let chosen = policy::chosen(&bundle, docker_seccomp.as_deref());
        if let Some(p) = &chosen {
            log::info!(
                "{} runs under a chosen profile {} ({})",
                c.id,
                p.name(),
                p.default_action
            );
        }
        let rootfs = (meta.image.is_none() && meta.image_id.is_none())
            .then(|| bundle.root.as_deref().map(names::sanitize))
            .flatten()
            .filter(|r| r.starts_with('/'));
        Seen {
            name: meta.name,
            image: meta.image,
            image_id: meta.image_id,
            labels: meta.labels,
            policy: bundle.policy,
            chosen,
            pod: meta.pod,
            rootfs,
        }
    })
    .await
    .unwrap_or_default()
}

/// Resolves a target to a cgroup to record: a container id, prefix or name
/// from the runtimes' metadata, else a docker name the engine knows (its
/// API takes names too); a process; or a cgroup path.
pub async fn resolve(
    hierarchy: &Hierarchy,
    target: &Target,
) -> Result<(String, Option<ContainerRef>), ManagerError> {
    match target {
        Target::Container(spec) => {
            let found = match on_disk(hierarchy, spec).await {
                Err(e @ ManagerError::Container(ContainerError::NoMatch(_))) => {
                    match crate::docker_api::inspect(spec).await {
                        Some(c) => on_disk(hierarchy, &c.id).await?,
                        None => return Err(e),
                    }
                }
                found => found?,
            };
            Ok((found.cgroup, Some(found.container)))
        }
        Target::Pid(pid) => {
            let cg = hierarchy.cgroup_of_pid(*pid)?;
            let c = container::parse_cgroup_path(&cg);
            Ok((cg, c))
        }
        Target::Cgroup(path) => {
            crate::cgroup::validate_rel(path)?;
            if !hierarchy.exists(path) {
                return Err(ManagerError::NoCgroup(path.clone()));
            }
            Ok((path.clone(), container::parse_cgroup_path(path)))
        }
    }
}

/// A running container by id, prefix or name, from the cgroup tree and the
/// runtimes' metadata on disk.
async fn on_disk(hierarchy: &Hierarchy, spec: &str) -> Result<container::Found, ManagerError> {
    let (hierarchy, spec) = (hierarchy.clone(), spec.to_owned());
    Ok(blocking(move || names::resolve(&hierarchy, &spec)).await??)
}

/// The profile written for a container that is not recorded any more,
/// from the index (blocking).
pub fn stored_profile(
    index: &index::Index,
    spec: &str,
    base: Option<&Profile>,
) -> Result<Outcome, ManagerError> {
    let entries = index.load()?;
    let entry = index::find(&entries, spec)?;
    let mut profile = Profile::read(&entry.path)?;
    if let Some(b) = base {
        profile.merge(b);
    }
    Ok(Outcome::Stored { entry, profile })
}

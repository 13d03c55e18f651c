//! What the manager looks up outside the kernel: which cgroup a target
//! names, a container's name and image. The file system reads run on the
//! blocking pool, off the manager's task.

use super::{DaemonError, outcome::ManagerError};
use crate::{
    cgroup::Hierarchy,
    container::{self, Container, ContainerError, ContainerRef, Runtime},
    containerd,
    control::Target,
    names,
    policy::{self, ChosenProfile},
    profile::Policy,
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
                ..ContainerRef::default()
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
#[derive(Debug)]
pub struct Seen {
    /// The container and what its runtime tells of it.
    pub container: Container,
    /// The seccomp policy it runs under, from its runtime's bundle; unknown
    /// when that cannot be read or it is no container.
    pub policy: Policy,
    /// Whether that policy is a profile someone chose ([`policy::chosen`]).
    pub chosen: Option<ChosenProfile>,
}

/// What is known of container `found` ([`names::describe`]) and its
/// seccomp policy; `given` is the policy the OCI hook read from the bundle
/// (used instead of reading it again). For docker, the Engine API is asked
/// once (name, image, labels and `seccomp=`), else the runtime's metadata
/// on disk. A cgroup that is no container ([`Runtime::None`]) is looked up
/// nowhere.
pub async fn seen(found: ContainerRef, given: Option<Policy>) -> Seen {
    if !found.is_container() {
        let policy = given.unwrap_or_default();
        let bundle = policy::Bundle {
            policy,
            ..policy::Bundle::default()
        };
        let chosen = policy::chosen(&bundle, None);
        return Seen {
            container: found.into(),
            policy: bundle.policy,
            chosen,
        };
    }
    // The bundle first: a short-lived container's goes with it, and the
    // Engine API may take its time on a busy dockerd.
    let of = found.clone();
    let bundle = blocking(move || match given {
        Some(policy) => Ok(policy::Bundle {
            policy,
            ..policy::Bundle::default()
        }),
        None => policy::bundle_of(&of),
    })
    .await;
    let inspected = match found.runtime {
        Runtime::Docker => crate::docker_api::inspect(&found.id).await,
        _ => None,
    };
    let fallback = found.clone();
    blocking(move || {
        let bundle = bundle
            .map_err(|e| e.to_string())
            .and_then(|b| b.map_err(|e| e.to_string()));
        settle(found, bundle, inspected)
    })
    .await
    .unwrap_or_else(|e| {
        log::error!("{}: {e}", fallback.id);
        Seen {
            container: fallback.into(),
            policy: Policy::Unknown,
            chosen: None,
        }
    })
}

/// [`seen`] of a container, on a thread that may block (no runtime's
/// worker): the bundle first, then the Engine API through `runtime`.
pub fn seen_here(runtime: &tokio::runtime::Handle, found: ContainerRef) -> Seen {
    let bundle = policy::bundle_of(&found).map_err(|e| e.to_string());
    let inspected = match found.runtime {
        Runtime::Docker => runtime.block_on(crate::docker_api::inspect(&found.id)),
        _ => None,
    };
    settle(found, bundle, inspected)
}

/// What [`seen`] makes of a container's bundle and the Engine API's answer
/// (blocking: the runtimes' files).
fn settle(
    found: ContainerRef,
    bundle: Result<policy::Bundle, String>,
    inspected: Option<crate::docker_api::Inspected>,
) -> Seen {
    let (api, docker_seccomp) = inspected.map(|i| (i.config, i.seccomp)).unzip();
    let docker_seccomp = docker_seccomp.flatten();
    let bundle = bundle.unwrap_or_else(|e| {
        log::info!("{}: seccomp policy unknown: {e}", found.id);
        policy::Bundle::default()
    });
    let chosen = policy::chosen(&bundle, docker_seccomp.as_deref());
    if let Some(p) = &chosen {
        log::info!(
            "{} runs under a chosen profile {} ({})",
            found.id,
            p.name(),
            p.default_action
        );
    }
    let mut container = names::describe(found, api);
    container.rootfs = (container.image.is_none() && container.image_id.is_none())
        .then(|| bundle.root.as_deref().map(container::sanitize))
        .flatten()
        .filter(|r| r.starts_with('/'));
    Seen {
        container,
        policy: bundle.policy,
        chosen,
    }
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

//! What the manager looks up outside the kernel: which cgroup a target
//! names, a container's name and image, and profiles written earlier. The
//! file system reads run on the blocking pool, off the manager's task.

use std::path::Path;

use super::{
    DaemonError,
    manager::{ManagerError, Outcome},
};
use crate::{
    cgroup::Hierarchy,
    container::{self, ContainerError, ContainerRef, Runtime},
    control::Target,
    index, names, policy,
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

/// A container's name and image: for docker from the Engine API, else (or
/// when the engine does not answer) from the runtime's metadata on disk.
pub async fn name_and_image(c: &ContainerRef) -> (Option<String>, Option<String>) {
    if c.runtime == Runtime::Docker
        && let Some(i) = crate::docker_api::inspect(&c.id).await
    {
        return (i.name, i.image);
    }
    let (runtime, id) = (c.runtime, c.id.clone());
    blocking(move || (names::lookup(runtime, &id), names::image(runtime, &id)))
        .await
        .unwrap_or_default()
}

/// The seccomp policy container `c` runs under, from its runtime's
/// bundle; unknown when it cannot be read or `c` is no container.
pub async fn policy_of(c: Option<&ContainerRef>) -> Policy {
    let Some(c) = c.cloned() else {
        return Policy::Unknown;
    };
    blocking(move || match policy::of_container(&c) {
        Ok(p) => p,
        Err(e) => {
            log::info!("{}: seccomp policy unknown: {e}", c.id);
            Policy::Unknown
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
    state_dir: &Path,
    spec: &str,
    base: Option<&Profile>,
) -> Result<Outcome, ManagerError> {
    let entries = index::load(state_dir)?;
    let entry = index::find(&entries, spec)?;
    let mut profile = Profile::read(&entry.path)?;
    if let Some(b) = base {
        profile.merge(b);
    }
    Ok(Outcome::Stored { entry, profile })
}

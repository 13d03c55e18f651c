//! What the manager knows of each recording, and how it survives a
//! restart: `<state-dir>/recordings.json`, written atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::outcome::ManagerError;
use crate::{
    container::{ContainerRef, Runtime},
    control::RecordingInfo,
    index,
    policy::{ChosenProfile, PodNames},
    profile::{Policy, Profile, drift::Outside},
};

/// One recording: a container (or cgroup) and the cgroups that belong to it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recording {
    /// The cgroup id of its root cgroup (the kernel sets' `owner`).
    pub owner: u64,
    /// Container id, or `cgroup-<owner>`.
    pub key: String,
    pub container: Option<ContainerRef>,
    pub name: Option<String>,
    /// The image, where the runtime's metadata tells it (at start).
    #[serde(default)]
    pub image: Option<String>,
    /// A Kubernetes container's pod and namespace, from its bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodNames>,
    /// The image's id or digest, where the runtime tells it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// Without an image: its root filesystem's path (`podman --rootfs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<String>,
    pub cgroup: String,
    pub started: u64,
    pub auto: bool,
    pub base: Option<Profile>,
    /// `base` is an OCI hook's `if:` profile: what it blocks stays
    /// blocked ([`crate::profile::Inputs::blocking`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub base_blocks: bool,
    /// Where to write the profile instead of `<profiles-dir>/<key>.json`.
    pub output: Option<PathBuf>,
    /// `stop` was asked, or the cgroup is gone: the profile is due.
    #[serde(default)]
    pub finishing: bool,
    /// Why the last write failed (kept and retried).
    #[serde(default)]
    pub write_error: Option<String>,
    /// The seccomp policy the container runs under, read from its bundle
    /// when the recording started (the bundle goes with the container).
    #[serde(default)]
    pub policy: Policy,
    /// Whether `policy` is a profile someone chose (not the runtime's
    /// default, not unconfined), decided when the recording started.
    #[serde(default)]
    pub chosen_profile: Option<ChosenProfile>,
    /// Under a chosen profile: the syscalls seen outside it so far, with
    /// when each was first seen (`daemon/drift.rs`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub drift: Outside,
}

impl Recording {
    /// The image profile this recording feeds (see `images::key`;
    /// without an image, by its rootfs, else its name).
    pub fn image_key(&self) -> Option<String> {
        crate::images::key(
            self.image.as_deref(),
            self.image_id.as_deref(),
            self.rootfs.as_deref().or(self.name.as_deref()),
        )
        .map(|k| k.key)
    }

    pub fn runtime(&self) -> Runtime {
        self.container.as_ref().map_or(Runtime::None, |c| c.runtime)
    }

    /// How `list` and the replies show it, with `syscalls` recorded so far.
    pub fn info(&self, syscalls: usize) -> RecordingInfo {
        RecordingInfo {
            key: self.key.clone(),
            runtime: self.runtime(),
            name: self.name.clone(),
            image: self.image.clone(),
            pod_uid: self.container.as_ref().and_then(|c| c.pod_uid.clone()),
            pod: self.pod.as_ref().and_then(|p| p.pod.clone()),
            namespace: self.pod.as_ref().and_then(|p| p.namespace.clone()),
            cgroup: self.cgroup.clone(),
            cgroup_id: self.owner,
            syscalls,
            started: self.started,
            auto: self.auto,
        }
    }
}

impl Recording {
    /// Its entry in the profile index, for a profile written to `path` at
    /// `written` (seconds since the epoch).
    pub fn entry(&self, path: PathBuf, written: u64) -> index::Entry {
        index::Entry {
            key: self.key.clone(),
            runtime: self.runtime(),
            name: self.name.clone(),
            image: self.image.clone(),
            image_id: self.image_id.clone(),
            rootfs: self.rootfs.clone(),
            image_key: self.image_key(),
            pod: self.pod.as_ref().and_then(|p| p.pod.clone()),
            namespace: self.pod.as_ref().and_then(|p| p.namespace.clone()),
            drift: super::drift::entry_drift(self),
            path,
            written,
        }
    }
}

/// The recording `spec` names. Its key or a key prefix names it exactly
/// (several keys: ambiguous); a name, among the recordings `eligible`
/// accepts, the one still running (not finishing), else the newest: a name
/// run again is a new container, and the older run is not what is meant.
pub fn find<'a>(
    recordings: impl IntoIterator<Item = &'a Recording>,
    spec: &str,
    eligible: impl Fn(&Recording) -> bool,
) -> Result<Option<&'a Recording>, ManagerError> {
    // An empty id would be a prefix of every key.
    crate::container::check_container(spec).map_err(ManagerError::BadTarget)?;
    let (by_key, named): (Vec<&Recording>, Vec<&Recording>) = recordings
        .into_iter()
        .filter(|r| index::key_matches(&r.key, spec) || r.name.as_deref() == Some(spec))
        .partition(|r| index::key_matches(&r.key, spec));
    if by_key.len() > 1 {
        return Err(ManagerError::Ambiguous {
            spec: spec.to_owned(),
            keys: by_key.iter().map(|r| r.key.clone()).collect(),
        });
    }
    if let Some(r) = by_key.first() {
        return Ok(Some(r));
    }
    let named: Vec<&Recording> = named.into_iter().filter(|r| eligible(r)).collect();
    let newest = named
        .iter()
        .max_by_key(|r| (!r.finishing, r.started))
        .copied();
    if let Some(r) = newest.filter(|_| named.len() > 1) {
        log::info!(
            "'{spec}' names {} recordings; taking {}, the {}",
            named.len(),
            r.key,
            if r.finishing { "newest" } else { "running one" }
        );
    }
    Ok(newest)
}

/// The daemon's persistent state (under `state_dir`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub recordings: Vec<Recording>,
}

/// The state file in `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("recordings.json")
}

/// The recordings saved in `state_dir`; none when there is no state file.
/// A malformed file is logged and ignored (the kernel's map still has the
/// sets, and reconcile adopts what it can).
pub fn load(state_dir: &Path) -> Vec<Recording> {
    let path = path(state_dir);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    match serde_json::from_str::<State>(&text) {
        Ok(state) => state.recordings,
        Err(e) => {
            log::error!("ignoring malformed state {}: {e}", path.display());
            Vec::new()
        }
    }
}

/// Saves `recordings` atomically (blocking: fsyncs).
pub fn save(state_dir: &Path, recordings: Vec<Recording>) {
    let state = State { recordings };
    let result = serde_json::to_vec_pretty(&state)
        .map_err(|e| e.to_string())
        .and_then(|text| {
            crate::atomic_file::write(&path(state_dir), &text).map_err(|e| e.to_string())
        });
    if let Err(e) = result {
        log::error!("saving state: {e}");
    }
}

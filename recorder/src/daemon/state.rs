//! What the manager knows of each recording, and how it survives a
//! restart: `<state-dir>/recordings.json`, written atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::outcome::ManagerError;
use crate::{
    container::{Container, Runtime},
    control::RecordingInfo,
    index::{self, Denial},
    policy::ChosenProfile,
    profile::{Policy, Profile, drift::Outside},
};

/// One recording: a container (or cgroup) and the cgroups that belong to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    /// The cgroup id of its root cgroup (the kernel sets' `owner`).
    pub owner: u64,
    /// The container (a cgroup that is none: `cgroup-<owner>`,
    /// [`Runtime::None`]) and what its runtime told when it started.
    #[serde(flatten)]
    pub container: Container,
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
    /// Under an enforcing chosen profile: what it denied, and the tasks it
    /// killed, as the kernel counted them (`daemon/drift.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied: Vec<Denial>,
}

impl Recording {
    /// What its recording and profile are known by ([`Container::key`]).
    pub fn key(&self) -> String {
        self.container.key()
    }

    pub fn runtime(&self) -> Runtime {
        self.container.runtime()
    }

    /// How `list` and the replies show it, with `syscalls` recorded so far.
    pub fn info(&self, syscalls: usize) -> RecordingInfo {
        RecordingInfo {
            container: self.container.clone(),
            cgroup: self.cgroup.clone(),
            cgroup_id: self.owner,
            syscalls,
            started: self.started,
            auto: self.auto,
        }
    }

    /// Its entry in the profile index, for a profile written to `path` at
    /// `written` (seconds since the epoch).
    pub fn entry(&self, path: PathBuf, written: u64) -> index::Entry {
        index::Entry {
            container: self.container.clone(),
            // Keyed where it feeds its image (`images::ImageBook::add`).
            image_key: None,
            drift: self.index_drift(),
            path,
            written,
        }
    }

    /// The index entry's drift of a finished recording (`None`: not
    /// watched).
    pub fn index_drift(&self) -> Option<Box<index::Drift>> {
        match (&self.chosen_profile, &self.policy) {
            (Some(profile), Policy::Filter(filter)) => Some(Box::new(index::Drift {
                profile: profile.clone(),
                outside: self.drift.clone(),
                policy: (**filter).clone(),
                denied: self.denied.clone(),
            })),
            _ => None,
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
        .filter(|r| index::key_matches(&r.key(), spec) || r.container.name.as_deref() == Some(spec))
        .partition(|r| index::key_matches(&r.key(), spec));
    if by_key.len() > 1 {
        return Err(ManagerError::Ambiguous {
            spec: spec.to_owned(),
            keys: by_key.iter().map(|r| r.key()).collect(),
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
            r.key(),
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
/// sets, and reconcile adopts what it can). A file of an older recorderd
/// is read too ([`upgrade`]).
pub fn load(state_dir: &Path) -> Vec<Recording> {
    let path = path(state_dir);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    let state = serde_json::from_str::<serde_json::Value>(&text).and_then(|mut v| {
        if let Some(recordings) = v["recordings"].as_array_mut() {
            recordings.iter_mut().for_each(upgrade);
        }
        serde_json::from_value::<State>(v)
    });
    match state {
        Ok(state) => state.recordings,
        Err(e) => {
            log::error!("ignoring malformed state {}: {e}", path.display());
            Vec::new()
        }
    }
}

/// Rewrites a recording saved by recorderd 83eecbd or older into today's
/// form, in place: it kept the `ContainerRef` as `container` (the runtime
/// and the pod's UID; `null` for a cgroup that is no container) beside its
/// `key`, and the pod's names as an object `pod` (`namespace`, `pod`,
/// `container`; the last was part of the name already).
fn upgrade(r: &mut serde_json::Value) {
    let Some(r) = r.as_object_mut() else {
        return;
    };
    if let Some(found) = r.remove("container") {
        let runtime = found.get("runtime").cloned();
        r.entry("runtime")
            .or_insert_with(|| runtime.unwrap_or_else(|| "none".into()));
        if let Some(uid) = found.get("pod_uid").filter(|u| u.is_string()) {
            r.insert("pod_uid".to_owned(), uid.clone());
        }
    }
    if let Some(pod) = r.get("pod").filter(|p| p.is_object()).cloned() {
        r.remove("pod");
        for key in ["pod", "namespace"] {
            if let Some(v) = pod.get(key).filter(|v| v.is_string()) {
                r.insert(key.to_owned(), v.clone());
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// recordings.json of 83eecbd, cut down: a cgroup that is no container
    /// (`container: null`), and a containerd container with pod names.
    const OLD: &str = r#"{"recordings":[
        {"owner":7,"key":"cgroup-7","container":null,"name":null,"image":null,
         "cgroup":"/x","started":1,"auto":false,"base":null,"output":null},
        {"owner":8,"key":"ns/app","container":{"id":"app","runtime":"containerd",
         "pod_uid":"0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0","namespace":"ns"},
         "name":"shop/web/nginx","image":"busybox:1",
         "pod":{"namespace":"shop","pod":"web","container":"nginx"},
         "cgroup":"/ns/app","started":2,"auto":true,"base":null,"output":null}]}"#;

    #[test]
    fn reads_the_state_of_83eecbd_and_writes_todays() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), OLD).unwrap();
        let old = load(dir.path());
        assert_eq!(old.len(), 2);
        let c = &old[0].container;
        assert_eq!(
            (c.key(), c.runtime(), c.name.as_ref()),
            ("cgroup-7".into(), Runtime::None, None)
        );
        assert!(!c.found.is_container());
        let c = &old[1].container;
        assert_eq!(c.key(), "ns/app");
        assert_eq!(
            (c.found.id.as_str(), c.found.namespace.as_deref()),
            ("app", Some("ns"))
        );
        assert_eq!(
            c.found.pod_uid.as_deref(),
            Some("0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0")
        );
        assert_eq!(
            (c.pod.as_deref(), c.pod_namespace.as_deref()),
            (Some("web"), Some("shop"))
        );
        assert_eq!(c.name.as_deref(), Some("shop/web/nginx"));
        // Today's form: flat, and read back the same.
        save(dir.path(), old.clone());
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        let saved: serde_json::Value = serde_json::from_str(&text).unwrap();
        let r = &saved["recordings"][1];
        assert_eq!(r["key"], "ns/app");
        assert_eq!(r["runtime"], "containerd");
        assert_eq!(
            (&r["pod"], &r["namespace"]),
            (&"web".into(), &"shop".into())
        );
        assert!(r.get("container").is_none(), "{r}");
        assert_eq!(load(dir.path()), old);
    }
}

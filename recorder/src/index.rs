//! The index of the profiles recorderd has written: which container (id,
//! name, runtime, image) each file belongs to and when it was written, so
//! that `recorderctl profile <name-or-id>` works after the container is
//! gone and `recorderctl profiles` lists them. Kept as JSON in the state
//! directory, written atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{
    atomic_file,
    container::Runtime,
    policy::ChosenProfile,
    profile::{Profile, drift::Outside},
};

/// The file in the state directory.
pub const FILE: &str = "profiles.json";
/// The newest entries kept.
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{0}")]
    BadSpec(String),
    #[error("no profile was written for '{0}'")]
    NotFound(String),
    #[error("'{spec}' is ambiguous; profiles were written for: {}", candidates.join(", "))]
    Ambiguous {
        spec: String,
        candidates: Vec<String>,
    },
    #[error("cannot read the profile index {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error(transparent)]
    Write(#[from] atomic_file::WriteError),
}

/// One written profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The container id (or `cgroup-<inode>`).
    pub key: String,
    pub runtime: Runtime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Where the profile was written.
    pub path: PathBuf,
    /// Seconds since the epoch.
    pub written: u64,
    /// For a container that ran under a chosen profile: what it called
    /// outside it (`recorderctl drift` after it exited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Box<Drift>>,
}

/// The drift of a finished recording that ran under a chosen profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub profile: ChosenProfile,
    /// The names outside it, per ABI, with when each was first seen.
    #[serde(default)]
    pub outside: Outside,
    /// The profile itself (its filter, as the bundle had it), for `drift
    /// --widen`.
    pub policy: Profile,
}

fn index_path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// Every entry, oldest first. A missing index is an empty one.
pub fn load(state_dir: &Path) -> Result<Vec<Entry>, IndexError> {
    let path = index_path(state_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(IndexError::Read {
                path,
                reason: e.to_string(),
            });
        }
    };
    serde_json::from_str(&text).map_err(|e| IndexError::Read {
        path,
        reason: e.to_string(),
    })
}

/// Adds an entry (replacing an older one for the same key and path).
pub fn add(state_dir: &Path, entry: Entry) -> Result<(), IndexError> {
    // A malformed index is replaced rather than blocking every write.
    let mut entries = load(state_dir).unwrap_or_default();
    entries.retain(|e| !(e.key == entry.key && e.path == entry.path));
    entries.push(entry);
    if entries.len() > MAX_ENTRIES {
        entries.drain(..entries.len() - MAX_ENTRIES);
    }
    let text = serde_json::to_vec_pretty(&entries).unwrap_or_default();
    atomic_file::write(&index_path(state_dir), &text)?;
    Ok(())
}

/// Whether `spec` is a prefix of `key`, or of the id in containerd's
/// `namespace/id` key (hex digits in either case).
pub fn key_matches(key: &str, spec: &str) -> bool {
    let lower = spec.to_ascii_lowercase();
    let id = key.split_once('/').map_or(key, |(_, id)| id);
    [key, id]
        .iter()
        .any(|k| k.starts_with(spec) || k.starts_with(&lower))
}

/// The newest entry whose key (an id, or containerd's `namespace/id`)
/// starts with `spec` or whose name is `spec`. Several containers matching
/// is ambiguous; one container's several profiles are not (the newest
/// wins).
pub fn find(entries: &[Entry], spec: &str) -> Result<Entry, IndexError> {
    // An empty prefix would match every entry.
    crate::container::check_container(spec).map_err(IndexError::BadSpec)?;
    let by_id: Vec<&Entry> = entries
        .iter()
        .filter(|e| key_matches(&e.key, spec))
        .collect();
    let matches = if by_id.is_empty() {
        entries
            .iter()
            .filter(|e| e.name.as_deref() == Some(spec))
            .collect()
    } else {
        by_id
    };
    let mut keys: Vec<&str> = matches.iter().map(|e| e.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    match keys.len() {
        0 => Err(IndexError::NotFound(spec.to_owned())),
        1 => Ok(matches
            .iter()
            .max_by_key(|e| e.written)
            .copied()
            .cloned()
            .ok_or_else(|| IndexError::NotFound(spec.to_owned()))?),
        _ => Err(IndexError::Ambiguous {
            spec: spec.to_owned(),
            candidates: keys.iter().map(|k| (*k).to_owned()).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, name: Option<&str>, written: u64) -> Entry {
        Entry {
            key: key.to_owned(),
            runtime: Runtime::Docker,
            name: name.map(str::to_owned),
            image: None,
            path: PathBuf::from(format!("/p/{key}-{written}.json")),
            written,
            drift: None,
        }
    }

    #[test]
    fn finds_by_prefix_and_name() {
        let e = vec![
            entry("aaaa11", Some("web"), 1),
            entry("aaaa11", Some("web"), 5),
            entry("bbbb22", Some("db"), 2),
            entry("aaab33", Some("x"), 3),
        ];
        assert_eq!(find(&e, "aaaa").unwrap().written, 5);
        assert_eq!(find(&e, "db").unwrap().key, "bbbb22");
        assert!(matches!(find(&e, "aaa"), Err(IndexError::Ambiguous { .. })));
        assert!(matches!(find(&e, "zz"), Err(IndexError::NotFound(_))));
        for blank in ["", " ", "\t"] {
            assert!(matches!(find(&e, blank), Err(IndexError::BadSpec(_))));
        }
    }

    #[test]
    fn finds_containerd_keys_by_id_and_namespace() {
        let mut a = entry("ns1/MyApp", Some("MyApp"), 1);
        a.runtime = Runtime::Containerd;
        let mut b = entry("ns2/MyApp", Some("MyApp"), 2);
        b.runtime = Runtime::Containerd;
        let e = vec![a, b];
        assert_eq!(find(&e, "ns1/MyApp").unwrap().written, 1);
        assert!(matches!(
            find(&e, "MyApp"),
            Err(IndexError::Ambiguous { .. })
        ));
    }

    #[test]
    fn adds_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        add(dir.path(), entry("a", None, 1)).unwrap();
        add(dir.path(), entry("a", None, 1)).unwrap();
        add(dir.path(), entry("b", None, 2)).unwrap();
        let e = load(dir.path()).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].key, "b");
    }
}

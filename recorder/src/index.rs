//! The index of the profiles recorderd has written: which container (id,
//! name, runtime, image) each file belongs to and when it was written, so
//! that `recorderctl profile <name-or-id>` works after the container is
//! gone and `recorderctl profiles` lists them; and the image rows
//! (`images.rs`). Kept in an embedded database (redb) in the state
//! directory, opened once by recorderd (redb locks the file); an entry is
//! stored as the JSON of [`Entry`]. An older `profiles.json` is migrated at
//! the first open.

use std::path::{Path, PathBuf};

use redb::{
    Database, MultimapTableDefinition, ReadableDatabase as _, ReadableTable as _,
    ReadableTableMetadata as _, TableDefinition,
};
use serde::{Deserialize, Serialize};

use crate::{
    container::Runtime,
    images::ImageRow,
    policy::ChosenProfile,
    profile::{Profile, drift::Outside},
};

/// The database file in the state directory.
pub const DB_FILE: &str = "index.redb";
/// The JSON index of earlier versions, migrated at the first open.
pub const LEGACY_FILE: &str = "profiles.json";
/// What the migrated JSON index is renamed to.
pub const MIGRATED_FILE: &str = "profiles.json.migrated";
/// redb's page cache: small, so the daemon's memory stays flat as the
/// index grows (a read of the whole index goes to the page cache).
const CACHE_BYTES: usize = 256 << 10;
/// Where a malformed JSON index is moved, unmigrated.
pub const MALFORMED_FILE: &str = "profiles.json.malformed";
/// The newest entries kept.
pub const MAX_ENTRIES: u64 = 10_000;

/// Entries by a sequence number (oldest first): the JSON of an [`Entry`].
const ENTRIES: TableDefinition<'static, u64, &'static [u8]> = TableDefinition::new("entries");
/// `<key>\0<path>` → the entry's sequence number (one entry per file).
const BY_FILE: TableDefinition<'static, &'static str, u64> =
    TableDefinition::new("entries_by_file");
/// Image key → the sequence numbers of its entries.
const BY_IMAGE: MultimapTableDefinition<'static, &'static str, u64> =
    MultimapTableDefinition::new("entries_by_image");
/// Image key → the JSON of its [`ImageRow`].
const IMAGES: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("images");

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
    #[error("profile index {path}: {reason}")]
    Db { path: PathBuf, reason: String },
    #[error(transparent)]
    Image(#[from] crate::images::ImageError),
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
    /// The image's id, where the runtime told it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// Without an image: the root filesystem's path (`podman --rootfs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<String>,
    /// A Kubernetes container's pod and namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The image profile this run fed (`images::key`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_key: Option<String>,
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

fn file_key(e: &Entry) -> String {
    format!("{}\0{}", e.key, e.path.display())
}

/// The profile index, open.
pub struct Index {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("path", &self.path).finish()
    }
}

impl Index {
    fn err(&self, e: impl Into<redb::Error>) -> IndexError {
        IndexError::Db {
            path: self.path.clone(),
            reason: e.into().to_string(),
        }
    }

    /// Opens (or creates) the index in `state_dir`, migrating an older
    /// `profiles.json` (renamed to `profiles.json.migrated` once copied).
    pub fn open(state_dir: &Path) -> Result<Self, IndexError> {
        let path = state_dir.join(DB_FILE);
        let db_err = |reason: String| IndexError::Db {
            path: path.clone(),
            reason,
        };
        std::fs::create_dir_all(state_dir).map_err(|e| db_err(e.to_string()))?;
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| db_err(e.to_string()))?;
        let index = Self { db, path };
        let tx = index.db.begin_write().map_err(|e| index.err(e))?;
        tx.open_table(ENTRIES).map_err(|e| index.err(e))?;
        tx.open_table(BY_FILE).map_err(|e| index.err(e))?;
        tx.open_multimap_table(BY_IMAGE).map_err(|e| index.err(e))?;
        tx.open_table(IMAGES).map_err(|e| index.err(e))?;
        tx.commit().map_err(|e| index.err(e))?;
        index.migrate(state_dir)?;
        Ok(index)
    }

    fn migrate(&self, state_dir: &Path) -> Result<(), IndexError> {
        let legacy = state_dir.join(LEGACY_FILE);
        let text = match std::fs::read_to_string(&legacy) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(IndexError::Read {
                    path: legacy,
                    reason: e.to_string(),
                });
            }
        };
        let entries: Vec<Entry> = match serde_json::from_str(&text) {
            Ok(e) => e,
            Err(e) => {
                // As before: a malformed index never blocks the writes.
                let aside = state_dir.join(MALFORMED_FILE);
                log::error!(
                    "profile index: {} is malformed ({e}); not migrated, moved to {}",
                    legacy.display(),
                    aside.display()
                );
                return std::fs::rename(&legacy, &aside).map_err(|e| IndexError::Read {
                    path: legacy.clone(),
                    reason: e.to_string(),
                });
            }
        };
        let n = entries.len();
        self.add_all(entries)?;
        let to = state_dir.join(MIGRATED_FILE);
        std::fs::rename(&legacy, &to).map_err(|e| IndexError::Read {
            path: legacy.clone(),
            reason: e.to_string(),
        })?;
        log::info!(
            "profile index: {n} entries migrated from {} (now {})",
            legacy.display(),
            to.display()
        );
        Ok(())
    }

    /// Every entry, oldest first.
    pub fn load(&self) -> Result<Vec<Entry>, IndexError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(ENTRIES).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| self.err(e))? {
            let (_, v) = row.map_err(|e| self.err(e))?;
            match serde_json::from_slice::<Entry>(v.value()) {
                Ok(e) => out.push(e),
                Err(e) => log::warn!("profile index: skipping a malformed entry: {e}"),
            }
        }
        Ok(out)
    }

    /// Adds an entry (replacing an older one for the same key and path).
    pub fn add(&self, entry: Entry) -> Result<(), IndexError> {
        self.add_all(vec![entry])
    }

    /// Adds entries in one transaction; beyond [`MAX_ENTRIES`] the oldest
    /// are forgotten (their files stay).
    pub fn add_all(&self, entries: Vec<Entry>) -> Result<(), IndexError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(ENTRIES).map_err(|e| self.err(e))?;
            let mut by_file = tx.open_table(BY_FILE).map_err(|e| self.err(e))?;
            let mut by_image = tx.open_multimap_table(BY_IMAGE).map_err(|e| self.err(e))?;
            let first = t
                .last()
                .map_err(|e| self.err(e))?
                .map_or(0, |(k, _)| k.value() + 1);
            for (next, entry) in (first..).zip(entries) {
                let fk = file_key(&entry);
                let old = by_file
                    .get(fk.as_str())
                    .map_err(|e| self.err(e))?
                    .map(|v| v.value());
                if let Some(seq) = old {
                    remove_seq(&mut t, &mut by_file, &mut by_image, seq)
                        .map_err(|e| self.err(e))?;
                }
                let json = serde_json::to_vec(&entry).unwrap_or_default();
                t.insert(next, json.as_slice()).map_err(|e| self.err(e))?;
                by_file.insert(fk.as_str(), next).map_err(|e| self.err(e))?;
                if let Some(k) = &entry.image_key {
                    by_image.insert(k.as_str(), next).map_err(|e| self.err(e))?;
                }
            }
            while t.len().map_err(|e| self.err(e))? > MAX_ENTRIES {
                let Some(first) = t.first().map_err(|e| self.err(e))?.map(|(k, _)| k.value())
                else {
                    break;
                };
                remove_seq(&mut t, &mut by_file, &mut by_image, first).map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Retention: removes the profile files of image `image_key` beyond
    /// the newest `keep_per_image` (0: no limit), and every file written
    /// before `older_than` (0: none), with their entries. A file that
    /// cannot be removed keeps its entry. Returns the files removed.
    pub fn expire(
        &self,
        image_key: Option<&str>,
        keep_per_image: usize,
        older_than: u64,
    ) -> Result<Vec<PathBuf>, IndexError> {
        let mut doomed: Vec<(u64, Entry)> = Vec::new();
        {
            let tx = self.db.begin_read().map_err(|e| self.err(e))?;
            let t = tx.open_table(ENTRIES).map_err(|e| self.err(e))?;
            let entry_at = |seq: u64| -> Result<Option<Entry>, IndexError> {
                Ok(t.get(seq)
                    .map_err(|e| self.err(e))?
                    .and_then(|v| serde_json::from_slice(v.value()).ok()))
            };
            if let (Some(k), 1..) = (image_key, keep_per_image) {
                let by_image = tx.open_multimap_table(BY_IMAGE).map_err(|e| self.err(e))?;
                let mut seqs = Vec::new();
                for v in by_image.get(k).map_err(|e| self.err(e))? {
                    seqs.push(v.map_err(|e| self.err(e))?.value());
                }
                // Ascending: the oldest first.
                let excess = seqs.len().saturating_sub(keep_per_image);
                for seq in seqs.into_iter().take(excess) {
                    if let Some(e) = entry_at(seq)? {
                        doomed.push((seq, e));
                    }
                }
            }
            if older_than > 0 {
                for row in t.iter().map_err(|e| self.err(e))? {
                    let (k, v) = row.map_err(|e| self.err(e))?;
                    let Ok(e) = serde_json::from_slice::<Entry>(v.value()) else {
                        continue;
                    };
                    // Written in order, give or take a clock step.
                    if e.written >= older_than {
                        break;
                    }
                    if !doomed.iter().any(|(s, _)| *s == k.value()) {
                        doomed.push((k.value(), e));
                    }
                }
            }
        }
        let mut removed = Vec::new();
        let mut gone = Vec::new();
        for (seq, e) in doomed {
            match std::fs::remove_file(&e.path) {
                Ok(()) => removed.push(e.path),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    log::warn!("retention: cannot remove {}: {err}", e.path.display());
                    continue;
                }
            }
            gone.push(seq);
        }
        if !gone.is_empty() {
            let tx = self.db.begin_write().map_err(|e| self.err(e))?;
            {
                let mut t = tx.open_table(ENTRIES).map_err(|e| self.err(e))?;
                let mut by_file = tx.open_table(BY_FILE).map_err(|e| self.err(e))?;
                let mut by_image = tx.open_multimap_table(BY_IMAGE).map_err(|e| self.err(e))?;
                for seq in gone {
                    remove_seq(&mut t, &mut by_file, &mut by_image, seq)
                        .map_err(|e| self.err(e))?;
                }
            }
            tx.commit().map_err(|e| self.err(e))?;
        }
        Ok(removed)
    }

    /// Every image row.
    pub fn images(&self) -> Result<Vec<ImageRow>, IndexError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(IMAGES).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| self.err(e))? {
            let (_, v) = row.map_err(|e| self.err(e))?;
            match serde_json::from_slice::<ImageRow>(v.value()) {
                Ok(r) => out.push(r),
                Err(e) => log::warn!("profile index: skipping a malformed image row: {e}"),
            }
        }
        Ok(out)
    }

    /// The row of image `key`.
    pub fn image(&self, key: &str) -> Result<Option<ImageRow>, IndexError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = tx.open_table(IMAGES).map_err(|e| self.err(e))?;
        let v = t.get(key).map_err(|e| self.err(e))?;
        Ok(v.and_then(|v| serde_json::from_slice(v.value()).ok()))
    }

    /// Stores (replaces) an image row.
    pub fn put_image(&self, row: &ImageRow) -> Result<(), IndexError> {
        let json = serde_json::to_vec(row).unwrap_or_default();
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(IMAGES).map_err(|e| self.err(e))?;
            t.insert(row.key.as_str(), json.as_slice())
                .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Forgets the image row `key`.
    pub fn remove_image(&self, key: &str) -> Result<(), IndexError> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(IMAGES).map_err(|e| self.err(e))?;
            t.remove(key).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Forgets the image rows last seen before `older_than`; returns them.
    pub fn expire_images(&self, older_than: u64) -> Result<Vec<ImageRow>, IndexError> {
        let old: Vec<ImageRow> = self
            .images()?
            .into_iter()
            .filter(|r| r.last_seen < older_than)
            .collect();
        if old.is_empty() {
            return Ok(old);
        }
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(IMAGES).map_err(|e| self.err(e))?;
            for r in &old {
                t.remove(r.key.as_str()).map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(old)
    }
}

/// Removes entry `seq` and what points at it.
fn remove_seq(
    t: &mut redb::Table<'_, u64, &[u8]>,
    by_file: &mut redb::Table<'_, &str, u64>,
    by_image: &mut redb::MultimapTable<'_, &str, u64>,
    seq: u64,
) -> Result<(), redb::Error> {
    let old = t
        .remove(seq)?
        .and_then(|v| serde_json::from_slice::<Entry>(v.value()).ok());
    if let Some(e) = old {
        by_file.remove(file_key(&e).as_str())?;
        if let Some(k) = &e.image_key {
            by_image.remove(k.as_str(), seq)?;
        }
    }
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
/// starts with `spec`, else whose name is `spec`. Several containers
/// matching an id prefix is ambiguous; one container's several profiles
/// are not, nor several containers of one name (a name run again is a new
/// container: the newest wins, and a log line says which).
pub fn find(entries: &[Entry], spec: &str) -> Result<Entry, IndexError> {
    find_among(entries, spec, |_| true)
}

/// [`find`], where a name picks only among the entries `eligible`
/// accepts (an id or prefix names its container whatever it is).
pub fn find_among(
    entries: &[Entry],
    spec: &str,
    eligible: impl Fn(&Entry) -> bool,
) -> Result<Entry, IndexError> {
    // An empty prefix would match every entry.
    crate::container::check_container(spec).map_err(IndexError::BadSpec)?;
    let by_id: Vec<&Entry> = entries
        .iter()
        .filter(|e| key_matches(&e.key, spec))
        .collect();
    let by_name = by_id.is_empty();
    let matches: Vec<&Entry> = if by_name {
        entries
            .iter()
            .filter(|e| e.name.as_deref() == Some(spec) && eligible(e))
            .collect()
    } else {
        by_id
    };
    let mut keys: Vec<&str> = matches.iter().map(|e| e.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    if keys.len() > 1 && !by_name {
        return Err(IndexError::Ambiguous {
            spec: spec.to_owned(),
            candidates: keys.iter().map(|k| (*k).to_owned()).collect(),
        });
    }
    let newest = matches
        .iter()
        .max_by_key(|e| e.written)
        .ok_or_else(|| IndexError::NotFound(spec.to_owned()))?;
    if keys.len() > 1 {
        log::info!(
            "'{spec}' names {} containers that ran; taking the newest, {} (written {})",
            keys.len(),
            newest.key,
            crate::timefmt::format_time(newest.written)
        );
    }
    Ok((*newest).clone())
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
            image_id: None,
            rootfs: None,
            pod: None,
            namespace: None,
            image_key: None,
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
        // A name run again: the newest container of that name.
        let mut e = e;
        e.push(entry("cccc44", Some("db"), 9));
        e.push(entry("dddd55", Some("db"), 4));
        assert_eq!(find(&e, "db").unwrap().key, "cccc44");
        // Only among the eligible ones; an id stays exact.
        let old = |x: &Entry| x.written < 9;
        assert_eq!(find_among(&e, "db", old).unwrap().key, "dddd55");
        assert_eq!(find_among(&e, "cccc", old).unwrap().key, "cccc44");
        assert!(matches!(
            find_among(&e, "web", |_| false),
            Err(IndexError::NotFound(_))
        ));
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
        let index = Index::open(dir.path()).unwrap();
        assert!(index.load().unwrap().is_empty());
        index.add(entry("a", None, 1)).unwrap();
        index.add(entry("a", None, 1)).unwrap();
        index.add(entry("b", None, 2)).unwrap();
        drop(index);
        let e = Index::open(dir.path()).unwrap().load().unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].key, "b");
    }

    #[test]
    fn migrates_the_json_index() {
        let dir = tempfile::tempdir().unwrap();
        let old = vec![entry("a", Some("web"), 1), entry("b", None, 2)];
        std::fs::write(
            dir.path().join(LEGACY_FILE),
            serde_json::to_vec(&old).unwrap(),
        )
        .unwrap();
        let index = Index::open(dir.path()).unwrap();
        assert_eq!(index.load().unwrap(), old);
        assert!(!dir.path().join(LEGACY_FILE).exists());
        assert!(dir.path().join(MIGRATED_FILE).exists());
        drop(index);
        // Once only.
        assert_eq!(Index::open(dir.path()).unwrap().load().unwrap(), old);
        // A malformed one is moved aside and the index opens empty.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LEGACY_FILE), "[{").unwrap();
        assert!(Index::open(dir.path()).unwrap().load().unwrap().is_empty());
        assert!(dir.path().join(MALFORMED_FILE).exists());
        assert!(!dir.path().join(LEGACY_FILE).exists());
    }

    #[test]
    fn retention_removes_files_and_their_entries() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        let mut files = Vec::new();
        for (i, image) in [(1, "img"), (2, "img"), (3, "other"), (4, "img"), (5, "img")] {
            let mut e = entry(&format!("c{i}"), None, i * 100);
            e.path = dir.path().join(format!("c{i}.json"));
            e.image_key = Some(image.to_owned());
            std::fs::write(&e.path, "{}").unwrap();
            files.push(e.path.clone());
            index.add(e).unwrap();
        }
        // At most two per image: c1 and c2 go.
        let removed = index.expire(Some("img"), 2, 0).unwrap();
        assert_eq!(removed, files[..2]);
        assert!(!files[0].exists() && !files[1].exists() && files[2].exists());
        let keys: Vec<String> = index.load().unwrap().into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["c3", "c4", "c5"]);
        // Older than 450 s: c3 and c4 go, whatever their image.
        let removed = index.expire(None, 0, 450).unwrap();
        assert_eq!(removed, [files[2].clone(), files[3].clone()]);
        let keys: Vec<String> = index.load().unwrap().into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["c5"]);
        // A file already gone takes its entry with it.
        std::fs::remove_file(&files[4]).unwrap();
        assert!(index.expire(None, 0, 1000).unwrap().is_empty());
        assert!(index.load().unwrap().is_empty());
    }

    #[test]
    fn image_rows() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        let key = crate::images::key(Some("a"), Some("sha256:1"), None).unwrap();
        let mut row = ImageRow::new(&key, 5);
        index.put_image(&row).unwrap();
        row.runs = 3;
        index.put_image(&row).unwrap();
        assert_eq!(index.image("sha256:1").unwrap(), Some(row.clone()));
        assert_eq!(index.images().unwrap(), [row.clone()]);
        let other = ImageRow::new(&crate::images::key(None, None, Some("web")).unwrap(), 5);
        index.put_image(&other).unwrap();
        index.remove_image("web").unwrap();
        assert_eq!(index.images().unwrap(), [row]);
        assert_eq!(index.expire_images(5).unwrap().len(), 0);
        assert_eq!(index.expire_images(6).unwrap().len(), 1);
        assert!(index.images().unwrap().is_empty());
    }
}

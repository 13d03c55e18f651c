//! The index of the profiles recorderd has written: which container (id,
//! name, runtime, image) each file belongs to and when it was written, so
//! that `recorderctl profile <name-or-id>` works after the container is
//! gone and `recorderctl profiles` lists them. Kept in an embedded
//! database (redb) in the state directory, opened once by recorderd (redb
//! locks the file); an entry is stored as the JSON of [`Entry`]. The image
//! rows live in the same database, in a table of their own
//! (`images/store.rs`). An older `profiles.json` is migrated at the first
//! open. Retention picks entries ([`Index::expiring`]) and forgets them
//! ([`Index::forget`]); their files are the caller's (`images/files.rs`).

use std::path::{Path, PathBuf};

use redb::{
    Database, MultimapTableDefinition, ReadableDatabase as _, ReadableTable as _,
    ReadableTableMetadata as _, TableDefinition,
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
    #[error("cannot read the profile index {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the state directory {}", path.display())]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("profile index {}", path.display())]
    Db {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },
}

pub use recorder_api::entry::{Denial, Drift, Entry};

fn file_key(e: &Entry) -> String {
    format!("{}\0{}", e.key(), e.path.display())
}

/// The profile index, open.
pub struct Index {
    db: Database,
    path: PathBuf,
    /// It was damaged, moved aside and started anew: why, and where.
    damaged: Option<String>,
}

/// Why [`open_db`] gave no database.
enum Opening {
    /// The file is damaged: move it aside.
    Damaged(String),
    /// Anything else (locked by another process, an I/O error).
    Failed(redb::Error),
}

/// What a panic said.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

/// Opens (or creates) the database at `path`, checking its integrity (so
/// that a corrupted file is an error rather than a panic later), and makes
/// the entries' tables. An empty file, corruption and a panic in redb are
/// [`Opening::Damaged`].
fn open_db(path: &Path) -> Result<Database, Opening> {
    // redb takes an empty file for a new database: never one it wrote.
    if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
        return Err(Opening::Damaged("the file is empty".to_owned()));
    }
    let shown = path.display().to_string();
    let opened = std::panic::catch_unwind(|| -> Result<Database, redb::Error> {
        let mut builder = Database::builder();
        builder
            .set_cache_size(CACHE_BYTES)
            .set_check_integrity_on_open(true)
            .set_repair_callback(move |s| {
                if s.progress() == 0.0 {
                    log::warn!(
                        "profile index {shown}: repairing (after an unclean shutdown, or damage)"
                    );
                }
            });
        let db = builder.create(path)?;
        let tx = db.begin_write()?;
        tx.open_table(ENTRIES)?;
        tx.open_table(BY_FILE)?;
        tx.open_multimap_table(BY_IMAGE)?;
        tx.commit()?;
        Ok(db)
    });
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(redb::Error::Corrupted(why))) => Err(Opening::Damaged(why)),
        Ok(Err(e)) => Err(Opening::Failed(e)),
        Err(panic) => Err(Opening::Damaged(format!(
            "redb panicked: {}",
            panic_message(panic.as_ref())
        ))),
    }
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
            source: Box::new(e.into()),
        }
    }

    /// The database, for the tables kept beside the entries (the image
    /// rows, `images/store.rs`).
    pub(crate) fn database(&self) -> &Database {
        &self.db
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens (or creates) the index in `state_dir`, migrating an older
    /// `profiles.json` (renamed to `profiles.json.migrated` once copied).
    /// The file's integrity is checked first: a damaged index (emptied,
    /// corrupted, or one that makes redb panic) is moved aside to
    /// `index.redb.damaged-<secs>` (`.1`, `.2`... after it when taken)
    /// with an error in the log, and a new one is started
    /// ([`Index::damaged`] says so). Any other error (another
    /// recorderd holds it, an I/O error) is returned, and nothing moved.
    pub fn open(state_dir: &Path) -> Result<Self, IndexError> {
        let path = state_dir.join(DB_FILE);
        std::fs::create_dir_all(state_dir).map_err(|source| IndexError::StateDir {
            path: state_dir.to_owned(),
            source,
        })?;
        let db_err = |e: redb::Error| IndexError::Db {
            path: path.clone(),
            source: Box::new(e),
        };
        let (index, damaged) = match open_db(&path) {
            Ok(index) => (index, None),
            Err(Opening::Failed(e)) => return Err(db_err(e)),
            Err(Opening::Damaged(why)) => {
                // Never over an earlier damaged file (two in one second).
                let secs = crate::timefmt::now_secs();
                let aside = (0..)
                    .map(|n| match n {
                        0 => state_dir.join(format!("{DB_FILE}.damaged-{secs}")),
                        n => state_dir.join(format!("{DB_FILE}.damaged-{secs}.{n}")),
                    })
                    .find(|p| !p.exists())
                    .unwrap_or_else(|| state_dir.join(format!("{DB_FILE}.damaged-{secs}")));
                std::fs::rename(&path, &aside).map_err(|source| IndexError::Read {
                    path: path.clone(),
                    source,
                })?;
                let message = format!(
                    "the profile index {} is damaged ({why}): moved to {}, and a new one started; image profiles are merged back from their files as their images run again, per-container profiles stay on disk but are no longer listed (docs/reliability.md)",
                    path.display(),
                    aside.display()
                );
                log::error!("{message}");
                match open_db(&path) {
                    Ok(index) => (index, Some(message)),
                    Err(Opening::Failed(e)) => return Err(db_err(e)),
                    Err(Opening::Damaged(why)) => {
                        return Err(db_err(redb::Error::Corrupted(why)));
                    }
                }
            }
        };
        let index = Self {
            db: index,
            path,
            damaged,
        };
        index.migrate(state_dir)?;
        Ok(index)
    }

    /// When the index was found damaged and started anew (see
    /// [`Index::open`]): what the log said.
    pub fn damaged(&self) -> Option<&str> {
        self.damaged.as_deref()
    }

    fn migrate(&self, state_dir: &Path) -> Result<(), IndexError> {
        let legacy = state_dir.join(LEGACY_FILE);
        let text = match std::fs::read_to_string(&legacy) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(IndexError::Read {
                    path: legacy,
                    source,
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
                return std::fs::rename(&legacy, &aside).map_err(|source| IndexError::Read {
                    path: legacy.clone(),
                    source,
                });
            }
        };
        let n = entries.len();
        self.add_all(entries)?;
        let to = state_dir.join(MIGRATED_FILE);
        std::fs::rename(&legacy, &to).map_err(|source| IndexError::Read {
            path: legacy.clone(),
            source,
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

    /// Retention: the entries of image `image_key` beyond the newest
    /// `keep_per_image` (0: no limit), and every entry written before
    /// `older_than` (0: none), oldest first. They stay in the index until
    /// [`Index::forget`]: the caller removes their files first, and an
    /// entry whose file cannot be removed is kept.
    pub fn expiring(
        &self,
        image_key: Option<&str>,
        keep_per_image: usize,
        older_than: u64,
    ) -> Result<Vec<Expired>, IndexError> {
        let mut doomed: Vec<Expired> = Vec::new();
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
                if let Some(entry) = entry_at(seq)? {
                    doomed.push(Expired { seq, entry });
                }
            }
        }
        if older_than > 0 {
            for row in t.iter().map_err(|e| self.err(e))? {
                let (k, v) = row.map_err(|e| self.err(e))?;
                let Ok(entry) = serde_json::from_slice::<Entry>(v.value()) else {
                    continue;
                };
                // Written in order, give or take a clock step.
                if entry.written >= older_than {
                    break;
                }
                let seq = k.value();
                if !doomed.iter().any(|d| d.seq == seq) {
                    doomed.push(Expired { seq, entry });
                }
            }
        }
        Ok(doomed)
    }

    /// Forgets entries [`Index::expiring`] picked (those already replaced
    /// or forgotten are skipped).
    pub fn forget(&self, gone: &[Expired]) -> Result<(), IndexError> {
        if gone.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = tx.open_table(ENTRIES).map_err(|e| self.err(e))?;
            let mut by_file = tx.open_table(BY_FILE).map_err(|e| self.err(e))?;
            let mut by_image = tx.open_multimap_table(BY_IMAGE).map_err(|e| self.err(e))?;
            for e in gone {
                // The entry picked, not one that took its number since.
                let still = t
                    .get(e.seq)
                    .map_err(|e| self.err(e))?
                    .and_then(|v| serde_json::from_slice::<Entry>(v.value()).ok())
                    .is_some_and(|now| file_key(&now) == file_key(&e.entry));
                if still {
                    remove_seq(&mut t, &mut by_file, &mut by_image, e.seq)
                        .map_err(|e| self.err(e))?;
                }
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }
}

/// An entry retention picked ([`Index::expiring`]), still in the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expired {
    seq: u64,
    pub entry: Entry,
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
        .filter(|e| key_matches(&e.key(), spec))
        .collect();
    let by_name = by_id.is_empty();
    let matches: Vec<&Entry> = if by_name {
        entries
            .iter()
            .filter(|e| e.container.name.as_deref() == Some(spec) && eligible(e))
            .collect()
    } else {
        by_id
    };
    let mut keys: Vec<String> = matches.iter().map(|e| e.key()).collect();
    keys.sort_unstable();
    keys.dedup();
    if keys.len() > 1 && !by_name {
        return Err(IndexError::Ambiguous {
            spec: spec.to_owned(),
            candidates: keys,
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
            newest.key(),
            crate::timefmt::format_time(newest.written)
        );
    }
    Ok((*newest).clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::Container;

    fn entry(key: &str, name: Option<&str>, written: u64) -> Entry {
        let found = crate::container::ContainerRef {
            id: key.to_owned(),
            runtime: crate::container::Runtime::Docker,
            ..Default::default()
        };
        Entry {
            container: Container {
                name: name.map(str::to_owned),
                ..Container::from(found)
            },
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
        assert_eq!(find(&e, "db").unwrap().key(), "bbbb22");
        assert!(matches!(find(&e, "aaa"), Err(IndexError::Ambiguous { .. })));
        // A name run again: the newest container of that name.
        let mut e = e;
        e.push(entry("cccc44", Some("db"), 9));
        e.push(entry("dddd55", Some("db"), 4));
        assert_eq!(find(&e, "db").unwrap().key(), "cccc44");
        // Only among the eligible ones; an id stays exact.
        let old = |x: &Entry| x.written < 9;
        assert_eq!(find_among(&e, "db", old).unwrap().key(), "dddd55");
        assert_eq!(find_among(&e, "cccc", old).unwrap().key(), "cccc44");
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
        let containerd = |ns: &str, written| {
            let mut e = entry("MyApp", Some("MyApp"), written);
            e.container.found.runtime = crate::container::Runtime::Containerd;
            e.container.found.namespace = Some(ns.to_owned());
            e
        };
        let e = vec![containerd("ns1", 1), containerd("ns2", 2)];
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
        assert_eq!(e[1].key(), "b");
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

    /// The files moved aside in `dir`.
    fn aside(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains(".damaged-"))
            .collect()
    }

    #[test]
    fn a_damaged_index_is_moved_aside_and_started_anew() {
        // Bytes overwritten after the header (a plain open of such a file
        // made redb panic), and the file emptied.
        let damage: [fn(&Path); 2] = [
            |p| {
                use std::os::unix::fs::FileExt as _;
                let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
                let len = f.metadata().unwrap().len() as usize;
                f.write_all_at(&vec![0xa5; len - 4096], 4096).unwrap();
            },
            |p| std::fs::File::create(p).map(drop).unwrap(),
        ];
        for hurt in damage {
            let dir = tempfile::tempdir().unwrap();
            let index = Index::open(dir.path()).unwrap();
            assert!(index.damaged().is_none());
            index
                .add_all((0..3).map(|i| entry(&format!("c{i}"), None, i)).collect())
                .unwrap();
            drop(index);
            hurt(&dir.path().join(DB_FILE));
            let index = Index::open(dir.path()).unwrap();
            let why = index.damaged().expect("damage noticed");
            assert!(
                why.contains("damaged") && why.contains(".damaged-"),
                "{why}"
            );
            assert_eq!(aside(dir.path()).len(), 1, "{why}");
            assert!(index.load().unwrap().is_empty());
            index.add(entry("new", None, 1)).unwrap();
            drop(index);
            let again = Index::open(dir.path()).unwrap();
            assert!(again.damaged().is_none());
            assert_eq!(again.load().unwrap().len(), 1);
        }
    }

    /// Two damaged files in one second: neither overwrites the other.
    #[test]
    fn each_damaged_index_keeps_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        for n in 1..=3 {
            let index = Index::open(dir.path()).unwrap();
            index.add(entry(&format!("c{n}"), None, n)).unwrap();
            drop(index);
            std::fs::File::create(dir.path().join(DB_FILE)).unwrap();
            let index = Index::open(dir.path()).unwrap();
            assert!(index.damaged().is_some());
            assert_eq!(aside(dir.path()).len(), n as usize);
        }
    }

    #[test]
    fn an_index_in_use_is_an_error_not_damage() {
        let dir = tempfile::tempdir().unwrap();
        let held = Index::open(dir.path()).unwrap();
        held.add(entry("a", None, 1)).unwrap();
        assert!(matches!(
            Index::open(dir.path()),
            Err(IndexError::Db { .. })
        ));
        assert!(aside(dir.path()).is_empty());
        assert_eq!(held.load().unwrap().len(), 1);
    }

    #[test]
    fn retention_picks_entries_and_forgets_them() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        for (i, image) in [(1, "img"), (2, "img"), (3, "other"), (4, "img"), (5, "img")] {
            let mut e = entry(&format!("c{i}"), None, i * 100);
            e.image_key = Some(image.to_owned());
            index.add(e).unwrap();
        }
        let keys = |x: &[Expired]| x.iter().map(|e| e.entry.key()).collect::<Vec<_>>();
        let left = |i: &Index| {
            i.load()
                .unwrap()
                .into_iter()
                .map(|e| e.key())
                .collect::<Vec<_>>()
        };
        // At most two per image: c1 and c2; picking forgets nothing.
        let picked = index.expiring(Some("img"), 2, 0).unwrap();
        assert_eq!(keys(&picked), ["c1", "c2"]);
        assert_eq!(left(&index).len(), 5);
        // Forgetting one keeps the other (its file could not go).
        index.forget(&picked[..1]).unwrap();
        assert_eq!(left(&index), ["c2", "c3", "c4", "c5"]);
        // Older than 450 s: c2, c3 and c4, whatever their image.
        let picked = index.expiring(None, 0, 450).unwrap();
        assert_eq!(keys(&picked), ["c2", "c3", "c4"]);
        // An entry that took the number of a picked one since stays.
        let picked = index.expiring(None, 0, 1000).unwrap();
        assert_eq!(keys(&picked), ["c2", "c3", "c4", "c5"]);
        index.forget(&picked[3..]).unwrap();
        index.add(entry("c6", None, 600)).unwrap();
        index.forget(&picked).unwrap();
        assert_eq!(left(&index), ["c6"]);
        assert!(index.expiring(None, 0, 0).unwrap().is_empty(), "0: none");
    }
}

//! [`ImageBook`]: the one API for the profiles recorderd wrote and the
//! image profiles they feed. It owns the profile index; indexing a written
//! profile, feeding its image's row (a new row keyed by id takes over the
//! rows an older recorderd kept of that image), writing the row's file,
//! and retention (per-container files and their entries, image rows and
//! their files) all go through it. Blocking: the daemon calls it on its
//! blocking pool.

use std::path::{Path, PathBuf};

use super::{
    ImageRow, ImagesConfig, ImagesError, files,
    keys::{self, ImageKey},
    row::{self, Start},
    store::Rows,
};
use crate::{
    index::{self, Entry, Index},
    profile::Profile,
};

/// A profile just written, and what it feeds.
#[derive(Debug)]
pub struct Written {
    /// Its index entry; `image_key` is the book's to set.
    pub entry: Entry,
    /// The profile as written.
    pub profile: Profile,
    /// Whether it feeds the image profile of its container's image.
    pub feeds_image: bool,
    /// How its workload started and ended: a failed run is counted in the
    /// row and its profile left out.
    pub start: Start,
}

/// What indexing a written profile changed.
#[derive(Debug, Default)]
pub struct Added {
    /// The image row it fed, as stored now.
    pub row: Option<ImageRow>,
    /// The labels of the older rows that row took over (gone now).
    pub taken_over: Vec<String>,
    /// Whether the row's union grew.
    pub grew: bool,
    /// Why the run failed, when it did ([`Start::failure`]): counted in
    /// the row, its profile left out.
    pub failed: Option<String>,
    /// When the row's profile changed (or its file was pending): its file,
    /// or why that could not be written (the row is stored all the same,
    /// its file pending: see [`ImageBook::write_pending`]).
    pub file: Option<Result<PathBuf, ImagesError>>,
}

/// A pending image file written again ([`ImageBook::write_pending`]).
#[derive(Debug)]
pub struct Rewritten {
    /// The row's label.
    pub label: String,
    /// Its file, or why it still cannot be written.
    pub file: Result<PathBuf, ImagesError>,
}

/// The profile index and the image rows in it, open.
#[derive(Debug)]
pub struct ImageBook {
    index: Index,
}

impl ImageBook {
    /// Opens (or creates) the index in `state_dir` (see [`Index::open`]).
    pub fn open(state_dir: &Path) -> Result<Self, ImagesError> {
        let index = Index::open(state_dir)?;
        Rows::of(&index).create()?;
        Ok(Self { index })
    }

    /// When the index was found damaged at the open and started anew:
    /// what the log said (see [`Index::open`]).
    pub fn damaged(&self) -> Option<&str> {
        self.index.damaged()
    }

    fn rows(&self) -> Rows<'_> {
        Rows::of(&self.index)
    }

    /// Indexes a written profile; when it feeds its image, adds it to the
    /// image's row (made at the image's first run) and rewrites the row's
    /// file if its profile changed; then keeps the newest `keep_per_image`
    /// per-container files of that image.
    pub fn add(
        &self,
        written: Written,
        profiles_dir: &Path,
        rule: &ImagesConfig,
        now: u64,
    ) -> Result<Added, ImagesError> {
        let Written {
            mut entry,
            profile,
            feeds_image,
            start,
        } = written;
        let key = keys::of_entry(&entry);
        entry.image_key = key.as_ref().map(|k| k.key.clone());
        let image_key = entry.image_key.clone();
        let denied = entry.drift.as_ref().and_then(|d| d.denied_count());
        self.index.add(entry)?;
        let added = match key.filter(|_| feeds_image) {
            Some(key) => {
                let failed = start.failure(rule.ready_min_run_secs);
                self.feed(&key, &profile, failed, denied, profiles_dir, now)?
            }
            None => Added::default(),
        };
        self.retain(image_key.as_deref(), rule.keep_per_image, 0)?;
        Ok(added)
    }

    /// Adds one run's profile to the row of `key` (a failed run, `failed`
    /// saying why, only counts); writes the row's file whenever its profile
    /// changed (not only when the union grew: a new errno answer counts
    /// too), or when it was pending.
    fn feed(
        &self,
        key: &ImageKey,
        run: &Profile,
        failed: Option<String>,
        denied: Option<u64>,
        profiles_dir: &Path,
        now: u64,
    ) -> Result<Added, ImagesError> {
        let (mut row, taken_over) = match self.rows().get(&key.key)? {
            Some(row) => (row, Vec::new()),
            None => self.new_row(key, profiles_dir, now)?,
        };
        let before = row.profile.clone();
        let grew = match &failed {
            Some(why) => {
                row.add_failed(key.reference.as_deref(), why, now);
                false
            }
            None => row.add_run(key.reference.as_deref(), run, now),
        };
        if let Some(n) = denied {
            row.denied_while_recorded = Some(row.denied_while_recorded.unwrap_or(0) + n);
        }
        let file = (grew || row.profile != before || row.file_pending)
            .then(|| files::write(profiles_dir, &row));
        if let Some(written) = &file {
            row.file_pending = written.is_err();
        }
        self.rows().put(&row, &taken_over)?;
        for old in &taken_over {
            files::remove(profiles_dir, old);
        }
        Ok(Added {
            taken_over: taken_over.iter().map(|r| r.label().to_owned()).collect(),
            row: Some(row),
            grew,
            failed,
            file,
        })
    }

    /// Writes the files of the rows whose file is pending (a write
    /// failed); a row whose file could be written is stored without the
    /// mark. Returns what each attempt gave.
    pub fn write_pending(&self, profiles_dir: &Path) -> Result<Vec<Rewritten>, ImagesError> {
        let mut out = Vec::new();
        for mut row in self.rows().all()? {
            if !row.file_pending {
                continue;
            }
            let file = files::write(profiles_dir, &row);
            if file.is_ok() {
                row.file_pending = false;
                self.rows().put(&row, &[])?;
            }
            out.push(Rewritten {
                label: row.label().to_owned(),
                file,
            });
        }
        Ok(out)
    }

    /// A new row for `key`; its label (file name, series) is the key's
    /// when another row has it already. A row keyed by id takes over the
    /// rows an older recorderd kept of that image (`reference@id`):
    /// returned with it, to be forgotten when it is stored. A file already
    /// at the new row's name (the index lost its row) is merged in, so
    /// that the file never shrinks.
    fn new_row(
        &self,
        key: &ImageKey,
        profiles_dir: &Path,
        now: u64,
    ) -> Result<(ImageRow, Vec<ImageRow>), ImagesError> {
        let mut row = ImageRow::new(key, now);
        let mut taken_over = Vec::new();
        for old in self.rows().all()? {
            if old.label() == row.label() {
                row.label = key.key.clone();
            }
            if old.is_older_row_of(&key.key) {
                log::info!(
                    "image profile of {}: takes over {}",
                    row.label().escape_debug(),
                    old.key.escape_debug()
                );
                row.adopt(old.clone());
                taken_over.push(old);
            }
        }
        if let Some(file) = files::read(profiles_dir, &row) {
            log::warn!(
                "image profile of {}: the index had no row for {}; its profile is kept in the new row (its runs count again)",
                row.label().escape_debug(),
                files::path(profiles_dir, &row).display()
            );
            row.recover(&file);
        }
        Ok((row, taken_over))
    }

    /// Removes the per-container files retention picks (see
    /// [`Index::expiring`]), then forgets the entries whose file is gone.
    fn retain(
        &self,
        image_key: Option<&str>,
        keep_per_image: usize,
        older_than: u64,
    ) -> Result<(), ImagesError> {
        let picked = self.index.expiring(image_key, keep_per_image, older_than)?;
        let gone = files::remove_profiles(picked);
        Ok(self.index.forget(&gone)?)
    }

    /// Retention by age (`keep_days`): the per-container files written
    /// before the cutoff, with their entries, and the image rows last seen
    /// before it, with their files.
    pub fn expire(
        &self,
        profiles_dir: &Path,
        rule: &ImagesConfig,
        now: u64,
    ) -> Result<(), ImagesError> {
        let before = rule.cutoff(now);
        if before == 0 {
            return Ok(());
        }
        self.retain(None, 0, before)?;
        for row in self.rows().expire(before)? {
            files::remove(profiles_dir, &row);
            let days = rule.keep_days;
            let label = row.label().escape_debug();
            log::info!("retention: image {label} not seen for {days} days");
        }
        Ok(())
    }

    /// Every image row.
    pub fn images(&self) -> Result<Vec<ImageRow>, ImagesError> {
        self.rows().all()
    }

    /// The row `spec` names (see [`row::find`]), looked for in every row:
    /// a key that is also another row's reference is ambiguous.
    pub fn image(&self, spec: &str) -> Result<ImageRow, ImagesError> {
        let rows = self.rows().all()?;
        row::find(&rows, spec).cloned()
    }

    /// Every profile written, oldest first.
    pub fn entries(&self) -> Result<Vec<Entry>, ImagesError> {
        Ok(self.index.load()?)
    }

    /// The profile written for the container `spec` names (see
    /// [`index::find`]), read from its file.
    pub fn stored(&self, spec: &str) -> Result<(Entry, Profile), ImagesError> {
        let entries = self.index.load()?;
        let entry = index::find(&entries, spec)?;
        let profile = Profile::read(&entry.path).map_err(ImagesError::Stored)?;
        Ok((entry, profile))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The written profile of container `c{i}` of image `img`, at `path`.
    fn written(i: u64, path: &Path) -> Written {
        // The entry's JSON, as the index stores it.
        let entry = serde_json::json!({
            "key": format!("c{i}"), "runtime": "docker", "image": "img",
            "path": path, "written": i * 100,
        });
        Written {
            entry: serde_json::from_value(entry).unwrap(),
            profile: Profile::default(),
            feeds_image: true,
            start: Start::Unknown,
        }
    }

    /// A profile allowing `names`, with an ENOSYS answer for `enosys`.
    fn profile(names: &[&str], enosys: &[&str]) -> Profile {
        let mut p = Profile::default();
        p.syscalls.push(crate::profile::SyscallRule::allow(
            names.iter().map(|s| (*s).to_owned()),
        ));
        if !enosys.is_empty() {
            p.syscalls.push(crate::profile::SyscallRule {
                names: enosys.iter().map(|s| (*s).to_owned()).collect(),
                action: "SCMP_ACT_ERRNO".to_owned(),
                errno_ret: Some(38),
                ..Default::default()
            });
        }
        p
    }

    fn run_of(i: u64, dir: &Path, p: Profile) -> Written {
        let mut w = written(i, &dir.join(format!("c{i}.json")));
        w.profile = p;
        w
    }

    fn file_of(book: &ImageBook, profiles: &Path) -> Profile {
        Profile::read(&files::path(profiles, &book.image("img").unwrap())).unwrap()
    }

    #[test]
    fn a_failed_image_file_is_kept_pending_and_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let profiles = dir.path().join("p");
        std::fs::create_dir_all(&profiles).unwrap();
        // A file where the images directory goes: every write fails.
        std::fs::write(profiles.join("images"), "").unwrap();
        let book = ImageBook::open(&dir.path().join("state")).unwrap();
        let rule = ImagesConfig::default();
        let added = book
            .add(
                run_of(0, &profiles, profile(&["read"], &[])),
                &profiles,
                &rule,
                1,
            )
            .unwrap();
        assert!(matches!(added.file, Some(Err(ImagesError::Dir { .. }))));
        assert!(book.image("img").unwrap().file_pending);
        // Still failing: pending; a run that changes nothing tries again.
        let again = book.write_pending(&profiles).unwrap();
        assert!(again.len() == 1 && again[0].file.is_err(), "{again:?}");
        let added = book
            .add(
                run_of(1, &profiles, profile(&["read"], &[])),
                &profiles,
                &rule,
                2,
            )
            .unwrap();
        assert!(matches!(added.file, Some(Err(_))), "retried with the run");
        // The fault cleared: written, and no longer pending.
        std::fs::remove_file(profiles.join("images")).unwrap();
        let done = book.write_pending(&profiles).unwrap();
        assert!(done.len() == 1 && done[0].file.is_ok(), "{done:?}");
        assert!(!book.image("img").unwrap().file_pending);
        assert_eq!(file_of(&book, &profiles), profile(&["read"], &[]));
        assert!(book.write_pending(&profiles).unwrap().is_empty());
    }

    #[test]
    fn the_file_follows_every_change_and_never_shrinks() {
        let dir = tempfile::tempdir().unwrap();
        let profiles = dir.path().join("p");
        let rule = ImagesConfig::default();
        let book = ImageBook::open(&dir.path().join("state")).unwrap();
        let first = profile(&["read", "write", "mkdir"], &[]);
        book.add(run_of(0, &profiles, first), &profiles, &rule, 1)
            .unwrap();
        // An ENOSYS answer, no new syscall: the union did not grow, the
        // file changes all the same.
        let added = book
            .add(
                run_of(1, &profiles, profile(&["read"], &["clone3"])),
                &profiles,
                &rule,
                2,
            )
            .unwrap();
        assert!(!added.grew && matches!(added.file, Some(Ok(_))));
        let stored = book.image("img").unwrap().profile;
        assert_eq!(file_of(&book, &profiles), stored);
        assert!(stored.to_json().contains("clone3"));
        // Nothing new at all: no write.
        let added = book
            .add(
                run_of(2, &profiles, profile(&["read"], &[])),
                &profiles,
                &rule,
                3,
            )
            .unwrap();
        assert!(added.file.is_none());
        // A new index (the old one lost): the image's file keeps what it
        // had, merged into the new row.
        drop(book);
        std::fs::remove_file(dir.path().join("state").join(index::DB_FILE)).unwrap();
        let book = ImageBook::open(&dir.path().join("state")).unwrap();
        book.add(
            run_of(3, &profiles, profile(&["getpid"], &[])),
            &profiles,
            &rule,
            4,
        )
        .unwrap();
        let after = file_of(&book, &profiles);
        assert_eq!(super::super::syscalls(&after), 4, "{after:?}");
        assert!(after.to_json().contains("clone3"));
        assert_eq!(book.image("img").unwrap().runs, 1, "runs count again");
    }

    #[test]
    fn retention_removes_files_and_forgets_their_entries() {
        let dir = tempfile::tempdir().unwrap();
        let profiles = dir.path().join("p");
        std::fs::create_dir_all(&profiles).unwrap();
        let book = ImageBook::open(&dir.path().join("state")).unwrap();
        let rule = ImagesConfig {
            keep_per_image: 2,
            keep_days: 1,
            ..ImagesConfig::default()
        };
        let paths: Vec<PathBuf> = (0..4)
            .map(|i| profiles.join(format!("c{i}.json")))
            .collect();
        for (i, p) in (0..).zip(&paths) {
            // c1's "file" is a directory: it cannot be removed.
            if i == 1 {
                std::fs::create_dir(p).unwrap();
            } else {
                std::fs::write(p, "{}").unwrap();
            }
            let added = book.add(written(i, p), &profiles, &rule, i * 100).unwrap();
            assert_eq!(added.row.unwrap().runs, i + 1);
            assert_eq!(added.file.is_some(), i == 0, "the union grew once");
        }
        let keys = |b: &ImageBook| -> Vec<String> {
            b.entries().unwrap().into_iter().map(|e| e.key()).collect()
        };
        // Two per image: c0 went; c1 stays, file and entry.
        assert!(!paths[0].exists() && paths[1].exists());
        assert_eq!(keys(&book), ["c1", "c2", "c3"]);
        let image_file = files::path(&profiles, &book.image("img").unwrap());
        assert!(image_file.exists(), "{}", image_file.display());
        // One day after 250 s: c2 too (c1 still cannot go).
        book.expire(&profiles, &rule, 86_400 + 250).unwrap();
        assert!(!paths[2].exists());
        assert_eq!(keys(&book), ["c1", "c3"]);
        assert_eq!(book.images().unwrap().len(), 1, "seen at 300");
        // After 400 s: c3, and the image row with its file.
        book.expire(&profiles, &rule, 86_400 + 400).unwrap();
        assert_eq!(keys(&book), ["c1"]);
        assert!(book.images().unwrap().is_empty());
        assert!(!image_file.exists());
        // keep_days = 0 keeps everything.
        let forever = ImagesConfig {
            keep_days: 0,
            ..rule
        };
        book.expire(&profiles, &forever, u64::MAX).unwrap();
        assert_eq!(keys(&book), ["c1"]);
    }
}

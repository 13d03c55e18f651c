//! The manager's image bookkeeping: the profile index (opened once, on the
//! blocking pool), what a written profile adds to its image's profile
//! (`<profiles-dir>/images/<image>.json`, rewritten when the union grows),
//! retention, `recorderctl images` and `profile --image`, and the
//! `recorder_image_*` series.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    lookup,
    manager::now_secs,
    outcome::{ManagerError, Outcome},
};
use crate::{
    config::Config,
    images::{self, ImageRow},
    index::{self, Index},
    metrics::ImageSeries,
    profile::Profile,
};

/// How often the retention by age runs.
const EXPIRY_EVERY: Duration = Duration::from_secs(600);

/// A profile just written, and what it feeds.
pub struct Written {
    pub entry: index::Entry,
    /// The profile as written.
    pub profile: Profile,
    /// Whether it feeds the image profile of `entry.image_key`.
    pub feeds_image: bool,
}

/// The index and the image series of the last look.
#[derive(Debug, Default)]
pub struct Book {
    index: Option<Arc<Index>>,
    series: Vec<ImageSeries>,
    last_expiry: Option<Instant>,
}

/// The age cutoff of `keep_days` (0: none).
fn cutoff(days: u64, now: u64) -> u64 {
    if days == 0 {
        0
    } else {
        now.saturating_sub(days.saturating_mul(86_400))
    }
}

fn series(rows: &[ImageRow], config: &Config, now: u64) -> Vec<ImageSeries> {
    rows.iter()
        .map(|r| ImageSeries {
            image: r.label().to_owned(),
            syscalls: images::syscalls(&r.profile),
            runs: r.runs,
            ready: r.ready(&config.images, now),
        })
        .collect()
}

/// Writes an image's profile atomically (blocking).
fn write_image_profile(dir: &std::path::Path, row: &ImageRow) -> Result<PathBuf, String> {
    let dir = dir.join(images::DIR);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(row.file_name());
    crate::profile::write(&path, &row.profile.to_json()).map_err(|e| e.to_string())?;
    Ok(path)
}

/// A new image row; its label (file name, series) is the key's when an
/// other row has it already. A row keyed by id takes over the rows an
/// older recorderd kept of that image (`reference@id`): their files go,
/// their labels are returned (blocking).
fn new_row(
    index: &Index,
    key: &images::ImageKey,
    profiles_dir: &std::path::Path,
    now: u64,
) -> Result<(ImageRow, Vec<String>), ManagerError> {
    let mut row = ImageRow::new(key, now);
    let mut gone = Vec::new();
    for old in index.images()? {
        if old.label() == row.label() {
            row.label = key.key.clone();
        }
        if old.is_older_row_of(&key.key) {
            log::info!("image profile of {}: takes over {}", row.label(), old.key);
            index.remove_image(&old.key)?;
            _ = std::fs::remove_file(profiles_dir.join(images::DIR).join(old.file_name()));
            gone.push(old.label().to_owned());
            row.adopt(old);
        }
    }
    Ok((row, gone))
}

impl Book {
    /// The index, opened at the first need (redb locks its file: only
    /// this daemon holds it).
    pub async fn index(&mut self, config: &Config) -> Result<Arc<Index>, ManagerError> {
        if let Some(i) = &self.index {
            return Ok(i.clone());
        }
        let dir = config.state_dir.clone();
        let index = Arc::new(lookup::blocking(move || Index::open(&dir)).await??);
        self.index = Some(index.clone());
        Ok(index)
    }

    /// The `recorder_image_*` series of the last look.
    pub fn series(&self) -> Vec<ImageSeries> {
        self.series.clone()
    }

    /// Indexes a written profile; adds it to its image's profile (and
    /// rewrites that file when the union grew); applies the retention to
    /// its image.
    pub async fn written(&mut self, config: &Config, w: Written) {
        let index = match self.index(config).await {
            Ok(i) => i,
            Err(e) => return log::error!("profile index: {e}"),
        };
        let (profiles_dir, keep) = (config.profiles_dir.clone(), config.images.keep_per_image);
        type Fed = Option<(ImageRow, Vec<String>)>;
        let done = lookup::blocking(move || -> Result<Fed, ManagerError> {
            let now = now_secs();
            let image_key = w.entry.image_key.clone();
            let e = &w.entry;
            // Without an image: keyed by the rootfs path, else the name.
            let or_name = e.rootfs.as_deref().or(e.name.as_deref());
            let key = images::key(e.image.as_deref(), e.image_id.as_deref(), or_name);
            index.add(w.entry)?;
            let mut fed = None;
            if let (true, Some(key)) = (w.feeds_image, key) {
                let (mut row, gone) = match index.image(&key.key)? {
                    Some(row) => (row, Vec::new()),
                    None => new_row(&index, &key, &profiles_dir, now)?,
                };
                let (label, reference) = (row.label().to_owned(), key.reference.as_deref());
                if row.add_run(reference, &w.profile, now) {
                    match write_image_profile(&profiles_dir, &row) {
                        Ok(p) => log::info!("image profile of {label} grew: {}", p.display()),
                        Err(e) => log::error!("image profile of {label}: {e}"),
                    }
                }
                index.put_image(&row)?;
                fed = Some((row, gone));
            }
            for gone in index.expire(image_key.as_deref(), keep, 0)? {
                log::info!("retention: removed {}", gone.display());
            }
            crate::system::release_freed_memory();
            Ok(fed)
        })
        .await;
        match done {
            Ok(Ok(Some((row, gone)))) => {
                let s = series(std::slice::from_ref(&row), config, now_secs());
                self.series
                    .retain(|x| x.image != row.label() && !gone.contains(&x.image));
                self.series.extend(s);
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => log::error!("profile index: {e}"),
            Err(e) => log::error!("profile index: {e}"),
        }
    }

    /// Retention by age, at most every ten minutes: per-container files
    /// older than `keep_days` (with their entries), and the image rows (and
    /// image profiles) last seen before then; refreshes the series.
    pub async fn maintain(&mut self, config: &Config) {
        if self.last_expiry.is_some_and(|t| t.elapsed() < EXPIRY_EVERY) {
            return;
        }
        self.last_expiry = Some(Instant::now());
        let index = match self.index(config).await {
            Ok(i) => i,
            Err(e) => return log::error!("profile index: {e}"),
        };
        let (days, profiles_dir) = (config.images.keep_days, config.profiles_dir.clone());
        let done = lookup::blocking(move || -> Result<Vec<ImageRow>, ManagerError> {
            let before = cutoff(days, now_secs());
            if before > 0 {
                for gone in index.expire(None, 0, before)? {
                    log::info!("retention: removed {}", gone.display());
                }
                for row in index.expire_images(before)? {
                    let path = profiles_dir.join(images::DIR).join(row.file_name());
                    _ = std::fs::remove_file(&path);
                    log::info!("retention: image {} not seen for {days} days", row.label());
                }
            }
            Ok(index.images()?)
        })
        .await;
        match done {
            Ok(Ok(rows)) => self.series = series(&rows, config, now_secs()),
            Ok(Err(e)) => log::error!("profile index: {e}"),
            Err(e) => log::error!("profile index: {e}"),
        }
    }

    /// `recorderctl profiles`.
    pub async fn profiles(&mut self, config: &Config) -> Result<Outcome, ManagerError> {
        let index = self.index(config).await?;
        Ok(Outcome::Profiles(
            lookup::blocking(move || index.load()).await??,
        ))
    }

    /// `recorderctl images`.
    pub async fn list(&mut self, config: &Config) -> Result<Outcome, ManagerError> {
        let index = self.index(config).await?;
        let rows = lookup::blocking(move || index.images()).await??;
        let now = now_secs();
        self.series = series(&rows, config, now);
        // Keys are ids: in the order of what is shown instead.
        let mut infos: Vec<_> = rows.iter().map(|r| r.info(&config.images, now)).collect();
        infos.sort_by(|a, b| (&a.image, &a.key).cmp(&(&b.image, &b.key)));
        Ok(Outcome::Images(infos))
    }

    /// `recorderctl profile --image SPEC`.
    pub async fn profile(
        &mut self,
        config: &Config,
        spec: String,
        base: Option<Profile>,
    ) -> Result<Outcome, ManagerError> {
        let index = self.index(config).await?;
        let row = lookup::blocking(move || -> Result<ImageRow, ManagerError> {
            // A key is one read; a reference or id looks at every row.
            if let Some(row) = index.image(&spec)? {
                return Ok(row);
            }
            let rows = index.images()?;
            let row = images::find(&rows, &spec).map_err(index::IndexError::from)?;
            Ok(row.clone())
        })
        .await??;
        let mut profile = row.profile.clone();
        if let Some(b) = &base {
            profile.merge(b);
        }
        Ok(Outcome::ImageProfile {
            image: row.info(&config.images, now_secs()),
            profile,
        })
    }

    /// The stored profile of a container no longer recorded.
    pub async fn stored(
        &mut self,
        config: &Config,
        spec: String,
        base: Option<Profile>,
    ) -> Result<Outcome, ManagerError> {
        let index = self.index(config).await?;
        lookup::blocking(move || lookup::stored_profile(&index, &spec, base.as_ref())).await?
    }
}

//! The manager's side of the written profiles and image profiles: the
//! [`ImageBook`] (opened at the first need), called on the blocking pool;
//! the answers to `profiles`, `images`, `profile --image` and `profile` of
//! a container no longer recorded; and the `recorder_image_*` series.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    lookup,
    outcome::{ManagerError, Outcome},
};
use crate::{
    config::Config,
    errfmt::chain,
    images::{self, ImageBook, ImageRow, Written},
    index::Entry,
    metrics::ImageSeries,
    profile::Profile,
    timefmt::now_secs,
};

/// How often the retention by age runs.
const EXPIRY_EVERY: Duration = Duration::from_secs(600);

/// The book and the image series of the last look.
#[derive(Debug, Default)]
pub struct Images {
    book: Option<Arc<ImageBook>>,
    series: Vec<ImageSeries>,
    last_expiry: Option<Instant>,
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

impl Images {
    /// The book, opened at the first need (redb locks its file: only this
    /// daemon holds it).
    async fn book(&mut self, config: &Config) -> Result<Arc<ImageBook>, ManagerError> {
        if let Some(b) = &self.book {
            return Ok(b.clone());
        }
        let dir = config.state_dir.clone();
        let book = Arc::new(lookup::blocking(move || ImageBook::open(&dir)).await??);
        self.book = Some(book.clone());
        Ok(book)
    }

    /// The `recorder_image_*` series of the last look.
    pub fn series(&self) -> Vec<ImageSeries> {
        self.series.clone()
    }

    /// Indexes a written profile and feeds its image ([`ImageBook::add`]).
    pub async fn written(&mut self, config: &Config, w: Written) {
        let book = match self.book(config).await {
            Ok(b) => b,
            Err(e) => return log::error!("profile index: {}", chain(&e)),
        };
        let (dir, rule) = (config.profiles_dir.clone(), config.images.clone());
        let done = lookup::blocking(move || {
            let added = book.add(w, &dir, &rule, now_secs());
            crate::system::release_freed_memory();
            added
        })
        .await;
        let added = match done {
            Ok(Ok(added)) => added,
            Ok(Err(e)) => return log::error!("profile index: {}", chain(&e)),
            Err(e) => return log::error!("profile index: {}", chain(&e)),
        };
        let Some(row) = added.row else {
            return;
        };
        match added.file {
            Some(Ok(p)) => log::info!("image profile of {} grew: {}", row.label(), p.display()),
            Some(Err(e)) => log::error!("image profile of {}: {}", row.label(), chain(&e)),
            None => {}
        }
        let s = series(std::slice::from_ref(&row), config, now_secs());
        self.series
            .retain(|x| x.image != row.label() && !added.taken_over.contains(&x.image));
        self.series.extend(s);
    }

    /// Retention by age ([`ImageBook::expire`]), at most every ten
    /// minutes; refreshes the series.
    pub async fn maintain(&mut self, config: &Config) {
        if self.last_expiry.is_some_and(|t| t.elapsed() < EXPIRY_EVERY) {
            return;
        }
        self.last_expiry = Some(Instant::now());
        let book = match self.book(config).await {
            Ok(b) => b,
            Err(e) => return log::error!("profile index: {}", chain(&e)),
        };
        let (dir, rule) = (config.profiles_dir.clone(), config.images.clone());
        let done = lookup::blocking(move || {
            book.expire(&dir, &rule, now_secs())?;
            book.images()
        })
        .await;
        match done {
            Ok(Ok(rows)) => self.series = series(&rows, config, now_secs()),
            Ok(Err(e)) => log::error!("profile index: {}", chain(&e)),
            Err(e) => log::error!("profile index: {}", chain(&e)),
        }
    }

    /// Every profile written (`profiles`, and `drift` of containers that
    /// ran).
    pub async fn entries(&mut self, config: &Config) -> Result<Vec<Entry>, ManagerError> {
        let book = self.book(config).await?;
        Ok(lookup::blocking(move || book.entries()).await??)
    }

    /// `recorderctl images`.
    pub async fn list(&mut self, config: &Config) -> Result<Outcome, ManagerError> {
        let book = self.book(config).await?;
        let rows = lookup::blocking(move || book.images()).await??;
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
        let book = self.book(config).await?;
        let row = lookup::blocking(move || book.image(&spec)).await??;
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
        let book = self.book(config).await?;
        let (entry, mut profile) = lookup::blocking(move || book.stored(&spec)).await??;
        if let Some(b) = &base {
            profile.merge(b);
        }
        Ok(Outcome::Stored { entry, profile })
    }
}

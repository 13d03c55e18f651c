//! The manager's side of the written profiles and image profiles: the
//! [`ImageBook`] (opened at the first need), called on the blocking pool
//! with redb's panics caught (a panic leaves the daemon unhealthy and the
//! index unused until a restart); image files that could not be written,
//! counted, shown in `status` and written again on the tick; the answers
//! to `profiles`, `images`, `profile --image` and `profile` of a container
//! no longer recorded; and the `recorder_image_*` series.

use std::{
    collections::BTreeMap,
    panic::AssertUnwindSafe,
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use super::{
    lookup,
    outcome::{LastError, ManagerError, Outcome},
};
use crate::{
    config::Config,
    errfmt::chain,
    images::{self, ImageBook, ImageRow, ImagesError, Rewritten, Written},
    index::{Entry, panic_message},
    metrics::{Counters, ImageSeries, RegistrySeries},
    profile::Profile,
    registry::{RegistryConfig, pusher::Pusher},
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
    counters: Arc<Counters>,
    /// Image files that could not be written (by label): failed attempts.
    failing: BTreeMap<String, u32>,
    /// Whether the rows were looked at for pending files since the book
    /// opened (they are kept across restarts).
    pending_checked: bool,
    /// The last error of the index or the image files, for `status` (one
    /// about image files is cleared when none is pending any more).
    pub(super) last_error: Option<LastError>,
    /// redb panicked: why. The daemon is unhealthy until it restarts.
    pub(super) broken: Option<String>,
    /// Where changed rows are pushed (`[registry]`), and whether every
    /// row was offered once since the start.
    pusher: Option<Pusher>,
    pushed_all: bool,
}

/// How the union of `row` grew, from container `who` (escaped): by which
/// syscalls, or with its first run.
fn grew_by(row: &ImageRow, who: &str) -> String {
    let new = &row.last_new_syscalls;
    if new.is_empty() {
        format!(
            "to {} syscalls with its first run, container {who}",
            images::syscalls(&row.profile)
        )
    } else {
        format!(
            "by {} syscall{} from container {who}: {}",
            new.len(),
            if new.len() == 1 { "" } else { "s" },
            new.join(", ")
        )
    }
}

fn series(rows: &[ImageRow], config: &Config, now: u64) -> Vec<ImageSeries> {
    rows.iter()
        .map(|r| ImageSeries {
            image: r.label().to_owned(),
            syscalls: images::syscalls(&r.profile),
            runs: r.runs,
            failed_runs: r.failed_runs,
            ready: r.ready(&config.images, now),
        })
        .collect()
}

impl Images {
    /// The image side of a manager whose errors go to `counters`.
    pub fn new(counters: Arc<Counters>) -> Self {
        Self {
            counters,
            ..Self::default()
        }
    }

    /// Pushes the rows to `[registry] repository`, when set: each changed
    /// row, and every row once after the start (a push lost to a restart
    /// while the registry was away is made then).
    pub fn push_to(&mut self, config: &RegistryConfig) {
        match Pusher::spawn(config) {
            Ok(p) => self.pusher = p,
            Err(e) => log::error!("registry: {}; image profiles are not pushed", chain(&e)),
        }
    }

    /// The `recorder_registry_*` series, when pushing.
    pub fn registry_series(&self) -> Option<RegistrySeries> {
        self.pusher.as_ref().map(|p| p.series())
    }

    /// The book, opened at the first need (redb locks its file: only this
    /// daemon holds it). An index found damaged and started anew is the
    /// last error.
    async fn book(&mut self, config: &Config) -> Result<Arc<ImageBook>, ManagerError> {
        if let Some(b) = &self.book {
            return Ok(b.clone());
        }
        if let Some(why) = &self.broken {
            return Err(ImagesError::Broken(why.clone()).into());
        }
        let dir = config.state_dir.clone();
        let opened = lookup::blocking(move || {
            std::panic::catch_unwind(|| ImageBook::open(&dir).map(Arc::new))
        })
        .await?;
        let book = match opened {
            Ok(book) => book?,
            Err(panic) => return Err(self.broke(panic.as_ref())),
        };
        if let Some(why) = book.damaged() {
            self.counters.index_failures.fetch_add(1, Ordering::Relaxed);
            self.last_error = Some(LastError::new(why.to_owned(), None));
        }
        self.book = Some(book.clone());
        self.pending_checked = false;
        Ok(book)
    }

    /// redb panicked: the daemon is unhealthy, and the index is not used
    /// again (it is leaked, not dropped: its state is unknown, and its
    /// drop could panic too) until a restart checks it.
    fn broke(&mut self, panic: &(dyn std::any::Any + Send)) -> ManagerError {
        let why = format!(
            "the profile index failed (redb panicked: {}); it is not used until recorderd restarts, which checks it and moves it aside if damaged",
            panic_message(panic)
        );
        log::error!("{why}");
        self.counters.index_failures.fetch_add(1, Ordering::Relaxed);
        if let Some(book) = self.book.take() {
            #[expect(
                clippy::mem_forget,
                reason = "a database redb panicked in is never dropped: its drop may panic too"
            )]
            std::mem::forget(book);
        }
        self.broken = Some(why.clone());
        self.last_error = Some(LastError::new(why.clone(), None));
        ImagesError::Broken(why).into()
    }

    /// Runs `work` on the book, on the blocking pool, catching a panic.
    pub(super) async fn call<T: Send + 'static>(
        &mut self,
        config: &Config,
        work: impl FnOnce(&ImageBook) -> Result<T, ImagesError> + Send + 'static,
    ) -> Result<T, ManagerError> {
        let book = self.book(config).await?;
        let done =
            lookup::blocking(move || std::panic::catch_unwind(AssertUnwindSafe(|| work(&book))))
                .await?;
        match done {
            Ok(result) => Ok(result?),
            Err(panic) => Err(self.broke(panic.as_ref())),
        }
    }

    /// Image files not written yet (kept, retried on the tick).
    pub fn pending(&self) -> usize {
        self.failing.len()
    }

    /// What writing the file of image `label` gave: a failure is counted
    /// once per file (`recorder_errors_total{reason="profile_write"}`),
    /// logged at attempts 1, 2, 4, 8... and is the last error until no
    /// file is pending.
    /// `grew`: how the union grew (by what, from which container).
    fn file_written(
        &mut self,
        label: &str,
        file: &Result<PathBuf, ImagesError>,
        grew: Option<String>,
    ) {
        let shown = label.escape_debug();
        match file {
            Ok(p) => {
                if self.failing.remove(label).is_some() {
                    log::info!(
                        "image profile of {shown} written after all: {}",
                        p.display()
                    );
                    // The last error was about an image file.
                    if self.failing.is_empty() && self.broken.is_none() {
                        self.last_error = None;
                    }
                } else if let Some(grew) = grew {
                    log::info!("image profile of {shown} grew {grew}: {}", p.display());
                } else {
                    log::info!("image profile of {shown} changed: {}", p.display());
                }
            }
            Err(e) => {
                let attempts = self.failing.entry(label.to_owned()).or_insert(0);
                *attempts += 1;
                if *attempts == 1 {
                    self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                }
                let message = match e {
                    ImagesError::Write { .. } => format!("{}; kept and retried", chain(e)),
                    e => format!("image profile of {shown}: {}; kept and retried", chain(e)),
                };
                if attempts.is_power_of_two() {
                    log::error!("{message} (attempt {attempts})");
                }
                self.last_error = Some(LastError::new(message, None));
            }
        }
    }

    /// The `recorder_image_*` series of the last look.
    pub fn series(&self) -> Vec<ImageSeries> {
        self.series.clone()
    }

    /// Indexes a written profile and feeds its image ([`ImageBook::add`]).
    pub async fn written(&mut self, config: &Config, w: Written) {
        let container = w.entry.key();
        let (dir, rule) = (config.profiles_dir.clone(), config.images.clone());
        let done = self
            .call(config, move |book| {
                let added = book.add(w, &dir, &rule, now_secs());
                crate::system::release_freed_memory();
                added
            })
            .await;
        let added = match done {
            Ok(added) => added,
            Err(e) => return log::error!("profile index: {}", chain(&e)),
        };
        let Some(row) = added.row else {
            return;
        };
        let who = container.escape_debug();
        if let Some(why) = &added.failed {
            log::info!(
                "{who}: its run failed ({why}): left out of the image profile of {}",
                row.label().escape_debug()
            );
        }
        if let Some(p) = &self.pusher {
            p.offer(&row);
        }
        if let Some(file) = &added.file {
            let grew = added.grew.then(|| grew_by(&row, &who.to_string()));
            self.file_written(row.label(), file, grew);
        }
        let s = series(std::slice::from_ref(&row), config, now_secs());
        self.series
            .retain(|x| x.image != row.label() && !added.taken_over.contains(&x.image));
        self.series.extend(s);
    }

    /// On every tick: writes the image files still pending (all the rows'
    /// once after the book opens, as they survive restarts); and retention
    /// by age ([`ImageBook::expire`]), at most every ten minutes, which
    /// refreshes the series.
    pub async fn maintain(&mut self, config: &Config) {
        let expiry_due = self.last_expiry.is_none_or(|t| t.elapsed() >= EXPIRY_EVERY);
        // An index that could not be opened is tried again with the
        // retention, not on every tick.
        if self.book.is_none() && !expiry_due {
            return;
        }
        if self.broken.is_none() && (!self.pending_checked || !self.failing.is_empty()) {
            let dir = config.profiles_dir.clone();
            match self
                .call(config, move |book| book.write_pending(&dir))
                .await
            {
                Ok(rewritten) => {
                    self.pending_checked = true;
                    for Rewritten { label, file } in rewritten {
                        self.file_written(&label, &file, None);
                    }
                }
                Err(e) => log::error!("profile index: {}", chain(&e)),
            }
        }
        if self.pusher.is_some() && !self.pushed_all && self.broken.is_none() {
            match self.call(config, |book| book.images()).await {
                Ok(rows) => {
                    if let Some(p) = &self.pusher {
                        rows.iter().for_each(|r| p.offer(r));
                    }
                    self.pushed_all = true;
                }
                Err(e) => log::error!("profile index: {}", chain(&e)),
            }
        }
        if !expiry_due {
            return;
        }
        self.last_expiry = Some(Instant::now());
        let (dir, rule) = (config.profiles_dir.clone(), config.images.clone());
        let done = self
            .call(config, move |book| {
                book.expire(&dir, &rule, now_secs())?;
                book.images()
            })
            .await;
        match done {
            Ok(rows) => self.series = series(&rows, config, now_secs()),
            Err(e) => log::error!("profile index: {}", chain(&e)),
        }
    }

    /// Every profile written (`profiles`, and `drift` of containers that
    /// ran).
    pub async fn entries(&mut self, config: &Config) -> Result<Vec<Entry>, ManagerError> {
        self.call(config, |book| book.entries()).await
    }

    /// `recorderctl images`.
    pub async fn list(&mut self, config: &Config) -> Result<Outcome, ManagerError> {
        let rows = self.call(config, |book| book.images()).await?;
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
        let row = self.call(config, move |book| book.image(&spec)).await?;
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
        let (entry, mut profile) = self.call(config, move |book| book.stored(&spec)).await?;
        if let Some(b) = &base {
            profile.merge(b);
        }
        Ok(Outcome::Stored { entry, profile })
    }
}

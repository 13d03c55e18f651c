//! The manager: owns the recordings. It serves control requests with typed
//! results ([`Outcome`], [`ManagerError`]; the server turns them into
//! replies; the requests are in `daemon/requests.rs`), adopts the cgroups the kernel enrolled (auto mode), finishes
//! recordings whose cgroup is gone, retries failed writes, and refreshes
//! the metrics snapshot. It reaches the kernel only through a
//! [`KernelHandle`], so its logic is tested against a fake kernel task
//! (`daemon/tests/`).

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::{Instant, SystemTime},
};

use recorder_common::{CgroupEvent, EVENT_MKDIR, EVENT_RMDIR, SyscallSet};
use tokio::sync::{mpsc, oneshot};

use super::{
    capture::{Captured, Captures},
    drift, images,
    kernel_task::{KernelHandle, KernelSnapshot, sets_of},
    lookup,
    outcome::{LastError, ManagerError, Outcome, WriteError},
    state::{self, Recording},
};
use crate::{
    cgroup::Hierarchy,
    config::Config,
    container,
    control::Request,
    errfmt::chain,
    metrics::{self, Counters, SharedSnapshot},
    profile::{self, Profile, Recorded},
    scope::{Scope, Subject},
    timefmt::now_secs,
};

/// Messages to the manager.
#[derive(Debug)]
pub enum ManagerMsg {
    Request(Box<Request>, oneshot::Sender<Result<Outcome, ManagerError>>),
    Event(CgroupEvent),
    Tick,
    Reload(Box<Config>),
    /// Write the partial profiles and stop; with `release`, also forget
    /// the recordings (the daemon is about to unpin what records them).
    Shutdown {
        release: bool,
        done: oneshot::Sender<()>,
    },
}

/// The profile of recording `r` from its kernel sets (the one pipeline,
/// [`profile::build`]), with the recording's base and `extra_base` merged.
pub(super) fn assemble(
    r: &Recording,
    sets: &[SyscallSet],
    extra_base: Option<&Profile>,
) -> Profile {
    let bases: Vec<&Profile> = r.base.iter().chain(extra_base).collect();
    let blocking: Vec<&Profile> = r.base.iter().filter(|_| r.base_blocks).collect();
    let built = profile::build(profile::Inputs {
        sets,
        bases: &bases,
        blocking: &blocking,
        policy: Some(&r.policy),
        ..profile::Inputs::default()
    });
    for (abi, nr) in built.unknown {
        log::warn!(
            "{}: syscall {nr} of {abi} has no name; not in the profile",
            r.key()
        );
    }
    for note in built.notes {
        log::info!("{}: merging the base profile: {note}", r.key());
    }
    built.profile
}

/// How many distinct syscalls `sets` hold.
pub(super) fn count(sets: &[SyscallSet]) -> usize {
    Recorded::from_sets(sets).0.len()
}

pub struct Manager {
    pub(super) config: Config,
    pub(super) hierarchy: Hierarchy,
    pub(super) kernel: KernelHandle,
    pub(super) recordings: BTreeMap<u64, Recording>,
    pub(super) started: Instant,
    pub(super) counters: Arc<Counters>,
    /// The last error `status` shows (cleared when the write that failed
    /// succeeds).
    pub(super) last_error: Option<LastError>,
    /// Failed write attempts per recording, for logging with backoff.
    write_attempts: BTreeMap<u64, u32>,
    reported_enrol_failures: u64,
    metrics: SharedSnapshot,
    /// The written profiles and the image profiles.
    pub(super) images: images::Images,
    /// Which containers auto mode records (`config.scope`, compiled).
    scope: Scope,
    /// The drift series of ended watched recordings, still on /metrics.
    ended_drift: drift::EndedSeries,
    /// What the forwarder captured of new containers as their cgroups
    /// were made.
    captures: Captures,
}

impl Manager {
    pub fn new(
        config: Config,
        hierarchy: Hierarchy,
        kernel: KernelHandle,
        counters: Arc<Counters>,
        metrics: SharedSnapshot,
    ) -> Self {
        let mut images = images::Images::new(Arc::clone(&counters));
        images.push_to(&config.registry);
        Self {
            images,
            hierarchy,
            kernel,
            recordings: BTreeMap::new(),
            started: Instant::now(),
            counters,
            last_error: None,
            write_attempts: BTreeMap::new(),
            reported_enrol_failures: 0,
            metrics,
            scope: Scope::new(&config.scope).unwrap_or_default(),
            ended_drift: drift::EndedSeries::default(),
            captures: Captures::default(),
            config,
        }
    }

    /// The captures the forwarder makes for this manager.
    pub fn captures(&self) -> Captures {
        self.captures.clone()
    }

    /// Serves messages until shutdown. Starts by taking up the saved state
    /// and the kernel's map (a restart loses nothing).
    pub async fn run(mut self, mut rx: mpsc::Receiver<ManagerMsg>) {
        self.resume().await;
        while let Some(msg) = rx.recv().await {
            match msg {
                ManagerMsg::Request(req, reply) => {
                    let result = self.handle(*req).await;
                    // A reply fails only when the requester gave up; nothing to do then.
                    _ = reply.send(result);
                }
                ManagerMsg::Event(ev) => self.on_event(ev).await,
                ManagerMsg::Tick => self.tick().await,
                ManagerMsg::Reload(config) => self.reload(*config).await,
                ManagerMsg::Shutdown { release, done } => {
                    self.write_partials().await;
                    if release {
                        self.recordings.clear();
                        self.save().await;
                    }
                    _ = done.send(());
                    return;
                }
            }
        }
    }

    /// Loads the saved recordings and reconciles them with the kernel.
    pub async fn resume(&mut self) {
        let dir = self.config.state_dir.clone();
        for r in lookup::blocking(move || state::load(&dir))
            .await
            .unwrap_or_default()
        {
            self.recordings.insert(r.owner, r);
        }
        self.tick().await;
    }

    /// One tick: one round trip to the kernel task, one read of the map.
    pub async fn tick(&mut self) {
        let watch = drift::denial_watch(&self.recordings);
        match self.kernel.snapshot(watch).await {
            Ok(snapshot) => {
                // Before reconcile, which writes the index entries of
                // recordings that ended.
                drift::update_denials(&mut self.recordings, &snapshot.denials, now_secs());
                self.reconcile(&snapshot).await;
                self.captures.expire();
                self.images.maintain(&self.config).await;
                if drift::update(&mut self.recordings, &snapshot.entries, now_secs()) {
                    self.save().await;
                }
                self.refresh_metrics(&snapshot);
            }
            // The snapshot keeps its last refresh time: scrapes report it
            // as stale instead of showing zeros.
            Err(e) => log::error!("{e}"),
        }
    }

    async fn reload(&mut self, config: Config) {
        let patterns = config.leaf_patterns();
        if let Err(e) = self.kernel.set_patterns(patterns, config.record_all).await {
            log::error!("reload: {e}");
        }
        log::info!("configuration reloaded");
        self.scope = Scope::new(&config.scope).unwrap_or_default();
        self.config = config;
    }

    pub(super) async fn save(&self) {
        let dir = self.config.state_dir.clone();
        let recordings = self.recordings.values().cloned().collect();
        if let Err(e) = lookup::blocking(move || state::save(&dir, recordings)).await {
            log::error!("saving state: {e}");
        }
    }

    /// The newer of the manager's last error and the image side's.
    pub(super) fn last_error(&self) -> Option<&LastError> {
        match (&self.last_error, &self.images.last_error) {
            (Some(m), Some(i)) => Some(if i.at > m.at { i } else { m }),
            (m, i) => m.as_ref().or(i.as_ref()),
        }
    }

    /// How many recordings wait for a write to be retried.
    pub(super) fn pending_writes(&self) -> usize {
        self.recordings
            .values()
            .filter(|r| r.write_error.is_some())
            .count()
    }

    /// Whether recording `r`'s profile joins its image's profile: a
    /// container's, and not under a chosen seccomp profile when
    /// `skip_chosen_profile` is on.
    fn feeds_image(&self, r: &Recording) -> bool {
        r.container.found.is_container()
            && !(self.config.images.skip_chosen_profile && r.chosen_profile.is_some())
    }

    fn profile_path(&self, r: &Recording) -> PathBuf {
        r.output.clone().unwrap_or_else(|| {
            let stem = container::file_stem(&r.key());
            self.config.profiles_dir.join(format!("{stem}.json"))
        })
    }

    /// Writes the profile of recording `owner` from its `sets` and forgets
    /// it. On failure the recording stays (in memory and in the map) and is
    /// retried.
    pub(super) async fn finish(
        &mut self,
        owner: u64,
        sets: &[SyscallSet],
    ) -> Result<PathBuf, ManagerError> {
        let Some(mut r) = self.recordings.get(&owner).cloned() else {
            return Err(ManagerError::NotRecording(format!("cgroup id {owner}")));
        };
        drift::observe(&mut r, sets, now_secs());
        let path = self.profile_path(&r);
        let written_profile = assemble(&r, sets, None);
        let text = written_profile.to_json();
        let write_path = path.clone();
        let partial = self.partial_path(&r);
        let written = lookup::blocking(move || {
            if let Some(dir) = write_path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| WriteError::Dir {
                    dir: dir.to_owned(),
                    source,
                })?;
            }
            profile::write(&write_path, &text)?;
            // The full profile supersedes the one a shutdown left.
            match std::fs::remove_file(&partial) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    log::warn!("removing {}: {e}", partial.display());
                }
                _ => {}
            }
            Ok(())
        })
        .await
        .map_err(WriteError::from)
        .and_then(|r| r);
        match written {
            Ok(()) => {
                log::info!("profile of {} written to {}", r.key(), path.display());
                if count(sets) == 0 {
                    log::warn!(
                        "{}: no syscall was recorded (nothing ran in it since the recording started): its profile allows none",
                        r.key()
                    );
                }
                if self.write_attempts.remove(&owner).is_some() {
                    log::info!("{}: the profile could be written after all", r.key());
                }
                if self
                    .last_error
                    .as_ref()
                    .is_some_and(|e| e.recording == Some(owner))
                {
                    self.last_error = None;
                }
                // A lost answer counts the run as one whose start was
                // not watched (as before the kernel told).
                let workload = self.kernel.workload(owner).await.ok().flatten();
                let written = crate::images::Written {
                    entry: r.entry(path.clone(), now_secs()),
                    profile: written_profile,
                    feeds_image: self.feeds_image(&r),
                    start: crate::images::Start::of(sets, workload.as_ref()),
                };
                self.images.written(&self.config, written).await;
                self.counters
                    .profiles_written
                    .fetch_add(1, Ordering::Relaxed);
                if let Err(e) = self.kernel.remove(owner).await {
                    log::error!("{}: {e}", r.key());
                }
                self.recordings.remove(&owner);
                self.ended_drift.push(&r, now_secs());
                metrics::forget(&self.metrics, owner);
                self.save().await;
                Ok(path)
            }
            Err(source) => {
                let reason = chain(&source);
                let e = ManagerError::Write {
                    key: r.key(),
                    path,
                    source,
                };
                // Counted once per failing recording; logged at the first
                // failure, then at attempts 2, 4, 8... (ticks are frequent).
                let attempts = self.write_attempts.entry(owner).or_insert(0);
                *attempts += 1;
                if *attempts == 1 {
                    self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                }
                if attempts.is_power_of_two() {
                    log::error!("{} (attempt {attempts})", chain(&e));
                }
                self.last_error = Some(LastError::new(chain(&e), Some(owner)));
                if let Some(r) = self.recordings.get_mut(&owner) {
                    r.finishing = true;
                    r.write_error = Some(reason);
                }
                self.save().await;
                Err(e)
            }
        }
    }

    /// Adopts a recording the kernel started by itself (auto mode), from
    /// the leaf name or path it saved. Returns false if the cgroup is not a
    /// container: the caller drops it. A cgroup under a runtime's parent
    /// that no recogniser accepts is logged and counted once.
    async fn adopt(&mut self, owner: u64) -> bool {
        // Captured when its cgroup was made, or looked up now.
        let (enrolled, seen) = match self.captures.take(owner) {
            Some(Captured { enrolled, seen }) => (Ok(enrolled), seen),
            None => {
                let Ok(Some(leaf)) = self.kernel.leaf(owner).await else {
                    return false;
                };
                let hierarchy = self.hierarchy.clone();
                let enrolled =
                    lookup::blocking(move || lookup::enrolled(&hierarchy, owner, &leaf)).await;
                (enrolled, None)
            }
        };
        let (container, path) = match enrolled {
            Ok(lookup::Enrolled::Container { container, cgroup }) => (container, cgroup),
            Ok(lookup::Enrolled::Unrecognised {
                path,
                parent: Some((parent, runtime)),
            }) => {
                log::warn!(
                    "cgroup {path} was made under {runtime}'s {parent}, but no recogniser knows it: not recorded"
                );
                self.counters.unrecognised(&parent);
                return false;
            }
            Ok(lookup::Enrolled::Unrecognised { path, parent: None }) => {
                log::debug!("cgroup {path} is not a container: not recorded");
                return false;
            }
            Err(e) => {
                log::error!("{e}");
                return false;
            }
        };
        let cgroup = path
            .clone()
            .unwrap_or_else(|| format!("(removed)/{}", container.id));
        let seen = match seen {
            Some(seen) => seen,
            None => lookup::seen(container, None).await,
        };
        let c = &seen.container;
        let subject = Subject {
            image: c.image.as_deref(),
            name: c.name.as_deref(),
            labels: &c.labels,
        };
        if let Err(why) = self.scope.check(&subject) {
            let key = c.key();
            log::info!("{key} ({subject}): out of scope ([scope]): {why}: not recorded");
            return false;
        }
        let rec = Recording {
            owner,
            container: seen.container,
            cgroup,
            started: now_secs(),
            auto: true,
            base: None,
            base_blocks: false,
            output: None,
            finishing: path.is_none(),
            write_error: None,
            policy: seen.policy,
            chosen_profile: seen.chosen,
            drift: Default::default(),
            denied: Vec::new(),
        };
        log::info!(
            "recording {} ({}) from its first syscall",
            rec.key(),
            rec.cgroup
        );
        self.recordings.insert(owner, rec);
        true
    }

    /// Brings the recordings in line with the kernel's map and the cgroup
    /// tree: adopts kernel-enrolled cgroups, finishes removed ones, retries
    /// failed writes. Runs at start and on every tick.
    async fn reconcile(&mut self, snapshot: &KernelSnapshot) {
        let mut owners: Vec<u64> = snapshot.entries.iter().map(|(_, s)| s.owner).collect();
        owners.sort_unstable();
        owners.dedup();
        let mut changed = false;
        for owner in owners {
            // Its capture under way hands on its event: adopted then.
            if self.recordings.contains_key(&owner) || self.captures.pending(owner) {
                continue;
            }
            if self.adopt(owner).await {
                changed = true;
            } else if let Err(e) = self.kernel.remove(owner).await {
                // Sets whose recording is gone and that are no container.
                log::error!("{e}");
            }
        }
        let due: Vec<u64> = self
            .recordings
            .values()
            .filter(|r| r.finishing || !self.cgroup_alive(r))
            .map(|r| r.owner)
            .collect();
        for owner in due {
            let sets = sets_of(&snapshot.entries, owner);
            // A failure is kept, logged and retried on the next tick.
            _ = self.finish(owner, &sets).await;
            changed = true;
        }
        if changed {
            self.save().await;
        }
        let k = &snapshot.info;
        if k.enrol_failed > self.reported_enrol_failures {
            let msg = format!(
                "the recording map is full ({} cgroups): {} new containers could not be recorded; raise `capacity`",
                k.capacity,
                k.enrol_failed - self.reported_enrol_failures
            );
            log::error!("{msg}");
            self.last_error = Some(LastError::new(msg, None));
            self.reported_enrol_failures = k.enrol_failed;
        }
    }

    fn cgroup_alive(&self, r: &Recording) -> bool {
        self.hierarchy.id(&r.cgroup).ok() == Some(r.owner)
    }

    /// A cgroup the kernel saw made or removed.
    pub async fn on_event(&mut self, ev: CgroupEvent) {
        match ev.kind {
            EVENT_MKDIR => {
                if ev.enrolled != 0 && !self.recordings.contains_key(&ev.id) {
                    // Sub-cgroups carry their owner; roots are adopted.
                    let is_root = match self.kernel.entries().await {
                        Ok(entries) => entries
                            .iter()
                            .any(|(id, s)| *id == ev.id && s.owner == ev.id),
                        Err(e) => {
                            log::error!("{e}");
                            false
                        }
                    };
                    if is_root {
                        if self.adopt(ev.id).await {
                            self.save().await;
                        } else if let Err(e) = self.kernel.remove(ev.id).await {
                            log::error!("{e}");
                        }
                    }
                }
                // Its capture came before its event: what adoption did not
                // take (a tick adopted it first, or it ended) goes now.
                drop(self.captures.take(ev.id));
            }
            EVENT_RMDIR if self.recordings.contains_key(&ev.id) => {
                if let Some(r) = self.recordings.get_mut(&ev.id) {
                    r.finishing = true;
                }
                // A snapshot, not only the entries: the denials counted
                // since the last tick go into the index entry too.
                let watch = drift::denial_watch(&self.recordings);
                match self.kernel.snapshot(watch).await {
                    Ok(snapshot) => {
                        drift::update_denials(&mut self.recordings, &snapshot.denials, now_secs());
                        // A failure is kept, logged and retried on the next tick.
                        _ = self.finish(ev.id, &sets_of(&snapshot.entries, ev.id)).await;
                    }
                    Err(e) => log::error!("{e}"),
                }
            }
            _ => {}
        }
    }

    fn partial_path(&self, r: &Recording) -> PathBuf {
        self.config
            .profiles_dir
            .join(format!("{}.partial.json", container::file_stem(&r.key())))
    }

    /// Writes `<key>.partial.json` for every recording (at shutdown).
    async fn write_partials(&mut self) {
        let entries = match self.kernel.entries().await {
            Ok(entries) => entries,
            Err(e) => {
                log::error!("no partial profiles: {e}");
                return self.save().await;
            }
        };
        let mut partials = Vec::new();
        for r in self.recordings.values() {
            let path = self.partial_path(r);
            let text = assemble(r, &sets_of(&entries, r.owner), None).to_json();
            partials.push((r.key(), path, text));
        }
        let written = lookup::blocking(move || {
            for (key, path, text) in partials {
                match profile::write(&path, &text) {
                    Ok(()) => {
                        log::info!("partial profile of {key} written to {}", path.display());
                    }
                    Err(e) => log::error!("{e}"),
                }
            }
        })
        .await;
        if let Err(e) = written {
            log::error!("{e}");
        }
        self.save().await;
    }

    /// Refreshes the metrics snapshot, so that scrapes never wait for the
    /// kernel task (runs on every tick).
    fn refresh_metrics(&mut self, kernel: &KernelSnapshot) {
        let ended = self
            .ended_drift
            .current(now_secs(), self.config.drift_series_secs);
        let containers = self
            .recordings
            .values()
            .map(|r| metrics::ContainerSeries {
                owner: r.owner,
                container: r.container.clone(),
                syscalls: count(&sets_of(&kernel.entries, r.owner)),
                outside: drift::outside_count(r),
                denied: drift::denied_count(r),
                ended: false,
            })
            .chain(ended)
            .collect();
        metrics::store(
            &self.metrics,
            metrics::Snapshot {
                refreshed: Some(SystemTime::now()),
                kernel: kernel.info,
                active: self.recordings.len(),
                pending_writes: self.pending_writes(),
                unhealthy: self.images.broken.clone(),
                containers,
                images: self.images.series(),
                registry: self.images.registry_series(),
                programs: kernel.programs.clone(),
            },
        );
    }

    /// The recordings, for tests.
    #[cfg(test)]
    pub fn recordings(&self) -> &BTreeMap<u64, Recording> {
        &self.recordings
    }
}

//! What a scrape reads: the [`Snapshot`] the manager refreshes on every
//! tick (containers, images, the kernel side, program statistics) and the
//! daemon's atomic [`Counters`].

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, RwLock, atomic::AtomicU64},
    time::SystemTime,
};

use crate::ebpf::{KernelInfo, ProgramStats};

/// Counters the metrics endpoint reads.
#[derive(Debug, Default)]
pub struct Counters {
    pub profiles_written: AtomicU64,
    pub write_errors: AtomicU64,
    /// The profile index found damaged (moved aside), or redb panicked.
    pub index_failures: AtomicU64,
    /// `start` requests refused because the recording map was full.
    pub map_full_refusals: AtomicU64,
    /// Cgroups made under a runtime's parent that no recogniser accepted,
    /// by parent.
    pub unrecognised: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    /// Counts a cgroup under `parent` that no recogniser accepted.
    pub fn unrecognised(&self, parent: &str) {
        // A poisoned lock only means a panic elsewhere mid-update of a
        // counter; going on is safe.
        let mut map = self.unrecognised.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(parent.to_owned()).or_default() += 1;
    }
}

/// One recording's row of `recorder_container_syscalls`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerSeries {
    /// The recording's owner cgroup id (not exported; finds the row).
    pub owner: u64,
    /// The container: its key (`cgroup-<id>` for a cgroup that is none),
    /// and the name and image its runtime told.
    pub container: crate::container::Container,
    /// Distinct syscalls recorded so far (over all ABIs), as the profile
    /// would name them.
    pub syscalls: usize,
    /// Under a chosen profile (watched): the distinct syscalls made outside
    /// it; `None` for a container that is not watched.
    pub outside: Option<usize>,
    /// Under an enforcing chosen profile (watched for denials): how many
    /// syscalls it denied and tasks it killed, in all; `None` otherwise.
    pub denied: Option<u64>,
    /// Its recording ended: only its drift series is left (for a while).
    pub ended: bool,
}

/// One image profile's rows of `recorder_image_*` (as many as the
/// retention keeps image rows).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageSeries {
    /// The image row's label (`images::ImageRow::label`), fixed when the
    /// row is made.
    pub image: String,
    pub syscalls: usize,
    pub runs: u64,
    /// Of `runs`, those that failed (never started, or exited non-zero
    /// within `ready_min_run_secs`).
    pub failed_runs: u64,
    pub ready: bool,
}

/// `recorder_registry_*`: this node's pushes to `[registry] repository`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistrySeries {
    pub pushed: u64,
    pub failed: u64,
    /// Seconds since the epoch of the last push that succeeded (0: none).
    pub last_success: u64,
    /// Contributions waiting to be pushed.
    pub pending: u64,
}

/// What the manager last saw: everything a scrape needs from the kernel
/// task and the recordings.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// When it was taken (`None`: not yet).
    pub refreshed: Option<SystemTime>,
    pub kernel: KernelInfo,
    /// Recordings in progress (profiles not written yet).
    pub active: usize,
    /// Recordings whose profile could not be written and is retried.
    pub pending_writes: usize,
    /// Why the daemon is unhealthy (`/healthz` answers 503), if it is.
    pub unhealthy: Option<String>,
    pub containers: Vec<ContainerSeries>,
    pub images: Vec<ImageSeries>,
    /// Pushes to the registry, when pushing.
    pub registry: Option<RegistrySeries>,
    pub programs: Vec<ProgramStats>,
}

/// The snapshot shared between the manager (writer) and scrapes (readers).
pub type SharedSnapshot = Arc<RwLock<Snapshot>>;

/// Replaces the shared snapshot.
pub fn store(shared: &SharedSnapshot, snapshot: Snapshot) {
    // A poisoned lock only means a panic elsewhere mid-write; the value is
    // replaced whole, so it is safe to go on.
    let mut guard = shared.write().unwrap_or_else(|e| e.into_inner());
    *guard = snapshot;
}

/// Drops the `recorder_container_syscalls` row of recording `owner` (its
/// profile is written) without waiting for the next refresh; a watched
/// one's drift row stays, `ended`, as the manager keeps it a while.
pub fn forget(shared: &SharedSnapshot, owner: u64) {
    let mut guard = shared.write().unwrap_or_else(|e| e.into_inner());
    guard.containers.retain_mut(|c| {
        c.ended |= c.owner == owner;
        c.owner != owner || c.outside.is_some()
    });
}

pub(super) fn read(shared: &SharedSnapshot) -> Snapshot {
    shared.read().unwrap_or_else(|e| e.into_inner()).clone()
}

//! recorderd: its tasks and how they start, reload and stop.
//!
//! * the kernel task ([`kernel_task`]) owns the loaded eBPF object and its
//!   ring buffer; everything else sends it commands through a handle;
//! * the manager ([`manager`]) owns the recordings ([`state`]): it serves
//!   control requests, reacts to cgroup events and ticks, writes profiles;
//! * the control server ([`server`]) accepts connections and passes
//!   authenticated requests to the manager;
//! * a ticker, the ring-buffer forwarder (which first captures who a new
//!   container is: [`capture`]) and the signal handlers (in the binary,
//!   through [`reload`] and [`Running::shutdown`]) feed the manager.

pub mod capture;
pub mod drift;
mod error;
pub mod fdstore;
pub mod images;
pub mod kernel_task;
pub mod lookup;
pub mod manager;
pub mod outcome;
mod requests;
pub mod server;
pub mod state;
#[cfg(test)]
mod tests;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use recorder_common::CgroupEvent;
use tokio::sync::{mpsc, oneshot};

use crate::{
    cgroup::Hierarchy,
    config::Config,
    control,
    ebpf::{Kernel, KernelError, LoadOptions},
    metrics::{Counters, SharedSnapshot},
};
pub use error::DaemonError;
use error::setup_err;
use kernel_task::{KernelHandle, KernelTask};
use manager::{Manager, ManagerMsg};

/// A running daemon's handles, for the binary.
pub struct Running {
    pub manager: mpsc::Sender<ManagerMsg>,
    pub counters: Arc<Counters>,
    /// What the metrics endpoint serves (refreshed on every tick).
    pub metrics: SharedSnapshot,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pin_dir: PathBuf,
    /// The control socket it bound.
    socket: PathBuf,
    /// Held for the daemon's lifetime: one daemon per pin dir.
    _pin_lock: std::fs::File,
}

/// How a stop ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Pinned maps and links stay: recording goes on in the kernel and
    /// the next start resumes it.
    KeepAttached,
    /// Everything this daemon pinned is unpinned, and detached once the
    /// kernel task has let go of it; the recordings are forgotten.
    Release,
    /// Under systemd: the pins' descriptors go to systemd's store
    /// ([`fdstore`]), then everything is unpinned; a restart pins them
    /// again, a stop closes them.
    FdStore,
}

impl Running {
    /// Writes partial profiles and stops the tasks; then, for
    /// [`Stop::Release`], detaches and unpins.
    pub async fn shutdown(self, stop: Stop) -> std::io::Result<()> {
        let release = stop == Stop::Release;
        // The server task is cancelled below: no client is answered
        // after this, whatever is kept.
        self.remove_socket();
        let (done, rx) = oneshot::channel();
        if self
            .manager
            .send(ManagerMsg::Shutdown { release, done })
            .await
            .is_ok()
        {
            // Err: the manager is gone already; nothing to wait for.
            _ = rx.await;
        }
        for t in &self.tasks {
            t.abort();
        }
        if stop == Stop::KeepAttached {
            return Ok(());
        }
        // The kernel task drops the `Kernel` (its link and map fds) when
        // it is cancelled; bounded, so a stuck task cannot hold the exit.
        let joined = join_all(self.tasks);
        if tokio::time::timeout(Duration::from_secs(5), joined)
            .await
            .is_err()
        {
            log::warn!("tasks still running after 5 s; unpinning anyway");
        }
        if stop == Stop::FdStore {
            match fdstore::store(&self.pin_dir) {
                Ok(n) => log::info!("{n} descriptors handed to systemd's fd store"),
                Err(e) => {
                    // Pinned, recording goes on: better than losing it.
                    log::error!("systemd's fd store: {e}; the pins stay");
                    return Ok(());
                }
            }
        }
        unpin(&self.pin_dir)?;
        log::info!("removed the pins in {}", self.pin_dir.display());
        Ok(())
    }

    /// Removes the control socket: nothing serves it any more, and a
    /// client should hear "recorderd is not running", not "Connection
    /// refused". Called at every stop, whatever it keeps in the kernel.
    pub fn remove_socket(&self) {
        match std::fs::remove_file(&self.socket) {
            Ok(()) => log::info!("removed the socket {}", self.socket.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("removing the socket {}: {e}", self.socket.display()),
        }
    }
}

/// Waits for every (cancelled) task to end.
async fn join_all(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        // Err: cancelled, or it panicked; either way it has ended.
        _ = t.await;
    }
}

/// Takes an exclusive, non-blocking flock on a directory; the lock holds as
/// long as the returned file is open.
fn lock_dir(dir: &Path) -> Result<std::fs::File, DaemonError> {
    use std::os::fd::AsRawFd as _;
    let file = std::fs::File::open(dir).map_err(setup_err(dir))?;
    // SAFETY: flock on a file descriptor we own and keep open.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(DaemonError::Setup {
            path: dir.to_owned(),
            source: std::io::Error::other(
                "another recorderd is using this pin dir; stop it, or give this one its own --pin-dir",
            ),
        });
    }
    Ok(file)
}

/// What a start made that must not outlive a failed start: the socket it
/// bound and the pins it created (never those an earlier run left, which
/// a resumed daemon keeps recording into). Disarmed once the start is
/// through.
struct Undo {
    socket: Option<PathBuf>,
    pin_dir: Option<PathBuf>,
    /// The pin dir's entries before this start, and whether it existed.
    pinned_before: Option<Vec<std::ffi::OsString>>,
}

impl Undo {
    fn pin_entries(dir: &Path) -> Option<Vec<std::ffi::OsString>> {
        let entries = std::fs::read_dir(dir).ok()?;
        Some(
            entries
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect(),
        )
    }

    fn disarm(&mut self) {
        self.socket = None;
        self.pin_dir = None;
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(socket) = &self.socket {
            _ = std::fs::remove_file(socket);
        }
        let Some(dir) = &self.pin_dir else { return };
        let before = self.pinned_before.as_deref().unwrap_or_default();
        for name in Self::pin_entries(dir).unwrap_or_default() {
            if !before.contains(&name) {
                // Unpinning a map or link this start created; its last
                // descriptor goes with the failed start.
                _ = std::fs::remove_file(dir.join(&name));
            }
        }
        if self.pinned_before.is_none() {
            // Made by this start; fails (and stays) if anything is left.
            _ = std::fs::remove_dir(dir);
        }
    }
}

/// The memory the per-cgroup maps take at `capacity`, in MiB (rounded up).
fn maps_mib(capacity: u32) -> u64 {
    let per_entry =
        size_of::<recorder_common::SyscallSet>() + recorder_common::LEAF_MAX + 2 * size_of::<u64>();
    (u64::from(capacity) * per_entry as u64).div_ceil(1 << 20)
}

/// Loads the object, pinned under the pin dir, with the config's patterns
/// and the cgroup event tracepoints attached.
fn load_kernel(config: &Config) -> Result<Kernel, DaemonError> {
    let mut kernel = Kernel::load(&LoadOptions {
        capacity: config.capacity,
        btf: config.btf.clone(),
        compat: config.compat,
        pin_dir: Some(config.pin_dir.clone()),
        auto_enrol: true,
        args: false,
    })
    .map_err(|e| match &e {
        KernelError::Load(inner) => match &**inner {
            aya::EbpfError::MapError(aya::maps::MapError::CreateError { name, io_error }) => {
                DaemonError::Capacity {
                    capacity: config.capacity,
                    mib: maps_mib(config.capacity),
                    reason: format!("map {name}: {io_error}"),
                }
            }
            _ => e.into(),
        },
        _ => e.into(),
    })?;
    if kernel.has_pinned_link() {
        log::info!(
            "found pinned state in {}: resuming",
            config.pin_dir.display()
        );
    }
    kernel.set_leaf_patterns(&config.leaf_patterns())?;
    kernel.attach_cgroup_events()?;
    Ok(kernel)
}

/// Loads the programs and starts every task. What can fail without the
/// kernel is checked first; a start that fails later removes the socket it
/// bound and whatever it pinned, so it leaves nothing behind.
pub async fn start(config: Config) -> Result<Running, DaemonError> {
    crate::system::bound_allocator();
    let hierarchy = Hierarchy::detect()?;
    let group = control::gid_of(&config.socket_group)
        .ok_or_else(|| DaemonError::NoGroup(config.socket_group.clone()))?;
    for dir in [&config.profiles_dir, &config.state_dir] {
        if dir.exists() && !dir.is_dir() {
            return Err(setup_err(dir)(std::io::Error::other("not a directory")));
        }
        std::fs::create_dir_all(dir).map_err(setup_err(dir))?;
    }
    // The socket first: "another recorderd is serving this socket" must
    // not come after the maps were pinned and the tracepoints attached.
    let listener = server::bind(&config.socket, group)?;
    // Declared before `undo`, so it is released after the undoing.
    let pin_lock;
    let mut undo = Undo {
        socket: Some(config.socket.clone()),
        pin_dir: None,
        pinned_before: None,
    };
    let pinned_before = Undo::pin_entries(&config.pin_dir);
    // One daemon per pin dir: two would share the maps and the ring buffer
    // and steal each other's recordings.
    crate::system::ensure_bpffs(&config.pin_dir)?;
    pin_lock = lock_dir(&config.pin_dir)?;
    // What systemd's store gave back is an earlier run's, pinned again.
    let restored = fdstore::restore(&config.pin_dir).map_err(setup_err(&config.pin_dir))?;
    // Locked: what is pinned now is an earlier run's, and stays.
    undo.pinned_before = pinned_before.and(Undo::pin_entries(&config.pin_dir));
    undo.pin_dir = Some(config.pin_dir.clone());
    let kernel = load_kernel(&config)?;
    let mut task = KernelTask::new(kernel, config.record_all, config.detach_when_idle);
    task.settle();
    undo.disarm();
    fdstore::forget(&restored);
    // Loading parsed the kernel's BTF (megabytes) and the object; give the
    // freed memory back instead of keeping it in the idle daemon's RSS.
    crate::system::release_freed_memory();
    log::info!(
        "recorderd {} listening on {} (cgroup2 at {}, {:?} layout); record_all={}",
        crate::VERSION,
        config.socket.display(),
        hierarchy.mount.display(),
        hierarchy.layout,
        config.record_all
    );

    let (kernel_tx, kernel_rx) = mpsc::channel(64);
    let (event_tx, mut event_rx) = mpsc::channel::<CgroupEvent>(1024);
    let (manager_tx, manager_rx) = mpsc::channel(256);
    let counters = Arc::new(Counters::default());
    let metrics = SharedSnapshot::default();
    let poll = Duration::from_millis(config.poll_interval_ms.max(50));
    let pin_dir = config.pin_dir.clone();
    let socket = config.socket.clone();
    let kernel_handle = KernelHandle::new(kernel_tx);
    let manager = Manager::new(
        config,
        hierarchy.clone(),
        kernel_handle.clone(),
        counters.clone(),
        metrics.clone(),
    );
    let captures = manager.captures();

    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(async move {
        if let Err(e) = task.run(kernel_rx, event_tx).await {
            log::error!("kernel task: {e}");
        }
    }));
    tasks.push(tokio::spawn(manager.run(manager_rx)));
    // The ring-buffer forwarder: cgroup events to the manager. A new
    // enrolled cgroup's container is captured first (its name, image and
    // seccomp policy, while they are still there), then its event handed
    // on; the others go on at once.
    let tx = manager_tx.clone();
    tasks.push(tokio::spawn(async move {
        while let Some(ev) = event_rx.recv().await {
            if ev.kind == recorder_common::EVENT_MKDIR && ev.enrolled != 0 {
                let (tx, captures) = (tx.clone(), captures.clone());
                let (kernel, hierarchy) = (kernel_handle.clone(), hierarchy.clone());
                tokio::spawn(async move {
                    captures.capture(&kernel, &hierarchy, ev.id).await;
                    _ = tx.send(ManagerMsg::Event(ev)).await;
                });
            } else if tx.send(ManagerMsg::Event(ev)).await.is_err() {
                return;
            }
        }
    }));
    let tx = manager_tx.clone();
    tasks.push(tokio::spawn(async move {
        let mut interval = tokio::time::interval(poll);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if tx.send(ManagerMsg::Tick).await.is_err() {
                return;
            }
        }
    }));
    tasks.push(tokio::spawn(server::serve(
        listener,
        group,
        manager_tx.clone(),
    )));
    Ok(Running {
        manager: manager_tx,
        counters,
        metrics,
        tasks,
        pin_dir,
        socket,
        _pin_lock: pin_lock,
    })
}

/// Applies a reloaded config through the manager, which passes the new
/// patterns to the kernel task. The socket, pin dir and capacity need a
/// restart.
pub async fn reload(running: &Running, config: Config) {
    if running
        .manager
        .send(ManagerMsg::Reload(Box::new(config)))
        .await
        .is_err()
    {
        log::error!("not reloading: the manager has stopped");
    }
}

/// Removes everything the daemon pinned (maps and links); `Ok(false)`:
/// there was no such directory, nothing to remove.
pub fn unpin(pin_dir: &Path) -> std::io::Result<bool> {
    match std::fs::remove_dir_all(pin_dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

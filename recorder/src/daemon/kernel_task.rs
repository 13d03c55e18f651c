//! The kernel task: the one owner of the loaded eBPF object ([`Kernel`])
//! and its ring buffer. Everything else talks to it through a
//! [`KernelHandle`], which sends [`KernelCmd`]s over a channel.

use std::{collections::VecDeque, path::PathBuf};

use recorder_common::{CgroupEvent, LeafPattern, SyscallSet, Workload};
use tokio::{
    io::unix::AsyncFd,
    sync::{mpsc, oneshot},
};

use super::DaemonError;
use crate::ebpf::{DenialCount, Kernel, KernelError, KernelInfo, ProgramStats};

/// Requests to the kernel task.
#[derive(Debug)]
pub enum KernelCmd {
    /// Records cgroups `ids` as part of recording `owner`.
    Insert {
        ids: Vec<u64>,
        owner: u64,
        phase: u32,
        reply: oneshot::Sender<Result<(), KernelError>>,
    },
    /// Forgets recording `owner` (all its cgroups).
    Remove {
        owner: u64,
        reply: oneshot::Sender<()>,
    },
    /// Every recorded cgroup: id and set (one read of the map).
    Entries {
        reply: oneshot::Sender<Vec<(u64, SyscallSet)>>,
    },
    /// The leaf name the kernel saved for an enrolled cgroup.
    Leaf {
        id: u64,
        reply: oneshot::Sender<Option<String>>,
    },
    /// The exec that started the workload in cgroup `id`, and its exit.
    Workload {
        id: u64,
        reply: oneshot::Sender<Option<Workload>>,
    },
    /// Map and attach state.
    Info { reply: oneshot::Sender<KernelInfo> },
    /// What a tick needs, in one round trip: the entries, the map and
    /// attach state, the programs' run statistics, and the denials of the
    /// recordings `watch` (exactly those are watched from now on).
    Snapshot {
        watch: Vec<u64>,
        reply: oneshot::Sender<KernelSnapshot>,
    },
    /// New auto-mode patterns (empty: auto mode off).
    Patterns {
        patterns: Vec<LeafPattern>,
        record_all: bool,
        reply: oneshot::Sender<Result<(), KernelError>>,
    },
}

/// The kernel side as one tick sees it.
#[derive(Clone, Debug, Default)]
pub struct KernelSnapshot {
    pub entries: Vec<(u64, SyscallSet)>,
    pub info: KernelInfo,
    pub programs: Vec<ProgramStats>,
    /// The denial counts of the watched recordings.
    pub denials: Vec<DenialCount>,
}

/// Cgroup events read from the ring buffer and not yet taken by the
/// manager, at most.
const MAX_PENDING: usize = 4096;

/// The kernel task's own state.
pub struct KernelTask {
    kernel: Kernel,
    record_all: bool,
    detach_when_idle: bool,
}

impl KernelTask {
    pub fn new(kernel: Kernel, record_all: bool, detach_when_idle: bool) -> Self {
        Self {
            kernel,
            record_all,
            detach_when_idle,
        }
    }

    /// Attaches the recorder when something is (or may be) recorded, and
    /// detaches it otherwise, so an idle host pays nothing.
    pub fn settle(&mut self) {
        let busy = self.record_all || !self.kernel.is_empty() || !self.detach_when_idle;
        let result = if busy {
            self.kernel.attach()
        } else {
            self.kernel.detach()
        };
        if let Err(e) = result {
            log::error!("{e}");
        }
    }

    fn handle(&mut self, cmd: KernelCmd) {
        // Commands come at least once per tick (the manager's reconcile).
        self.kernel.sweep();
        // A dropped reply means the asker gave up; nothing to do then.
        match cmd {
            KernelCmd::Insert {
                ids,
                owner,
                phase,
                reply,
            } => {
                let result = ids
                    .into_iter()
                    .try_for_each(|id| self.kernel.insert(id, owner, phase));
                self.settle();
                // A reply fails only when the requester gave up; nothing to do then.
                _ = reply.send(result);
            }
            KernelCmd::Remove { owner, reply } => {
                self.kernel.remove_owner(owner);
                self.settle();
                _ = reply.send(());
            }
            KernelCmd::Entries { reply } => {
                _ = reply.send(self.kernel.entries());
            }
            KernelCmd::Leaf { id, reply } => {
                _ = reply.send(self.kernel.leaf(id));
            }
            KernelCmd::Workload { id, reply } => {
                _ = reply.send(self.kernel.workload(id));
            }
            KernelCmd::Info { reply } => {
                _ = reply.send(self.kernel.info());
            }
            KernelCmd::Snapshot { watch, reply } => {
                if let Err(e) = self.kernel.watch_denials(&watch) {
                    log::error!("watching for denials: {e}");
                }
                _ = reply.send(KernelSnapshot {
                    entries: self.kernel.entries(),
                    info: self.kernel.info(),
                    programs: self.kernel.program_stats(),
                    denials: self.kernel.denials(),
                });
            }
            KernelCmd::Patterns {
                patterns,
                record_all,
                reply,
            } => {
                let result = self.kernel.set_leaf_patterns(&patterns);
                self.record_all = record_all;
                self.settle();
                _ = reply.send(result);
            }
        }
    }

    /// Serves commands and forwards the ring buffer's cgroup events until
    /// every handle is dropped.
    pub async fn run(
        mut self,
        mut cmds: mpsc::Receiver<KernelCmd>,
        events: mpsc::Sender<CgroupEvent>,
    ) -> Result<(), DaemonError> {
        let ring = self.kernel.take_events()?;
        // SAFETY: the ring buffer owns its map fd, which stays open and
        // unchanged for as long as the AsyncFd owns the ring buffer.
        let mut ring = unsafe { AsyncFd::register(ring) }.map_err(|e| DaemonError::Setup {
            path: PathBuf::from("EVENTS ring buffer"),
            source: std::io::Error::other(e.to_string()),
        })?;
        // Events wait here, not in a send: the kernel task must never block
        // on the manager, which may itself be waiting for this task's answer
        // (with both channels full, that was a deadlock under a storm of
        // cgroups). Past MAX_PENDING the ring buffer is left unread; the
        // kernel then drops events, which the manager's reconcile makes up
        // for on its next tick (it adopts map entries it does not know and
        // finishes recordings whose cgroup is gone).
        let mut pending: VecDeque<CgroupEvent> = VecDeque::new();
        loop {
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => return Ok(()),
                },
                permit = events.reserve(), if !pending.is_empty() => match (permit, pending.pop_front()) {
                    (Ok(permit), Some(ev)) => permit.send(ev),
                    (Ok(_), None) => {}
                    (Err(_), _) => return Ok(()),
                },
                guard = ring.readable_mut(), if pending.len() < MAX_PENDING => {
                    let Ok(mut guard) = guard else { continue };
                    let ring = guard.get_inner_mut();
                    let mut drained = true;
                    while pending.len() < MAX_PENDING {
                        let Some(item) = ring.next() else {
                            drained = true;
                            break;
                        };
                        drained = false;
                        if item.len() >= size_of::<CgroupEvent>() {
                            // SAFETY: the kernel wrote a CgroupEvent here
                            // (the length is checked); read unaligned.
                            let ev = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<CgroupEvent>()) };
                            pending.push_back(ev);
                        }
                    }
                    // Stopped with items left: stay ready, read on later.
                    if drained {
                        guard.clear_ready();
                    }
                }
            }
        }
    }
}

/// A handle for talking to the kernel task. Every answer is typed; a kernel
/// task that is gone is [`DaemonError::KernelGone`], never a default value.
#[derive(Clone, Debug)]
pub struct KernelHandle(mpsc::Sender<KernelCmd>);

impl KernelHandle {
    /// A handle on the commands of a kernel task (the real one, or a test's).
    pub fn new(tx: mpsc::Sender<KernelCmd>) -> Self {
        Self(tx)
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> KernelCmd,
    ) -> Result<T, DaemonError> {
        let (tx, rx) = oneshot::channel();
        self.0
            .send(make(tx))
            .await
            .map_err(|_| DaemonError::KernelGone)?;
        rx.await.map_err(|_| DaemonError::KernelGone)
    }

    /// Records cgroups `ids` as part of recording `owner`; a full map is
    /// `DaemonError::Kernel(KernelError::MapFull { .. })`.
    pub async fn insert(&self, ids: Vec<u64>, owner: u64, phase: u32) -> Result<(), DaemonError> {
        self.ask(|reply| KernelCmd::Insert {
            ids,
            owner,
            phase,
            reply,
        })
        .await?
        .map_err(DaemonError::from)
    }

    /// Forgets recording `owner`; returns once it is gone from the map.
    pub async fn remove(&self, owner: u64) -> Result<(), DaemonError> {
        self.ask(|reply| KernelCmd::Remove { owner, reply }).await
    }

    pub async fn entries(&self) -> Result<Vec<(u64, SyscallSet)>, DaemonError> {
        self.ask(|reply| KernelCmd::Entries { reply }).await
    }

    pub async fn leaf(&self, id: u64) -> Result<Option<String>, DaemonError> {
        self.ask(|reply| KernelCmd::Leaf { id, reply }).await
    }

    pub async fn workload(&self, id: u64) -> Result<Option<Workload>, DaemonError> {
        self.ask(|reply| KernelCmd::Workload { id, reply }).await
    }

    pub async fn info(&self) -> Result<KernelInfo, DaemonError> {
        self.ask(|reply| KernelCmd::Info { reply }).await
    }

    /// A tick's snapshot; `watch`: the recordings to watch for denials.
    pub async fn snapshot(&self, watch: Vec<u64>) -> Result<KernelSnapshot, DaemonError> {
        self.ask(|reply| KernelCmd::Snapshot { watch, reply }).await
    }

    pub async fn set_patterns(
        &self,
        patterns: Vec<LeafPattern>,
        record_all: bool,
    ) -> Result<(), DaemonError> {
        self.ask(|reply| KernelCmd::Patterns {
            patterns,
            record_all,
            reply,
        })
        .await?
        .map_err(DaemonError::from)
    }
}

/// The sets of recording `owner` among `entries` (one read of the map).
pub fn sets_of(entries: &[(u64, SyscallSet)], owner: u64) -> Vec<SyscallSet> {
    entries
        .iter()
        .filter(|(id, set)| crate::ebpf::belongs_to(*id, set, owner))
        .map(|(_, set)| *set)
        .collect()
}

//! The manager's decisions, tested without root: a fake kernel task answers
//! the manager's commands from an in-memory map, and a temporary directory
//! stands in for the cgroup2 hierarchy (a cgroup's id is its directory's
//! inode number, as on cgroupfs).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use recorder_common::{
    CgroupEvent, EVENT_MKDIR, EVENT_RMDIR, FLAG_MARKER_SEEN, FLAG_WORKLOAD_STARTED,
    PHASE_RUNTIME_INIT, PHASE_WORKLOAD, SyscallSet, Workload,
};
use tokio::sync::mpsc;

use super::{
    kernel_task::{KernelCmd, KernelHandle, KernelSnapshot},
    manager::Manager,
    outcome::{ManagerError, Outcome},
    server, state,
};
use crate::{
    cgroup::{Hierarchy, Layout},
    config::Config,
    control::{ErrorKind, Request, Target},
    ebpf::{KernelError, KernelInfo},
    metrics::{Counters, SharedSnapshot},
    profile::Profile,
    syscalls::Abi,
};

/// What the fake kernel holds; tests read and change it between requests.
#[derive(Default)]
struct FakeKernel {
    sets: BTreeMap<u64, SyscallSet>,
    leaves: BTreeMap<u64, String>,
    workloads: BTreeMap<u64, Workload>,
    capacity: usize,
    patterns_set: usize,
}

impl FakeKernel {
    /// Records syscall `name` (native ABI) in cgroup `id`; a cgroup still
    /// in the runtime-init phase starts its workload first, as a
    /// container's exec does.
    fn call(&mut self, id: u64, name: &str) {
        let nr = Abi::native().number(name).expect("known syscall");
        let set = self.sets.get_mut(&id).expect("recorded cgroup");
        if set.phase == PHASE_RUNTIME_INIT {
            set.phase = PHASE_WORKLOAD;
            set.flags |= FLAG_MARKER_SEEN | FLAG_WORKLOAD_STARTED;
            self.workloads.insert(id, Workload::default());
        }
        set.native[nr as usize / 64] |= 1 << (nr % 64);
    }

    /// Enrols cgroup `id` as the kernel does in auto mode.
    fn enrol(&mut self, id: u64, owner: u64, leaf: &str) {
        self.sets.insert(id, SyscallSet::new(owner, 0));
        self.leaves.insert(id, leaf.to_owned());
    }

    fn handle(&mut self, cmd: KernelCmd) {
        match cmd {
            KernelCmd::Insert {
                ids,
                owner,
                phase,
                reply,
            } => {
                let mut result = Ok(());
                for id in ids {
                    if self.sets.len() >= self.capacity && !self.sets.contains_key(&id) {
                        result = Err(KernelError::MapFull {
                            capacity: self.capacity as u32,
                        });
                        break;
                    }
                    self.sets
                        .entry(id)
                        .or_insert_with(|| SyscallSet::new(owner, phase));
                }
                _ = reply.send(result);
            }
            KernelCmd::Remove { owner, reply } => {
                self.sets
                    .retain(|id, s| !crate::ebpf::belongs_to(*id, s, owner));
                let sets = &self.sets;
                self.workloads.retain(|id, _| sets.contains_key(id));
                _ = reply.send(());
            }
            KernelCmd::Entries { reply } => {
                _ = reply.send(self.entries());
            }
            KernelCmd::Leaf { id, reply } => {
                _ = reply.send(self.leaves.get(&id).cloned());
            }
            KernelCmd::Workload { id, reply } => {
                _ = reply.send(self.workloads.get(&id).copied());
            }
            KernelCmd::Info { reply } => {
                _ = reply.send(self.info());
            }
            KernelCmd::Snapshot { reply, .. } => {
                _ = reply.send(KernelSnapshot {
                    entries: self.entries(),
                    info: self.info(),
                    programs: Vec::new(),
                    denials: Vec::new(),
                });
            }
            KernelCmd::Patterns {
                patterns, reply, ..
            } => {
                self.patterns_set = patterns.len();
                _ = reply.send(Ok(()));
            }
        }
    }

    fn entries(&self) -> Vec<(u64, SyscallSet)> {
        self.sets.iter().map(|(id, s)| (*id, *s)).collect()
    }

    fn info(&self) -> KernelInfo {
        KernelInfo {
            entries: self.sets.len(),
            capacity: self.capacity as u32,
            attached: !self.sets.is_empty(),
            ..KernelInfo::default()
        }
    }
}

/// A manager on a temporary "cgroup2" tree, its dirs, and the fake kernel.
struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    config: Config,
    kernel: Arc<Mutex<FakeKernel>>,
    handle: KernelHandle,
    counters: Arc<Counters>,
}

impl Setup {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().to_path_buf();
        std::fs::create_dir_all(root.join("cg")).expect("cgroup root");
        let config = Config {
            profiles_dir: root.join("profiles"),
            state_dir: root.join("state"),
            ..Config::default()
        };
        std::fs::create_dir_all(&config.profiles_dir).expect("profiles dir");
        std::fs::create_dir_all(&config.state_dir).expect("state dir");
        let kernel = Arc::new(Mutex::new(FakeKernel {
            capacity: 16,
            ..FakeKernel::default()
        }));
        let (tx, mut rx) = mpsc::channel::<KernelCmd>(16);
        let fake = kernel.clone();
        tokio::spawn(async move {
            while let Some(cmd) = rx.recv().await {
                fake.lock().expect("fake kernel").handle(cmd);
            }
        });
        Self {
            _tmp: tmp,
            root,
            config,
            kernel,
            handle: KernelHandle::new(tx),
            counters: Arc::new(Counters::default()),
        }
    }

    fn hierarchy(&self) -> Hierarchy {
        Hierarchy {
            mount: self.root.join("cg"),
            layout: Layout::Unified,
        }
    }

    fn manager(&self) -> Manager {
        Manager::new(
            self.config.clone(),
            self.hierarchy(),
            self.handle.clone(),
            self.counters.clone(),
            SharedSnapshot::default(),
        )
    }

    /// Makes cgroup `rel` ("/a/b") and returns its id.
    fn mkdir(&self, rel: &str) -> u64 {
        let h = self.hierarchy();
        h.create(rel).expect("mkdir");
        h.id(rel).expect("id")
    }

    fn fake(&self) -> std::sync::MutexGuard<'_, FakeKernel> {
        self.kernel.lock().expect("fake kernel")
    }
}

fn allowed(path: &Path) -> Vec<String> {
    let p = Profile::read(path).expect("profile");
    p.allowed_names(Abi::native())
        .into_iter()
        .map(str::to_owned)
        .collect()
}

fn cgroup(path: &str) -> Target {
    Target::Cgroup(path.to_owned())
}

const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

mod images;
mod recordings;
mod requests;
mod upgrade;
mod writes;

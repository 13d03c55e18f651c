//! Denials under an enforcing profile, the user side of recorder-ebpf's
//! `sys_exit.rs`: which recordings are watched (`DENY_WATCH`), attaching
//! the denial programs while one is and detaching them when none is
//! (so a host with no watched container pays nothing), and reading the
//! counts (`DENIALS`).

use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData},
    programs::{RawTracePoint, links::FdLink},
};
use recorder_common::{
    DENIAL_COMPAT, DENIAL_KILLED, DENIAL_NR_UNKNOWN, DENIAL_X32, DenialKey, Entered, maps, programs,
};

use super::error::{KernelError, take_map};
use crate::syscalls::Abi;

/// The denial programs and the tracepoints they attach to, in attach order.
/// The syscalls entered are noted by `sys_enter` itself while `DENY_ON` is
/// set (after these are attached).
const PROGRAMS: [(&str, &str); 2] = [
    (programs::DENY_TASK_EXIT, "sched_process_exit"),
    (programs::DENY_EXIT, "sys_exit"),
];

/// The maps and links of the denial programs, taken out of the object.
pub(super) struct Denials {
    watch: HashMap<MapData, u64, u64>,
    counts: HashMap<MapData, DenialKey, u64>,
    entered: HashMap<MapData, u64, Entered>,
    /// `DENY_GEN`, bumped whenever `watch` changes.
    generation: Array<MapData, u64>,
    /// `DENY_ON`: set while the programs are attached.
    on: Array<MapData, u64>,
    /// Owned, never pinned: a daemon that stops stops watching.
    links: Vec<FdLink>,
}

impl Denials {
    pub(super) fn take(ebpf: &mut Ebpf) -> Result<Self, KernelError> {
        Ok(Self {
            watch: take_map(ebpf, maps::DENY_WATCH)?,
            counts: take_map(ebpf, maps::DENIALS)?,
            entered: take_map(ebpf, maps::DENY_ENTERED)?,
            generation: take_map(ebpf, maps::DENY_GEN)?,
            on: take_map(ebpf, maps::DENY_ON)?,
            links: Vec::new(),
        })
    }
}

/// One count of the `DENIALS` map, named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DenialCount {
    pub owner: u64,
    /// The syscall's name, `nr:<n>` when the table has none, `None` for a
    /// kill whose syscall is unknown.
    pub name: Option<String>,
    pub abi: Abi,
    /// A task killed by `SIGSYS` (KILL or TRAP), not an errno.
    pub killed: bool,
    pub count: u64,
}

impl DenialCount {
    /// `key`'s count, named.
    pub fn new(key: &DenialKey, count: u64) -> Self {
        let abi = match key.kind & !DENIAL_KILLED {
            DENIAL_COMPAT => Abi::compat(),
            DENIAL_X32 => Abi::X32,
            _ => Abi::native(),
        };
        let name = (key.nr != DENIAL_NR_UNKNOWN).then(|| {
            abi.name(key.nr)
                .map_or_else(|| format!("nr:{}", key.nr), str::to_owned)
        });
        Self {
            owner: key.owner,
            name,
            abi,
            killed: key.kind & DENIAL_KILLED != 0,
            count,
        }
    }
}

impl Denials {
    /// Watches exactly the recordings `owners` for denials: attaches the
    /// denial programs of `ebpf` when the first is watched, detaches them
    /// when none is, and forgets the counts of those no longer watched.
    pub(super) fn watch(&mut self, ebpf: &mut Ebpf, owners: &[u64]) -> Result<(), KernelError> {
        let watched: Vec<u64> = self.watch.keys().filter_map(Result::ok).collect();
        for owner in watched.iter().filter(|o| !owners.contains(o)) {
            self.forget(*owner);
        }
        let new: Vec<u64> = owners
            .iter()
            .copied()
            .filter(|o| !watched.contains(o))
            .collect();
        for owner in &new {
            self.watch
                .insert(owner, 1, 0)
                .map_err(KernelError::map(maps::DENY_WATCH))?;
        }
        if !new.is_empty() {
            self.next_generation()?;
        }
        if owners.is_empty() {
            self.detach();
        } else if self.links.is_empty() {
            self.attach(ebpf)?;
        }
        Ok(())
    }

    fn attach(&mut self, ebpf: &mut Ebpf) -> Result<(), KernelError> {
        // Entries of an earlier attachment would read as "seen, entered
        // nothing" for a task now inside a syscall: start afresh (nothing
        // writes them while detached).
        let stale: Vec<u64> = self.entered.keys().filter_map(Result::ok).collect();
        for tid in stale {
            _ = self.entered.remove(&tid);
        }
        let mut links = Vec::with_capacity(PROGRAMS.len());
        for (name, tracepoint) in PROGRAMS {
            let wrap = KernelError::program(name);
            let prog: &mut RawTracePoint = ebpf
                .program_mut(name)
                .ok_or(KernelError::Missing(name))?
                .try_into()
                .map_err(wrap)?;
            if prog.fd().is_err() {
                prog.load().map_err(KernelError::program(name))?;
            }
            let id = prog
                .attach(tracepoint)
                .map_err(KernelError::program(name))?;
            links.push(
                prog.take_link(id)
                    .map_err(KernelError::program(name))?
                    .into(),
            );
        }
        self.links = links;
        // Only now: an entry noted before its exit is seen would hide the
        // task's next denial.
        self.on
            .set(0, 1, 0)
            .map_err(KernelError::map(maps::DENY_ON))
    }

    /// Stops `sys_enter`'s notes, then detaches the programs.
    fn detach(&mut self) {
        if self.links.is_empty() {
            return;
        }
        // Should it fail, sys_enter keeps noting entries nobody reads: a
        // cost, not a wrong count (attaching again clears them).
        _ = self.on.set(0, 0, 0);
        self.links.clear();
    }

    /// Makes every task's entry look its cgroup's watch up again (the
    /// tasks of a recording watched from now on may have entries that say
    /// "not watched"). Only this task writes the word.
    fn next_generation(&mut self) -> Result<(), KernelError> {
        let now = self.generation.get(&0, 0).unwrap_or(0);
        self.generation
            .set(0, now.wrapping_add(1), 0)
            .map_err(KernelError::map(maps::DENY_GEN))
    }

    /// Stops watching recording `owner` and drops its counts.
    pub(super) fn forget(&mut self, owner: u64) {
        // Absent when it was not watched; a change of the list otherwise.
        if self.watch.remove(&owner).is_ok() {
            // The entries of its tasks only go stale: a failure here costs
            // nothing but lookups.
            _ = self.next_generation();
        }
        let keys: Vec<DenialKey> = self
            .counts
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.owner == owner)
            .collect();
        for key in keys {
            _ = self.counts.remove(&key);
        }
        if self.watch.keys().next().is_none() {
            self.detach();
        }
    }

    /// Whether the denial programs are attached.
    pub(super) fn attached(&self) -> bool {
        !self.links.is_empty()
    }

    /// Every count of the watched recordings.
    pub(super) fn counts(&self) -> Vec<DenialCount> {
        self.counts
            .iter()
            .filter_map(Result::ok)
            .map(|(key, count)| DenialCount::new(&key, count))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_named_per_abi() {
        let key = |nr, kind| DenialKey { owner: 7, nr, kind };
        let mkdir = Abi::native().number("mkdir").unwrap();
        let d = DenialCount::new(&key(mkdir, 0), 3);
        assert_eq!(
            (d.name.as_deref(), d.abi, d.killed, d.count),
            (Some("mkdir"), Abi::native(), false, 3)
        );
        let d = DenialCount::new(&key(DENIAL_NR_UNKNOWN, DENIAL_KILLED), 1);
        assert!(d.killed && d.name.is_none());
        if cfg!(target_arch = "x86_64") {
            let d = DenialCount::new(&key(39, DENIAL_COMPAT | DENIAL_KILLED), 1);
            assert_eq!((d.name.as_deref(), d.abi), (Some("mkdir"), Abi::X86));
        }
        let d = DenialCount::new(&key(9999, 0), 1);
        assert_eq!(d.name.as_deref(), Some("nr:9999"));
    }
}

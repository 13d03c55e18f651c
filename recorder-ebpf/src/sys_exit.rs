//! Denials under an enforcing profile: [`entered`] (called by `sys_enter`
//! while `DENY_GEN`'s slot 1 says so), `deny_exit` (on `sys_exit`) and
//! `deny_task_exit` (on `sched_process_exit`), attached by user space only
//! while a recording watched for denials (`DENY_WATCH`, its owner id) runs.
//!
//! seccomp runs before `sys_enter`: a syscall it answers (ERRNO, TRAP) never
//! reaches `sys_enter` but still leaves through `sys_exit`. So, per task of
//! a recorded cgroup (`DENY_ENTERED`, by thread id), [`entered`] notes the
//! syscall entered and `deny_exit` takes the note back; a syscall that
//! leaves with no note was skipped before it ran. The entry also keeps
//! whether the task's cgroup is watched (its owner, looked up once per task
//! and cgroup), so that a task's later syscalls cost one lookup by thread
//! id. A syscall the profile allows that fails by itself (EPERM from
//! `sethostname` without the capability) did pass `sys_enter`: it is never
//! a denial, whatever its errno.
//!
//! A task with no entry is one first seen now: it may have entered its
//! syscall before the programs were attached (or be a new task leaving
//! `fork`): its exit only creates the entry. An entry lost to the LRU
//! likewise only loses a denial, never invents one. On top, a denial must
//! look like one: an errno (ERRNO) or the syscall number itself (TRAP rolls
//! the return register back to it); a ptrace-skipped syscall (-1) is not.
//!
//! A task of a watched cgroup that exits killed by `SIGSYS` (KILL_PROCESS,
//! KILL_THREAD, or TRAP without a handler) is counted as killed by its
//! profile, at the syscall it was in when its last syscall entry is known
//! and none is pending (a pending one is a syscall it was in when another
//! thread's kill took it).

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel},
    macros::{map, raw_tracepoint},
    maps::{Array, HashMap, LruHashMap},
    programs::RawTracePointContext,
};
use recorder_common::{
    DENIAL_COMPAT, DENIAL_KILLED, DENIAL_NATIVE, DENIAL_NR_UNKNOWN, DENIAL_X32, DenialKey, Entered,
    PHASE_WORKLOAD, X32_SYSCALL_BIT,
};

use crate::{
    caller::{caller, current_task},
    maps::{COMPAT_STATUS_BIT, COMPAT_STATUS_OFFSET, SYSCALL_SETS, TASK_EXIT_CODE_OFFSET},
};

/// Recording owner ids whose denials are counted (value unused).
#[map]
static DENY_WATCH: HashMap<u64, u64> = HashMap::with_max_entries(1024, 0);

/// Denied syscalls and `SIGSYS` kills, counted. User space removes a
/// recording's keys when it ends.
#[map]
static DENIALS: HashMap<DenialKey, u64> = HashMap::with_max_entries(16384, 0);

/// Thread id → the syscall it entered (see the module doc).
#[map]
static DENY_ENTERED: LruHashMap<u64, Entered> = LruHashMap::with_max_entries(65536, 0);

/// The generation of `DENY_WATCH`: user space bumps it on every change, so
/// that an entry's cached owner (or "not watched") is looked up again. An
/// array: its lookup is inlined, no call.
#[map]
static DENY_GEN: Array<u64> = Array::with_max_entries(1, 0);

/// The current generation of the watch list.
#[inline(always)]
fn generation() -> u64 {
    match DENY_GEN.get_ptr(0) {
        // SAFETY: the slot the lookup found; user space rewrites it whole
        // (an aligned 8-byte store), so a volatile load reads it whole.
        Some(g) => unsafe { core::ptr::read_volatile(g) },
        None => 0,
    }
}

/// Non-zero while denials are watched (the exit programs attached):
/// `sys_enter` then notes what tasks enter. A global in a section of its
/// own, read at a fixed address (one load on `sys_enter`'s recorded path),
/// written by user space through its one-word map (`.bss.deny_on`).
#[unsafe(no_mangle)]
#[unsafe(link_section = ".bss.deny_on")]
static mut DENY_ON: u64 = 0;

/// Offset of the syscall number in `struct pt_regs` (`orig_ax`, `syscallno`).
#[cfg(bpf_target_arch = "x86_64")]
const NR_OFFSET: usize = 120;
#[cfg(not(bpf_target_arch = "x86_64"))]
const NR_OFFSET: usize = 280;

const SIGSYS: u32 = 31;
/// The largest errno a syscall returns.
const MAX_ERRNO: i64 = 4095;

/// The recording that cgroup `cgroup` belongs to, if it is watched for
/// denials, and whether it is in its workload phase.
#[inline(always)]
fn watched(cgroup: u64, recorded: bool) -> Option<(u64, bool)> {
    if !recorded {
        return None;
    }
    let set = SYSCALL_SETS.get_ptr(&cgroup)?;
    // SAFETY: a hash map value stays valid until the program returns (RCU);
    // a stale owner or phase is one a racing update is about to change.
    let (owner, phase) = unsafe { ((*set).owner, (*set).phase) };
    // SAFETY: read only for its presence.
    unsafe { DENY_WATCH.get(&owner) }?;
    Some((owner, phase == PHASE_WORKLOAD))
}

/// The watched recording of cgroup `cgroup` (0: none), for a new entry.
#[inline(always)]
fn owner_of(cgroup: u64) -> u64 {
    watched(cgroup, true).map_or(0, |(owner, _)| owner)
}

/// Notes that the task making syscall `id` (its registers at `regs`, its
/// cgroup `cgroup`, which may be recorded) entered it, when denials are
/// watched. Called by `sys_enter` (not a program of its own on the hook:
/// that would cost a second dispatch on every syscall).
#[inline(always)]
pub(crate) fn entered(cgroup: u64, id: i64, regs: u64) {
    // SAFETY: the static's raw address (no reference to the `static mut`);
    // user space rewrites the aligned word whole, and volatile makes the
    // load a fresh one.
    if unsafe { core::ptr::read_volatile(&raw const DENY_ON) } != 0 {
        note_entered(cgroup, id, regs);
    }
}

/// [`entered`]'s work, out of line (a BPF-to-BPF call): `sys_enter` stays
/// as small as it was while nothing is watched.
#[inline(never)]
fn note_entered(cgroup: u64, id: i64, regs: u64) {
    let nr_plus_one = (id as u64).wrapping_add(1);
    let tid = bpf_get_current_pid_tgid();
    let generation = generation();
    // In place when the task has its entry for this cgroup: no lookup of
    // the watch, and no LRU update (which takes locks and a free node).
    if let Some(entry) = DENY_ENTERED.get_ptr_mut(&tid) {
        // SAFETY: this task's value, valid until the program returns; only
        // this task's syscalls write it, one at a time.
        unsafe {
            if (*entry).cgroup == cgroup && (*entry).generation == generation {
                if (*entry).owner != 0 {
                    (*entry).nr_plus_one = nr_plus_one;
                    (*entry).regs = regs;
                }
                return;
            }
        }
    }
    let owner = owner_of(cgroup);
    let entered = Entered {
        nr_plus_one: if owner != 0 { nr_plus_one } else { 0 },
        regs,
        cgroup,
        owner,
        generation,
    };
    _ = DENY_ENTERED.insert(&tid, &entered, 0);
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub(crate) fn deny_exit(ctx: RawTracePointContext) -> i32 {
    let regs: u64 = ctx.arg(0);
    let ret: i64 = ctx.arg(1);
    let c = caller(regs);
    if !c.recorded {
        return 0;
    }
    let tid = bpf_get_current_pid_tgid();
    let generation = generation();
    let entry = DENY_ENTERED.get_ptr_mut(&tid);
    // SAFETY: `entry`, when there, is this task's value (valid until the
    // program returns); only this task's syscalls write it, one at a time.
    let current =
        |e: &*mut Entered| unsafe { (**e).cgroup == c.cgroup && (**e).generation == generation };
    let Some(entry) = entry.filter(current) else {
        // First seen (in this cgroup): it may have entered before we
        // looked, or be a new task leaving fork.
        let entered = Entered {
            nr_plus_one: 0,
            regs,
            cgroup: c.cgroup,
            owner: owner_of(c.cgroup),
            generation,
        };
        _ = DENY_ENTERED.insert(&tid, &entered, 0);
        return 0;
    };
    // SAFETY: as above.
    let (pending, owner) = unsafe { ((*entry).nr_plus_one, (*entry).owner) };
    if owner == 0 {
        return 0;
    }
    if pending != 0 {
        // SAFETY: as above.
        unsafe { (*entry).nr_plus_one = 0 };
        return 0;
    }
    // Left without having entered. Only in the workload phase (the
    // runtime's init makes no denial: its filter comes at its end).
    let Some((owner, true)) = watched(c.cgroup, true) else {
        return 0;
    };
    let id = syscall_nr(regs);
    if id < 0 || !(ret == id || (-MAX_ERRNO..0).contains(&ret)) {
        return 0;
    }
    let (nr, kind) = abi_of(id as u64);
    count(DenialKey { owner, nr, kind });
    0
}

/// A task of a watched cgroup that exits killed by `SIGSYS`.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub(crate) fn deny_task_exit(_ctx: RawTracePointContext) -> i32 {
    let off = TASK_EXIT_CODE_OFFSET.load();
    if off == 0 {
        return 0;
    }
    let tid = bpf_get_current_pid_tgid();
    let task = current_task();
    // SAFETY: `task` is the running task's BTF pointer and `off` the offset
    // of `exit_code` from the running kernel's BTF; the verifier makes the
    // load fault-tolerant.
    let code: u32 = unsafe { *task.add(off as usize).cast::<u32>() };
    // SAFETY: read once, copied out.
    let entry = unsafe { DENY_ENTERED.get(&tid) }.copied();
    if entry.is_some() {
        _ = DENY_ENTERED.remove(&tid);
    }
    if code & 0x7f != SIGSYS {
        return 0;
    }
    // Not `caller`: this is no syscall, so its last-caller entry is not ours.
    let c = crate::caller::Caller::look_up();
    let Some((owner, _)) = watched(c.cgroup, c.recorded) else {
        return 0;
    };
    let (nr, kind) = match entry {
        Some(Entered {
            nr_plus_one: 0,
            regs,
            ..
        }) if regs != 0 => {
            let id = syscall_nr(regs);
            if id < 0 {
                (DENIAL_NR_UNKNOWN, DENIAL_NATIVE)
            } else {
                abi_of(id as u64)
            }
        }
        // Killed inside a syscall it entered: another thread's kill.
        Some(_) => return 0,
        None => (DENIAL_NR_UNKNOWN, DENIAL_NATIVE),
    };
    count(DenialKey {
        owner,
        nr,
        kind: kind | DENIAL_KILLED,
    });
    0
}

/// The syscall number in the registers at `regs` (-1 when unreadable).
#[inline(always)]
fn syscall_nr(regs: u64) -> i64 {
    let at = (regs as *const u8).wrapping_add(NR_OFFSET);
    #[cfg(bpf_target_arch = "x86_64")]
    {
        // SAFETY: `regs` is the task's `struct pt_regs`; the helper reads
        // kernel memory fault-tolerantly.
        unsafe { bpf_probe_read_kernel(at.cast::<i64>()) }.unwrap_or(-1)
    }
    #[cfg(not(bpf_target_arch = "x86_64"))]
    {
        // SAFETY: as above (`syscallno` is an s32).
        i64::from(unsafe { bpf_probe_read_kernel(at.cast::<i32>()) }.unwrap_or(-1))
    }
}

/// Syscall `nr` of the running task: its number in its ABI, and the ABI.
#[inline(always)]
fn abi_of(nr: u64) -> (u32, u32) {
    let off = COMPAT_STATUS_OFFSET.load();
    if off != 0 {
        let task = current_task();
        // SAFETY: as in `sys_enter`'s `record`: `off` is the offset of
        // `thread_info.status` from BTF, the load is fault-tolerant.
        let status: u32 = unsafe { *task.add(off as usize).cast::<u32>() };
        if status & COMPAT_STATUS_BIT.load() != 0 {
            return (nr as u32, DENIAL_COMPAT);
        }
    }
    if nr & X32_SYSCALL_BIT != 0 {
        ((nr & !X32_SYSCALL_BIT) as u32, DENIAL_X32)
    } else {
        (nr as u32, DENIAL_NATIVE)
    }
}

/// Adds 1 to `key`'s count.
#[inline(always)]
fn count(key: DenialKey) {
    if let Some(n) = DENIALS.get_ptr_mut(&key) {
        // SAFETY: a hash map value, valid until the program returns; other
        // CPUs add to it atomically too.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(n, 1) };
        return;
    }
    // On the stack: a `&1` would be a constant in a section of its own.
    let one: u64 = 1;
    // BPF_NOEXIST: another CPU may have made it meanwhile; then add to it.
    if DENIALS.insert(&key, &one, 1).is_err()
        && let Some(n) = DENIALS.get_ptr_mut(&key)
    {
        // SAFETY: as above.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(n, 1) };
    }
}

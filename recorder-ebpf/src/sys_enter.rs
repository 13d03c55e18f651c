//! The recorder (`sys_enter`): finds the caller's set, in its cache slot or
//! in `SYSCALL_SETS`, and sets the syscall's bit; claims a free cache slot
//! for a recorded cgroup. Also the bench's empty floor on the same hook.
//!
//! A set pointer here points to a `SET_CACHE` value (an array's, never
//! freed) or to a `SYSCALL_SETS` value, which stays valid until the
//! program returns (RCU) even if user space deletes the entry meanwhile.
//! Other CPUs may record into the same set at the same time.

use core::intrinsics::{AtomicOrdering, atomic_cxchg, atomic_or, atomic_xadd, atomic_xchg};

use aya_ebpf::{
    macros::{btf_tracepoint, raw_tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext},
};
use recorder_common::{
    CACHE_CLAIMING, CACHE_FREE, CachedSet, FLAG_MARKER_SEEN, FLAG_RUNTIME_CRUN, FLAG_RUNTIME_RUNC,
    PHASE_RUNTIME_INIT, PHASE_WORKLOAD, SET_BITS, SET_WORDS, SyscallSet, X32_SYSCALL_BIT,
    cache_slot,
};

use crate::{
    arch,
    args::{record_args, syscall_arg},
    caller::{Caller, caller, current_task},
    maps::{COMPAT_STATUS_BIT, COMPAT_STATUS_OFFSET, SET_CACHE, SYSCALL_SETS},
};

const SECCOMP_SET_MODE_FILTER: u64 = 1;
const PR_SET_SECCOMP: u64 = 22;
const SECCOMP_MODE_FILTER: u64 = 2;

/// A BTF tracepoint (`tp_btf`), not a raw one: `regs` is then a typed
/// pointer the program may read directly, which compat detection needs
/// (see [`native_entry`]).
#[btf_tracepoint(function = "sys_enter")]
pub(crate) fn sys_enter(ctx: BtfTracePointContext) -> i32 {
    let regs_addr: u64 = ctx.arg(0);
    let Caller {
        cgroup,
        recorded,
        task,
    } = caller(regs_addr);
    // The only work done for (almost all) cgroups not recorded.
    if !recorded {
        return 0;
    }
    let Some(cached) = SET_CACHE.get_ptr_mut(cache_slot(cgroup)) else {
        return 0;
    };
    let id: i64 = ctx.arg(1);
    crate::sys_exit::entered(cgroup, id, regs_addr);
    let regs = regs_addr as *const u8;
    // A recorded cgroup with a cache slot: no call at all.
    // SAFETY: `cached` is the slot the lookup found. Its id changes under
    // us (other CPUs claim, user space releases and frees): an aligned
    // 8-byte volatile load reads it whole and fresh.
    let in_cache = unsafe { core::ptr::read_volatile(&raw const (*cached).id) } == cgroup;
    let set = if in_cache {
        // SAFETY: only the field's address is taken (`cached` is valid).
        unsafe { &raw mut (*cached).set }
    } else {
        let Some(set) = SYSCALL_SETS.get_ptr_mut(&cgroup) else {
            return 0;
        };
        set
    };
    if record(set, task, id, regs) {
        record_args(cgroup, id, regs);
    }
    // Once the runtime's init is done, later syscalls go to a free slot.
    if !in_cache
        // SAFETY: `set` is valid (module doc); a stale phase only delays
        // the claim.
        && unsafe { (*set).phase } == PHASE_WORKLOAD
        // SAFETY: `cached` is valid (above); an id that changed since is
        // settled by `claim`'s compare-and-swap.
        && unsafe { core::ptr::read_volatile(&raw const (*cached).id) } == CACHE_FREE
    {
        claim(cached, cgroup);
    }
    0
}

/// The bench floor: the same hook, no work.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub(crate) fn sys_enter_floor(_ctx: RawTracePointContext) -> i32 {
    0
}

/// Takes the free cache slot `cached` for `cgroup`. The set of a free slot
/// is all zeros (user space zeroes it before freeing it).
#[inline(always)]
fn claim(cached: *mut CachedSet, cgroup: u64) {
    // SAFETY: `cached` is a `SET_CACHE` slot (valid, see the module doc);
    // only the field's address is taken.
    let id = unsafe { &raw mut (*cached).id };
    // SAFETY: `id` is valid and 8-byte aligned; every CPU and user space
    // change it atomically.
    let (_, won) = unsafe {
        atomic_cxchg::<u64, { AtomicOrdering::SeqCst }, { AtomicOrdering::SeqCst }>(
            id,
            CACHE_FREE,
            CACHE_CLAIMING,
        )
    };
    if !won {
        return;
    }
    // SAFETY: `cached` is valid. The slot is ours while its id is
    // `CACHE_CLAIMING`: no other CPU can claim it, user space releases only
    // a slot whose id is a cgroup's, and no one records in it yet.
    unsafe {
        (*cached).set.owner = cgroup;
        (*cached).set.phase = PHASE_WORKLOAD;
        // Published with a fully ordered exchange: the phase is visible
        // before anyone records under the id.
        atomic_xchg::<u64, { AtomicOrdering::SeqCst }>(id, cgroup);
    }
}

/// Records syscall `id`; returns whether it was a native one.
#[inline(always)]
fn record(set: *mut SyscallSet, task: Option<*const u8>, id: i64, regs: *const u8) -> bool {
    let nr = id as u64;
    let compat_off = COMPAT_STATUS_OFFSET.load();
    // A last-caller hit has no task: the call for it is paid only when the
    // registers do not show a native `syscall` entry.
    if compat_off != 0 && (task.is_some() || !arch::native_entry(regs)) {
        let task = task.unwrap_or_else(current_task);
        // A direct (BTF-checked) load, not a bpf_probe_read_kernel() call.
        // SAFETY: `task` is a task's BTF pointer and `compat_off` the
        // offset of `thread_info.status` from the running kernel's BTF; the
        // verifier makes the load fault-tolerant.
        let status: u32 = unsafe { *task.add(compat_off as usize).cast::<u32>() };
        if status & COMPAT_STATUS_BIT.load() != 0 {
            if nr < SET_BITS as u64 {
                // SAFETY: `set` is valid (module doc); only the field's
                // address is taken. So for the other bitmaps below.
                mark(unsafe { &raw mut (*set).compat }, nr);
            } else {
                out_of_range(set, id);
            }
            return false;
        }
    }
    if nr < SET_BITS as u64 {
        // SAFETY: `set` is valid. Another CPU may be ending the phase: a
        // stale read files this syscall under `init`, as if it came first.
        if unsafe { (*set).phase } == PHASE_RUNTIME_INIT {
            // SAFETY: as for `compat` above.
            mark(unsafe { &raw mut (*set).init }, nr);
            if id == arch::NR_SECCOMP || id == arch::NR_PRCTL {
                let runtime = filter_load_by(id, regs);
                if runtime != 0 {
                    // SAFETY: `set` is valid. Only the runtime's init gets
                    // here, when it loads its filter; threads of it racing
                    // here write the same values.
                    unsafe {
                        (*set).phase = PHASE_WORKLOAD;
                        (*set).flags |= FLAG_MARKER_SEEN | runtime;
                    }
                }
            } else if id == arch::NR_EXECVE || id == arch::NR_EXECVEAT {
                // The runtime's init about to exec the workload with no
                // filter loaded first: `exec.rs` ends the phase if the exec
                // succeeds; which runtime it is counts for the profile.
                let runtime = runtime_init_flag();
                if runtime != 0 {
                    // SAFETY: `set` is valid; as for the filter load above.
                    unsafe { (*set).flags |= runtime };
                }
            }
        } else {
            // SAFETY: as for `compat` above.
            mark(unsafe { &raw mut (*set).native }, nr);
        }
        true
    } else if nr & X32_SYSCALL_BIT != 0 && (nr & !X32_SYSCALL_BIT) < SET_BITS as u64 {
        // SAFETY: as for `compat` above.
        mark(unsafe { &raw mut (*set).x32 }, nr & !X32_SYSCALL_BIT);
        false
    } else {
        out_of_range(set, id);
        false
    }
}

/// Sets bit `nr` in `words` unless it is already set, atomically.
#[inline(always)]
fn mark(words: *mut [u64; SET_WORDS], nr: u64) {
    let word = (nr / 64) as usize;
    let bit = 1u64 << (nr % 64);
    if word >= SET_WORDS {
        return;
    }
    // SAFETY: `words` is a bitmap of a valid set (module doc) and `word` is
    // in bounds. Other CPUs set bits in the same words: the read is
    // volatile and aligned (a fresh, whole word), the write an atomic OR.
    unsafe {
        let slot = (*words).as_mut_ptr().add(word);
        // Read first: a bit that is already set costs no write, so hot cache
        // lines stay shared between CPUs.
        if core::ptr::read_volatile(slot) & bit == 0 {
            atomic_or::<u64, u64, { AtomicOrdering::Relaxed }>(slot, bit);
        }
    }
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, _, prog)` or
/// `prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog)` with a real program
/// (libseccomp probes flags with a NULL program first) by the runtime's init:
/// which runtime's (`FLAG_RUNTIME_*`), or 0.
#[inline(always)]
fn filter_load_by(id: i64, regs: *const u8) -> u32 {
    let a0 = syscall_arg(regs, 0);
    let a1 = syscall_arg(regs, 1);
    let a2 = syscall_arg(regs, 2);
    let filter = if id == arch::NR_SECCOMP {
        a0 == SECCOMP_SET_MODE_FILTER
    } else {
        a0 == PR_SET_SECCOMP && a1 == SECCOMP_MODE_FILTER
    };
    if filter && a2 != 0 {
        runtime_init_flag()
    } else {
        0
    }
}

/// Whether the calling task is an OCI runtime's init (runc or crun), whose
/// seccomp filter load marks the start of the workload.
#[inline(always)]
fn runtime_init_flag() -> u32 {
    // Left uninitialised: zeroing it would be a memset call, which BPF does
    // not have, and the helper fills the whole buffer (it takes uninit memory).
    let mut comm = core::mem::MaybeUninit::<[u64; 2]>::uninit();
    // SAFETY: the helper writes at most 16 bytes, the size of `comm`.
    let ret =
        unsafe { aya_ebpf::helpers::generated::bpf_get_current_comm(comm.as_mut_ptr().cast(), 16) };
    if ret != 0 {
        return 0;
    }
    // SAFETY: on success the helper wrote all 16 bytes (the name,
    // NUL-padded).
    let head = (unsafe { comm.assume_init() }[0] & 0xffff_ffff) as u32;
    if head == u32::from_le_bytes(*b"runc") {
        FLAG_RUNTIME_RUNC
    } else if head == u32::from_le_bytes(*b"crun") {
        FLAG_RUNTIME_CRUN
    } else {
        0
    }
}

/// Counts syscall `id`, outside every bitmap, in `set`.
#[inline(always)]
fn out_of_range(set: *mut SyscallSet, id: i64) {
    // SAFETY: `set` is valid (module doc). The count is added atomically;
    // the last number is for diagnostics, and racing stores leave one of
    // them.
    unsafe {
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*set).out_of_range, 1);
        (*set).last_out_of_range = id;
    }
}

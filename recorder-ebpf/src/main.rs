//! The recorder's eBPF programs.
//!
//! * `sys_enter` (raw tracepoint `raw_syscalls:sys_enter`): the recorder.
//!   The caller's cgroup comes from a per-CPU "last caller" entry when the
//!   same task made the last syscall on this CPU, else from the task (one
//!   helper call). A counting filter (an array slot) turns away almost
//!   every cgroup that is not recorded, and the entry keeps its verdict:
//!   a hit is turned away with no further lookup. Recorded cgroups find
//!   their set in a direct-mapped array cache; the rest pay one hash
//!   lookup. Array lookups are inlined by the verifier, so the common paths
//!   make no call. A recorded syscall sets one bit in a bitmap.
//! * `cgroup_attach_task` / `sched_process_fork` (raw tracepoints): bump
//!   the generation of the last-caller entries. Attached with `sys_enter`.
//! * `sys_enter_floor`: an empty program on the same hook, the reference floor
//!   for `cargo xtask bench`. Never attached by the daemon.
//! * `cgroup_mkdir` / `cgroup_rmdir` (tracepoints `cgroup:*`): auto mode.
//!   A new cgroup2 directory whose name matches a container pattern, or that is
//!   created from inside a recorded cgroup, is enrolled in the kernel before any
//!   process can enter it; removals are reported to user space.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

use core::intrinsics::{AtomicOrdering, atomic_cxchg, atomic_or, atomic_xadd, atomic_xchg};

use aya_ebpf::{
    EbpfContext as _, Global,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_task_btf, bpf_probe_read_kernel,
        bpf_probe_read_kernel_buf,
    },
    macros::{map, raw_tracepoint, tracepoint},
    maps::{Array, HashMap, PerCpuArray, RingBuf},
    programs::{RawTracePointContext, TracePointContext},
};
use recorder_common::{ArgSet, NS_FLAGS, OVERFLOW_PERSONALITY, OVERFLOW_SOCKET, PERSONALITY_MAX};
use recorder_common::{
    BPF_F_MMAPABLE, CACHE_CLAIMING, CACHE_FREE, CACHE_SLOTS, CachedSet, CgroupEvent, EVENT_MKDIR,
    EVENT_RMDIR, FILTER_SLOTS, FLAG_AUTO, FLAG_MARKER_SEEN, FLAG_RUNTIME_CRUN, FLAG_RUNTIME_RUNC,
    ID_HEX_LEN, LEAF_MAX, LEAF_PREFIX_MAX, LEAF_SUFFIX_MAX, LeafPattern, MAX_LEAF_PATTERNS,
    PATH_BUF, PHASE_RUNTIME_INIT, PHASE_WORKLOAD, SET_BITS, SyscallSet, X32_SYSCALL_BIT,
    cache_slot, filter_slot, stat,
};

/// cgroup id -> syscall set. Capacity is set by user space at load time.
#[map]
static SYSCALL_SETS: HashMap<u64, SyscallSet> = HashMap::with_max_entries(1024, 0);

/// Slot `filter_slot(id)` counts the `SYSCALL_SETS` entries whose id hashes
/// there; 0 means "not recorded" for sure. Whoever inserts an entry adds 1
/// first and whoever removes one subtracts 1 after, both atomically (user
/// space through an mmap of this array), so a recorded cgroup's slot is never
/// 0. Array lookups are inlined by the verifier: no helper call.
#[map]
static RECORDED_FILTER: Array<u64> = Array::with_max_entries(FILTER_SLOTS, BPF_F_MMAPABLE);

/// Slot `cache_slot(id)` holds the set of one recorded cgroup that hashes
/// there (the first to make a syscall in the workload phase while the slot
/// was free). Its syscalls are recorded here instead of in its
/// `SYSCALL_SETS` entry, which stays the recording's identity; user space
/// merges the two and releases the slot when it removes the entry.
#[map]
static SET_CACHE: Array<CachedSet> = Array::with_max_entries(CACHE_SLOTS, BPF_F_MMAPABLE);

/// The task that last made a syscall on each CPU, its cgroup, and whether
/// that cgroup may be recorded: a syscall whose `regs` (the top of the
/// caller's kernel stack, so one value per live task) and generation match
/// needs no helper call to find its cgroup, and no filter lookup to be
/// turned away. See [`caller`].
#[map]
static LAST_CALLER: PerCpuArray<LastCaller> = PerCpuArray::with_max_entries(1, 0);

/// The generation of [`LAST_CALLER`] entries. Bumped whenever a task may
/// have changed cgroup (`cgroup_attach_task`) or a new task may have been
/// given the kernel stack of one that died (`sched_process_fork`), and by
/// user space (which runs the fork hook once, `BPF_PROG_TEST_RUN`) before
/// `sys_enter` is attached and after it starts recording a cgroup; an entry
/// of an older generation is not used. A global in a section of its own:
/// the program reads it at a fixed address, with no lookup, and user space
/// finds it as its own one-word map (`.bss.caller_gen`).
#[unsafe(no_mangle)]
#[unsafe(link_section = ".bss.caller_gen")]
static mut CALLER_GEN: u64 = 0;

#[repr(C)]
pub struct LastCaller {
    regs: u64,
    generation: u64,
    cgroup: u64,
    /// Non-zero when `cgroup`'s filter slot was (see [`maybe_recorded`]).
    recorded: u64,
}

/// Per-CPU counters, indexed by `recorder_common::stat`.
#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

/// cgroup mkdir/rmdir events for user space.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);

/// Container leaf-name patterns for auto mode.
#[map]
static LEAF_PATTERNS: Array<LeafPattern> = Array::with_max_entries(MAX_LEAF_PATTERNS, 0);

/// A zeroed set used as the template for kernel enrolments (a set is too
/// large for the BPF stack). Only `owner`, `phase` and `flags` are written.
#[map]
static SET_SCRATCH: PerCpuArray<SyscallSet> = PerCpuArray::with_max_entries(1, 0);

/// cgroup id -> the leaf name of a cgroup the kernel enrolled (e.g.
/// `libpod-<id>`), so that user space can name the container even when the
/// cgroup was created and removed while the daemon was down.
#[map]
static CGROUP_LEAF: HashMap<u64, [u8; LEAF_MAX]> = HashMap::with_max_entries(1024, 0);

/// Scratch space for a leaf name.
#[map]
static LEAF_SCRATCH: PerCpuArray<[u8; LEAF_MAX]> = PerCpuArray::with_max_entries(1, 0);

/// Scratch space for a cgroup path (too large for the BPF stack).
#[map]
static PATH_SCRATCH: PerCpuArray<[u8; PATH_BUF]> = PerCpuArray::with_max_entries(1, 0);

/// cgroup id -> distinct key-argument values (opt-in argument recording).
/// User space inserts an entry next to each `SYSCALL_SETS` entry it wants
/// arguments for; the kernel never creates entries here.
#[map]
static ARG_SETS: HashMap<u64, ArgSet> = HashMap::with_max_entries(1024, 0);

/// Native syscall numbers whose arguments are recorded, set by user space
/// from its syscall table; -1 (the default) records none.
#[unsafe(no_mangle)]
static NR_ARG_SOCKET: Global<i64> = Global::new(-1);
#[unsafe(no_mangle)]
static NR_ARG_CLONE: Global<i64> = Global::new(-1);
#[unsafe(no_mangle)]
static NR_ARG_UNSHARE: Global<i64> = Global::new(-1);
#[unsafe(no_mangle)]
static NR_ARG_PERSONALITY: Global<i64> = Global::new(-1);

/// Offset of `thread_info.status` in `task_struct`, read from BTF by user
/// space; 0 disables 32-bit compat detection.
#[unsafe(no_mangle)]
static COMPAT_STATUS_OFFSET: Global<u32> = Global::new(0);
/// Offsets of `task_struct.cgroups`, `css_set.dfl_cgrp`, `cgroup.kn` and
/// `kernfs_node.id`, read from BTF by user space. With all four set, the
/// cgroup id is read with four loads from the current task instead of a
/// `bpf_get_current_cgroup_id()` call (a call costs about as much as the
/// empty program's dispatch, see docs/performance.md). 0 in `CGROUP_ID_WALK` keeps the
/// helper. Read-only data: the verifier knows the values and drops the path
/// not taken.
#[unsafe(no_mangle)]
static CGROUP_ID_WALK: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static TASK_CGROUPS_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static CSS_SET_DFL_CGRP_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static CGROUP_KN_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static KERNFS_NODE_ID_OFFSET: Global<u32> = Global::new(0);
/// `TS_COMPAT` bit of `thread_info.status`.
#[unsafe(no_mangle)]
static COMPAT_STATUS_BIT: Global<u32> = Global::new(0x0002);
/// Non-zero: enrol new container cgroups in `cgroup_mkdir`.
#[unsafe(no_mangle)]
static AUTO_ENROL: Global<u32> = Global::new(0);
/// hierarchy id of the cgroup2 root in the `cgroup_mkdir` tracepoint (`root`).
#[unsafe(no_mangle)]
static CGROUP2_HIERARCHY: Global<u32> = Global::new(0);
/// Field offsets of the `cgroup:cgroup_mkdir` record, read from tracefs.
#[unsafe(no_mangle)]
static TP_ROOT_OFF: Global<u32> = Global::new(8);
#[unsafe(no_mangle)]
static TP_ID_OFF: Global<u32> = Global::new(16);
#[unsafe(no_mangle)]
static TP_PATH_OFF: Global<u32> = Global::new(24);

#[cfg(bpf_target_arch = "x86_64")]
mod arch {
    pub(crate) const NR_SECCOMP: i64 = 317;
    pub(crate) const NR_PRCTL: i64 = 157;
    /// Offsets of the first three argument registers in `struct pt_regs`.
    pub(crate) const ARG_OFFSETS: [usize; 3] = [112, 104, 96];
}
#[cfg(bpf_target_arch = "aarch64")]
mod arch {
    pub(crate) const NR_SECCOMP: i64 = 277;
    pub(crate) const NR_PRCTL: i64 = 167;
    pub(crate) const ARG_OFFSETS: [usize; 3] = [0, 8, 16];
}
#[cfg(not(any(bpf_target_arch = "x86_64", bpf_target_arch = "aarch64")))]
mod arch {
    pub(crate) const NR_SECCOMP: i64 = -1000;
    pub(crate) const NR_PRCTL: i64 = -1000;
    pub(crate) const ARG_OFFSETS: [usize; 3] = [0, 8, 16];
}

const SECCOMP_SET_MODE_FILTER: u64 = 1;
const PR_SET_SECCOMP: u64 = 22;
const SECCOMP_MODE_FILTER: u64 = 2;

#[inline(always)]
fn bump(index: u32) {
    if let Some(counter) = STATS.get_ptr_mut(index) {
        // Per-CPU slot: no other CPU writes it.
        unsafe { *counter += 1 };
    }
}

/// Sets bit `nr` in `words` unless it is already set, atomically.
#[inline(always)]
fn mark(words: *mut [u64; recorder_common::SET_WORDS], nr: u64) {
    let word = (nr / 64) as usize;
    let bit = 1u64 << (nr % 64);
    if word >= recorder_common::SET_WORDS {
        return;
    }
    unsafe {
        let slot = (*words).as_mut_ptr().add(word);
        // Read first: a bit that is already set costs no write, so hot cache
        // lines stay shared between CPUs.
        if core::ptr::read_volatile(slot) & bit == 0 {
            atomic_or::<u64, u64, { AtomicOrdering::Relaxed }>(slot, bit);
        }
    }
}

#[inline(always)]
fn syscall_arg(regs: *const u8, n: usize) -> u64 {
    let off = arch::ARG_OFFSETS[n];
    unsafe { bpf_probe_read_kernel(regs.add(off).cast::<u64>()) }.unwrap_or(0)
}

/// Whether the calling task is an OCI runtime's init (runc or crun), whose
/// seccomp filter load marks the start of the workload.
#[inline(always)]
fn runtime_init_flag() -> u32 {
    // Left uninitialised: zeroing it would be a memset call, which BPF does
    // not have, and the helper fills the whole buffer (it takes uninit memory).
    let mut comm = core::mem::MaybeUninit::<[u64; 2]>::uninit();
    let ret =
        unsafe { aya_ebpf::helpers::generated::bpf_get_current_comm(comm.as_mut_ptr().cast(), 16) };
    if ret != 0 {
        return 0;
    }
    let head = (unsafe { comm.assume_init() }[0] & 0xffff_ffff) as u32;
    if head == u32::from_le_bytes(*b"runc") {
        FLAG_RUNTIME_RUNC
    } else if head == u32::from_le_bytes(*b"crun") {
        FLAG_RUNTIME_CRUN
    } else {
        0
    }
}

/// The current task, as a BTF pointer the program may read directly. A
/// helper call on the 6.18 kernel measured (its verifier does not inline
/// it), about as costly as the rest of the program: the last-caller entries
/// exist to avoid it (see docs/performance.md).
#[inline(always)]
fn current_task() -> *const u8 {
    unsafe { bpf_get_current_task_btf() as *const u8 }
}

/// The cgroup2 id of `task`: `task->cgroups->dfl_cgrp->kn->id`, what
/// `bpf_get_current_cgroup_id()` returns, without the helper call.
#[inline(always)]
fn cgroup_id(task: *const u8) -> u64 {
    if CGROUP_ID_WALK.load() == 0 {
        return unsafe { bpf_get_current_cgroup_id() };
    }
    // The verifier checks each load against BTF and turns it into a
    // fault-tolerant load (a bad pointer reads as 0).
    unsafe {
        let css = *task
            .add(TASK_CGROUPS_OFFSET.load() as usize)
            .cast::<*const u8>();
        let cgrp = *css
            .add(CSS_SET_DFL_CGRP_OFFSET.load() as usize)
            .cast::<*const u8>();
        let kn = *cgrp
            .add(CGROUP_KN_OFFSET.load() as usize)
            .cast::<*const u8>();
        *kn.add(KERNFS_NODE_ID_OFFSET.load() as usize).cast::<u64>()
    }
}

/// The task making a syscall, as far as `sys_enter` needs to know it.
struct Caller {
    cgroup: u64,
    /// False when `cgroup` is certainly not recorded.
    recorded: bool,
    /// The task, when it had to be looked up.
    task: Option<*const u8>,
}

impl Caller {
    #[inline(always)]
    fn look_up() -> Self {
        let task = current_task();
        let cgroup = cgroup_id(task);
        Self {
            cgroup,
            recorded: maybe_recorded(cgroup),
            task: Some(task),
        }
    }
}

/// The task making this syscall. The per-CPU [`LAST_CALLER`] answers
/// without a call or a filter lookup when the same task made the last
/// syscall on this CPU (the common case: a task makes many syscalls between
/// context switches).
///
/// Why a hit is right: `regs` is the top of the caller's kernel stack, fixed
/// for the task's life, and no two live tasks share one. A stack is only
/// reused by a task created later, and every creation bumps the generation
/// (`sched_process_fork` fires before the child first runs), as does every
/// cgroup migration (`cgroup_attach_task`, before the migrating write
/// returns). The "may be recorded" verdict only goes stale when the
/// cgroup starts being recorded: user space bumps the generation after it
/// counts a cgroup in the filter, and the kernel only enrols cgroups it
/// sees created, which no task is in yet. (A verdict that goes stale the
/// other way, a cgroup no longer recorded, only costs a lookup that finds
/// nothing.) The generation is read before the cgroup and the filter, so
/// an entry is never newer than its generation says. Syscall tracepoints
/// run BPF with preemption disabled and a program does not nest on a CPU,
/// so the words of an entry are written by one run at a time.
#[inline(always)]
fn caller(regs: u64) -> Caller {
    let Some(last) = LAST_CALLER.get_ptr_mut(0) else {
        return Caller::look_up();
    };
    let generation = &raw const CALLER_GEN;
    let current = unsafe { core::ptr::read_volatile(generation) };
    unsafe {
        if (*last).regs == regs && (*last).generation == current {
            return Caller {
                cgroup: (*last).cgroup,
                recorded: (*last).recorded != 0,
                task: None,
            };
        }
    }
    let current = generation_before_lookup(generation, current);
    let caller = Caller::look_up();
    unsafe {
        (*last).regs = regs;
        (*last).generation = current;
        (*last).cgroup = caller.cgroup;
        (*last).recorded = caller.recorded as u64;
    }
    caller
}

/// The generation to store with a cgroup and verdict looked up after this:
/// x86 does not reorder loads, so the value already read will do; elsewhere
/// a fully ordered read keeps the lookups after it.
#[inline(always)]
fn generation_before_lookup(generation: *const u64, read: u64) -> u64 {
    if cfg!(bpf_target_arch = "x86_64") {
        read
    } else {
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(generation.cast_mut(), 0) }
    }
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter(ctx: RawTracePointContext) -> i32 {
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
    let regs = regs_addr as *const u8;
    // A recorded cgroup with a cache slot: no call at all.
    let in_cache = unsafe { core::ptr::read_volatile(&raw const (*cached).id) } == cgroup;
    let set = if in_cache {
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
        && unsafe { (*set).phase } == PHASE_WORKLOAD
        && unsafe { core::ptr::read_volatile(&raw const (*cached).id) } == CACHE_FREE
    {
        claim(cached, cgroup);
    }
    0
}

/// Takes the free cache slot `cached` for `cgroup`. The set of a free slot
/// is all zeros (user space zeroes it before freeing it).
#[inline(always)]
fn claim(cached: *mut CachedSet, cgroup: u64) {
    let id = unsafe { &raw mut (*cached).id };
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
    unsafe {
        (*cached).set.owner = cgroup;
        (*cached).set.phase = PHASE_WORKLOAD;
        // Published with a fully ordered exchange: the phase is visible
        // before anyone records under the id.
        atomic_xchg::<u64, { AtomicOrdering::SeqCst }>(id, cgroup);
    }
}

/// False when cgroup `id` is certainly not recorded (its filter slot is 0).
#[inline(always)]
fn maybe_recorded(id: u64) -> bool {
    match RECORDED_FILTER.get_ptr(filter_slot(id)) {
        Some(count) => (unsafe { core::ptr::read_volatile(count) }) != 0,
        None => false,
    }
}

/// Adds `delta` (wrapping) to cgroup `id`'s filter slot.
#[inline(always)]
fn filter_add(id: u64, delta: u64) {
    if let Some(count) = RECORDED_FILTER.get_ptr_mut(filter_slot(id)) {
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(count, delta) };
    }
}

/// The index of the combination of namespace flags in `flags`.
#[inline(always)]
fn ns_combination(flags: u64) -> u64 {
    let mut combo = 0u64;
    for (i, flag) in NS_FLAGS.iter().enumerate() {
        if flags & flag != 0 {
            combo |= 1 << i;
        }
    }
    combo
}

#[inline(always)]
fn mark_ns(words: *mut [u64; 2], combo: u64) {
    let word = (combo / 64) as usize;
    if word < 2 {
        unsafe {
            let slot = (*words).as_mut_ptr().add(word);
            atomic_or::<u64, u64, { AtomicOrdering::Relaxed }>(slot, 1u64 << (combo % 64));
        }
    }
}

/// Records the key argument of socket, clone, unshare and personality for
/// cgroups that have an `ARG_SETS` entry (native ABI only).
#[inline(always)]
fn record_args(cgroup: u64, id: i64, regs: *const u8) {
    if id < 0 {
        return;
    }
    let socket = NR_ARG_SOCKET.load();
    let clone = NR_ARG_CLONE.load();
    let unshare = NR_ARG_UNSHARE.load();
    let personality = NR_ARG_PERSONALITY.load();
    if id != socket && id != clone && id != unshare && id != personality {
        return;
    }
    let Some(args) = ARG_SETS.get_ptr_mut(&cgroup) else {
        return;
    };
    let a0 = syscall_arg(regs, 0);
    if id == socket {
        if a0 < 64 {
            unsafe {
                atomic_or::<u64, u64, { AtomicOrdering::Relaxed }>(
                    &raw mut (*args).socket_domains,
                    1u64 << a0,
                )
            };
        } else {
            unsafe {
                atomic_or::<u64, u64, { AtomicOrdering::Relaxed }>(
                    &raw mut (*args).overflow,
                    OVERFLOW_SOCKET,
                )
            };
        }
    } else if id == clone {
        mark_ns(unsafe { &raw mut (*args).clone_ns }, ns_combination(a0));
    } else if id == unshare {
        mark_ns(unsafe { &raw mut (*args).unshare_ns }, ns_combination(a0));
    } else {
        let persona = a0 as u32;
        let len = unsafe { (*args).personality_len } as usize;
        for i in 0..PERSONALITY_MAX {
            if i >= len {
                break;
            }
            if unsafe { (*args).personality[i] } == persona {
                return;
            }
        }
        if len < PERSONALITY_MAX {
            // Two CPUs may race for the slot; personality(2) is rare and a
            // lost value shows as a failing call, not a silent allow.
            unsafe {
                (*args).personality[len] = persona;
                (*args).personality_len = len as u32 + 1;
            }
        } else {
            unsafe {
                atomic_or::<u64, u64, { AtomicOrdering::Relaxed }>(
                    &raw mut (*args).overflow,
                    OVERFLOW_PERSONALITY,
                )
            };
        }
    }
}

/// Records syscall `id`; returns whether it was a native one.
#[inline(always)]
fn record(set: *mut SyscallSet, task: Option<*const u8>, id: i64, regs: *const u8) -> bool {
    let nr = id as u64;
    let compat_off = COMPAT_STATUS_OFFSET.load();
    if compat_off != 0 {
        // The only use of the task on a last-caller hit, so only compat
        // detection pays for the call.
        let task = task.unwrap_or_else(current_task);
        // A direct (BTF-checked) load, not a bpf_probe_read_kernel() call.
        let status: u32 = unsafe { *task.add(compat_off as usize).cast::<u32>() };
        if status & COMPAT_STATUS_BIT.load() != 0 {
            if nr < SET_BITS as u64 {
                mark(unsafe { &raw mut (*set).compat }, nr);
            } else {
                out_of_range(set, id);
            }
            return false;
        }
    }
    if nr < SET_BITS as u64 {
        if unsafe { (*set).phase } == PHASE_RUNTIME_INIT {
            mark(unsafe { &raw mut (*set).init }, nr);
            if id == arch::NR_SECCOMP || id == arch::NR_PRCTL {
                let runtime = filter_load_by(id, regs);
                if runtime != 0 {
                    unsafe {
                        (*set).phase = PHASE_WORKLOAD;
                        (*set).flags |= FLAG_MARKER_SEEN | runtime;
                    }
                }
            }
        } else {
            mark(unsafe { &raw mut (*set).native }, nr);
        }
        true
    } else if nr & X32_SYSCALL_BIT != 0 && (nr & !X32_SYSCALL_BIT) < SET_BITS as u64 {
        mark(unsafe { &raw mut (*set).x32 }, nr & !X32_SYSCALL_BIT);
        false
    } else {
        out_of_range(set, id);
        false
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

#[inline(always)]
fn out_of_range(set: *mut SyscallSet, id: i64) {
    unsafe {
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*set).out_of_range, 1);
        (*set).last_out_of_range = id;
    }
}

/// A task may have moved to another cgroup: no [`LAST_CALLER`] entry made
/// before now is used.
#[raw_tracepoint(tracepoint = "cgroup_attach_task")]
pub fn cgroup_attach_task(_ctx: RawTracePointContext) -> i32 {
    next_caller_generation();
    0
}

/// A new task may have the kernel stack (so the `regs` address) of one that
/// died: no [`LAST_CALLER`] entry made before now is used.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(_ctx: RawTracePointContext) -> i32 {
    next_caller_generation();
    0
}

#[inline(always)]
fn next_caller_generation() {
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(&raw mut CALLER_GEN, 1) };
}

/// The bench floor: the same hook, no work.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter_floor(_ctx: RawTracePointContext) -> i32 {
    0
}

#[inline(always)]
fn is_hex(c: u8) -> bool {
    c.is_ascii_digit() || (b'a'..=b'f').contains(&c)
}

/// Whether the last component of `path[..len]` (len without the NUL) matches
/// `pattern`: `prefix`, 64 hex digits, `suffix`, preceded by a '/'. Returns
/// where the leaf starts and how long it is.
#[inline(always)]
fn leaf_matches(
    path: &[u8; PATH_BUF],
    len: usize,
    pattern: &LeafPattern,
) -> Option<(usize, usize)> {
    let plen = pattern.prefix_len as usize;
    let slen = pattern.suffix_len as usize;
    if plen > LEAF_PREFIX_MAX || slen > LEAF_SUFFIX_MAX {
        return None;
    }
    let leaf = plen + ID_HEX_LEN + slen;
    if len <= leaf || len >= PATH_BUF {
        return None;
    }
    let start = len - leaf;
    if path[(start - 1) & (PATH_BUF - 1)] != b'/' {
        return None;
    }
    for i in 0..LEAF_PREFIX_MAX {
        if i >= plen {
            break;
        }
        if path[(start + i) & (PATH_BUF - 1)] != pattern.prefix[i] {
            return None;
        }
    }
    for i in 0..ID_HEX_LEN {
        if !is_hex(path[(start + plen + i) & (PATH_BUF - 1)]) {
            return None;
        }
    }
    for i in 0..LEAF_SUFFIX_MAX {
        if i >= slen {
            break;
        }
        if path[(start + plen + ID_HEX_LEN + i) & (PATH_BUF - 1)] != pattern.suffix[i] {
            return None;
        }
    }
    Some((start, leaf))
}

fn send_event(kind: u32, id: u64, enrolled: bool) {
    let event = CgroupEvent {
        kind,
        enrolled: u32::from(enrolled),
        id,
    };
    // A full ring buffer loses only the notification: user space also scans
    // the map and the cgroup tree periodically.
    let _ = EVENTS.output::<CgroupEvent>(&event, 0);
}

#[tracepoint(category = "cgroup", name = "cgroup_mkdir")]
pub fn cgroup_mkdir(ctx: TracePointContext) -> u32 {
    let _ = try_cgroup_mkdir(&ctx);
    0
}

fn try_cgroup_mkdir(ctx: &TracePointContext) -> Result<(), i64> {
    if AUTO_ENROL.load() == 0 {
        return Ok(());
    }
    let root: i32 = unsafe { ctx.read_at(TP_ROOT_OFF.load() as usize) }?;
    if root as u32 != CGROUP2_HIERARCHY.load() {
        return Ok(());
    }
    let id: u64 = unsafe { ctx.read_at(TP_ID_OFF.load() as usize) }?;

    // A cgroup made from inside a recorded cgroup belongs to the same recording.
    let caller = unsafe { bpf_get_current_cgroup_id() };
    if let Some(parent) = SYSCALL_SETS.get_ptr(&caller) {
        let owner = unsafe { (*parent).owner };
        let phase = unsafe { (*parent).phase };
        return enrol(id, owner, phase);
    }

    let loc: u32 = unsafe { ctx.read_at(TP_PATH_OFF.load() as usize) }?;
    let off = (loc & 0xffff) as usize;
    let len = (loc >> 16) as usize; // includes the NUL
    let Some(buf) = PATH_SCRATCH.get_ptr_mut(0) else {
        return Ok(());
    };
    let buf = unsafe { &mut *buf };
    if len < 2 || len > PATH_BUF {
        return Ok(());
    }
    let src = unsafe { ctx.as_ptr().cast::<u8>().add(off) };
    unsafe { bpf_probe_read_kernel_buf(src, &mut buf[..]) }?;
    let len = len - 1;
    for i in 0..MAX_LEAF_PATTERNS {
        let Some(pattern) = LEAF_PATTERNS.get(i) else {
            break;
        };
        if pattern.enabled == 0 {
            continue;
        }
        if let Some((start, leaf_len)) = leaf_matches(buf, len, pattern) {
            save_leaf(id, buf, start, leaf_len);
            return enrol(id, id, PHASE_RUNTIME_INIT);
        }
    }
    Ok(())
}

/// Keeps the enrolled cgroup's leaf name for user space.
#[inline(always)]
fn save_leaf(id: u64, path: &[u8; PATH_BUF], start: usize, len: usize) {
    let Some(leaf) = LEAF_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let leaf = unsafe { &mut *leaf };
    for i in 0..LEAF_MAX {
        leaf[i] = if i < len {
            path[(start + i) & (PATH_BUF - 1)]
        } else {
            0
        };
    }
    let _ = CGROUP_LEAF.insert(&id, &*leaf, 0);
}

fn enrol(id: u64, owner: u64, phase: u32) -> Result<(), i64> {
    let Some(set) = SET_SCRATCH.get_ptr_mut(0) else {
        return Ok(());
    };
    let set = unsafe { &mut *set };
    set.owner = owner;
    set.phase = phase;
    set.flags = FLAG_AUTO;
    // Counted before the entry exists, so the entry is never filtered out.
    filter_add(id, 1);
    // BPF_NOEXIST: never clobber a set user space registered.
    match SYSCALL_SETS.insert(&id, &*set, 1) {
        Ok(()) => {
            bump(stat::ENROLLED);
            send_event(EVENT_MKDIR, id, true);
        }
        // Already recorded (user space was first, and counted it).
        Err(e) if e == -17 => filter_add(id, u64::MAX),
        // The map is full.
        Err(_) => {
            filter_add(id, u64::MAX);
            bump(stat::ENROL_FAILED);
        }
    }
    Ok(())
}

#[tracepoint(category = "cgroup", name = "cgroup_rmdir")]
pub fn cgroup_rmdir(ctx: TracePointContext) -> u32 {
    if let Ok(root) = unsafe { ctx.read_at::<i32>(TP_ROOT_OFF.load() as usize) }
        && root as u32 == CGROUP2_HIERARCHY.load()
        && let Ok(id) = unsafe { ctx.read_at::<u64>(TP_ID_OFF.load() as usize) }
        && SYSCALL_SETS.get_ptr(&id).is_some()
    {
        send_event(EVENT_RMDIR, id, false);
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

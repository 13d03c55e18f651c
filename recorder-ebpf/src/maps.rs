//! The maps, the read-only globals user space sets at load time, and the
//! accessors of the filter and the counters. A map's or global's name is
//! its identifier: `recorder_common::{maps, globals}` on the user side.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    Global,
    macros::map,
    maps::{Array, HashMap, PerCpuArray, RingBuf},
};
use recorder_common::{
    ArgSet, BPF_F_MMAPABLE, CACHE_SLOTS, CachedSet, FILTER_SLOTS, LEAF_MAX, LeafPattern,
    MAX_LEAF_PATTERNS, PATH_BUF, SyscallSet, Workload, filter_slot, stat,
};

/// cgroup id -> syscall set. Capacity is set by user space at load time.
#[map]
pub(crate) static SYSCALL_SETS: HashMap<u64, SyscallSet> = HashMap::with_max_entries(1024, 0);

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
pub(crate) static SET_CACHE: Array<CachedSet> =
    Array::with_max_entries(CACHE_SLOTS, BPF_F_MMAPABLE);

/// Per-CPU counters, indexed by `recorder_common::stat`.
#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

/// cgroup mkdir/rmdir events for user space.
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);

/// Container leaf-name patterns for auto mode.
#[map]
pub(crate) static LEAF_PATTERNS: Array<LeafPattern> = Array::with_max_entries(MAX_LEAF_PATTERNS, 0);

/// A zeroed set used as the template for kernel enrolments (a set is too
/// large for the BPF stack). Only `owner`, `phase` and `flags` are written.
#[map]
pub(crate) static SET_SCRATCH: PerCpuArray<SyscallSet> = PerCpuArray::with_max_entries(1, 0);

/// cgroup id -> the leaf name of a cgroup the kernel enrolled (e.g.
/// `libpod-<id>`), so that user space can name the container even when the
/// cgroup was created and removed while the daemon was down.
#[map]
pub(crate) static CGROUP_LEAF: HashMap<u64, [u8; LEAF_MAX]> = HashMap::with_max_entries(1024, 0);

/// Scratch space for a leaf name.
#[map]
pub(crate) static LEAF_SCRATCH: PerCpuArray<[u8; LEAF_MAX]> = PerCpuArray::with_max_entries(1, 0);

/// Scratch space for a cgroup path (too large for the BPF stack).
#[map]
pub(crate) static PATH_SCRATCH: PerCpuArray<[u8; PATH_BUF]> = PerCpuArray::with_max_entries(1, 0);

/// cgroup id -> distinct key-argument values (opt-in argument recording).
/// User space inserts an entry next to each `SYSCALL_SETS` entry it wants
/// arguments for; the kernel never creates entries here.
#[map]
pub(crate) static ARG_SETS: HashMap<u64, ArgSet> = HashMap::with_max_entries(1024, 0);

/// cgroup id -> the process whose exec started the container's workload
/// in it, and how it exited (`exec.rs`). User space removes an entry with
/// the cgroup's set. Capacity is set by user space at load time.
#[map]
pub(crate) static WORKLOADS: HashMap<u64, Workload> = HashMap::with_max_entries(1024, 0);

/// Offset of `task_struct.exit_code`, read from BTF by user space; 0: the
/// exit status is not read.
#[unsafe(no_mangle)]
pub(crate) static TASK_EXIT_CODE_OFFSET: Global<u32> = Global::new(0);

/// Native syscall numbers whose arguments are recorded, set by user space
/// from its syscall table; -1 (the default) records none.
#[unsafe(no_mangle)]
pub(crate) static NR_ARG_SOCKET: Global<i64> = Global::new(-1);
#[unsafe(no_mangle)]
pub(crate) static NR_ARG_CLONE: Global<i64> = Global::new(-1);
#[unsafe(no_mangle)]
pub(crate) static NR_ARG_UNSHARE: Global<i64> = Global::new(-1);
#[unsafe(no_mangle)]
pub(crate) static NR_ARG_PERSONALITY: Global<i64> = Global::new(-1);

/// Offset of `thread_info.status` in `task_struct`, read from BTF by user
/// space; 0 disables 32-bit compat detection.
#[unsafe(no_mangle)]
pub(crate) static COMPAT_STATUS_OFFSET: Global<u32> = Global::new(0);
/// Offsets of `task_struct.cgroups`, `css_set.dfl_cgrp`, `cgroup.kn` and
/// `kernfs_node.id`, read from BTF by user space. With all four set, the
/// cgroup id is read with four loads from the current task instead of a
/// `bpf_get_current_cgroup_id()` call (a call costs about as much as the
/// empty program's dispatch, see docs/performance.md). 0 in
/// `CGROUP_ID_WALK` keeps the helper. Read-only data: the verifier knows the values and drops the path
/// not taken.
#[unsafe(no_mangle)]
pub(crate) static CGROUP_ID_WALK: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub(crate) static TASK_CGROUPS_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub(crate) static CSS_SET_DFL_CGRP_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub(crate) static CGROUP_KN_OFFSET: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
pub(crate) static KERNFS_NODE_ID_OFFSET: Global<u32> = Global::new(0);
/// `TS_COMPAT` bit of `thread_info.status`.
#[unsafe(no_mangle)]
pub(crate) static COMPAT_STATUS_BIT: Global<u32> = Global::new(0x0002);
/// Non-zero: enrol new container cgroups in `cgroup_mkdir`.
#[unsafe(no_mangle)]
pub(crate) static AUTO_ENROL: Global<u32> = Global::new(0);
/// hierarchy id of the cgroup2 root in the `cgroup_mkdir` tracepoint (`root`).
#[unsafe(no_mangle)]
pub(crate) static CGROUP2_HIERARCHY: Global<u32> = Global::new(0);
/// Field offsets of the `cgroup:cgroup_mkdir` record, read from tracefs.
#[unsafe(no_mangle)]
pub(crate) static TP_ROOT_OFF: Global<u32> = Global::new(8);
#[unsafe(no_mangle)]
pub(crate) static TP_ID_OFF: Global<u32> = Global::new(16);
#[unsafe(no_mangle)]
pub(crate) static TP_PATH_OFF: Global<u32> = Global::new(24);
#[unsafe(no_mangle)]
pub(crate) static TP_LEVEL_OFF: Global<u32> = Global::new(12);

/// Adds 1 to this CPU's counter `index` of `STATS`.
#[inline(always)]
pub(crate) fn bump(index: u32) {
    if let Some(counter) = STATS.get_ptr_mut(index) {
        // SAFETY: `counter` is this CPU's slot `index` (the lookup checked
        // the index). Per-CPU slot: no other CPU writes it, and a program
        // does not nest on a CPU.
        unsafe { *counter += 1 };
    }
}

/// False when cgroup `id` is certainly not recorded (its filter slot is 0).
#[inline(always)]
pub(crate) fn maybe_recorded(id: u64) -> bool {
    match RECORDED_FILTER.get_ptr(filter_slot(id)) {
        // SAFETY: `count` is the slot the lookup found (in bounds). Other
        // CPUs and user space change it atomically; an aligned 8-byte load
        // is not torn, and volatile keeps it a fresh read.
        Some(count) => (unsafe { core::ptr::read_volatile(count) }) != 0,
        None => false,
    }
}

/// Adds `delta` (wrapping) to cgroup `id`'s filter slot.
#[inline(always)]
pub(crate) fn filter_add(id: u64, delta: u64) {
    if let Some(count) = RECORDED_FILTER.get_ptr_mut(filter_slot(id)) {
        // SAFETY: `count` is the slot the lookup found (in bounds); every
        // writer, user space included, adds atomically.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(count, delta) };
    }
}

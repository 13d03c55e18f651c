//! Who is making the syscall: the per-CPU last-caller entries that spare
//! `sys_enter` a helper call and a filter lookup, their generation, and the
//! two hooks that bump it (`cgroup_attach_task`, `sched_process_fork`).

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_task_btf},
    macros::{map, raw_tracepoint},
    maps::PerCpuArray,
    programs::RawTracePointContext,
};

use crate::maps::{
    CGROUP_ID_WALK, CGROUP_KN_OFFSET, CSS_SET_DFL_CGRP_OFFSET, KERNFS_NODE_ID_OFFSET,
    TASK_CGROUPS_OFFSET, maybe_recorded,
};

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
pub(crate) struct LastCaller {
    regs: u64,
    generation: u64,
    cgroup: u64,
    /// Non-zero when `cgroup`'s filter slot was (see [`maybe_recorded`]).
    recorded: u64,
}

/// The current task, as a BTF pointer the program may read directly. A
/// helper call on the 6.18 kernel measured (its verifier does not inline
/// it), about as costly as the rest of the program: the last-caller entries
/// exist to avoid it (see docs/performance.md).
#[inline(always)]
pub(crate) fn current_task() -> *const u8 {
    // SAFETY: the helper has no preconditions; the verifier types its
    // result as a BTF pointer to the running task.
    unsafe { bpf_get_current_task_btf() as *const u8 }
}

/// The cgroup2 id of `task`: `task->cgroups->dfl_cgrp->kn->id`, what
/// `bpf_get_current_cgroup_id()` returns, without the helper call.
#[inline(always)]
fn cgroup_id(task: *const u8) -> u64 {
    if CGROUP_ID_WALK.load() == 0 {
        // SAFETY: the helper has no preconditions.
        return unsafe { bpf_get_current_cgroup_id() };
    }
    // SAFETY: `task` is a task's BTF pointer and each offset is, from the
    // running kernel's BTF, that of the member the next pointer is read
    // from. The verifier checks each load against BTF and turns it into a
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
pub(crate) struct Caller {
    pub(crate) cgroup: u64,
    /// False when `cgroup` is certainly not recorded.
    pub(crate) recorded: bool,
    /// The task, when it had to be looked up.
    pub(crate) task: Option<*const u8>,
}

impl Caller {
    #[inline(always)]
    pub(crate) fn look_up() -> Self {
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
pub(crate) fn caller(regs: u64) -> Caller {
    let Some(last) = LAST_CALLER.get_ptr_mut(0) else {
        return Caller::look_up();
    };
    let generation = &raw const CALLER_GEN;
    // SAFETY: `generation` is the address of a static (no reference to the
    // `static mut` is made), 8-byte aligned. It changes only by atomic adds
    // (other CPUs, user space's test runs); an aligned 8-byte load is not
    // torn, and volatile makes it a fresh read.
    let current = unsafe { core::ptr::read_volatile(generation) };
    // SAFETY: `last` is this CPU's entry, found by the lookup. A program
    // does not nest on a CPU and runs with preemption disabled, so no
    // other run reads or writes the entry meanwhile (see above).
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
    // SAFETY: as above: this CPU's entry, touched by this run only.
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
        // SAFETY: `generation` is `CALLER_GEN`'s address (see `caller`),
        // writable (a `.bss` map). Adding 0 changes nothing; the fully
        // ordered atomic keeps the lookups after the read.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(generation.cast_mut(), 0) }
    }
}

/// A task may have moved to another cgroup: no [`LAST_CALLER`] entry made
/// before now is used.
#[raw_tracepoint(tracepoint = "cgroup_attach_task")]
pub(crate) fn cgroup_attach_task(_ctx: RawTracePointContext) -> i32 {
    next_caller_generation();
    0
}

/// A new task may have the kernel stack (so the `regs` address) of one that
/// died: no [`LAST_CALLER`] entry made before now is used.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub(crate) fn sched_process_fork(_ctx: RawTracePointContext) -> i32 {
    next_caller_generation();
    0
}

#[inline(always)]
fn next_caller_generation() {
    // SAFETY: `CALLER_GEN` is only reached through its raw address (no
    // reference to the `static mut`), and every writer, on any CPU or from
    // user space, adds atomically.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(&raw mut CALLER_GEN, 1) };
}

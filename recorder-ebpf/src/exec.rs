//! The container's workload: `sched_process_exec` notes the exec that
//! starts it, and `sched_process_exit` how that process ends, in
//! `WORKLOADS`. Attached with `sys_enter`.
//!
//! The workload starts at the first successful exec in a recorded cgroup
//! after the runtime's init: after its seccomp filter load
//! (`FLAG_MARKER_SEEN`), or, when no filter was loaded first (docker's
//! `seccomp=unconfined`, `ctr run` without `--seccomp`), at that exec
//! itself when the runtime's init (runc or crun, by comm) made it: the
//! runtime execs the workload last, so the exec ends the runtime-init phase
//! here and what ran before it stays in the `init` bitmap, out of the
//! profile. Only a set that is in the runtime-init
//! phase, or left it at a filter load, takes part: a recording started in
//! the workload phase (a running container, `recorderctl record`) has no
//! runtime start-up to tell apart.
//!
//! A set pointer points to a `SYSCALL_SETS` value, valid until the program
//! returns (RCU) even if user space deletes the entry meanwhile.

use core::intrinsics::{AtomicOrdering, atomic_or};

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_task_btf,
        bpf_ktime_get_ns,
    },
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use recorder_common::{
    FLAG_INIT_ENDED_BY_EXEC, FLAG_MARKER_SEEN, FLAG_RUNTIME_CRUN, FLAG_RUNTIME_RUNC,
    FLAG_WORKLOAD_STARTED, PHASE_RUNTIME_INIT, PHASE_WORKLOAD, SET_WORDS, SyscallSet, Workload,
};

use crate::{
    arch,
    maps::{SYSCALL_SETS, TASK_EXIT_CODE_OFFSET, WORKLOADS, maybe_recorded},
};

/// `BPF_NOEXIST`: the first exec keeps its entry.
const BPF_NOEXIST: u64 = 1;

#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub(crate) fn sched_process_exec(_ctx: RawTracePointContext) -> i32 {
    // SAFETY: the helper has no preconditions. (The exec is done: the task
    // is the new program, still in its cgroup.)
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    if !maybe_recorded(cgroup) {
        return 0;
    }
    let Some(set) = SYSCALL_SETS.get_ptr_mut(&cgroup) else {
        return 0;
    };
    // SAFETY: `set` is valid (module doc). A stale read is settled below:
    // only the first exec inserts the entry.
    let (phase, flags) = unsafe { ((*set).phase, (*set).flags) };
    if flags & FLAG_WORKLOAD_STARTED != 0 {
        return 0;
    }
    if phase == PHASE_RUNTIME_INIT {
        // Only the runtime's own init execs the workload (`sys_enter`
        // notes its execve by its comm). runc 1.1 re-execs itself from a
        // memfd (comm `exe`) and may already be in the cgroup then: that
        // exec is still the runtime's start-up.
        if flags & (FLAG_RUNTIME_RUNC | FLAG_RUNTIME_CRUN) == 0 {
            return 0;
        }
        end_init_at_exec(set);
    } else if flags & FLAG_MARKER_SEEN != 0 {
        // SAFETY: `set` is valid. The other writers of `flags` (the filter
        // load, the runtime's execve) came before this exec.
        unsafe { (*set).flags |= FLAG_WORKLOAD_STARTED };
    } else {
        return 0;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let workload = Workload {
        tgid: (pid_tgid >> 32) as u32,
        exit_code: 0,
        started_ns: now,
        exited_ns: 0,
    };
    // A full map loses only the exit status; the flag says it started.
    _ = WORKLOADS.insert(&cgroup, &workload, BPF_NOEXIST);
    0
}

/// Ends the runtime-init phase of `set` at the workload's exec, with no
/// filter load before it. The runtime's exec syscall itself (in `init`,
/// made before this point) is one the workload's profile must allow, as
/// under a filter, where it is recorded after the load: it is copied to
/// `native`.
#[inline(always)]
fn end_init_at_exec(set: *mut SyscallSet) {
    for nr in [arch::NR_EXECVE, arch::NR_EXECVEAT] {
        if nr < 0 {
            continue;
        }
        let word = (nr as u64 / 64) as usize;
        let bit = 1u64 << (nr as u64 % 64);
        if word >= SET_WORDS {
            continue;
        }
        // SAFETY: `set` is valid and `word` in bounds. Other CPUs may set
        // bits in `native` at the same time: an atomic OR.
        unsafe {
            if (*set).init[word] & bit != 0 {
                let slot = (&raw mut (*set).native).cast::<u64>().add(word);
                atomic_or::<u64, u64, { AtomicOrdering::Relaxed }>(slot, bit);
            }
        }
    }
    // SAFETY: `set` is valid. The runtime's threads died in the exec, so
    // no other run writes `flags` of this set now.
    unsafe {
        (*set).flags |= FLAG_MARKER_SEEN | FLAG_INIT_ENDED_BY_EXEC | FLAG_WORKLOAD_STARTED;
        (*set).phase = PHASE_WORKLOAD;
    }
}

#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub(crate) fn sched_process_exit(_ctx: RawTracePointContext) -> i32 {
    // SAFETY: the helper has no preconditions; the exiting task is the
    // current one (do_exit).
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    if !maybe_recorded(cgroup) {
        return 0;
    }
    let Some(workload) = WORKLOADS.get_ptr_mut(&cgroup) else {
        return 0;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let (pid, tgid) = (pid_tgid as u32, (pid_tgid >> 32) as u32);
    // Its main thread only (the process's status), once.
    // SAFETY: `workload` is a `WORKLOADS` value, valid until the program
    // returns (RCU).
    if pid != tgid || unsafe { (*workload).tgid } != tgid || unsafe { (*workload).exited_ns } != 0 {
        return 0;
    }
    let off = TASK_EXIT_CODE_OFFSET.load();
    let status = if off != 0 {
        // SAFETY: the helper has no preconditions; the verifier types its
        // result as a BTF pointer to the running task.
        let task = unsafe { bpf_get_current_task_btf() as *const u8 };
        // SAFETY: `off` is the offset of `task_struct.exit_code` from the
        // running kernel's BTF (set before this tracepoint in do_exit);
        // the verifier makes the load fault-tolerant.
        unsafe { *task.add(off as usize).cast::<u32>() }
    } else {
        0
    };
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: as above; only the workload's own exit writes here.
    unsafe {
        (*workload).exit_code = status;
        (*workload).exited_ns = now;
    }
    0
}

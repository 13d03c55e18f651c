//! Names of the eBPF object's maps, programs and globals, for user space.
//!
//! On the kernel side a map's or global's name is its static's identifier
//! and a program's name is its function's, so these cannot be used there;
//! `recorder`'s unit tests check them against the built object instead.
//! Pinned maps and links are named after them: changing a value orphans
//! the state an earlier version pinned.

/// Map names.
pub mod maps {
    /// cgroup id → `SyscallSet`: what is recorded.
    pub const SYSCALL_SETS: &str = "SYSCALL_SETS";
    /// The counting filter in front of [`SYSCALL_SETS`] (mmapable).
    pub const RECORDED_FILTER: &str = "RECORDED_FILTER";
    /// The direct-mapped cache of recorded sets (mmapable).
    pub const SET_CACHE: &str = "SET_CACHE";
    /// `sys_enter`'s per-CPU last-caller entries.
    pub const LAST_CALLER: &str = "LAST_CALLER";
    /// The one-word map of the `CALLER_GEN` global, a data section of its
    /// own.
    pub const CALLER_GEN: &str = ".bss.caller_gen";
    /// Per-CPU counters, indexed by [`crate::stat`].
    pub const STATS: &str = "STATS";
    /// The ring buffer of `CgroupEvent`s.
    pub const EVENTS: &str = "EVENTS";
    /// The auto-mode leaf-name patterns.
    pub const LEAF_PATTERNS: &str = "LEAF_PATTERNS";
    /// Per-CPU template set for kernel enrolments.
    pub const SET_SCRATCH: &str = "SET_SCRATCH";
    /// cgroup id → the leaf name of a cgroup the kernel enrolled.
    pub const CGROUP_LEAF: &str = "CGROUP_LEAF";
    /// Per-CPU scratch space for a leaf name.
    pub const LEAF_SCRATCH: &str = "LEAF_SCRATCH";
    /// Per-CPU scratch space for a cgroup path.
    pub const PATH_SCRATCH: &str = "PATH_SCRATCH";
    /// cgroup id → `ArgSet` (opt-in argument recording).
    pub const ARG_SETS: &str = "ARG_SETS";
    /// cgroup id → `Workload`: the exec that started a container's
    /// workload, and its exit.
    pub const WORKLOADS: &str = "WORKLOADS";
    /// Recording owner ids watched for denials (an enforcing profile).
    pub const DENY_WATCH: &str = "DENY_WATCH";
    /// `DenialKey` → count: denied syscalls and `SIGSYS` kills.
    pub const DENIALS: &str = "DENIALS";
    /// Thread id → `Entered`, for the tasks of recorded cgroups while denials
    /// are watched.
    pub const DENY_ENTERED: &str = "DENY_ENTERED";
    /// One word: the generation of `DENY_WATCH`, bumped on every change.
    pub const DENY_GEN: &str = "DENY_GEN";
    /// The one-word map of the `DENY_ON` global (non-zero: `sys_enter`
    /// notes what tasks enter, for the denial programs).
    pub const DENY_ON: &str = ".bss.deny_on";

    /// Every map of the object.
    pub const ALL: [&str; 19] = [
        SYSCALL_SETS,
        RECORDED_FILTER,
        SET_CACHE,
        LAST_CALLER,
        CALLER_GEN,
        STATS,
        EVENTS,
        LEAF_PATTERNS,
        SET_SCRATCH,
        CGROUP_LEAF,
        LEAF_SCRATCH,
        PATH_SCRATCH,
        ARG_SETS,
        WORKLOADS,
        DENY_WATCH,
        DENIALS,
        DENY_ENTERED,
        DENY_GEN,
        DENY_ON,
    ];
}

/// Program names. The tracepoint programs are named after their
/// tracepoint, except [`SYS_ENTER_FLOOR`] (on `sys_enter` too) and the
/// denial programs (`DENY_*`, on `sys_enter`, `sys_exit` and
/// `sched_process_exit`).
pub mod programs {
    /// The recorder (BTF tracepoint `sys_enter`, `tp_btf`).
    pub const SYS_ENTER: &str = "sys_enter";
    /// The bench's floor: an empty program on `sys_enter`.
    pub const SYS_ENTER_FLOOR: &str = "sys_enter_floor";
    /// Bumps the last-caller generation on cgroup migrations.
    pub const CGROUP_ATTACH_TASK: &str = "cgroup_attach_task";
    /// Bumps the last-caller generation on forks.
    pub const SCHED_PROCESS_FORK: &str = "sched_process_fork";
    /// Auto-mode enrolment (tracepoint `cgroup:cgroup_mkdir`).
    pub const CGROUP_MKDIR: &str = "cgroup_mkdir";
    /// Removal notices (tracepoint `cgroup:cgroup_rmdir`).
    pub const CGROUP_RMDIR: &str = "cgroup_rmdir";
    /// Notes the exec that starts a container's workload (and ends the
    /// runtime's init when no filter load did).
    pub const SCHED_PROCESS_EXEC: &str = "sched_process_exec";
    /// Notes how that workload's process exited.
    pub const SCHED_PROCESS_EXIT: &str = "sched_process_exit";
    /// Denials: counts those that leave without having entered
    /// (raw tracepoint `sys_exit`).
    pub const DENY_EXIT: &str = "deny_exit";
    /// Denials: `SIGSYS` kills (raw tracepoint `sched_process_exit`).
    pub const DENY_TASK_EXIT: &str = "deny_task_exit";

    /// Every program of the object.
    pub const ALL: [&str; 10] = [
        SYS_ENTER,
        SYS_ENTER_FLOOR,
        CGROUP_ATTACH_TASK,
        SCHED_PROCESS_FORK,
        CGROUP_MKDIR,
        CGROUP_RMDIR,
        SCHED_PROCESS_EXEC,
        SCHED_PROCESS_EXIT,
        DENY_EXIT,
        DENY_TASK_EXIT,
    ];
}

/// Names of the read-only globals user space sets at load time.
pub mod globals {
    /// Offset of `task_struct.thread_info.status` (u32); 0: no compat
    /// detection.
    pub const COMPAT_STATUS_OFFSET: &str = "COMPAT_STATUS_OFFSET";
    /// Non-zero (u32): read the cgroup id with the four offsets below.
    pub const CGROUP_ID_WALK: &str = "CGROUP_ID_WALK";
    /// Offset of `task_struct.cgroups` (u32).
    pub const TASK_CGROUPS_OFFSET: &str = "TASK_CGROUPS_OFFSET";
    /// Offset of `css_set.dfl_cgrp` (u32).
    pub const CSS_SET_DFL_CGRP_OFFSET: &str = "CSS_SET_DFL_CGRP_OFFSET";
    /// Offset of `cgroup.kn` (u32).
    pub const CGROUP_KN_OFFSET: &str = "CGROUP_KN_OFFSET";
    /// Offset of `kernfs_node.id` (u32).
    pub const KERNFS_NODE_ID_OFFSET: &str = "KERNFS_NODE_ID_OFFSET";
    /// Non-zero (u32): enrol new container cgroups (auto mode).
    pub const AUTO_ENROL: &str = "AUTO_ENROL";
    /// Offsets of the `cgroup:cgroup_mkdir` record fields (u32 each).
    pub const TP_ROOT_OFF: &str = "TP_ROOT_OFF";
    pub const TP_ID_OFF: &str = "TP_ID_OFF";
    pub const TP_PATH_OFF: &str = "TP_PATH_OFF";
    pub const TP_LEVEL_OFF: &str = "TP_LEVEL_OFF";
    /// Native numbers of the syscalls whose arguments are recorded (i64;
    /// -1: none).
    pub const NR_ARG_SOCKET: &str = "NR_ARG_SOCKET";
    pub const NR_ARG_CLONE: &str = "NR_ARG_CLONE";
    pub const NR_ARG_UNSHARE: &str = "NR_ARG_UNSHARE";
    pub const NR_ARG_PERSONALITY: &str = "NR_ARG_PERSONALITY";
    /// Offset of `task_struct.exit_code` (u32); 0: neither exit codes
    /// nor kills by a profile are known.
    pub const TASK_EXIT_CODE_OFFSET: &str = "TASK_EXIT_CODE_OFFSET";
}

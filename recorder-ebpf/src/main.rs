//! The recorder's eBPF programs.
//!
//! * `sys_enter` (BTF tracepoint `raw_syscalls:sys_enter`): the recorder.
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
//! * `sched_process_exec` / `sched_process_exit` (raw tracepoints): the
//!   exec that starts a container's workload (ending the runtime's init
//!   when no seccomp filter load did), and how that process exits.
//!   Attached with `sys_enter`.
//! * `cgroup_mkdir` / `cgroup_rmdir` (tracepoints `cgroup:*`): auto mode.
//!   A new cgroup2 directory whose name matches a container pattern, or that is
//!   created from inside a recorded cgroup, is enrolled in the kernel before any
//!   process can enter it; removals are reported to user space.
//! * `deny_exit` / `deny_task_exit` (raw tracepoints `sys_exit`,
//!   `sched_process_exit`, module `sys_exit`, with `sys_enter` noting what
//!   tasks enter while they are attached): the syscalls an enforcing
//!   profile denies to a watched container, and its tasks killed by
//!   `SIGSYS`. Attached only while one is watched.
//!
//! Modules: `maps` (the maps, the globals user space sets at load time,
//! and the filter and counter accessors), `caller` (the last-caller
//! entries and the hooks that keep them honest), `sys_enter` (the recorder
//! and the floor), `args` (argument recording), `cgroup` (auto mode), `exec`
//! (the workload's start and exit) and
//! `arch`. Every map, program and global keeps its name (its identifier)
//! and section: user space and the state it pinned rely on them (see
//! `recorder_common::{maps, programs, globals}`).
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(
    internal_features,
    reason = "core_intrinsics: the atomic intrinsics the BPF target needs"
)]

mod arch;
mod args;
mod caller;
mod cgroup;
mod exec;
mod maps;
mod sys_enter;
mod sys_exit;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

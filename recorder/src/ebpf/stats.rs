//! The kernel's run statistics of the loaded programs: run time and count
//! from the program info, recursion misses from fdinfo.

use std::os::fd::{AsFd as _, AsRawFd as _};

use aya::programs::Program;

use super::error::KernelError;

/// The kernel's run statistics of one loaded program.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProgramStats {
    /// The program's name in the object (`sys_enter`, `cgroup_mkdir`, ...).
    pub name: String,
    /// Total time spent running it, in nanoseconds.
    pub run_time_ns: u64,
    /// How many times it ran.
    pub run_count: u64,
    /// How many times the kernel skipped it because it was already running
    /// on that CPU (`recursion_misses`, counted whether or not statistics
    /// are enabled). For `sys_enter`, each is a syscall that went
    /// unrecorded. `None` when the kernel does not report it (before 5.12).
    pub recursion_misses: Option<u64>,
}

impl ProgramStats {
    /// The statistics of program `name`, `None` when it is not loaded.
    pub(super) fn read(name: &str, prog: &Program) -> Option<Self> {
        let info = prog.info().ok()?;
        let fd = prog.fd().ok()?.as_fd().as_raw_fd();
        let fdinfo = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"));
        Some(Self {
            name: name.to_owned(),
            run_time_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
            run_count: info.run_count(),
            recursion_misses: fdinfo.ok().as_deref().and_then(recursion_misses),
        })
    }
}

/// The `recursion_misses` line of a program's `/proc/self/fdinfo` entry
/// (aya's program info does not carry it).
fn recursion_misses(fdinfo: &str) -> Option<u64> {
    fdinfo
        .lines()
        .find_map(|line| line.strip_prefix("recursion_misses:"))
        .and_then(|n| n.trim().parse().ok())
}

/// Turns on the kernel's run-time statistics for every BPF program
/// (`BPF_ENABLE_STATS`) for as long as the returned descriptor is open.
/// Costs two clock reads per program run (some 20-30 ns).
pub fn enable_run_time_stats() -> Result<std::os::fd::OwnedFd, KernelError> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime).map_err(|e| KernelError::Stats(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_recursion_misses_from_fdinfo() {
        let fdinfo = "prog_type:\t17\nrun_cnt:\t0\nrecursion_misses:\t42\nverified_insns:\t9\n";
        assert_eq!(recursion_misses(fdinfo), Some(42));
        assert_eq!(recursion_misses("prog_type:\t17\n"), None);
    }
}

//! How the object is loaded (`LoadOptions`), what the kernel side reports
//! (`KernelInfo`), and which cgroups make up a recording (`belongs_to`).

use std::path::PathBuf;

use recorder_common::SyscallSet;

use crate::btf;

/// How to load the object.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Capacity of the syscall-set map: how many cgroups can be recorded at once.
    pub capacity: u32,
    /// Where the kernel's BTF is (for the 32-bit compat detection).
    pub btf: PathBuf,
    /// Tell 32-bit compat syscalls apart (x86_64 only).
    pub compat: bool,
    /// Pin maps and links here, so that recording survives a restart of
    /// the daemon (None: everything goes when the process exits).
    pub pin_dir: Option<PathBuf>,
    /// Enrol new container cgroups in the kernel (auto mode).
    pub auto_enrol: bool,
    /// Record the distinct values of key arguments (socket domain, clone and
    /// unshare namespace flags, personality) of the native ABI.
    pub args: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            capacity: 1024,
            btf: PathBuf::from(btf::VMLINUX),
            compat: true,
            pin_dir: None,
            auto_enrol: false,
            args: false,
        }
    }
}

/// Whether cgroup `id`, recorded with `set`, is part of recording `owner`:
/// the recording's root cgroup, or one recorded on its behalf. The one
/// place that says what a recording's cgroups are.
pub fn belongs_to(id: u64, set: &SyscallSet, owner: u64) -> bool {
    id == owner || set.owner == owner
}

/// What the kernel side reports for `status` and metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelInfo {
    pub entries: usize,
    pub filter_count: u64,
    pub cached: usize,
    pub capacity: u32,
    pub attached: bool,
    pub enrolled: u64,
    pub enrol_failed: u64,
}

//! The names libseccomp knows (actions, comparison operators,
//! architectures), errno names, and the default action of generated profiles.

use crate::syscalls::Abi;

/// The actions of a rule or the default action.
pub const ACT_ALLOW: &str = "SCMP_ACT_ALLOW";
pub const ACT_ERRNO: &str = "SCMP_ACT_ERRNO";
pub const ACT_LOG: &str = "SCMP_ACT_LOG";
pub const ACT_KILL_PROCESS: &str = "SCMP_ACT_KILL_PROCESS";
pub const ACT_KILL_THREAD: &str = "SCMP_ACT_KILL_THREAD";
pub const ACT_KILL: &str = "SCMP_ACT_KILL";
pub const ACT_TRAP: &str = "SCMP_ACT_TRAP";
pub const ACT_TRACE: &str = "SCMP_ACT_TRACE";
pub const ACT_NOTIFY: &str = "SCMP_ACT_NOTIFY";

/// Every action libseccomp (and so runc, crun, podman and docker) knows.
pub const ACTIONS: &[&str] = &[
    ACT_KILL,
    ACT_KILL_PROCESS,
    ACT_KILL_THREAD,
    ACT_TRAP,
    ACT_ERRNO,
    ACT_TRACE,
    ACT_ALLOW,
    ACT_LOG,
    ACT_NOTIFY,
];

/// Every argument comparison operator.
pub const OPS: &[&str] = &[
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

/// The architecture names of `architectures` and `archMap` (libseccomp's).
pub const SCMP_ARCHES: &[&str] = &[
    "SCMP_ARCH_NATIVE",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
];

/// The architecture names of a rule's `includes.arches` / `excludes.arches`.
///
/// Docker, podman and CRI-O compare these with the *host's* architecture as
/// libseccomp-golang names it (`amd64`, `arm64`, ...), not with
/// `SCMP_ARCH_*` names: a rule with `includes.arches: ["SCMP_ARCH_X86"]` is
/// never applied. A rule cannot be limited to one ABI of a filter; every rule
/// applies to every architecture of the filter where its names exist.
pub const FILTER_ARCHES: &[&str] = &[
    "x86",
    "amd64",
    "x32",
    "arm",
    "arm64",
    "mips",
    "mips64",
    "mips64n32",
    "mipsel",
    "mipsel64",
    "mipsel64n32",
    "ppc",
    "ppc64",
    "ppc64le",
    "s390",
    "s390x",
    "parisc",
    "parisc64",
    "riscv64",
    "loong64",
    "m68k",
    "sh",
    "sheb",
];

/// The host's architecture in the naming of [`FILTER_ARCHES`].
pub const fn host_filter_arch() -> &'static str {
    Abi::native().filter_arch()
}

/// The `--default-action` of generated profiles: what happens to a syscall
/// that was not recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum DefaultAction {
    /// Fail with an errno (EPERM unless told otherwise).
    #[default]
    Errno,
    /// Allow, but log (audit mode: find what a profile misses).
    Log,
    /// Kill the whole process.
    KillProcess,
    /// Send SIGSYS.
    Trap,
}

impl DefaultAction {
    /// The libseccomp action name.
    pub const fn action(self) -> &'static str {
        match self {
            Self::Errno => ACT_ERRNO,
            Self::Log => ACT_LOG,
            Self::KillProcess => ACT_KILL_PROCESS,
            Self::Trap => ACT_TRAP,
        }
    }
}

/// EPERM, the errno of [`DefaultAction::Errno`] unless told otherwise.
pub const EPERM: u32 = 1;

/// The number of errno `name` (e.g. `EPERM`), from the syscalls crate's table.
pub fn errno_number(name: &str) -> Option<u32> {
    (1..4096)
        .find(|n| syscalls::Errno::new(*n).name() == Some(name))
        .and_then(|n| u32::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names() {
        assert_eq!(errno_number("EPERM"), Some(1));
        assert_eq!(errno_number("ENOSYS"), Some(38));
        assert_eq!(errno_number("EWHATEVER"), None);
    }
}

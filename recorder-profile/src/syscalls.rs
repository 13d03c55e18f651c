//! Syscall numbers and names, from the maintained `syscalls` crate's tables.
//!
//! The kernel program records numbers; this module names them for the
//! architecture the numbers belong to (the host's native ABI, or its 32-bit
//! compat ABI).

use std::fmt;

use recorder_common::{SET_BITS, SET_WORDS};
use serde::{Deserialize, Serialize};

/// A syscall ABI whose numbers the recorder can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Abi {
    X86_64,
    /// i386, the compat ABI of x86_64 hosts.
    X86,
    /// x32: x86_64 numbers with bit 30 set. Only numbers shared with x86_64
    /// (below 512) are named; the `syscalls` crate has no x32 table.
    X32,
    Aarch64,
    /// 32-bit arm, the compat ABI of aarch64 hosts.
    Arm,
}

impl Abi {
    /// The host's native ABI.
    pub const fn native() -> Self {
        if cfg!(target_arch = "aarch64") {
            Self::Aarch64
        } else {
            Self::X86_64
        }
    }

    /// The host's 32-bit compat ABI.
    pub const fn compat() -> Self {
        if cfg!(target_arch = "aarch64") {
            Self::Arm
        } else {
            Self::X86
        }
    }

    /// The name libseccomp (and so docker, podman and runc) uses for this ABI.
    pub const fn scmp_arch(self) -> &'static str {
        match self {
            Self::X86_64 => "SCMP_ARCH_X86_64",
            Self::X86 => "SCMP_ARCH_X86",
            Self::X32 => "SCMP_ARCH_X32",
            Self::Aarch64 => "SCMP_ARCH_AARCH64",
            Self::Arm => "SCMP_ARCH_ARM",
        }
    }

    /// The name docker, podman and CRI-O give this architecture in a rule's
    /// `includes.arches` / `excludes.arches` (libseccomp-golang's names).
    pub const fn filter_arch(self) -> &'static str {
        match self {
            Self::X86_64 => "amd64",
            Self::X86 => "x86",
            Self::X32 => "x32",
            Self::Aarch64 => "arm64",
            Self::Arm => "arm",
        }
    }

    /// The ABIs a profile for this host lists in `architectures`: the native
    /// one first, then those a process on this host can also use.
    pub const fn host_arches() -> &'static [Self] {
        if cfg!(target_arch = "aarch64") {
            &[Self::Aarch64, Self::Arm]
        } else {
            &[Self::X86_64, Self::X86, Self::X32]
        }
    }

    /// The ABI that a libseccomp architecture name stands for.
    pub fn from_scmp_arch(name: &str) -> Option<Self> {
        [Self::X86_64, Self::X86, Self::X32, Self::Aarch64, Self::Arm]
            .into_iter()
            .find(|abi| abi.scmp_arch() == name)
    }

    /// The name of syscall `nr` in this ABI.
    pub fn name(self, nr: u32) -> Option<&'static str> {
        let nr = nr as usize;
        match self {
            Self::X86_64 => syscalls::x86_64::Sysno::new(nr).map(|s| s.name()),
            Self::X32 if nr < 512 => syscalls::x86_64::Sysno::new(nr).map(|s| s.name()),
            Self::X32 => None,
            Self::X86 => syscalls::x86::Sysno::new(nr).map(|s| s.name()),
            Self::Aarch64 => syscalls::aarch64::Sysno::new(nr).map(|s| s.name()),
            Self::Arm => syscalls::arm::Sysno::new(nr).map(|s| s.name()),
        }
    }

    /// The number of syscall `name` in this ABI.
    pub fn number(self, name: &str) -> Option<u32> {
        let nr = match self {
            Self::X86_64 | Self::X32 => name.parse::<syscalls::x86_64::Sysno>().ok()?.id(),
            Self::X86 => name.parse::<syscalls::x86::Sysno>().ok()?.id(),
            Self::Aarch64 => name.parse::<syscalls::aarch64::Sysno>().ok()?.id(),
            Self::Arm => name.parse::<syscalls::arm::Sysno>().ok()?.id(),
        };
        u32::try_from(nr).ok()
    }
}

impl fmt::Display for Abi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scmp_arch())
    }
}

/// The numbers whose bits are set in a recorded bitmap.
pub fn numbers(bitmap: &[u64; SET_WORDS]) -> impl Iterator<Item = u32> + '_ {
    (0..SET_BITS as u32).filter(|nr| bitmap[(nr / 64) as usize] & (1u64 << (nr % 64)) != 0)
}

/// Names the numbers set in `bitmap` for `abi`. Numbers the table does not
/// know are returned as the second element, so that nothing is dropped
/// silently.
pub fn names(abi: Abi, bitmap: &[u64; SET_WORDS]) -> (Vec<&'static str>, Vec<u32>) {
    let mut named = Vec::new();
    let mut unknown = Vec::new();
    for nr in numbers(bitmap) {
        match abi.name(nr) {
            Some(name) => named.push(name),
            None => unknown.push(nr),
        }
    }
    (named, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_known_numbers() {
        assert_eq!(Abi::X86_64.name(0), Some("read"));
        assert_eq!(Abi::X86_64.name(59), Some("execve"));
        assert_eq!(Abi::X86_64.name(436), Some("close_range"));
        assert_eq!(Abi::X86.name(11), Some("execve"));
        assert_eq!(Abi::X86.name(1), Some("exit"));
        assert_eq!(Abi::Aarch64.name(221), Some("execve"));
        assert_eq!(Abi::X86_64.name(1000), None);
        assert_eq!(Abi::X86_64.number("pidfd_open"), Some(434));
        assert_eq!(Abi::X86.number("socketcall"), Some(102));
        assert_eq!(Abi::X86_64.number("socketcall"), None);
    }

    #[test]
    fn bitmap_round_trip() {
        let mut bitmap = [0u64; SET_WORDS];
        for nr in [0u32, 63, 64, 435, 1023] {
            bitmap[(nr / 64) as usize] |= 1 << (nr % 64);
        }
        assert_eq!(
            numbers(&bitmap).collect::<Vec<_>>(),
            vec![0, 63, 64, 435, 1023]
        );
        let (named, unknown) = names(Abi::X86_64, &bitmap);
        assert_eq!(named, vec!["read", "uname", "semget", "clone3"]);
        assert_eq!(unknown, vec![1023]);
    }

    #[test]
    fn arch_names() {
        assert_eq!(Abi::from_scmp_arch("SCMP_ARCH_X86"), Some(Abi::X86));
        assert_eq!(Abi::from_scmp_arch("SCMP_ARCH_PPC"), None);
    }
}

//! What differs between architectures: syscall numbers and the layout of
//! `struct pt_regs`.

#[cfg(bpf_target_arch = "x86_64")]
mod target {
    pub(crate) const NR_SECCOMP: i64 = 317;
    pub(crate) const NR_PRCTL: i64 = 157;
    pub(crate) const NR_EXECVE: i64 = 59;
    pub(crate) const NR_EXECVEAT: i64 = 322;
    /// Offsets of the first three argument registers in `struct pt_regs`.
    pub(crate) const ARG_OFFSETS: [usize; 3] = [112, 104, 96];
}
#[cfg(bpf_target_arch = "aarch64")]
mod target {
    pub(crate) const NR_SECCOMP: i64 = 277;
    pub(crate) const NR_PRCTL: i64 = 167;
    pub(crate) const NR_EXECVE: i64 = 221;
    pub(crate) const NR_EXECVEAT: i64 = 281;
    pub(crate) const ARG_OFFSETS: [usize; 3] = [0, 8, 16];
}
#[cfg(not(any(bpf_target_arch = "x86_64", bpf_target_arch = "aarch64")))]
mod target {
    pub(crate) const NR_SECCOMP: i64 = -1000;
    pub(crate) const NR_PRCTL: i64 = -1000;
    pub(crate) const NR_EXECVE: i64 = -1000;
    pub(crate) const NR_EXECVEAT: i64 = -1000;
    pub(crate) const ARG_OFFSETS: [usize; 3] = [0, 8, 16];
}

pub(crate) use target::{ARG_OFFSETS, NR_EXECVE, NR_EXECVEAT, NR_PRCTL, NR_SECCOMP};

/// Whether the registers at `regs` (a `struct pt_regs` the verifier knows
/// as one: `sys_enter`'s BTF argument) show a 64-bit `syscall` entry: the
/// user code segment, and `cx` and `r11` equal to `ip` and `flags`, as
/// `entry_SYSCALL_64` saves them (the instruction puts the return address
/// in rcx and the flags in r11). A 32-bit process (`int $0x80`, `sysenter`,
/// compat `syscall`) has another code segment; a 64-bit process's
/// `int $0x80` leaves the user's rcx and r11, which match only when it set
/// them so on purpose. Anything else is not shown native, and
/// `sys_enter` asks the task (`TS_COMPAT`, exact). Only read with compat
/// detection on (x86_64).
#[cfg(bpf_target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn native_entry(regs: *const u8) -> bool {
    const R11: usize = 48;
    const CX: usize = 88;
    const IP: usize = 128;
    const CS: usize = 136;
    const FLAGS: usize = 144;
    const USER_CS: u16 = 0x33;
    // SAFETY: `regs` is the tracepoint's typed `struct pt_regs` pointer and
    // the offsets are its fields' on x86_64 (a fixed ABI, `ptrace.h`); the
    // verifier checks each load against BTF and makes it fault-tolerant.
    unsafe {
        let at = |off: usize| *regs.add(off).cast::<u64>();
        *regs.add(CS).cast::<u16>() == USER_CS && at(CX) == at(IP) && at(R11) == at(FLAGS)
    }
}
#[cfg(not(bpf_target_arch = "x86_64"))]
#[inline(always)]
pub(crate) fn native_entry(_regs: *const u8) -> bool {
    false
}

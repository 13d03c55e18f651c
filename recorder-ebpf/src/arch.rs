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

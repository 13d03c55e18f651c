//! Types shared by the kernel side (`recorder-ebpf`) and user space (`recorder`).
//!
//! The types are `#[repr(C)]` and plain old data: the kernel writes them,
//! user space reads them from BPF maps byte for byte. [`maps`], [`programs`]
//! and [`globals`] name what user space looks up in the object.
#![no_std]

mod names;
pub use names::{globals, maps, programs};

/// Number of 64-bit words in one syscall bitmap.
///
/// 16 words = 1024 bits. The highest syscall number on any supported
/// architecture is below 600 (x86_64 tops out near 470, i386 near 470,
/// aarch64 near 470), so every number the kernel can dispatch has a bit.
/// Numbers outside the bitmap (e.g. -1 from a ptrace-skipped syscall, or a
/// deliberately bogus number) are counted in [`SyscallSet::out_of_range`].
pub const SET_WORDS: usize = 16;
/// Number of syscall numbers one bitmap covers.
pub const SET_BITS: usize = SET_WORDS * 64;

/// On x86_64, x32 ABI syscall numbers carry this bit.
pub const X32_SYSCALL_BIT: u64 = 0x4000_0000;

/// `phase` value: the cgroup belongs to a container whose OCI runtime init has
/// not yet loaded its seccomp filter; syscalls go to [`SyscallSet::init`].
pub const PHASE_RUNTIME_INIT: u32 = 0;
/// `phase` value: the workload runs; syscalls go to the main bitmaps.
pub const PHASE_WORKLOAD: u32 = 1;

/// The per-cgroup value of the `SYSCALL_SETS` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallSet {
    /// Native syscalls (x86_64 / aarch64 numbering).
    pub native: [u64; SET_WORDS],
    /// 32-bit compat syscalls (i386 / arm numbering), when compat detection is on.
    pub compat: [u64; SET_WORDS],
    /// x32 ABI syscalls (x86_64 only), with [`X32_SYSCALL_BIT`] removed.
    pub x32: [u64; SET_WORDS],
    /// Native syscalls made while `phase` was [`PHASE_RUNTIME_INIT`].
    pub init: [u64; SET_WORDS],
    /// How many syscalls had a number outside every bitmap.
    pub out_of_range: u64,
    /// The last out-of-range number seen (for diagnostics).
    pub last_out_of_range: i64,
    /// The cgroup id of the recording this cgroup belongs to (itself for a
    /// recording's root cgroup, the container's cgroup for its sub-cgroups).
    pub owner: u64,
    /// [`PHASE_RUNTIME_INIT`] or [`PHASE_WORKLOAD`].
    pub phase: u32,
    /// Bit flags, see `FLAG_*`.
    pub flags: u32,
}

/// The entry was created by the kernel (auto mode), not by user space.
pub const FLAG_AUTO: u32 = 1;
/// The runtime's seccomp filter load was seen (phase moved to workload).
pub const FLAG_MARKER_SEEN: u32 = 2;
/// The filter load was runc's init (a Go program).
pub const FLAG_RUNTIME_RUNC: u32 = 4;
/// The filter load was crun's init (C).
pub const FLAG_RUNTIME_CRUN: u32 = 8;
/// The container's workload started: a successful exec in the cgroup after
/// the runtime's init (`sched_process_exec`). Its `Workload` is in the
/// `WORKLOADS` map.
pub const FLAG_WORKLOAD_STARTED: u32 = 1 << 8;
/// The runtime's init ended at that exec, with no seccomp filter loaded
/// first (also sets [`FLAG_MARKER_SEEN`]): what ran before it is left out.
pub const FLAG_INIT_ENDED_BY_EXEC: u32 = 1 << 9;

/// The value of the `WORKLOADS` map (cgroup id → the process whose exec
/// started the container's workload): when it started and how it ended.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Workload {
    /// Its process id (as the host sees it).
    pub tgid: u32,
    /// Its wait status (`task_struct.exit_code`: exit code << 8, or the
    /// signal), once `exited_ns` is set.
    pub exit_code: u32,
    /// `bpf_ktime_get_ns()` at the exec.
    pub started_ns: u64,
    /// `bpf_ktime_get_ns()` when it exited; 0 while it runs.
    pub exited_ns: u64,
}

impl SyscallSet {
    /// An empty set owned by `owner`, starting in `phase`.
    pub const fn new(owner: u64, phase: u32) -> Self {
        Self {
            native: [0; SET_WORDS],
            compat: [0; SET_WORDS],
            x32: [0; SET_WORDS],
            init: [0; SET_WORDS],
            out_of_range: 0,
            last_out_of_range: 0,
            owner,
            phase,
            flags: 0,
        }
    }
}

/// log2 of [`FILTER_SLOTS`].
pub const FILTER_SHIFT: u32 = 13;
/// Slots of the `RECORDED_FILTER` array: a counting filter in front of the
/// `SYSCALL_SETS` hash map. Slot [`filter_slot`]`(id)` counts the recorded
/// cgroups whose id hashes there, so a zero slot proves that a cgroup is not
/// recorded without the hash lookup (a helper call). 8192 slots: 64 KiB of
/// kernel memory, and a 1.2 % chance per unrecorded cgroup to pay the lookup
/// with 100 cgroups recorded.
pub const FILTER_SLOTS: u32 = 1 << FILTER_SHIFT;
/// `BPF_F_MMAPABLE`: user space maps the filter and updates its counters
/// with atomic instructions, as the kernel does (a map update would write
/// the whole slot and could lose a concurrent kernel increment).
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

/// The `RECORDED_FILTER` slot of cgroup `id`. Fibonacci hashing: cgroup ids
/// are inode numbers, mostly consecutive, and the multiply spreads them.
#[inline(always)]
pub const fn filter_slot(id: u64) -> u32 {
    (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - FILTER_SHIFT)) as u32
}

/// log2 of [`CACHE_SLOTS`].
pub const CACHE_SHIFT: u32 = 10;
/// Slots of the `SET_CACHE` array: a direct-mapped cache of recorded sets.
/// A recorded cgroup whose slot ([`cache_slot`]) is free moves its later
/// syscalls there from its `SYSCALL_SETS` entry, so that they cost an
/// (inlined) array lookup instead of a hash lookup; user space merges the
/// two. 1024 slots of 552 bytes: 552 KiB of kernel memory.
pub const CACHE_SLOTS: u32 = 1 << CACHE_SHIFT;
/// [`CachedSet::id`] of a free slot.
pub const CACHE_FREE: u64 = 0;
/// [`CachedSet::id`] while the kernel fills in a slot it has just claimed.
pub const CACHE_CLAIMING: u64 = u64::MAX - 1;
/// [`CachedSet::id`] of a slot user space has released; it zeroes the set
/// and frees the slot once no program can still be writing to it.
pub const CACHE_RELEASED: u64 = u64::MAX;

/// The `SET_CACHE` slot of cgroup `id` (the top bits of the same hash as
/// [`filter_slot`]).
#[inline(always)]
pub const fn cache_slot(id: u64) -> u32 {
    filter_slot(id) >> (FILTER_SHIFT - CACHE_SHIFT)
}

/// A value of the `SET_CACHE` array.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CachedSet {
    /// The cgroup whose syscalls this slot records, or `CACHE_*`.
    pub id: u64,
    /// Syscalls recorded here (phase: workload). `owner`, `phase` and
    /// `flags` of the `SYSCALL_SETS` entry are the ones that count.
    pub set: SyscallSet,
}

/// Index of the per-program counters in the `STATS` per-CPU array.
pub mod stat {
    /// Syscalls recorded into some set.
    pub const RECORDED: u32 = 0;
    /// Cgroups enrolled by the kernel (auto mode).
    pub const ENROLLED: u32 = 1;
    /// Enrolments that failed (map full).
    pub const ENROL_FAILED: u32 = 2;
    /// Number of slots.
    pub const COUNT: u32 = 4;
}

/// An event sent from the kernel to user space on the `EVENTS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CgroupEvent {
    /// [`EVENT_MKDIR`] or [`EVENT_RMDIR`].
    pub kind: u32,
    /// Non-zero when the kernel enrolled the cgroup.
    pub enrolled: u32,
    /// The cgroup id.
    pub id: u64,
}

/// A cgroup was created.
pub const EVENT_MKDIR: u32 = 1;
/// A cgroup was removed.
pub const EVENT_RMDIR: u32 = 2;

#[cfg(feature = "user")]
mod user {
    // SAFETY: both are repr(C), made of integers only, with no padding that
    // the kernel could leave uninitialised (checked by the size tests).
    unsafe impl aya::Pod for super::SyscallSet {}
    unsafe impl aya::Pod for super::CgroupEvent {}
    // SAFETY: repr(C), a u64 and a SyscallSet (no padding, checked below).
    unsafe impl aya::Pod for super::CachedSet {}
    // SAFETY: repr(C), integers only, no padding (4 + 4 + 8 + 8, checked
    // below).
    unsafe impl aya::Pod for super::Workload {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_has_no_padding() {
        assert_eq!(
            size_of::<SyscallSet>(),
            4 * SET_WORDS * 8 + 8 + 8 + 8 + 4 + 4
        );
        assert_eq!(size_of::<CgroupEvent>(), 16);
        assert_eq!(
            size_of::<LeafPattern>(),
            LEAF_PREFIX_MAX + LEAF_SUFFIX_MAX + 3 * 4 + 2 * 2
        );
        assert_eq!(size_of::<CachedSet>(), 8 + size_of::<SyscallSet>());
        assert_eq!(size_of::<Workload>(), 4 + 4 + 8 + 8);
        assert!(cache_slot(u64::MAX) < CACHE_SLOTS);
    }

    #[test]
    fn filter_slots_are_in_range_and_spread() {
        let mut seen = [0u8; FILTER_SLOTS as usize];
        // 1024 consecutive inode numbers land in 1024 distinct slots.
        for id in 4096..4096 + 1024u64 {
            let slot = filter_slot(id) as usize;
            assert!(slot < FILTER_SLOTS as usize);
            seen[slot] += 1;
        }
        assert_eq!(seen.iter().filter(|&&n| n > 1).count(), 0);
        assert!(filter_slot(u64::MAX) < FILTER_SLOTS);
    }
}

/// Size of the scratch buffer that holds a cgroup path in the kernel.
/// A power of two, so that masked indexes are provably in bounds.
pub const PATH_BUF: usize = 512;
/// Maximum number of leaf patterns the kernel matches new cgroups against.
pub const MAX_LEAF_PATTERNS: u32 = 8;
/// Length of a container id in a cgroup name: 64 hex digits.
pub const ID_HEX_LEN: usize = 64;
/// Size of a saved leaf name (prefix + id + suffix, NUL padded).
pub const LEAF_MAX: usize = 128;
/// Maximum length of a leaf pattern's literal prefix.
pub const LEAF_PREFIX_MAX: usize = 32;
/// Maximum length of a leaf pattern's literal suffix.
pub const LEAF_SUFFIX_MAX: usize = 16;

/// [`LeafPattern::kind`]: `<prefix><64 hex digits><suffix>` as the last
/// path component.
pub const PATTERN_ID: u16 = 0;
/// [`LeafPattern::kind`]: a whole path that starts with `prefix`, ends with
/// `suffix` and has exactly `depth` components (e.g. `/` and depth 2: any
/// `/<a>/<b>`); the kernel saves the whole path (when shorter than
/// [`LEAF_MAX`], else its tail) instead of the leaf.
pub const PATTERN_PATH: u16 = 1;
/// Deepest path a [`PATTERN_PATH`] pattern may ask for.
pub const PATTERN_DEPTH_MAX: u16 = 8;

/// A container cgroup the kernel recognises in auto mode, by the path of a
/// new cgroup2 directory: [`PATTERN_ID`] (e.g. `libpod-` + id, `docker-` +
/// id + `.scope`) or [`PATTERN_PATH`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeafPattern {
    pub prefix: [u8; LEAF_PREFIX_MAX],
    pub suffix: [u8; LEAF_SUFFIX_MAX],
    pub prefix_len: u32,
    pub suffix_len: u32,
    /// Zero for an unused slot.
    pub enabled: u32,
    /// [`PATTERN_ID`] or [`PATTERN_PATH`].
    pub kind: u16,
    /// The number of path components, for [`PATTERN_PATH`].
    pub depth: u16,
}

impl LeafPattern {
    /// An unused slot.
    pub const EMPTY: Self = Self {
        prefix: [0; LEAF_PREFIX_MAX],
        suffix: [0; LEAF_SUFFIX_MAX],
        prefix_len: 0,
        suffix_len: 0,
        enabled: 0,
        kind: PATTERN_ID,
        depth: 0,
    };
}

#[cfg(feature = "user")]
mod user_patterns {
    // SAFETY: repr(C), integers and byte arrays only, no padding
    // (32 + 16 + 3 * 4 + 2 * 2, checked in the tests).
    unsafe impl aya::Pod for super::LeafPattern {}
}

/// Most distinct `personality(2)` values one [`ArgSet`] keeps.
pub const PERSONALITY_MAX: usize = 8;

/// The namespace flags of `clone(2)` / `unshare(2)` whose combinations an
/// [`ArgSet`] records: combination bit `i` of [`ArgSet::clone_ns`] has flag
/// `NS_FLAGS[j]` set exactly when bit `j` of `i` is set.
pub const NS_FLAGS: [u64; 7] = [
    0x0002_0000, // CLONE_NEWNS
    0x0200_0000, // CLONE_NEWCGROUP
    0x0400_0000, // CLONE_NEWUTS
    0x0800_0000, // CLONE_NEWIPC
    0x1000_0000, // CLONE_NEWUSER
    0x2000_0000, // CLONE_NEWPID
    0x4000_0000, // CLONE_NEWNET
];

/// [`ArgSet::overflow`]: a socket domain above 63 was seen.
pub const OVERFLOW_SOCKET: u64 = 1;
/// [`ArgSet::overflow`]: more than [`PERSONALITY_MAX`] personalities were seen.
pub const OVERFLOW_PERSONALITY: u64 = 2;

/// The per-cgroup value of the `ARG_SETS` map (opt-in argument recording):
/// the distinct values of a few key arguments, in fixed-size bitmaps so that
/// a container cannot grow it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgSet {
    /// `socket(domain, ...)`: bit `domain` (< 64).
    pub socket_domains: u64,
    /// `clone(flags, ...)`: bit = combination of [`NS_FLAGS`] in `flags`.
    pub clone_ns: [u64; 2],
    /// `unshare(flags)`: bit = combination of [`NS_FLAGS`] in `flags`.
    pub unshare_ns: [u64; 2],
    /// `OVERFLOW_*` bits: values that did not fit (64-bit: the BPF target
    /// has no 32-bit atomic or).
    pub overflow: u64,
    /// `personality(persona)`: the first distinct values.
    pub personality: [u32; PERSONALITY_MAX],
    /// How many of `personality` are used.
    pub personality_len: u32,
    pub _pad: u32,
}

impl ArgSet {
    /// Nothing seen yet.
    pub const EMPTY: Self = Self {
        socket_domains: 0,
        clone_ns: [0; 2],
        unshare_ns: [0; 2],
        overflow: 0,
        personality: [0; PERSONALITY_MAX],
        personality_len: 0,
        _pad: 0,
    };
}

#[cfg(feature = "user")]
mod user_args {
    // SAFETY: repr(C), integers only, no padding (8 + 16 + 16 + 8 + 32 + 4 + 4).
    unsafe impl aya::Pod for super::ArgSet {}
}

/// [`DenialKey::kind`]: a denied syscall of the native ABI.
pub const DENIAL_NATIVE: u32 = 0;
/// [`DenialKey::kind`]: a denied 32-bit compat syscall (x86_64).
pub const DENIAL_COMPAT: u32 = 1;
/// [`DenialKey::kind`]: a denied x32 syscall (number without
/// [`X32_SYSCALL_BIT`]).
pub const DENIAL_X32: u32 = 2;
/// [`DenialKey::kind`] bit: not a denial answered with an errno but a task
/// of the cgroup killed by `SIGSYS` (a KILL or TRAP profile), at syscall
/// `nr` of the ABI in the low bits ([`DENIAL_NR_UNKNOWN`]: unknown).
pub const DENIAL_KILLED: u32 = 0x100;
/// [`DenialKey::nr`] of a kill whose syscall is not known.
pub const DENIAL_NR_UNKNOWN: u32 = u32::MAX;

/// A key of the `DENIALS` map (value: a `u64` count): syscall `nr` of a
/// cgroup of recording `owner` was denied by its seccomp profile (it left
/// through `sys_exit` without having passed `sys_enter`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DenialKey {
    pub owner: u64,
    pub nr: u32,
    /// `DENIAL_*`.
    pub kind: u32,
}

/// The value of the `DENY_ENTERED` map, per task of a recorded cgroup
/// while denials are watched: the syscall it entered and has not left yet,
/// and whether its cgroup is watched (so that its next syscalls need no
/// lookup to know).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entered {
    /// The syscall number + 1; 0: none (the task is seen, out of syscalls).
    pub nr_plus_one: u64,
    /// The task's `struct pt_regs` (the top of its kernel stack).
    pub regs: u64,
    /// The cgroup the task was in when `owner` was looked up.
    pub cgroup: u64,
    /// The watched recording `cgroup` belongs to; 0: not watched.
    pub owner: u64,
    /// The watch list's generation (`DENY_GEN`) `owner` was looked up in:
    /// a change of the list makes every task look again.
    pub generation: u64,
}

#[cfg(feature = "user")]
mod user_denials {
    // SAFETY: repr(C), integers only, no padding (8 + 4 + 4, 5 * 8).
    unsafe impl aya::Pod for super::DenialKey {}
    unsafe impl aya::Pod for super::Entered {}
}

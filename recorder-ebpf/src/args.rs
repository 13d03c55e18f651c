//! Argument recording (opt-in, `--args`): the distinct values of a few key
//! arguments of the native ABI, for cgroups that have an `ARG_SETS` entry.

use core::intrinsics::{AtomicOrdering, atomic_or};

use aya_ebpf::helpers::bpf_probe_read_kernel;
use recorder_common::{NS_FLAGS, OVERFLOW_PERSONALITY, OVERFLOW_SOCKET, PERSONALITY_MAX};

use crate::{
    arch,
    maps::{ARG_SETS, NR_ARG_CLONE, NR_ARG_PERSONALITY, NR_ARG_SOCKET, NR_ARG_UNSHARE},
};

/// Argument `n` (0 to 2) of the syscall whose registers are at `regs`, or
/// 0 when it cannot be read.
#[inline(always)]
pub(crate) fn syscall_arg(regs: *const u8, n: usize) -> u64 {
    let off = arch::ARG_OFFSETS[n];
    // SAFETY: `regs` is the `struct pt_regs` the tracepoint passed and `off`
    // the offset of an argument register inside it; the helper reads
    // kernel memory fault-tolerantly (an error gives 0).
    unsafe { bpf_probe_read_kernel(regs.add(off).cast::<u64>()) }.unwrap_or(0)
}

/// The index of the combination of namespace flags in `flags`.
#[inline(always)]
fn ns_combination(flags: u64) -> u64 {
    let mut combo = 0u64;
    for (i, flag) in NS_FLAGS.iter().enumerate() {
        if flags & flag != 0 {
            combo |= 1 << i;
        }
    }
    combo
}

/// Sets bit `combo` of the two-word bitmap `words`, atomically.
#[inline(always)]
fn mark_ns(words: *mut [u64; 2], combo: u64) {
    let word = (combo / 64) as usize;
    if word < 2 {
        // SAFETY: `words` points to a bitmap of an `ARG_SETS` value (valid
        // for the whole run, see `record_args`) and `word` is in bounds.
        // Other CPUs update the same words: hence the atomic OR.
        unsafe {
            let slot = (*words).as_mut_ptr().add(word);
            atomic_or::<u64, u64, { AtomicOrdering::Relaxed }>(slot, 1u64 << (combo % 64));
        }
    }
}

/// Records the key argument of socket, clone, unshare and personality for
/// cgroups that have an `ARG_SETS` entry (native ABI only).
///
/// `args` below points to the cgroup's `ARG_SETS` value: a hash map value
/// stays valid until the program returns (RCU), even if user space deletes
/// the entry meanwhile, so every access through it is in bounds. Other
/// CPUs may record into the same value.
#[inline(always)]
pub(crate) fn record_args(cgroup: u64, id: i64, regs: *const u8) {
    if id < 0 {
        return;
    }
    let socket = NR_ARG_SOCKET.load();
    let clone = NR_ARG_CLONE.load();
    let unshare = NR_ARG_UNSHARE.load();
    let personality = NR_ARG_PERSONALITY.load();
    if id != socket && id != clone && id != unshare && id != personality {
        return;
    }
    let Some(args) = ARG_SETS.get_ptr_mut(&cgroup) else {
        return;
    };
    let a0 = syscall_arg(regs, 0);
    if id == socket {
        if a0 < 64 {
            // SAFETY: `args` is valid (above); an atomic OR, as other CPUs
            // write the same word.
            unsafe {
                atomic_or::<u64, u64, { AtomicOrdering::Relaxed }>(
                    &raw mut (*args).socket_domains,
                    1u64 << a0,
                )
            };
        } else {
            // SAFETY: as above.
            unsafe {
                atomic_or::<u64, u64, { AtomicOrdering::Relaxed }>(
                    &raw mut (*args).overflow,
                    OVERFLOW_SOCKET,
                )
            };
        }
    } else if id == clone {
        // SAFETY: `args` is valid (above); only the field's address is taken.
        mark_ns(unsafe { &raw mut (*args).clone_ns }, ns_combination(a0));
    } else if id == unshare {
        // SAFETY: as above.
        mark_ns(unsafe { &raw mut (*args).unshare_ns }, ns_combination(a0));
    } else {
        let persona = a0 as u32;
        // SAFETY: `args` is valid (above). Another CPU may be adding a
        // value: a stale length only makes this run miss or repeat it.
        let len = unsafe { (*args).personality_len } as usize;
        for i in 0..PERSONALITY_MAX {
            if i >= len {
                break;
            }
            // SAFETY: `args` is valid and `i < PERSONALITY_MAX`.
            if unsafe { (*args).personality[i] } == persona {
                return;
            }
        }
        if len < PERSONALITY_MAX {
            // SAFETY: `args` is valid and `len < PERSONALITY_MAX`. Two CPUs
            // may race for the slot; personality(2) is rare and a lost value
            // shows as a failing call, not a silent allow.
            unsafe {
                (*args).personality[len] = persona;
                (*args).personality_len = len as u32 + 1;
            }
        } else {
            // SAFETY: `args` is valid (above); an atomic OR, as for sockets.
            unsafe {
                atomic_or::<u64, u64, { AtomicOrdering::Relaxed }>(
                    &raw mut (*args).overflow,
                    OVERFLOW_PERSONALITY,
                )
            };
        }
    }
}

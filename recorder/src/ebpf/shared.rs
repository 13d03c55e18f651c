//! The two arrays in front of `SYSCALL_SETS` that user space maps into its
//! memory and updates with the kernel's own atomic instructions: the
//! counting filter (`RECORDED_FILTER`) and the set cache (`SET_CACHE`).
//! The only unsafe code of the user side lives here.

use std::sync::atomic::{AtomicU64, Ordering};

use aya::{
    Ebpf,
    maps::{Array, MapData},
};
use recorder_common::{
    CACHE_FREE, CACHE_RELEASED, CACHE_SLOTS, CachedSet, FILTER_SLOTS, SyscallSet, cache_slot,
    filter_slot, maps,
};

use super::error::{KernelError, take_map};

/// An mmapable BPF array mapped into this process. The kernel's programs
/// update the same memory with atomic instructions, so user space reaches it
/// only through `AtomicU64`s (a map update would write a whole value and
/// could lose a concurrent kernel update).
struct SharedArray<V: aya::Pod> {
    base: std::ptr::NonNull<u8>,
    len: usize,
    /// Bytes per value (the kernel rounds values up to 8 bytes).
    stride: usize,
    /// Keeps the map (and its fd) alive as long as the mapping.
    _map: Array<MapData, V>,
}

// SAFETY: the mapping is owned by the `SharedArray` (unmapped only when it
// is dropped) and only reached through `AtomicU64`s, so moving it to
// another thread moves nothing a thread could still be using.
unsafe impl<V: aya::Pod> Send for SharedArray<V> {}
// SAFETY: `&SharedArray` hands out only `&AtomicU64`s, which threads may
// share.
unsafe impl<V: aya::Pod> Sync for SharedArray<V> {}

impl<V: aya::Pod> SharedArray<V> {
    /// Takes map `name` out of `ebpf` and maps all of it. The map must have
    /// at least `slots` values (a pinned map of another build might not),
    /// so that every slot below `slots` is inside the mapping.
    fn take(ebpf: &mut Ebpf, name: &'static str, min_slots: u32) -> Result<Self, KernelError> {
        use std::os::fd::{AsFd as _, AsRawFd as _};
        let map: Array<MapData, V> = take_map(ebpf, name)?;
        let data = aya::maps::IterableMap::map(&map);
        let slots = data.info().map_err(KernelError::map(name))?.max_entries();
        if slots < min_slots {
            return Err(KernelError::Mmap {
                map: name,
                err: std::io::Error::other(format!(
                    "it has {slots} slots, fewer than the {min_slots} this build uses (a map pinned by another version? remove it with `recorderd --unpin`)"
                )),
            });
        }
        let stride = size_of::<V>().next_multiple_of(8);
        let len = slots as usize * stride;
        let fd = data.fd().as_fd().as_raw_fd();
        // SAFETY: asks for a fresh shared mapping (no address hint, so no
        // existing memory is touched) of `len` bytes of a live map fd:
        // the whole array, which the kernel rounds up to whole pages. The
        // result is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(KernelError::Mmap {
                map: name,
                err: std::io::Error::last_os_error(),
            });
        }
        let base = std::ptr::NonNull::new(ptr.cast::<u8>()).ok_or_else(|| KernelError::Mmap {
            map: name,
            err: std::io::Error::other("mmap returned NULL"),
        })?;
        Ok(Self {
            base,
            len,
            stride,
            _map: map,
        })
    }

    /// The 8-byte word at byte `offset` of value `slot`.
    fn word(&self, slot: u32, offset: usize) -> &AtomicU64 {
        let at = slot as usize * self.stride + offset;
        // Callers pass slots from `filter_slot`/`cache_slot` (below the
        // `min_slots` that `take` checked) and offsets of u64 fields inside
        // the value, so this holds in release builds too.
        debug_assert!(at.is_multiple_of(8) && at + 8 <= self.len);
        // SAFETY: `at..at + 8` is inside the mapping (above) and 8-byte
        // aligned (page-aligned base, 8-byte stride, u64 field offsets).
        // The mapping lives until `self` is dropped, so as long as the
        // reference, and this process only reaches it through `AtomicU64`s.
        unsafe { &*self.base.as_ptr().add(at).cast::<AtomicU64>() }
    }
}

impl<V: aya::Pod> Drop for SharedArray<V> {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `take`, with its length; the
        // references `word` handed out borrowed `self`, so none is left.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// The `RECORDED_FILTER` counters (see recorder-common).
pub(super) struct Filter(SharedArray<u64>);

impl Filter {
    /// Takes the filter out of `ebpf` and maps it.
    pub(super) fn take(ebpf: &mut Ebpf) -> Result<Self, KernelError> {
        SharedArray::take(ebpf, maps::RECORDED_FILTER, FILTER_SLOTS).map(Self)
    }

    /// Counts cgroup `id` in its slot.
    pub(super) fn add(&self, id: u64) {
        self.0
            .word(filter_slot(id), 0)
            .fetch_add(1, Ordering::SeqCst);
    }

    /// Takes back a count of [`Self::add`].
    pub(super) fn sub(&self, id: u64) {
        self.0
            .word(filter_slot(id), 0)
            .fetch_sub(1, Ordering::SeqCst);
    }

    /// The sum of the counters.
    pub(super) fn total(&self) -> u64 {
        (0..FILTER_SLOTS)
            .map(|slot| self.0.word(slot, 0).load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }
}

/// How long a released cache slot waits before it is zeroed and freed: far
/// longer than any program run that saw the old id can take.
const CACHE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The `SET_CACHE` slots (see recorder-common).
pub(super) struct Cache {
    slots: SharedArray<CachedSet>,
    /// Slots released by `release`, with when.
    released: Vec<(u32, std::time::Instant)>,
}

impl Cache {
    const ID: usize = std::mem::offset_of!(CachedSet, id);
    const SET: usize = std::mem::offset_of!(CachedSet, set);

    /// Takes the cache out of `ebpf` and maps it; `reused`: the map was
    /// pinned by an earlier run.
    pub(super) fn take(ebpf: &mut Ebpf, reused: bool) -> Result<Self, KernelError> {
        let cache = Self {
            slots: SharedArray::take(ebpf, maps::SET_CACHE, CACHE_SLOTS)?,
            released: Vec::new(),
        };
        // Released by an earlier run of the daemon, long enough ago. (A
        // fresh map is all free: not scanning it keeps its pages out of
        // this process's memory.)
        if reused {
            for slot in 0..CACHE_SLOTS {
                if cache.slots.word(slot, Self::ID).load(Ordering::SeqCst) == CACHE_RELEASED {
                    cache.free(slot);
                }
            }
        }
        Ok(cache)
    }

    /// Whether cgroup `id` records in its cache slot.
    pub(super) fn holds(&self, id: u64) -> bool {
        self.slots
            .word(cache_slot(id), Self::ID)
            .load(Ordering::SeqCst)
            == id
    }

    /// What the kernel recorded in cgroup `id`'s cache slot, if it has one.
    pub(super) fn get(&self, id: u64) -> Option<SyscallSet> {
        self.holds(id).then(|| self.read(cache_slot(id)))
    }

    fn read(&self, slot: u32) -> SyscallSet {
        use std::mem::offset_of;
        let word = |off: usize| {
            self.slots
                .word(slot, Self::SET + off)
                .load(Ordering::Relaxed)
        };
        let bitmap = |start: usize| std::array::from_fn(|w| word(start + w * 8));
        let mut set = SyscallSet::new(0, recorder_common::PHASE_WORKLOAD);
        set.native = bitmap(offset_of!(SyscallSet, native));
        set.compat = bitmap(offset_of!(SyscallSet, compat));
        set.x32 = bitmap(offset_of!(SyscallSet, x32));
        set.init = bitmap(offset_of!(SyscallSet, init));
        set.out_of_range = word(offset_of!(SyscallSet, out_of_range));
        set.last_out_of_range = word(offset_of!(SyscallSet, last_out_of_range)) as i64;
        set
    }

    /// Takes cgroup `id`'s slot away from it (the kernel stops recording
    /// there) and returns what it recorded.
    pub(super) fn release(&mut self, id: u64) -> Option<SyscallSet> {
        let slot = cache_slot(id);
        self.slots
            .word(slot, Self::ID)
            .compare_exchange(id, CACHE_RELEASED, Ordering::SeqCst, Ordering::SeqCst)
            .ok()?;
        self.released.push((slot, std::time::Instant::now()));
        Some(self.read(slot))
    }

    /// Zeroes and frees the slots released more than `CACHE_GRACE` ago.
    pub(super) fn sweep(&mut self) {
        let now = std::time::Instant::now();
        let (due, wait): (Vec<_>, Vec<_>) = self
            .released
            .drain(..)
            .partition(|(_, at)| now.duration_since(*at) >= CACHE_GRACE);
        self.released = wait;
        for (slot, _) in due {
            self.free(slot);
        }
    }

    /// Zeroes the slot's whole set (a `SyscallSet` is made of 8-byte
    /// words, see recorder-common's layout test), then frees it.
    fn free(&self, slot: u32) {
        for off in (0..size_of::<SyscallSet>()).step_by(8) {
            self.slots
                .word(slot, Self::SET + off)
                .store(0, Ordering::Relaxed);
        }
        self.slots
            .word(slot, Self::ID)
            .store(CACHE_FREE, Ordering::SeqCst);
    }
}

/// Adds what the cache recorded (`extra`) to a `SYSCALL_SETS` value.
pub(super) fn merge(set: &mut SyscallSet, extra: &SyscallSet) {
    for (a, b) in [
        (&mut set.native, &extra.native),
        (&mut set.compat, &extra.compat),
        (&mut set.x32, &extra.x32),
        (&mut set.init, &extra.init),
    ] {
        for (x, y) in a.iter_mut().zip(b) {
            *x |= y;
        }
    }
    if extra.out_of_range != 0 {
        set.out_of_range += extra.out_of_range;
        set.last_out_of_range = extra.last_out_of_range;
    }
}

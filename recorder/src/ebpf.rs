//! The loaded eBPF object: programs, links and maps. One owner (the
//! `record` command, or the daemon's kernel task) holds a [`Kernel`] and
//! is the only one that touches it.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, RingBuf},
    programs::{
        RawTracePoint, RawTracePointRunOptions, TestRun as _, TracePoint,
        links::{FdLink, PinnedLink},
    },
};
use recorder_common::{
    ArgSet, CACHE_FREE, CACHE_RELEASED, CACHE_SLOTS, CachedSet, FILTER_SLOTS, LEAF_MAX,
    LeafPattern, MAX_LEAF_PATTERNS, SyscallSet, cache_slot, filter_slot, stat,
};

use crate::{btf, system};

/// The compiled eBPF object, embedded at build time.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/recorder"));

/// Name of the per-cgroup syscall set map.
pub const SETS_MAP: &str = "SYSCALL_SETS";
/// Name of the per-cgroup argument value map (opt-in `--args`).
pub const ARGS_MAP: &str = "ARG_SETS";
/// Name of the counting filter in front of [`SETS_MAP`].
pub const FILTER_MAP: &str = "RECORDED_FILTER";
/// Name of the direct-mapped cache of recorded sets.
pub const CACHE_MAP: &str = "SET_CACHE";
/// The one-word map of the `CALLER_GEN` global (a section of its own).
/// Never pinned: aya would zero a pinned data section on reuse, and a
/// generation must never go back. A recorder an earlier run left attached
/// keeps its own generation until `attach` replaces it.
const CALLER_GEN_MAP: &str = ".bss.caller_gen";
/// The hook run once (`BPF_PROG_TEST_RUN`) to bump the generation from
/// user space.
const CALLER_GEN_BUMP: &str = "sched_process_fork";
/// Programs that keep the last-caller entries of `sys_enter` honest: each
/// bumps the generation (see recorder-ebpf). Attached before `sys_enter`
/// and detached after it.
const CALLER_HOOKS: [&str; 2] = ["cgroup_attach_task", CALLER_GEN_BUMP];
/// Maps that outlive the daemon when a pin directory is given.
const PINNED_MAPS: [&str; 7] = [
    SETS_MAP,
    FILTER_MAP,
    CACHE_MAP,
    "CGROUP_LEAF",
    "EVENTS",
    "STATS",
    "LEAF_PATTERNS",
];

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(transparent)]
    System(#[from] system::SystemError),
    #[error(transparent)]
    Btf(#[from] btf::BtfError),
    #[error("loading the eBPF object failed: {0}")]
    Load(#[source] Box<aya::EbpfError>),
    #[error("eBPF program {name}: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error("cannot pin {what} at {path}: {source}")]
    Pin {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot read the tracepoint format {path}: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("eBPF object has no {0}")]
    Missing(&'static str),
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: Box<MapError>,
    },
    #[error(
        "the recording map is full ({capacity} cgroups); stop some recordings or raise the capacity"
    )]
    MapFull { capacity: u32 },
    #[error("cannot enable BPF run-time statistics (BPF_ENABLE_STATS): {0}")]
    Stats(#[source] Box<aya::sys::SyscallError>),
    #[error("cannot mmap the {map} map: {source}")]
    Mmap {
        map: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl KernelError {
    fn map(map: &'static str) -> impl FnOnce(MapError) -> Self {
        move |source| Self::Map {
            map,
            source: Box::new(source),
        }
    }

    fn program(name: &'static str) -> impl Fn(aya::programs::ProgramError) -> Self + Copy {
        move |source| Self::Program {
            name,
            source: Box::new(source),
        }
    }
}

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

/// The compat offset to pass to the program: the offset of
/// `task_struct.thread_info.status`, or 0 when compat detection is off.
fn compat_offset(btf: &btf::Btf, opts: &LoadOptions) -> Result<u32, KernelError> {
    if !opts.compat || !cfg!(target_arch = "x86_64") {
        return Ok(0);
    }
    Ok(btf.member_offset("task_struct", &["thread_info", "status"])?)
}

/// An attached program's link: owned by this process, or pinned in bpffs.
enum Link {
    Owned(FdLink),
    Pinned(PinnedLink),
}

/// Offsets of the `cgroup:cgroup_mkdir` record fields, from tracefs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CgroupTpFormat {
    pub root: u32,
    pub id: u32,
    pub path: u32,
}

impl CgroupTpFormat {
    /// Parses `events/cgroup/cgroup_mkdir/format`.
    pub fn parse(text: &str) -> Option<Self> {
        let field = |name: &str| {
            text.lines().find_map(|l| {
                let l = l.trim();
                let decl = l.strip_prefix("field:")?.split(';').next()?;
                if !decl.ends_with(&format!(" {name}")) && !decl.ends_with(&format!(" {name}[]")) {
                    return None;
                }
                l.split(';')
                    .find_map(|p| p.trim().strip_prefix("offset:"))
                    .and_then(|v| v.parse().ok())
            })
        };
        Some(Self {
            root: field("root")?,
            id: field("id")?,
            path: field("path")?,
        })
    }

    fn read(tracefs: &Path) -> Result<Self, KernelError> {
        let path = tracefs.join("events/cgroup/cgroup_mkdir/format");
        let text = std::fs::read_to_string(&path).map_err(|e| KernelError::Format {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Self::parse(&text).ok_or(KernelError::Format {
            path,
            reason: "fields root, id and path not found".to_owned(),
        })
    }
}

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

/// The offsets that let `sys_enter` read the cgroup id with loads instead of
/// a helper call; `None` (the helper is used) when BTF lacks one of them.
fn cgroup_id_offsets(btf: &btf::Btf) -> Option<[u32; 4]> {
    Some([
        btf.member_offset("task_struct", &["cgroups"]).ok()?,
        btf.member_offset("css_set", &["dfl_cgrp"]).ok()?,
        btf.member_offset("cgroup", &["kn"]).ok()?,
        btf.member_offset("kernfs_node", &["id"]).ok()?,
    ])
}

/// The read-only globals `Kernel::load` sets in the object, by name (public
/// so that tools loading the object differently, like the bench, match it).
pub fn globals(opts: &LoadOptions) -> Result<Vec<(&'static str, u32)>, KernelError> {
    // Read BTF even when compat detection is off: it validates --btf, and a
    // kernel without BTF is one we have not tested against.
    let btf = btf::Btf::read(&opts.btf)?;
    let walk = cgroup_id_offsets(&btf);
    let [cgroups, dfl_cgrp, kn, id] = walk.unwrap_or_default();
    Ok(vec![
        ("COMPAT_STATUS_OFFSET", compat_offset(&btf, opts)?),
        ("CGROUP_ID_WALK", u32::from(walk.is_some())),
        ("TASK_CGROUPS_OFFSET", cgroups),
        ("CSS_SET_DFL_CGRP_OFFSET", dfl_cgrp),
        ("CGROUP_KN_OFFSET", kn),
        ("KERNFS_NODE_ID_OFFSET", id),
    ])
}

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

// SAFETY: the mapping is owned by the `SharedArray` and only reached through
// `AtomicU64`s, which may be shared between threads.
unsafe impl<V: aya::Pod> Send for SharedArray<V> {}
unsafe impl<V: aya::Pod> Sync for SharedArray<V> {}

impl<V: aya::Pod> SharedArray<V> {
    /// Takes map `name` out of `ebpf` and maps all of it.
    fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<Self, KernelError> {
        use std::os::fd::{AsFd as _, AsRawFd as _};
        let map = ebpf.take_map(name).ok_or(KernelError::Missing(name))?;
        let map: Array<MapData, V> = Array::try_from(map).map_err(KernelError::map(name))?;
        let data = aya::maps::IterableMap::map(&map);
        let slots = data.info().map_err(KernelError::map(name))?.max_entries();
        let stride = size_of::<V>().next_multiple_of(8);
        let len = slots as usize * stride;
        let fd = data.fd().as_fd().as_raw_fd();
        // SAFETY: a fresh shared mapping of the whole array (the kernel
        // rounds an mmapable array up to whole pages), checked below.
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
                source: std::io::Error::last_os_error(),
            });
        }
        let base = std::ptr::NonNull::new(ptr.cast::<u8>()).ok_or_else(|| KernelError::Mmap {
            map: name,
            source: std::io::Error::other("mmap returned NULL"),
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
        // Callers pass slots from `filter_slot`/`cache_slot` and offsets of
        // u64 fields, all in bounds by construction.
        debug_assert!(at.is_multiple_of(8) && at + 8 <= self.len);
        // SAFETY: in bounds and 8-byte aligned (page-aligned base, 8-byte
        // stride, u64 field offsets).
        unsafe { &*self.base.as_ptr().add(at).cast::<AtomicU64>() }
    }
}

impl<V: aya::Pod> Drop for SharedArray<V> {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, with its length.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// The `RECORDED_FILTER` counters (see recorder-common).
struct Filter(SharedArray<u64>);

impl Filter {
    fn add(&self, id: u64) {
        self.0
            .word(filter_slot(id), 0)
            .fetch_add(1, Ordering::SeqCst);
    }

    fn sub(&self, id: u64) {
        self.0
            .word(filter_slot(id), 0)
            .fetch_sub(1, Ordering::SeqCst);
    }

    fn total(&self) -> u64 {
        (0..FILTER_SLOTS)
            .map(|slot| self.0.word(slot, 0).load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }
}

/// How long a released cache slot waits before it is zeroed and freed: far
/// longer than any program run that saw the old id can take.
const CACHE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The `SET_CACHE` slots (see recorder-common).
struct Cache {
    slots: SharedArray<CachedSet>,
    /// Slots released by `release`, with when.
    released: Vec<(u32, std::time::Instant)>,
}

impl Cache {
    const ID: usize = std::mem::offset_of!(CachedSet, id);
    const SET: usize = std::mem::offset_of!(CachedSet, set);

    fn new(slots: SharedArray<CachedSet>, reused: bool) -> Self {
        let cache = Self {
            slots,
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
        cache
    }

    /// Whether cgroup `id` records in its cache slot.
    fn holds(&self, id: u64) -> bool {
        self.slots
            .word(cache_slot(id), Self::ID)
            .load(Ordering::SeqCst)
            == id
    }

    /// What the kernel recorded in cgroup `id`'s cache slot, if it has one.
    fn get(&self, id: u64) -> Option<SyscallSet> {
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
    fn release(&mut self, id: u64) -> Option<SyscallSet> {
        let slot = cache_slot(id);
        self.slots
            .word(slot, Self::ID)
            .compare_exchange(id, CACHE_RELEASED, Ordering::SeqCst, Ordering::SeqCst)
            .ok()?;
        self.released.push((slot, std::time::Instant::now()));
        Some(self.read(slot))
    }

    /// Zeroes and frees the slots released more than `CACHE_GRACE` ago.
    fn sweep(&mut self) {
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
fn merge(set: &mut SyscallSet, extra: &SyscallSet) {
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

/// The loaded object.
pub struct Kernel {
    ebpf: Ebpf,
    sets: HashMap<MapData, u64, SyscallSet>,
    filter: Filter,
    cache: Cache,
    leaves: HashMap<MapData, u64, [u8; LEAF_MAX]>,
    capacity: u32,
    pin_dir: Option<PathBuf>,
    sys_enter: Option<Link>,
    /// Links of [`CALLER_HOOKS`], attached while `sys_enter` is.
    caller_links: Vec<Link>,
    /// The last-caller generation (one word).
    caller_gen: Array<MapData, u64>,
    cgroup_links: Vec<Link>,
    /// The argument map, when argument recording is on.
    args: Option<HashMap<MapData, u64, ArgSet>>,
}

/// The native numbers of the syscalls whose arguments are recorded, from
/// the syscall table (-1: not on this architecture).
fn arg_syscall_numbers() -> [(&'static str, i64); 4] {
    let nr = |name| {
        crate::syscalls::Abi::native()
            .number(name)
            .map_or(-1, i64::from)
    };
    [
        ("NR_ARG_SOCKET", nr("socket")),
        ("NR_ARG_CLONE", nr("clone")),
        ("NR_ARG_UNSHARE", nr("unshare")),
        ("NR_ARG_PERSONALITY", nr("personality")),
    ]
}

impl Kernel {
    /// Checks privileges and BTF, then loads the object. Nothing is attached
    /// yet.
    pub fn load(opts: &LoadOptions) -> Result<Self, KernelError> {
        system::check_privileges()?;
        let globals = globals(opts)?;
        let auto = u32::from(opts.auto_enrol);
        let fmt = if opts.auto_enrol {
            Some(CgroupTpFormat::read(&system::ensure_tracefs()?)?)
        } else {
            None
        };
        let mut loader = EbpfLoader::new();
        for (name, value) in &globals {
            loader.override_global(name, value, true);
        }
        loader
            .override_global("AUTO_ENROL", &auto, true)
            .map_max_entries(SETS_MAP, opts.capacity)
            .map_max_entries("CGROUP_LEAF", opts.capacity)
            .map_max_entries(ARGS_MAP, opts.capacity);
        let numbers = arg_syscall_numbers();
        if opts.args {
            for (global, nr) in &numbers {
                loader.override_global(global, nr, true);
            }
        }
        if let Some(fmt) = &fmt {
            loader
                .override_global("TP_ROOT_OFF", &fmt.root, true)
                .override_global("TP_ID_OFF", &fmt.id, true)
                .override_global("TP_PATH_OFF", &fmt.path, true);
        }
        let pin_paths: Vec<(&str, PathBuf)> = match &opts.pin_dir {
            Some(dir) => {
                system::ensure_bpffs(dir)?;
                PINNED_MAPS.iter().map(|m| (*m, dir.join(m))).collect()
            }
            None => Vec::new(),
        };
        for (name, path) in &pin_paths {
            loader.map_pin_path(name, path.as_path());
        }
        // A filter pinned by an earlier run counts that run's entries; a
        // cache pinned by one may hold slots it released.
        let pinned = |map: &str| {
            pin_paths
                .iter()
                .any(|(name, path)| *name == map && path.exists())
        };
        let fresh_filter = !pinned(FILTER_MAP);
        let reused_cache = pinned(CACHE_MAP);
        let mut ebpf = loader
            .load(OBJECT)
            .map_err(|e| KernelError::Load(Box::new(e)))?;
        let args = if opts.args {
            let map = ebpf
                .take_map(ARGS_MAP)
                .ok_or(KernelError::Missing(ARGS_MAP))?;
            Some(HashMap::try_from(map).map_err(KernelError::map(ARGS_MAP))?)
        } else {
            None
        };
        let sets = ebpf
            .take_map(SETS_MAP)
            .ok_or(KernelError::Missing(SETS_MAP))?;
        let sets: HashMap<MapData, u64, SyscallSet> =
            HashMap::try_from(sets).map_err(KernelError::map(SETS_MAP))?;
        let filter = Filter(SharedArray::take(&mut ebpf, FILTER_MAP)?);
        let cache = Cache::new(SharedArray::take(&mut ebpf, CACHE_MAP)?, reused_cache);
        let caller_gen = ebpf
            .take_map(CALLER_GEN_MAP)
            .ok_or(KernelError::Missing(CALLER_GEN_MAP))?;
        let caller_gen = Array::try_from(caller_gen).map_err(KernelError::map(CALLER_GEN_MAP))?;
        if fresh_filter {
            // Entries pinned by a version without the filter: count them
            // before anything is attached, or they would be filtered out.
            for id in sets.keys().filter_map(Result::ok) {
                filter.add(id);
            }
        }
        let leaves = ebpf
            .take_map("CGROUP_LEAF")
            .ok_or(KernelError::Missing("CGROUP_LEAF"))?;
        let leaves = HashMap::try_from(leaves).map_err(KernelError::map("CGROUP_LEAF"))?;
        // A map pinned by an earlier run keeps its size.
        let capacity = aya::maps::IterableMap::map(&sets)
            .info()
            .map(|i| i.max_entries())
            .unwrap_or(opts.capacity);
        Ok(Self {
            ebpf,
            sets,
            filter,
            cache,
            leaves,
            capacity,
            pin_dir: opts.pin_dir.clone(),
            sys_enter: None,
            caller_links: Vec::new(),
            caller_gen,
            cgroup_links: Vec::new(),
            args,
        })
    }

    fn link_pin_path(&self, prog: &str) -> Option<PathBuf> {
        self.pin_dir
            .as_ref()
            .map(|d| d.join(format!("link_{prog}")))
    }

    /// Pins `link` in place of the link an earlier run pinned for `prog`
    /// (which is detached only now, so that recording never pauses).
    fn keep(&self, prog: &'static str, link: FdLink) -> Result<Link, KernelError> {
        let Some(path) = self.link_pin_path(prog) else {
            return Ok(Link::Owned(link));
        };
        if path.exists() {
            match PinnedLink::from_pin(&path) {
                Ok(old) => drop(old.unpin()),
                Err(_) => drop(std::fs::remove_file(&path)),
            }
        }
        link.pin(&path)
            .map(Link::Pinned)
            .map_err(|e| KernelError::Pin {
                what: prog,
                path,
                source: Box::new(e),
            })
    }

    fn unkeep(link: Link) {
        match link {
            Link::Owned(l) => drop(l),
            Link::Pinned(p) => drop(p.unpin()),
        }
    }

    /// Attaches the cgroup mkdir/rmdir tracepoints (auto mode and the
    /// removal notices).
    pub fn attach_cgroup_events(&mut self) -> Result<(), KernelError> {
        if !self.cgroup_links.is_empty() {
            return Ok(());
        }
        system::ensure_tracefs()?;
        for name in ["cgroup_mkdir", "cgroup_rmdir"] {
            let wrap = KernelError::program(name);
            let prog: &mut TracePoint = self
                .ebpf
                .program_mut(name)
                .ok_or(KernelError::Missing(name))?
                .try_into()
                .map_err(wrap)?;
            if prog.fd().is_err() {
                prog.load().map_err(wrap)?;
            }
            let id = prog.attach("cgroup", name).map_err(wrap)?;
            let link = prog.take_link(id).map_err(wrap)?;
            // Kernels with BPF links for perf events (5.15+) give an FdLink,
            // which can be pinned; older ones a perf link, which is kept open.
            let link = match FdLink::try_from(link) {
                Ok(fd) => self.keep(name, fd)?,
                Err(_) => {
                    log::warn!("{name}: no BPF link support; auto mode stops with the daemon");
                    continue;
                }
            };
            self.cgroup_links.push(link);
        }
        Ok(())
    }

    /// Sets the container leaf patterns the kernel enrols in auto mode.
    pub fn set_leaf_patterns(&mut self, patterns: &[LeafPattern]) -> Result<(), KernelError> {
        let map = self
            .ebpf
            .map_mut("LEAF_PATTERNS")
            .ok_or(KernelError::Missing("LEAF_PATTERNS"))?;
        let mut arr: Array<&mut MapData, LeafPattern> =
            Array::try_from(map).map_err(KernelError::map("LEAF_PATTERNS"))?;
        for i in 0..MAX_LEAF_PATTERNS {
            let p = patterns
                .get(i as usize)
                .copied()
                .unwrap_or(LeafPattern::EMPTY);
            arr.set(i, p, 0)
                .map_err(KernelError::map("LEAF_PATTERNS"))?;
        }
        Ok(())
    }

    /// The leaf name the kernel saved for cgroup `id` when it enrolled it.
    pub fn leaf(&self, id: u64) -> Option<String> {
        let raw = self.leaves.get(&id, 0).ok()?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        Some(String::from_utf8_lossy(&raw[..end]).into_owned())
    }

    /// Takes the ring buffer of cgroup events (once).
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, KernelError> {
        let map = self
            .ebpf
            .take_map("EVENTS")
            .ok_or(KernelError::Missing("EVENTS"))?;
        RingBuf::try_from(map).map_err(KernelError::map("EVENTS"))
    }

    /// Sums a per-CPU counter of `recorder_common::stat`.
    pub fn stat(&self, index: u32) -> u64 {
        let Some(map) = self.ebpf.map("STATS") else {
            return 0;
        };
        let Ok(arr) = PerCpuArray::<&MapData, u64>::try_from(map) else {
            return 0;
        };
        arr.get(&index, 0).map(|v| v.iter().sum()).unwrap_or(0)
    }

    /// Raw tracepoint program `name`, loaded into the kernel if it was not.
    fn raw_tp(&mut self, name: &'static str) -> Result<&mut RawTracePoint, KernelError> {
        let wrap = KernelError::program(name);
        let prog: &mut RawTracePoint = self
            .ebpf
            .program_mut(name)
            .ok_or(KernelError::Missing(name))?
            .try_into()
            .map_err(wrap)?;
        if prog.fd().is_err() {
            prog.load().map_err(wrap)?;
        }
        Ok(prog)
    }

    /// Attaches program `name` to the raw tracepoint of the same name.
    fn attach_raw_tp(&mut self, name: &'static str) -> Result<FdLink, KernelError> {
        let wrap = KernelError::program(name);
        let prog = self.raw_tp(name)?;
        let id = prog.attach(name).map_err(wrap)?;
        Ok(prog.take_link(id).map_err(wrap)?.into())
    }

    /// Loads and attaches the recorder to raw_syscalls:sys_enter, with the
    /// hooks its per-CPU last-caller entries rely on.
    pub fn attach(&mut self) -> Result<(), KernelError> {
        if self.sys_enter.is_some() {
            return Ok(());
        }
        // The hooks first: from here on every fork and migration bumps the
        // generation. Then one bump for whatever happened while they were
        // detached (entries left by an earlier attachment).
        let mut hooks = Vec::with_capacity(CALLER_HOOKS.len());
        for name in CALLER_HOOKS {
            hooks.push((name, self.attach_raw_tp(name)?));
        }
        // (On an error, dropping `hooks` detaches them.)
        self.next_caller_generation()?;
        let link = self.attach_raw_tp("sys_enter")?;
        self.sys_enter = Some(self.keep("sys_enter", link)?);
        // Pinned only now: pinning replaces the hooks of a run that left its
        // recorder attached, which must outlive that recorder.
        for (name, link) in hooks {
            match self.keep(name, link) {
                Ok(link) => self.caller_links.push(link),
                Err(e) => {
                    // Never leave the recorder running without its hooks
                    // (the rest of `hooks` is dropped, so detached).
                    let _ = self.detach();
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Detaches the recorder; recorded sets stay in the map.
    pub fn detach(&mut self) -> Result<(), KernelError> {
        if let Some(link) = self.sys_enter.take() {
            Self::unkeep(link);
        }
        for link in self.caller_links.drain(..) {
            Self::unkeep(link);
        }
        Ok(())
    }

    /// Detaches everything, pinned links included (a clean shutdown).
    pub fn detach_all(&mut self) {
        let _ = self.detach();
        for link in self.cgroup_links.drain(..) {
            Self::unkeep(link);
        }
    }

    /// Makes every last-caller entry the kernel holds stale: runs the fork
    /// hook once, whose fully ordered bump makes what was written before
    /// visible to any run that reads the new generation.
    fn next_caller_generation(&mut self) -> Result<(), KernelError> {
        self.raw_tp(CALLER_GEN_BUMP)?
            .test_run(RawTracePointRunOptions::new())
            .map_err(KernelError::program(CALLER_GEN_BUMP))?;
        Ok(())
    }

    /// The generation of the kernel's last-caller entries: it grows with
    /// every fork and cgroup migration while the recorder is attached, and
    /// with every [`Self::insert`].
    pub fn caller_generation(&self) -> Result<u64, KernelError> {
        self.caller_gen
            .get(&0, 0)
            .map_err(KernelError::map(CALLER_GEN_MAP))
    }

    /// Whether an earlier run left a pinned recorder link behind.
    pub fn has_pinned_link(&self) -> bool {
        self.link_pin_path("sys_enter").is_some_and(|p| p.exists())
    }

    /// Whether the recorder is attached.
    pub fn attached(&self) -> bool {
        self.sys_enter.is_some()
    }

    /// The map's capacity.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Starts recording cgroup `id` as part of the recording `owner`.
    /// An existing set for `id` is kept (nothing recorded is lost).
    pub fn insert(&mut self, id: u64, owner: u64, phase: u32) -> Result<(), KernelError> {
        let capacity = self.capacity;
        if let Some(args) = &mut self.args {
            insert_new(args, id, ArgSet::EMPTY, ARGS_MAP, capacity)?;
        }
        // Counted before the entry exists, so it is never filtered out; the
        // count is taken back when the entry was there already (the kernel
        // counted it) or could not be made.
        self.filter.add(id);
        let inserted = insert_new(
            &mut self.sets,
            id,
            SyscallSet::new(owner, phase),
            SETS_MAP,
            capacity,
        );
        if !matches!(inserted, Ok(true)) {
            self.filter.sub(id);
        }
        inserted?;
        // The kernel's last-caller entries keep each task's "not recorded"
        // verdict: a new generation makes the tasks already in `id` look
        // again, so their next syscall is recorded. Should that fail, the
        // next fork or cgroup move anywhere on the host does it: a warning,
        // not a failed insert (the entry is in place).
        if let Err(e) = self.next_caller_generation() {
            log::warn!("cgroup {id}: running tasks may go unrecorded until the next fork: {e}");
        }
        Ok(())
    }

    /// The set recorded for cgroup `id`, if it is recorded: its map entry
    /// and its cache slot together.
    pub fn get(&self, id: u64) -> Option<SyscallSet> {
        Some(self.with_cache(id, self.sets.get(&id, 0).ok()?))
    }

    /// `set`, cgroup `id`'s map entry, with what its cache slot recorded.
    fn with_cache(&self, id: u64, mut set: SyscallSet) -> SyscallSet {
        if let Some(cached) = self.cache.get(id) {
            merge(&mut set, &cached);
        }
        set
    }

    /// Stops recording cgroup `id`, returning what was recorded.
    pub fn remove(&mut self, id: u64) -> Option<SyscallSet> {
        // The cache slot first: from here on the kernel records in the map
        // entry, read after.
        let cached = self.cache.release(id);
        let mut set = self.sets.get(&id, 0).ok();
        // Uncounted only after the entry is gone, and only by whoever
        // removed it.
        if self.sets.remove(&id).is_ok() {
            self.filter.sub(id);
        }
        let _ = self.leaves.remove(&id);
        if let (Some(set), Some(cached)) = (&mut set, &cached) {
            merge(set, cached);
        }
        set
    }

    /// Frees the cache slots released long enough ago, for other cgroups
    /// (called regularly by the daemon's kernel task).
    pub fn sweep(&mut self) {
        self.cache.sweep();
    }

    /// How many recorded cgroups have a cache slot.
    pub fn cached(&self) -> usize {
        self.sets
            .keys()
            .filter_map(Result::ok)
            .filter(|&id| self.cache.holds(id))
            .count()
    }

    /// Stops recording the arguments of cgroup `id`, returning what was
    /// recorded (`None` when argument recording is off).
    pub fn remove_args(&mut self, id: u64) -> Option<ArgSet> {
        let args = self.args.as_mut()?;
        let set = args.get(&id, 0).ok();
        let _ = args.remove(&id);
        set
    }

    /// The sum of the filter's counters: [`Self::len`] when no insert or
    /// removal is in flight.
    pub fn filter_count(&self) -> u64 {
        self.filter.total()
    }

    /// How many cgroups are recorded.
    pub fn len(&self) -> usize {
        self.sets.keys().filter(Result::is_ok).count()
    }

    pub fn is_empty(&self) -> bool {
        !self.sets.keys().any(|k| k.is_ok())
    }

    /// Every recorded cgroup and its set.
    pub fn entries(&self) -> Vec<(u64, SyscallSet)> {
        self.sets
            .iter()
            .filter_map(Result::ok)
            .map(|(id, set)| (id, self.with_cache(id, set)))
            .collect()
    }

    /// Run time and run count of every loaded program, from the kernel's
    /// program info (they grow only while BPF statistics are enabled,
    /// `BPF_ENABLE_STATS`, see [`enable_run_time_stats`]), and its
    /// recursion misses, from its fdinfo.
    pub fn program_stats(&self) -> Vec<ProgramStats> {
        use std::os::fd::{AsFd as _, AsRawFd as _};
        self.ebpf
            .programs()
            .filter_map(|(name, prog)| {
                let info = prog.info().ok()?;
                let fd = prog.fd().ok()?.as_fd().as_raw_fd();
                let fdinfo = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"));
                Some(ProgramStats {
                    name: name.to_owned(),
                    run_time_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
                    run_count: info.run_count(),
                    recursion_misses: fdinfo.ok().as_deref().and_then(recursion_misses),
                })
            })
            .collect()
    }

    /// The embedded object, for tools that load it differently (bench).
    pub fn object() -> &'static [u8] {
        OBJECT
    }

    /// The underlying aya object.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }
    /// Map and attach state, for `status` and metrics.
    pub fn info(&self) -> KernelInfo {
        KernelInfo {
            entries: self.len(),
            filter_count: self.filter_count(),
            cached: self.cached(),
            capacity: self.capacity(),
            attached: self.attached(),
            enrolled: self.stat(stat::ENROLLED),
            enrol_failed: self.stat(stat::ENROL_FAILED),
        }
    }

    /// The cgroups of recording `owner` (its root and the sub-cgroups
    /// recorded as part of it), with their sets.
    pub fn owned_by(&self, owner: u64) -> Vec<(u64, SyscallSet)> {
        self.entries()
            .into_iter()
            .filter(|(id, set)| belongs_to(*id, set, owner))
            .collect()
    }

    /// Stops recording every cgroup of recording `owner`, returning what
    /// was recorded.
    pub fn remove_owner(&mut self, owner: u64) -> Vec<SyscallSet> {
        let ids: Vec<u64> = self.owned_by(owner).into_iter().map(|(id, _)| id).collect();
        ids.into_iter().filter_map(|id| self.remove(id)).collect()
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

/// Inserts `value` for `id` unless `id` is there already (BPF_NOEXIST: a
/// value recorded meanwhile, e.g. enrolled by the kernel, is kept). Returns
/// whether it inserted.
fn insert_new<V: aya::Pod>(
    map: &mut HashMap<MapData, u64, V>,
    id: u64,
    value: V,
    name: &'static str,
    capacity: u32,
) -> Result<bool, KernelError> {
    match map.insert(id, value, 1) {
        Ok(()) => Ok(true),
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::EEXIST) => {
            Ok(false)
        }
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::E2BIG) => {
            Err(KernelError::MapFull { capacity })
        }
        Err(e) => Err(KernelError::map(name)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_btf_has_the_cgroup_id_offsets() {
        // Every test machine of this project has kernel BTF.
        let globals = globals(&LoadOptions::default()).unwrap();
        let get = |name| globals.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        assert_eq!(get("CGROUP_ID_WALK"), Some(1));
        assert!(get("TASK_CGROUPS_OFFSET").is_some_and(|v| v > 0));
        assert!(get("CGROUP_KN_OFFSET").is_some_and(|v| v > 0));
    }

    #[test]
    fn reads_recursion_misses_from_fdinfo() {
        let fdinfo = "prog_type:\t17\nrun_cnt:\t0\nrecursion_misses:\t42\nverified_insns:\t9\n";
        assert_eq!(recursion_misses(fdinfo), Some(42));
        assert_eq!(recursion_misses("prog_type:\t17\n"), None);
    }
}

//! [`Kernel`]: loads the embedded object, attaches and detaches its
//! programs (pinning their links when asked), and inserts, reads and
//! removes the recorded sets.

use std::path::PathBuf;

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, RingBuf},
    programs::{
        BtfTracePoint, RawTracePoint, RawTracePointRunOptions, TestRun as _, TracePoint,
        links::{FdLink, PinnedLink},
    },
};
use recorder_common::{
    ArgSet, LEAF_MAX, LeafPattern, MAX_LEAF_PATTERNS, SyscallSet, Workload,
    globals::{AUTO_ENROL, TP_ID_OFF, TP_LEVEL_OFF, TP_PATH_OFF, TP_ROOT_OFF},
    maps, programs, stat,
};

use super::{
    denials::{DenialCount, Denials},
    error::{KernelError, take_map},
    globals::{arg_syscall_numbers, globals},
    options::{KernelInfo, LoadOptions, belongs_to},
    shared::{Cache, Filter, merge},
    stats::ProgramStats,
    tracefs::CgroupTpFormat,
};
use crate::system;

/// The compiled eBPF object, embedded at build time.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/recorder"));

/// The hook run once (`BPF_PROG_TEST_RUN`) to bump the generation from
/// user space.
const CALLER_GEN_BUMP: &str = programs::SCHED_PROCESS_FORK;
/// Programs that keep the last-caller entries of `sys_enter` honest: each
/// bumps the generation (see recorder-ebpf). Attached before `sys_enter`
/// and detached after it.
const CALLER_HOOKS: [&str; 2] = [programs::CGROUP_ATTACH_TASK, CALLER_GEN_BUMP];
/// Programs that note a container's workload starting and exiting
/// (`WORKLOADS`), and end the runtime's init at its exec when no filter
/// load did: attached and detached with `sys_enter`.
const WORKLOAD_HOOKS: [&str; 2] = [programs::SCHED_PROCESS_EXEC, programs::SCHED_PROCESS_EXIT];
/// Maps that outlive the daemon when a pin directory is given. Never
/// `maps::CALLER_GEN`: aya would zero a pinned data section on reuse, and a
/// generation must never go back. A recorder an earlier run left attached
/// keeps its own generation until `attach` replaces it.
const PINNED_MAPS: [&str; 8] = [
    maps::SYSCALL_SETS,
    maps::RECORDED_FILTER,
    maps::SET_CACHE,
    maps::CGROUP_LEAF,
    maps::EVENTS,
    maps::STATS,
    maps::LEAF_PATTERNS,
    maps::WORKLOADS,
];

/// An attached program's link: owned by this process, or pinned in bpffs.
enum Link {
    Owned(FdLink),
    Pinned(PinnedLink),
}

/// The loaded object.
pub struct Kernel {
    ebpf: Ebpf,
    sets: HashMap<MapData, u64, SyscallSet>,
    filter: Filter,
    cache: Cache,
    leaves: HashMap<MapData, u64, [u8; LEAF_MAX]>,
    /// cgroup id → the exec that started its workload, and its exit.
    workloads: HashMap<MapData, u64, Workload>,
    capacity: u32,
    pin_dir: Option<PathBuf>,
    sys_enter: Option<Link>,
    /// Links of [`CALLER_HOOKS`] and [`WORKLOAD_HOOKS`], attached while
    /// `sys_enter` is.
    caller_links: Vec<Link>,
    /// The last-caller generation (one word).
    caller_gen: Array<MapData, u64>,
    cgroup_links: Vec<Link>,
    /// The argument map, when argument recording is on.
    args: Option<HashMap<MapData, u64, ArgSet>>,
    /// Denials under an enforcing profile (`denials.rs`).
    denials: Denials,
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
            .override_global(AUTO_ENROL, &auto, true)
            .map_max_entries(maps::SYSCALL_SETS, opts.capacity)
            .map_max_entries(maps::CGROUP_LEAF, opts.capacity)
            .map_max_entries(maps::WORKLOADS, opts.capacity)
            .map_max_entries(maps::ARG_SETS, opts.capacity);
        let numbers = arg_syscall_numbers();
        if opts.args {
            for (global, nr) in &numbers {
                loader.override_global(global, nr, true);
            }
        }
        if let Some(fmt) = &fmt {
            loader
                .override_global(TP_ROOT_OFF, &fmt.root, true)
                .override_global(TP_ID_OFF, &fmt.id, true)
                .override_global(TP_PATH_OFF, &fmt.path, true)
                .override_global(TP_LEVEL_OFF, &fmt.level, true);
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
        let fresh_filter = !pinned(maps::RECORDED_FILTER);
        let reused_cache = pinned(maps::SET_CACHE);
        let mut ebpf = loader
            .load(OBJECT)
            .map_err(|e| KernelError::Load(Box::new(e)))?;
        let args = if opts.args {
            Some(take_map(&mut ebpf, maps::ARG_SETS)?)
        } else {
            None
        };
        let sets: HashMap<MapData, u64, SyscallSet> = take_map(&mut ebpf, maps::SYSCALL_SETS)?;
        let filter = Filter::take(&mut ebpf)?;
        let cache = Cache::take(&mut ebpf, reused_cache)?;
        let caller_gen = take_map(&mut ebpf, maps::CALLER_GEN)?;
        if fresh_filter {
            // Entries pinned by a version without the filter: count them
            // before anything is attached, or they would be filtered out.
            for id in sets.keys().filter_map(Result::ok) {
                filter.add(id);
            }
        }
        let leaves = take_map(&mut ebpf, maps::CGROUP_LEAF)?;
        let workloads = take_map(&mut ebpf, maps::WORKLOADS)?;
        let denials = Denials::take(&mut ebpf)?;
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
            workloads,
            capacity,
            pin_dir: opts.pin_dir.clone(),
            sys_enter: None,
            caller_links: Vec::new(),
            caller_gen,
            cgroup_links: Vec::new(),
            args,
            denials,
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
                err: Box::new(e),
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
        for name in [programs::CGROUP_MKDIR, programs::CGROUP_RMDIR] {
            let wrap = KernelError::program(name);
            let prog: &mut TracePoint = self.program(name)?;
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
            .map_mut(maps::LEAF_PATTERNS)
            .ok_or(KernelError::Missing(maps::LEAF_PATTERNS))?;
        let mut arr: Array<&mut MapData, LeafPattern> =
            Array::try_from(map).map_err(KernelError::map(maps::LEAF_PATTERNS))?;
        for i in 0..MAX_LEAF_PATTERNS {
            let p = patterns
                .get(i as usize)
                .copied()
                .unwrap_or(LeafPattern::EMPTY);
            arr.set(i, p, 0)
                .map_err(KernelError::map(maps::LEAF_PATTERNS))?;
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
        take_map(&mut self.ebpf, maps::EVENTS)
    }

    /// Sums a per-CPU counter of `recorder_common::stat`.
    pub fn stat(&self, index: u32) -> u64 {
        let Some(map) = self.ebpf.map(maps::STATS) else {
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
        let prog: &mut RawTracePoint = self.program(name)?;
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

    /// Attaches BTF tracepoint program `name` to the tracepoint of the same
    /// name (loaded against the running kernel's BTF first).
    fn attach_btf_tp(&mut self, name: &'static str) -> Result<FdLink, KernelError> {
        let wrap = KernelError::program(name);
        let prog: &mut BtfTracePoint = self.program(name)?;
        if prog.fd().is_err() {
            let btf =
                aya::Btf::from_sys_fs().map_err(|e| wrap(aya::programs::ProgramError::Btf(e)))?;
            prog.load(name, &btf).map_err(wrap)?;
        }
        let id = prog.attach().map_err(wrap)?;
        Ok(prog.take_link(id).map_err(wrap)?.into())
    }

    /// Program `name` of the object, as the program type `P` it must be.
    fn program<'a, P>(&'a mut self, name: &'static str) -> Result<&'a mut P, KernelError>
    where
        &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
    {
        self.ebpf
            .program_mut(name)
            .ok_or(KernelError::Missing(name))?
            .try_into()
            .map_err(KernelError::program(name))
    }

    /// Loads and attaches the recorder to raw_syscalls:sys_enter, with the
    /// hooks its per-CPU last-caller entries rely on and the workload
    /// hooks.
    pub fn attach(&mut self) -> Result<(), KernelError> {
        if self.sys_enter.is_some() {
            return Ok(());
        }
        // The hooks first: from here on every fork and migration bumps the
        // generation. Then one bump for whatever happened while they were
        // detached (entries left by an earlier attachment).
        let mut hooks = Vec::with_capacity(CALLER_HOOKS.len() + WORKLOAD_HOOKS.len());
        for name in CALLER_HOOKS.into_iter().chain(WORKLOAD_HOOKS) {
            hooks.push((name, self.attach_raw_tp(name)?));
        }
        // (On an error, dropping `hooks` detaches them.)
        self.next_caller_generation()?;
        let link = self.attach_btf_tp(programs::SYS_ENTER)?;
        self.sys_enter = Some(self.keep(programs::SYS_ENTER, link)?);
        // Pinned only now: pinning replaces the hooks of a run that left its
        // recorder attached, which must outlive that recorder.
        for (name, link) in hooks {
            match self.keep(name, link) {
                Ok(link) => self.caller_links.push(link),
                Err(e) => {
                    // Never leave the recorder running without its hooks
                    // (the rest of `hooks` is dropped, so detached).
                    _ = self.detach();
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
        _ = self.detach();
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
            .map_err(KernelError::map(maps::CALLER_GEN))
    }

    /// Whether an earlier run left a pinned recorder link behind.
    pub fn has_pinned_link(&self) -> bool {
        self.link_pin_path(programs::SYS_ENTER)
            .is_some_and(|p| p.exists())
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
            insert_new(args, id, ArgSet::EMPTY, maps::ARG_SETS, capacity)?;
        }
        // Counted before the entry exists, so it is never filtered out; the
        // count is taken back when the entry was there already (the kernel
        // counted it) or could not be made.
        self.filter.add(id);
        let inserted = insert_new(
            &mut self.sets,
            id,
            SyscallSet::new(owner, phase),
            maps::SYSCALL_SETS,
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
        // Not every cgroup has a leaf entry, nor a workload.
        _ = self.leaves.remove(&id);
        _ = self.workloads.remove(&id);
        if let (Some(set), Some(cached)) = (&mut set, &cached) {
            merge(set, cached);
        }
        set
    }

    /// The exec that started the workload in cgroup `id`, and its exit,
    /// if the kernel saw one (see `recorder_common::FLAG_WORKLOAD_STARTED`).
    pub fn workload(&self, id: u64) -> Option<Workload> {
        self.workloads.get(&id, 0).ok()
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
        // No entry when nothing was recorded: nothing to remove.
        _ = args.remove(&id);
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
        self.ebpf
            .programs()
            .filter_map(|(name, prog)| ProgramStats::read(name, prog))
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

    /// Watches exactly the recordings `owners` for denials (an enforcing
    /// profile): the denial programs are attached while one is watched.
    pub fn watch_denials(&mut self, owners: &[u64]) -> Result<(), KernelError> {
        self.denials.watch(&mut self.ebpf, owners)
    }

    /// Stops watching recording `owner` for denials, dropping its counts.
    pub fn forget_denials(&mut self, owner: u64) {
        self.denials.forget(owner);
    }

    /// Whether the denial programs are attached.
    pub fn denials_attached(&self) -> bool {
        self.denials.attached()
    }

    /// The denial counts of the watched recordings.
    pub fn denials(&self) -> Vec<DenialCount> {
        self.denials.counts()
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
        self.denials.forget(owner);
        let ids: Vec<u64> = self.owned_by(owner).into_iter().map(|(id, _)| id).collect();
        ids.into_iter().filter_map(|id| self.remove(id)).collect()
    }
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

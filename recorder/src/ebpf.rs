//! The loaded eBPF object: programs, links and maps. One owner (the
//! `record` command, or the daemon's kernel task) holds a [`Kernel`] and
//! is the only one that touches it.

use std::path::{Path, PathBuf};

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, MapError},
    programs::{RawTracePoint, raw_trace_point::RawTracePointLinkId},
};
use recorder_common::{ArgSet, SyscallSet};

use crate::{btf, system};

/// The compiled eBPF object, embedded at build time.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/recorder"));

/// Name of the per-cgroup syscall set map.
pub const SETS_MAP: &str = "SYSCALL_SETS";
/// Name of the per-cgroup argument value map (opt-in `--args`).
pub const ARGS_MAP: &str = "ARG_SETS";

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
}

impl KernelError {
    fn map(map: &'static str) -> impl FnOnce(MapError) -> Self {
        move |source| Self::Map {
            map,
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
            args: false,
        }
    }
}

/// The compat offset to pass to the program: the offset of
/// `task_struct.thread_info.status`, or 0 when compat detection is off.
fn compat_offset(opts: &LoadOptions) -> Result<u32, KernelError> {
    // Read BTF even when compat detection is off: it validates --btf, and a
    // kernel without BTF is one we have not tested against.
    let btf = btf::Btf::read(&opts.btf)?;
    if !opts.compat || !cfg!(target_arch = "x86_64") {
        return Ok(0);
    }
    Ok(btf.member_offset("task_struct", &["thread_info", "status"])?)
}

/// The loaded object.
pub struct Kernel {
    ebpf: Ebpf,
    sets: HashMap<MapData, u64, SyscallSet>,
    capacity: u32,
    sys_enter: Option<RawTracePointLinkId>,
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
        let compat_off = compat_offset(opts)?;
        let numbers = arg_syscall_numbers();
        let mut loader = EbpfLoader::new();
        loader
            .override_global("COMPAT_STATUS_OFFSET", &compat_off, true)
            .map_max_entries(SETS_MAP, opts.capacity)
            .map_max_entries(ARGS_MAP, opts.capacity);
        if opts.args {
            for (global, nr) in &numbers {
                loader.override_global(global, nr, true);
            }
        }
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
        let map = ebpf
            .take_map(SETS_MAP)
            .ok_or(KernelError::Missing(SETS_MAP))?;
        let sets = HashMap::try_from(map).map_err(KernelError::map(SETS_MAP))?;
        Ok(Self {
            ebpf,
            sets,
            capacity: opts.capacity,
            sys_enter: None,
            args,
        })
    }

    fn raw_tp(&mut self, name: &'static str) -> Result<&mut RawTracePoint, KernelError> {
        let prog: &mut RawTracePoint = self
            .ebpf
            .program_mut(name)
            .ok_or(KernelError::Missing(name))?
            .try_into()
            .map_err(|e| KernelError::Program {
                name,
                source: Box::new(e),
            })?;
        Ok(prog)
    }

    /// Loads and attaches the recorder to raw_syscalls:sys_enter.
    pub fn attach(&mut self) -> Result<(), KernelError> {
        if self.sys_enter.is_some() {
            return Ok(());
        }
        let wrap = |source| KernelError::Program {
            name: "sys_enter",
            source: Box::new(source),
        };
        let prog = self.raw_tp("sys_enter")?;
        if prog.fd().is_err() {
            prog.load().map_err(wrap)?;
        }
        let link = prog.attach("sys_enter").map_err(wrap)?;
        self.sys_enter = Some(link);
        Ok(())
    }

    /// Detaches the recorder; recorded sets stay in the map.
    pub fn detach(&mut self) -> Result<(), KernelError> {
        if let Some(link) = self.sys_enter.take() {
            self.raw_tp("sys_enter")?
                .detach(link)
                .map_err(|source| KernelError::Program {
                    name: "sys_enter",
                    source: Box::new(source),
                })?;
        }
        Ok(())
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
        if let Some(args) = &mut self.args {
            // BPF_NOEXIST: values already recorded are kept.
            match args.insert(id, ArgSet::EMPTY, 1) {
                Ok(()) => {}
                Err(MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::EEXIST) => {}
                Err(MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::E2BIG) =>
                {
                    return Err(KernelError::MapFull {
                        capacity: self.capacity,
                    });
                }
                Err(e) => return Err(KernelError::map(ARGS_MAP)(e)),
            }
        }
        if self.sets.get(&id, 0).is_ok() {
            return Ok(());
        }
        let set = SyscallSet::new(owner, phase);
        // BPF_NOEXIST: a set the kernel enrolled meanwhile is kept.
        match self.sets.insert(id, set, 1) {
            Ok(()) => Ok(()),
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::EEXIST) => {
                Ok(())
            }
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::E2BIG) => {
                Err(KernelError::MapFull {
                    capacity: self.capacity,
                })
            }
            Err(e) => Err(KernelError::map(SETS_MAP)(e)),
        }
    }

    /// The set recorded for cgroup `id`, if it is recorded.
    pub fn get(&self, id: u64) -> Option<SyscallSet> {
        self.sets.get(&id, 0).ok()
    }

    /// Stops recording cgroup `id`, returning what was recorded.
    pub fn remove(&mut self, id: u64) -> Option<SyscallSet> {
        let set = self.get(id);
        let _ = self.sets.remove(&id);
        set
    }

    /// Stops recording the arguments of cgroup `id`, returning what was
    /// recorded (`None` when argument recording is off).
    pub fn remove_args(&mut self, id: u64) -> Option<ArgSet> {
        let args = self.args.as_mut()?;
        let set = args.get(&id, 0).ok();
        let _ = args.remove(&id);
        set
    }

    /// Every recorded cgroup and its set.
    pub fn entries(&self) -> Vec<(u64, SyscallSet)> {
        self.sets.iter().filter_map(Result::ok).collect()
    }

    /// The embedded object, for tools that load it differently (bench).
    pub fn object() -> &'static [u8] {
        OBJECT
    }

    /// The underlying aya object.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }
}

/// The default BTF path.
pub fn default_btf() -> &'static Path {
    Path::new(btf::VMLINUX)
}

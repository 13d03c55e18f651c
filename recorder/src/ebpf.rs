//! The loaded eBPF object: programs, links and maps. One owner (the
//! `record` command, or the daemon's kernel task) holds a [`Kernel`] and
//! is the only one that touches it.

use std::path::{Path, PathBuf};

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, MapError},
    programs::{RawTracePoint, raw_trace_point::RawTracePointLinkId},
};
use recorder_common::SyscallSet;

use crate::{btf, system};

/// The compiled eBPF object, embedded at build time.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/recorder"));

/// Name of the per-cgroup syscall set map.
pub const SETS_MAP: &str = "SYSCALL_SETS";

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
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            capacity: 1024,
            btf: PathBuf::from(btf::VMLINUX),
            compat: true,
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

/// The loaded object.
pub struct Kernel {
    ebpf: Ebpf,
    sets: HashMap<MapData, u64, SyscallSet>,
    capacity: u32,
    sys_enter: Option<RawTracePointLinkId>,
}

impl Kernel {
    /// Checks privileges and BTF, then loads the object. Nothing is attached
    /// yet.
    pub fn load(opts: &LoadOptions) -> Result<Self, KernelError> {
        system::check_privileges()?;
        let globals = globals(opts)?;
        let mut loader = EbpfLoader::new();
        for (name, value) in &globals {
            loader.override_global(name, value, true);
        }
        let mut ebpf = loader
            .map_max_entries(SETS_MAP, opts.capacity)
            .load(OBJECT)
            .map_err(|e| KernelError::Load(Box::new(e)))?;
        let map = ebpf
            .take_map(SETS_MAP)
            .ok_or(KernelError::Missing(SETS_MAP))?;
        let sets = HashMap::try_from(map).map_err(KernelError::map(SETS_MAP))?;
        Ok(Self {
            ebpf,
            sets,
            capacity: opts.capacity,
            sys_enter: None,
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
}

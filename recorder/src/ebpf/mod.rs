//! The loaded eBPF object: programs, links and maps. One owner (the
//! `record` command, or the daemon's kernel task) holds a [`Kernel`] and
//! is the only one that touches it.
//!
//! * `kernel`: [`Kernel`], loading, attaching, and the recorded sets;
//! * `shared`: the two arrays user space maps and updates with atomics;
//! * `globals`: the read-only globals set at load time, from BTF;
//! * `tracefs`: the `cgroup_mkdir` record layout, from tracefs;
//! * `stats`: the kernel's per-program run statistics.
//!
//! The names of maps, programs and globals are `recorder_common::{maps,
//! programs, globals}`.

mod globals;
mod kernel;
mod shared;
mod stats;
mod tracefs;

use std::path::PathBuf;

use aya::maps::MapError;
use recorder_common::SyscallSet;

pub use globals::globals;
pub use kernel::Kernel;
pub use stats::{ProgramStats, enable_run_time_stats};
pub use tracefs::CgroupTpFormat;

use crate::{btf, system};

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(transparent)]
    System(#[from] system::SystemError),
    #[error(transparent)]
    Btf(#[from] btf::BtfError),
    #[error("loading the eBPF object failed: {0}")]
    Load(Box<aya::EbpfError>),
    #[error("eBPF program {name}: {err}")]
    Program {
        name: &'static str,
        err: Box<aya::programs::ProgramError>,
    },
    #[error("cannot pin {what} at {path}: {err}")]
    Pin {
        what: &'static str,
        path: PathBuf,
        err: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot read the tracepoint format {path}: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("eBPF object has no {0}")]
    Missing(&'static str),
    #[error("map {map}: {err}")]
    Map {
        map: &'static str,
        err: Box<MapError>,
    },
    #[error(
        "the recording map is full ({capacity} cgroups); stop some recordings or raise the capacity"
    )]
    MapFull { capacity: u32 },
    #[error("cannot enable BPF run-time statistics (BPF_ENABLE_STATS): {0}")]
    Stats(Box<aya::sys::SyscallError>),
    #[error("cannot mmap the {map} map: {err}")]
    Mmap {
        map: &'static str,
        err: std::io::Error,
    },
}

impl KernelError {
    fn map(map: &'static str) -> impl FnOnce(MapError) -> Self {
        move |source| Self::Map {
            map,
            err: Box::new(source),
        }
    }

    fn program(name: &'static str) -> impl Fn(aya::programs::ProgramError) -> Self + Copy {
        move |source| Self::Program {
            name,
            err: Box::new(source),
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

/// Takes map `name` out of `ebpf` as a `T`.
fn take_map<T>(ebpf: &mut aya::Ebpf, name: &'static str) -> Result<T, KernelError>
where
    T: TryFrom<aya::maps::Map, Error = MapError>,
{
    let map = ebpf.take_map(name).ok_or(KernelError::Missing(name))?;
    T::try_from(map).map_err(KernelError::map(name))
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

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use recorder_common::{
        globals::{AUTO_ENROL, TP_ID_OFF, TP_PATH_OFF, TP_ROOT_OFF},
        maps, programs,
    };

    use super::*;

    fn object() -> aya_obj::Object {
        aya_obj::Object::parse(Kernel::object()).unwrap()
    }

    /// Every map of the object has a name in `recorder_common::maps`, and
    /// every name there is a map of the object (on the eBPF side a map's
    /// name is its static's identifier, or a data section's name). The
    /// object's `.rodata`, the globals, is checked by the next test.
    #[test]
    fn map_names_are_the_objects() {
        let obj = object();
        let object: BTreeSet<&str> = obj
            .maps
            .keys()
            .map(String::as_str)
            .filter(|&name| name != ".rodata")
            .collect();
        assert_eq!(object, BTreeSet::from(maps::ALL));
    }

    /// The same for the programs (named after their functions).
    #[test]
    fn program_names_are_the_objects() {
        let obj = object();
        let object: BTreeSet<&str> = obj.programs.keys().map(String::as_str).collect();
        assert_eq!(object, BTreeSet::from(programs::ALL));
    }

    /// Every global `Kernel::load` may set is in the object, with the size
    /// of the value it is given (`patch_map_data` is what aya's loader
    /// does with `override_global(.., must_exist = true)`).
    #[test]
    fn global_names_and_sizes_are_the_objects() {
        let mut values: Vec<(&str, Vec<u8>)> = Vec::new();
        for (name, value) in globals(&LoadOptions::default()).unwrap() {
            values.push((name, value.to_ne_bytes().to_vec()));
        }
        for (name, value) in globals::arg_syscall_numbers() {
            values.push((name, value.to_ne_bytes().to_vec()));
        }
        // `AUTO_ENROL` and the `CgroupTpFormat` offsets.
        for name in [AUTO_ENROL, TP_ROOT_OFF, TP_ID_OFF, TP_PATH_OFF] {
            values.push((name, 0u32.to_ne_bytes().to_vec()));
        }
        let patch: HashMap<&str, (&[u8], bool)> = values
            .iter()
            .map(|(name, value)| (*name, (value.as_slice(), true)))
            .collect();
        assert_eq!(patch.len(), 14, "a global named twice");
        object().patch_map_data(patch).unwrap();
    }
}

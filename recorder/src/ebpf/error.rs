//! What can go wrong on the kernel side: `KernelError`, and taking a map
//! out of the loaded object.

use std::path::PathBuf;

use aya::maps::MapError;

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
    pub(super) fn map(map: &'static str) -> impl FnOnce(MapError) -> Self {
        move |source| Self::Map {
            map,
            err: Box::new(source),
        }
    }

    pub(super) fn program(
        name: &'static str,
    ) -> impl Fn(aya::programs::ProgramError) -> Self + Copy {
        move |source| Self::Program {
            name,
            err: Box::new(source),
        }
    }
}

/// Takes map `name` out of `ebpf` as a `T`.
pub(super) fn take_map<T>(ebpf: &mut aya::Ebpf, name: &'static str) -> Result<T, KernelError>
where
    T: TryFrom<aya::maps::Map, Error = MapError>,
{
    let map = ebpf.take_map(name).ok_or(KernelError::Missing(name))?;
    T::try_from(map).map_err(KernelError::map(name))
}

//! What can stop recorderd from starting or serving: `DaemonError`.

use std::path::{Path, PathBuf};

use crate::{cgroup::CgroupError, container::ContainerError, ebpf::KernelError};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    System(#[from] crate::system::SystemError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error("cannot set up {path}")]
    Setup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot create the recording maps for capacity {capacity} (about {mib} MiB of locked kernel memory): {reason}; lower `capacity`"
    )]
    Capacity {
        capacity: u32,
        mib: u64,
        reason: String,
    },
    #[error("socket group '{0}' does not exist")]
    NoGroup(String),
    #[error("the kernel task stopped")]
    KernelGone,
    #[error("a blocking task failed: {0}")]
    Blocking(String),
}

pub(super) fn setup_err(path: &Path) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |source| DaemonError::Setup {
        path: path.to_owned(),
        source,
    }
}

//! Seccomp profiles in the docker/moby JSON format (which podman, CRI-O and
//! containerd also read): the model, built from recorded syscall sets,
//! merged, checked, compared, and written atomically or in other formats.
//!
//! * `seccomp`: libseccomp's names (actions, operators, architectures),
//!   errno names, [`DefaultAction`];
//! * `model`: [`Profile`] and its rules, JSON in and out;
//! * `recorded`: [`Recorded`], the named kernel sets, and
//!   [`Profile::from_recorded`];
//! * `ops`: merge, normalise, what a profile allows;
//! * `carry`: [`Policy`], the recording-time seccomp policy, and the
//!   answers of it a profile carries over;
//! * `fallback`: the newer syscalls libc falls back from on ENOSYS, for
//!   `check` and for the builder and `merge`, which answer them ENOSYS;
//! * `build`: [`build()`], the one pipeline from a recording's kernel sets to
//!   its profile;
//! * [`mod@format`]: the other output formats; [`check`]: `recorderctl check`;
//!   [`diff`]: `recorderctl diff`; [`commands`]: the bodies of
//!   `recorderctl convert/merge/diff/check`.

use std::{
    io,
    path::{Path, PathBuf},
};

mod build;
mod carry;
pub mod check;
pub mod diff;
pub mod drift;
mod fallback;
pub mod format;
mod model;
mod ops;
mod recorded;
mod seccomp;

pub use build::{Built, Inputs, build};
pub use carry::{CARRIED_COMMENT, ENOSYS, NEWER_COMMENT, Policy};
pub use fallback::{FALLBACK_COMMENT, FALLBACKS};
pub use model::{ArchMap, ArgRule, Filter, Profile, SyscallRule};
pub use recorded::{Recorded, runc_floor};
pub use seccomp::{
    ACT_ALLOW, ACT_ERRNO, ACT_KILL, ACT_KILL_PROCESS, ACT_KILL_THREAD, ACT_LOG, ACT_NOTIFY,
    ACT_TRACE, ACT_TRAP, ACTIONS, DefaultAction, EPERM, FILTER_ARCHES, OPS, SCMP_ARCHES,
    errno_number, host_filter_arch,
};

/// Errors of reading and writing profiles.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profile {path}: {err}")]
    Read { path: PathBuf, err: io::Error },
    #[error("malformed profile {path}: line {line}, column {column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("cannot write profile {path}: {err}")]
    Write { path: PathBuf, err: io::Error },
    #[error("refusing to write profile to {path}: {reason}")]
    UnsafePath { path: PathBuf, reason: &'static str },
}

impl From<crate::atomic_file::WriteError> for ProfileError {
    fn from(e: crate::atomic_file::WriteError) -> Self {
        use crate::atomic_file::WriteError;
        match e {
            WriteError::Io { path, err: source } => Self::Write { path, err: source },
            WriteError::NoFileName { path } => Self::UnsafePath {
                path,
                reason: "it has no file name",
            },
        }
    }
}

/// Writes a profile's text (in any format) to `path` atomically
/// ([`crate::atomic_file::write`]).
pub fn write(path: &Path, text: &str) -> Result<(), ProfileError> {
    Ok(crate::atomic_file::write(path, text.as_bytes())?)
}

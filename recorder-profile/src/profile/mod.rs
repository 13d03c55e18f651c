//! Seccomp profiles in the docker/moby JSON format (which podman, CRI-O and
//! containerd also read): the model, built from recorded syscall sets,
//! merged, checked, compared, and written atomically or in other formats.
//!
//! * `error`: [`ProfileError`] and [`write()`], a profile's text written
//!   atomically;
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
//!   [`diff`]: `recorderctl diff` (the bodies of `recorderctl
//!   convert/merge/diff/check` are `recorder::profile_commands`);
//!   [`limits`]: what runtimes accept of a profile from a registry.

mod build;
mod carry;
pub mod check;
pub mod diff;
pub mod drift;
mod error;
mod fallback;
pub mod format;
pub mod limits;
mod model;
mod ops;
mod recorded;
mod seccomp;

pub use build::{Built, Inputs, build};
pub use carry::{CARRIED_COMMENT, ENOSYS, NEWER_COMMENT, Policy};
pub use error::{ProfileError, write};
pub use fallback::{FALLBACK_COMMENT, FALLBACKS};
pub use model::{ArchMap, ArgRule, Filter, Profile, SyscallRule};
pub use recorded::{RUNC_AFTER_FILTER, Recorded, runc_floor};
pub use seccomp::{
    ACT_ALLOW, ACT_ERRNO, ACT_KILL, ACT_KILL_PROCESS, ACT_KILL_THREAD, ACT_LOG, ACT_NOTIFY,
    ACT_TRACE, ACT_TRAP, ACTIONS, DefaultAction, EPERM, FILTER_ARCHES, OPS, SCMP_ARCHES,
    errno_number, host_filter_arch,
};

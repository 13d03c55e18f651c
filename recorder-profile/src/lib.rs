//! recorder's seccomp profiles, host-free: the docker/moby JSON model, built
//! from recorded syscall sets, merged, checked, compared and rendered
//! ([`profile`]); the syscall tables ([`syscalls`]); atomic file
//! replacement ([`atomic_file`]). Nothing here loads eBPF: the crate builds
//! and tests on stable, without root, and is what the `profile` fuzz target
//! links. The `recorder` crate re-exports the three modules under the same
//! paths.
//!
//! See docs/ARCHITECTURE.md for the map of the code.

pub mod atomic_file;
pub mod profile;
pub mod syscalls;

/// The version of recorder, written into generated profiles (the workspace
/// version, the same as `recorder::VERSION`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

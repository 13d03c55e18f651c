//! recorder: records what containers really call, with eBPF, and writes
//! least-privilege seccomp profiles.
//!
//! See docs/ARCHITECTURE.md for the map of the code.

pub mod btf;
pub mod cgroup;
pub mod cli;
pub mod client;
pub mod config;
pub mod conn_slots;
pub mod container;
pub mod containerd;
pub mod daemon;
pub mod docker_api;
pub mod ebpf;
pub mod errfmt;
pub mod escape;
pub mod hook;
pub mod images;
pub mod index;
pub mod metrics;
pub mod names;
pub mod policy;
pub mod profile_commands;
pub mod record;
pub mod registry;
pub mod registry_commands;
pub mod scope;
pub mod system;
pub mod table;
pub mod timefmt;

// The profile code is a crate of its own (host-free: no eBPF build), kept
// at its old paths: `recorder::profile`, `crate::syscalls`, ...
pub use recorder_api::control;
pub use recorder_profile::{atomic_file, profile, syscalls};

/// The version of recorder, recorderd and recorderctl.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

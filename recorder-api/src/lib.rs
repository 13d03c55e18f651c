//! What recorderd and recorderctl say to each other: the control protocol
//! ([`control`]: versioned JSON lines over a Unix socket) and the records
//! it carries: what is known of a container ([`container`]), a written
//! profile ([`entry`]), a chosen profile ([`chosen`]) and an image profile
//! ([`image`]). Host-free: it builds without the eBPF side, and the
//! `control` fuzz target links it alone. The `recorder` crate re-exports
//! each under its old path (`recorder::control`, `recorder::container`,
//! `recorder::index::Entry`, `recorder::policy::ChosenProfile`,
//! `recorder::images::ImageInfo`).
//!
//! See docs/ARCHITECTURE.md for the map of the code.

pub mod chosen;
pub mod container;
pub mod control;
pub mod entry;
pub mod image;

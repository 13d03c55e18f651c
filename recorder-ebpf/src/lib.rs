//! Host-side stub: the programs live in `main.rs` and its modules, and are
//! built for the BPF target only. This crate is a build-dependency of
//! `recorder` so that cargo rebuilds the object when the programs change.
#![no_std]

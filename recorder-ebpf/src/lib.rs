//! Host-side stub: the programs live in `main.rs` and its modules, and are
//! built for the BPF target only, by `recorder/build.rs` (aya-build, which
//! also tells cargo to rebuild the object when this package changes).
#![no_std]

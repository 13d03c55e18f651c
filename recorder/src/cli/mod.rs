//! The command lines of the binaries. They live in the library so that the
//! binaries stay thin and so that man pages and shell completions can be
//! generated from the same clap `Command`s (`cargo xtask docs`).

pub mod ctl;
pub mod daemon;

//! The command lines of the binaries, and nothing else: clap definitions.
//! They live in the library so that the binaries stay thin and so that man
//! pages and shell completions can be generated from the same clap
//! `Command`s (`cargo xtask docs`).
//!
//! * [`recorderctl`] and [`recorderd`]: the two binaries' `Cli`s;
//! * [`client`]: recorderctl's commands that talk to recorderd;
//! * [`profile`]: recorderctl's profile commands, and the output options of
//!   every command that writes a profile.

pub mod client;
pub mod profile;
pub mod recorderctl;
pub mod recorderd;

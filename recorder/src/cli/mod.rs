//! The command lines of the binaries, and nothing else: clap definitions.
//! They live in the library so that the binaries stay thin and so that man
//! pages and shell completions can be generated from the same clap
//! `Command`s (`cargo xtask docs`).
//!
//! * [`recorderctl`], [`recorderd`] and [`hook`] (recorder-oci-hook): the
//!   binaries' `Cli`s, all three with man pages ([`man_pages`]);
//! * [`client`]: recorderctl's commands that talk to recorderd;
//! * [`profile`]: recorderctl's profile commands, and the output options of
//!   every command that writes a profile;
//! * [`registry`]: `publish`, `pull` and `images --registry`, through an
//!   OCI registry;
//! * [`output`]: `-o/--output FORMAT` (a report's format) and `--out FILE`
//!   (a profile's destination), one meaning each on every command.

pub mod client;
pub mod hook;
pub mod output;
pub mod profile;
pub mod recorderctl;
pub mod recorderd;
pub mod registry;

/// The commands that get man pages (`cargo xtask docs`), one per binary.
pub fn man_pages() -> [clap::Command; 3] {
    use clap::CommandFactory as _;
    [
        recorderctl::command(),
        recorderd::Cli::command(),
        hook::Cli::command(),
    ]
}

/// The commands that get shell completions (the hook is run by runtimes,
/// not typed).
pub fn completions() -> [clap::Command; 2] {
    use clap::CommandFactory as _;
    [recorderctl::command(), recorderd::Cli::command()]
}

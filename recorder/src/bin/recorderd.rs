//! recorderd: the recorder daemon (not written yet; its command line is
//! `recorder::cli::daemon::Cli`).
use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let _cli = recorder::cli::daemon::Cli::parse();
    eprintln!("recorderd: not implemented yet");
    std::process::ExitCode::FAILURE
}

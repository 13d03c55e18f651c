//! Developer and install tasks: `cargo xtask <task>`.
use clap::{Parser, Subcommand};

mod bench;
mod docs;
mod install;
mod setup;
mod test;

#[derive(Parser)]
#[command(name = "xtask", about = "recorder's build, test, bench and install tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install whatever is missing to build and test (idempotent).
    Setup(setup::Args),
    /// Set up, build, and run the whole test suite.
    Test(test::Args),
    /// Set up, build, and run recorderctl with the given arguments.
    Run(setup::RunArgs),
    /// Measure the recorder's overhead against the empty-program floor.
    Bench(bench::Args),
    /// Generate man pages and shell completions into target/.
    Docs(docs::Args),
    /// Install binaries, unit, config, man pages and completions.
    Install(install::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Setup(a) => setup::run(&a),
        Task::Test(a) => test::run(&a),
        Task::Run(a) => setup::run_recorderctl(&a),
        Task::Bench(a) => bench::run(&a),
        Task::Docs(a) => docs::run(&a),
        Task::Install(a) => install::run(&a),
    }
}

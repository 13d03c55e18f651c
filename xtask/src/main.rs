//! Developer and install tasks: `cargo xtask <task>`.
use std::{
    env,
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

mod audit;
#[cfg(feature = "bench")]
mod bench;
mod deb;
mod docs;
mod fuzz;
mod hook_bats;
mod image;
mod install;
#[cfg(test)]
mod layers;
mod plan;
mod setup;
mod test;

#[derive(Parser)]
#[command(
    name = "xtask",
    about = "recorder's build, test, bench and install tasks"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install whatever is missing to build and test (idempotent); with
    /// `--for TASK`, only what that task needs.
    Setup(setup::SetupArgs),
    /// Set up, build, and run the whole test suite.
    Test(test::Args),
    /// Set up, build, and run recorderctl with the given arguments.
    Run(setup::RunArgs),
    /// Measure the recorder's overhead against the empty-program floor
    /// (`cargo xtask bench --help` for its options).
    #[command(disable_help_flag = true)]
    Bench(BenchArgs),
    /// Fuzz the profile parser and the control protocol (cargo-fuzz,
    /// libFuzzer), each for a bounded time; fails on a crash.
    Fuzz(fuzz::Args),
    /// Audit both lockfiles against the local snapshot of the RustSec
    /// advisory database ($RECORDER_ADVISORY_DB or ../shared/advisory-db).
    Audit(audit::Args),
    /// Generate man pages and shell completions into target/docs.
    Docs(docs::Args),
    /// Install binaries, unit, config, man pages and completions.
    Install(install::Args),
    /// Run the original oci-seccomp-bpf-hook's test suite (Debian's source
    /// package) against recorder-oci-hook.
    HookBats(hook_bats::Args),
    /// Build the container image (static binaries, FROM scratch) offline,
    /// and its archive under target/image/.
    Image(image::Args),
    /// Build the Debian package target/debian/recorder_<version>_<arch>.deb.
    Deb(deb::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Setup(a) => setup::run(&a),
        Task::Test(a) => test::run(&a),
        Task::Run(a) => setup::run_recorderctl(&a),
        Task::Bench(a) => run_bench(&a),
        Task::Fuzz(a) => fuzz::run(&a),
        Task::Audit(a) => audit::run(&a),
        Task::Docs(a) => docs::run(&a),
        Task::Install(a) => install::run(&a),
        Task::HookBats(a) => hook_bats::run(&a),
        Task::Image(a) => image::run(&a),
        Task::Deb(a) => deb::run(&a),
    }
}

/// `cargo xtask bench ARGS`: the bench's own options, parsed by the bench.
#[derive(clap::Args)]
struct BenchArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// With the `bench` feature, runs the bench; without it (a plain
/// `cargo xtask`, which must build on a fresh machine before setup has
/// installed bpf-linker), sets up and re-runs xtask with the feature.
fn run_bench(a: &BenchArgs) -> anyhow::Result<()> {
    #[cfg(feature = "bench")]
    {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        #[command(name = "cargo xtask bench")]
        struct Bench {
            #[command(flatten)]
            args: bench::Args,
        }
        let parsed =
            Bench::parse_from(std::iter::once("bench".to_owned()).chain(a.args.iter().cloned()));
        bench::run(&parsed.args)
    }
    #[cfg(not(feature = "bench"))]
    {
        setup::setup_for(plan::Goal::Run, &setup::Args::default())?;
        let status = bench_command()
            .args(&a.args)
            .status()
            .context("running the bench")?;
        if !status.success() {
            bail!("the bench failed: {status}");
        }
        Ok(())
    }
}

/// `cargo run` of this xtask with the `bench` feature, up to `bench`.
pub(crate) fn bench_command() -> Command {
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--quiet",
        "--release",
        "--package",
        "xtask",
        "--features",
        "bench",
        "--",
        "bench",
    ]);
    cmd
}

/// The workspace root (xtask lives one level below it).
pub(crate) fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_owned()
}

/// The cargo target directory: $CARGO_TARGET_DIR or <root>/target.
pub(crate) fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}

/// The cargo that runs us (so that `cargo +toolchain xtask` stays on it).
pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Whether we run as root.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Prints a step heading.
pub(crate) fn step(what: &str) {
    eprintln!("==> {what}");
}

/// Describes a command the way a shell user would type it.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut words = vec![quote(cmd.get_program())];
    words.extend(cmd.get_args().map(quote));
    let envs: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), quote(v?))))
        .collect();
    if envs.is_empty() {
        words.join(" ")
    } else {
        format!("{} {}", envs.join(" "), words.join(" "))
    }
}

/// Quotes a word for a POSIX shell if it needs it.
fn quote(word: &OsStr) -> String {
    let w = word.to_string_lossy();
    let plain = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./=:,+@%".contains(c));
    if plain {
        w.into_owned()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// Runs a command with inherited stdio, echoing it first.
pub(crate) fn status(cmd: &mut Command) -> anyhow::Result<ExitStatus> {
    eprintln!("$ {}", describe(cmd));
    cmd.status()
        .with_context(|| format!("cannot run {}", cmd.get_program().to_string_lossy()))
}

/// Runs a command and fails unless it succeeds.
pub(crate) fn run_ok(cmd: &mut Command) -> anyhow::Result<()> {
    let st = status(cmd)?;
    if !st.success() {
        bail!("`{}` failed ({st})", describe(cmd));
    }
    Ok(())
}

/// Runs a command quietly and returns its stdout if it succeeds.
pub(crate) fn output<I, S>(program: &str, args: I) -> Option<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `git -C <workspace root> ARGS`: its trimmed stdout if it succeeds (None
/// outside a git checkout).
pub(crate) fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(workspace_root())
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_commands_as_a_shell_would_read_them() {
        let mut cmd = Command::new("recorderctl");
        cmd.args(["record", "--", "sh", "-c", "ls / > /dev/null", "it's"])
            .env("LLVM_PREFIX", "/a b");
        assert_eq!(
            describe(&cmd),
            r#"LLVM_PREFIX='/a b' recorderctl record -- sh -c 'ls / > /dev/null' 'it'\''s'"#
        );
    }
}

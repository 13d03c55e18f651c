//! recorder-oci-hook: an OCI prestart hook that records a container's
//! syscalls into a seccomp profile, a drop-in for oci-seccomp-bpf-hook.
//! See recorder::hook and docs/runtimes.md.
use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::Parser;
use recorder::{
    cgroup::Hierarchy,
    hook::{self, ANNOTATION, HookError, Spec, State},
};

#[derive(Parser, Debug)]
#[command(
    name = "recorder-oci-hook",
    version,
    about = "OCI prestart hook: records the container's syscalls into the profile named by the io.containers.trace-syscall annotation (of:/out.json or if:/in.json;of:/out.json)"
)]
struct Cli {
    /// recorderd's control socket; without a running recorderd the hook
    /// records on its own in a detached process.
    #[arg(long, value_name = "PATH", default_value = recorder::config::DEFAULT_SOCKET, env = "RECORDER_SOCKET")]
    socket: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("recorder-oci-hook: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let state = State::read(std::io::stdin().lock())?;
    let value = state
        .annotations
        .get(ANNOTATION)
        .ok_or(HookError::NoAnnotation)?;
    let spec = Spec::parse(value)?;
    let base = spec.prepare()?;
    let policy = state.policy();
    let hierarchy = Hierarchy::detect()?;
    let cgroup = hierarchy
        .cgroup_of_pid(state.pid)
        .with_context(|| format!("container {}", state.id))?;

    // The daemon first (a runtime with one thread, ended before any fork).
    let handed = {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        rt.block_on(hook::hand_to_daemon(
            &cli.socket,
            &cgroup,
            base.clone(),
            &spec.output,
            policy.clone(),
        ))
    };
    match handed {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Ok(hook::record_detached(&cgroup, base, &spec.output, &policy)?),
        Err(e) => Err(e.into()),
    }
}

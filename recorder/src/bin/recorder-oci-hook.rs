//! recorder-oci-hook: an OCI prestart hook that records a container's
//! syscalls into a seccomp profile, a drop-in for oci-seccomp-bpf-hook.
//! See recorder::hook and docs/runtimes.md.
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use recorder::{
    cgroup::Hierarchy,
    cli::hook::Cli,
    hook::{self, ANNOTATION, HookError, Spec, State},
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "recorder-oci-hook: {}",
                recorder::escape::controls(&format!("{e:#}"))
            );
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

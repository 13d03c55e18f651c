//! recorderctl: the recorder's command line.
use std::{io, process::ExitCode};

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser as _};
use recorder::{
    cli::recorderctl::{Cli, Command},
    ebpf::LoadOptions,
    profile::{Profile, format},
    profile_commands,
    record::{self, RecordOptions},
};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp(None)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("recorderctl: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = e
                .downcast_ref::<record::RecordError>()
                .map_or(1, record::RecordError::exit_code);
            eprintln!("recorderctl: {e:#}");
            ExitCode::from(code as u8)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Record {
            output,
            base,
            cgroup_parent,
            btf,
            no_compat,
            args,
            wait_all,
            out,
            command,
        } => {
            if let Some(path) = &output {
                record::check_writable(path)?;
            }
            let base = base.map(|p| Profile::read(&p)).transpose()?;
            let outcome = record::record(RecordOptions {
                command,
                load: LoadOptions {
                    btf,
                    compat: !no_compat,
                    args,
                    ..LoadOptions::default()
                },
                cgroup_parent,
                base,
                // Without -o, stdout carries the profile alone.
                stdout_to_stderr: output.is_none(),
                wait_all,
            })
            .await?;
            if !outcome.killed.is_empty() {
                let names: Vec<String> = outcome
                    .killed
                    .iter()
                    .map(|(pid, comm)| format!("{comm} (pid {pid})"))
                    .collect();
                eprintln!(
                    "recorderctl: {} process{} that CMD left behind {} killed: {}; \
                     --wait-all waits for them and records them too",
                    names.len(),
                    if names.len() == 1 { "" } else { "es" },
                    if names.len() == 1 { "was" } else { "were" },
                    names.join(", ")
                );
            }
            for (abi, nr) in &outcome.unknown {
                log::warn!(
                    "syscall {nr} of {abi} has no name in the syscall table; it is not in the profile"
                );
            }
            if outcome.out_of_range > 0 {
                log::info!(
                    "{} syscalls had a number outside the syscall tables (e.g. -1); they need no rule",
                    outcome.out_of_range
                );
            }
            let rendered = format::render(&outcome.profile, &out.options())?;
            for note in &rendered.notes {
                log::warn!("{note}");
            }
            let text = rendered.text;
            if let Err(e) = record::emit(&text, output.as_deref()) {
                // Never lose a recording: fall back to stdout.
                eprintln!("recorderctl: {e}; printing the profile instead");
                record::emit(&text, None).context("printing the profile")?;
            }
            Ok(outcome.exit_code() as u8)
        }
        Command::Daemon(cmd) => Ok(recorder::client::run(cmd).await?),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "recorderctl", &mut io::stdout());
            Ok(0)
        }
        Command::Profile(cmd) => {
            let on_error = cmd.error_exit_code();
            match profile_commands::run(cmd) {
                Ok(code) => Ok(code),
                Err(e) => {
                    eprintln!("recorderctl: {e}");
                    Ok(on_error)
                }
            }
        }
    }
}

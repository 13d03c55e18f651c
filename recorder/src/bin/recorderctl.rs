//! recorderctl: the recorder's command line.
use std::{
    io::{self, Write as _},
    process::ExitCode,
};

use anyhow::Context as _;
use recorder::{
    cli::{
        client::DaemonCommand,
        recorderctl::{self, Cli, Command},
    },
    ebpf::LoadOptions,
    profile::{Profile, format},
    profile_commands,
    record::{self, RecordOptions},
    registry_commands,
};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        // env_logger's layout without a time, every message escaped whole
        // (what it names may come from a container).
        .format(|buf, record| {
            let message = record.args().to_string();
            writeln!(
                buf,
                "[{:<5} {}] {}",
                record.level(),
                record.target(),
                recorder::escape::controls(&message)
            )
        })
        .init();
    let cli = recorderctl::try_parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit());
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
        // A closed stdout (`| head`) ends us quietly, as SIGPIPE would.
        Err(e) if e.chain().any(is_broken_pipe) => ExitCode::from(BROKEN_PIPE),
        Err(e) => {
            let code = e
                .downcast_ref::<record::RecordError>()
                .map_or(1, record::RecordError::exit_code);
            eprintln!(
                "recorderctl: {}",
                recorder::escape::controls(&format!("{e:#}"))
            );
            ExitCode::from(code as u8)
        }
    }
}

/// The exit code of a process killed by SIGPIPE in a shell (128 + 13).
const BROKEN_PIPE: u8 = 141;

/// Whether `e` is a write to a closed pipe.
fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Record {
            out_file: output,
            base,
            cgroup_parent,
            btf,
            no_compat,
            args,
            wait_all,
            out,
            command,
            ..
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
                // Without --out, stdout carries the profile alone.
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
                    recorder::escape::controls(&names.join(", "))
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
            match record::emit(&text, output.as_deref()) {
                Ok(()) => {}
                // Never lose a recording: fall back to stdout.
                Err(e) if output.is_some() => {
                    eprintln!("recorderctl: {e}; printing the profile instead");
                    record::emit(&text, None).context("printing the profile")?;
                }
                // stdout itself failed (e.g. a closed pipe).
                Err(e) => return Err(e.into()),
            }
            Ok(outcome.exit_code() as u8)
        }
        Command::Daemon(DaemonCommand::Images { conn, table, fleet })
            if fleet.registry.is_some() =>
        {
            let daemon = registry_commands::Daemon {
                socket: &cli.socket,
                timeout: cli.timeout,
            };
            Ok(registry_commands::fleet_images(daemon, &fleet, conn.output, table).await?)
        }
        Command::Registry(cmd) => {
            let daemon = registry_commands::Daemon {
                socket: &cli.socket,
                timeout: cli.timeout,
            };
            Ok(registry_commands::run(cmd, daemon).await?)
        }
        Command::Daemon(cmd) => {
            let to = recorder::client::Link {
                socket: &cli.socket,
                timeout: cli.timeout,
            };
            Ok(recorder::client::run(cmd, to).await?)
        }
        Command::Completions { shell } => {
            // clap_complete panics on a failed write: render first.
            let mut script = Vec::new();
            clap_complete::generate(
                shell,
                &mut recorderctl::command(),
                "recorderctl",
                &mut script,
            );
            let mut stdout = io::stdout().lock();
            stdout
                .write_all(&script)
                .and_then(|()| stdout.flush())
                .context("writing the completion script")?;
            Ok(0)
        }
        Command::Profile(cmd) => match profile_commands::run(cmd) {
            Ok(code) => Ok(code),
            Err(e) => {
                let first: &(dyn std::error::Error + 'static) = &e;
                let chain = std::iter::successors(Some(first), |e| e.source());
                if chain.clone().any(is_broken_pipe) {
                    return Ok(BROKEN_PIPE);
                }
                let e = format!("{:#}", anyhow::Error::from(e));
                eprintln!("recorderctl: {}", recorder::escape::controls(&e));
                Ok(recorder::cli::profile::TROUBLE)
            }
        },
    }
}

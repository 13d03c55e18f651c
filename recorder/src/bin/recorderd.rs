//! recorderd: records the syscalls of containers and writes their seccomp
//! profiles. Runs in the foreground and logs to stderr.
use std::{io::Write as _, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::Parser as _;
use recorder::{cli::recorderd::Cli, config::ConfigError, daemon, metrics};

/// The exit code of a usage error: a bad flag (clap's) or a bad config.
const USAGE: u8 = 2;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, joined by ": ".
            eprintln!(
                "recorderd: {}",
                recorder::escape::controls(&format!("{e:#}"))
            );
            // A bad config is a usage error, as a bad flag is (clap: 2).
            if e.downcast_ref::<ConfigError>().is_some() {
                ExitCode::from(USAGE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config()?;
    env_logger::Builder::new()
        .parse_filters(&config.log_level)
        .parse_env("RECORDER_LOG")
        // env_logger's own layout, every message escaped whole: names,
        // paths and annotations in it come from containers, and a raw ESC,
        // BEL or newline would act on a terminal or fake a line.
        .format(|buf, record| {
            let message = record.args().to_string();
            writeln!(
                buf,
                "[{} {:<5} {}] {}",
                buf.timestamp(),
                record.level(),
                record.target(),
                recorder::escape::controls(&message)
            )
        })
        .init();
    if cli.unpin {
        let removed = daemon::unpin(&config.pin_dir)
            .with_context(|| format!("removing {}", config.pin_dir.display()))?;
        if removed {
            log::info!("removed {}", config.pin_dir.display());
        } else {
            log::info!(
                "nothing to remove: {} does not exist",
                config.pin_dir.display()
            );
        }
        return Ok(());
    }
    // Handlers first: a SIGTERM right after READY=1 must not kill us
    // before the partial profiles are written.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let metrics_addr = metrics::parse_addr(&config.metrics_addr)?;
    let metrics_opts = metrics::Options {
        bpf_stats: config.bpf_stats,
        // Generous: a few missed ticks are not yet a stuck daemon.
        stale_after: Duration::from_millis(config.poll_interval_ms.max(50))
            .saturating_mul(10)
            .max(Duration::from_secs(30)),
    };
    // Before the daemon starts: a port in use is a startup error, with
    // nothing loaded or pinned.
    let metrics_listener = match metrics_addr {
        Some(addr) => Some(metrics::bind(addr).await?),
        None => None,
    };
    // Under systemd, a stop hands the pins to its fd store, or keeps them
    // without one, so that `systemctl restart` loses nothing; outside it,
    // a stop releases everything unless asked to keep it.
    let stop = if config.keep_attached {
        daemon::Stop::KeepAttached
    } else if daemon::fdstore::available() {
        daemon::Stop::FdStore
    } else if std::env::var_os("NOTIFY_SOCKET").is_some() {
        daemon::Stop::KeepAttached
    } else {
        daemon::Stop::Release
    };
    let running = daemon::start(config).await?;
    let _metrics = metrics_listener.map(|bound| {
        metrics::serve(
            bound,
            metrics_opts,
            running.metrics.clone(),
            running.counters.clone(),
        )
    });
    // Type=notify: tell systemd we are ready (a no-op outside systemd).
    _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
                match cli.config() {
                    Ok(c) => daemon::reload(&running, c).await,
                    Err(e) => log::error!("not reloading: {e:#}"),
                }
                _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            }
        }
    }
    _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    log::info!("shutting down: writing partial profiles");
    running
        .shutdown(stop)
        .await
        .context("unpinning at shutdown")?;
    Ok(())
}

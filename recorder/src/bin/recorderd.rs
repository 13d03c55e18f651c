//! recorderd: records the syscalls of containers and writes their seccomp
//! profiles. Runs in the foreground and logs to stderr.
use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::Parser;
use recorder::{config::Config, daemon, metrics};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser, Debug)]
#[command(
    name = "recorderd",
    version,
    about = "Record the syscalls of containers as seccomp profiles"
)]
struct Cli {
    /// Config file (TOML). A missing default file means the defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Control socket.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Group allowed to use the control socket besides root.
    #[arg(long, value_name = "GROUP")]
    socket_group: Option<String>,
    /// Where profiles are written.
    #[arg(long, value_name = "DIR")]
    profiles_dir: Option<PathBuf>,
    /// Where recordings are kept across restarts.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// bpffs directory for pinned maps and links.
    #[arg(long, value_name = "DIR")]
    pin_dir: Option<PathBuf>,
    /// error, warn, info, debug or trace.
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Record every new container from its first syscall.
    #[arg(long)]
    all: bool,
    /// How many cgroups can be recorded at once.
    #[arg(long, value_name = "N")]
    capacity: Option<u32>,
    /// Keep the program attached even when nothing is recorded.
    #[arg(long)]
    no_detach_when_idle: bool,
    /// Kernel BTF file.
    #[arg(long, value_name = "FILE")]
    btf: Option<PathBuf>,
    /// Prometheus endpoint, host:port ("off" disables it).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<String>,
    /// Enable the kernel's BPF run-time statistics for the metrics
    /// (costs some 20-30 ns per BPF program run).
    #[arg(long)]
    bpf_stats: bool,
    /// Remove the pinned maps and links (stops all recording) and exit.
    #[arg(long)]
    unpin: bool,
}

impl Cli {
    fn config(&self) -> anyhow::Result<Config> {
        let (path, optional) = match &self.config {
            Some(p) => (p.clone(), false),
            None => (PathBuf::from(recorder::config::DEFAULT_CONFIG), true),
        };
        let mut c = Config::load(&path, optional)?;
        if let Some(v) = &self.socket {
            c.socket = v.clone();
        }
        if let Some(v) = &self.socket_group {
            c.socket_group = v.clone();
        }
        if let Some(v) = &self.profiles_dir {
            c.profiles_dir = v.clone();
        }
        if let Some(v) = &self.state_dir {
            c.state_dir = v.clone();
        }
        if let Some(v) = &self.pin_dir {
            c.pin_dir = v.clone();
        }
        if let Some(v) = &self.log_level {
            c.log_level = v.clone();
        }
        if self.all {
            c.record_all = true;
        }
        if let Some(v) = self.capacity {
            c.capacity = v;
        }
        if self.no_detach_when_idle {
            c.detach_when_idle = false;
        }
        if let Some(v) = &self.btf {
            c.btf = v.clone();
        }
        if let Some(v) = &self.metrics_addr {
            c.metrics_addr = v.clone();
        }
        if self.bpf_stats {
            c.bpf_stats = true;
        }
        c.validate(&path)?;
        Ok(c)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = cli.config()?;
    env_logger::Builder::new()
        .parse_filters(&config.log_level)
        .parse_env("RECORDER_LOG")
        .init();
    if cli.unpin {
        daemon::unpin(&config.pin_dir)
            .with_context(|| format!("removing {}", config.pin_dir.display()))?;
        log::info!("removed {}", config.pin_dir.display());
        return Ok(());
    }
    let metrics_addr = metrics::parse_addr(&config.metrics_addr)?;
    let metrics_opts = metrics_addr.map(|addr| metrics::Options {
        addr,
        bpf_stats: config.bpf_stats,
        // Generous: a few missed ticks are not yet a stuck daemon.
        stale_after: Duration::from_millis(config.poll_interval_ms.max(50))
            .saturating_mul(10)
            .max(Duration::from_secs(30)),
    });
    let running = daemon::start(config).await?;
    // Recording matters more than its metrics: an endpoint that cannot
    // listen (say, the port is taken) is logged, not fatal.
    let _metrics = match metrics_opts {
        Some(opts) => {
            match metrics::serve(opts, running.metrics.clone(), running.counters.clone()).await {
                Ok(server) => Some(server),
                Err(e) => {
                    log::error!("{e}; running without the metrics endpoint");
                    None
                }
            }
        }
        None => None,
    };
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => match cli.config() {
                Ok(c) => daemon::reload(&running, c).await,
                Err(e) => log::error!("not reloading: {e:#}"),
            },
        }
    }
    log::info!("shutting down: writing partial profiles");
    running.shutdown().await;
    Ok(())
}

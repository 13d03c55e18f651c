//! The daemon's own costs: idle CPU, RSS with 0 and 50 recorded cgroups,
//! and the latency from `recorderctl stop` to the profile on disk.
//!
//! Runs only when target/release/recorderd and recorderctl exist and the
//! daemon answers on its control socket; every figure it cannot get is
//! `None` ("n/a" in the table) with the reason in `note`.
//!
//! Interface assumed (the daemon is being written beside this):
//! `recorderd --socket S --profiles-dir D --state-dir D --pin-dir D`,
//! `RECORDER_SOCKET=S recorderctl start --cgroup PATH`, and `stop --cgroup
//! PATH`, after which a profile file appears under the profiles directory.

use std::{
    fs,
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use recorder::cgroup::Hierarchy;
use serde::Serialize;

/// How many cgroups are recorded for the loaded RSS figure.
const RECORDED: usize = 50;

#[derive(Debug, Default, Serialize)]
pub(super) struct Daemon {
    /// Why some or all figures are missing.
    pub note: Option<String>,
    /// Seconds the idle CPU was measured over.
    pub idle_window_s: f64,
    /// CPU time used while idle, as a percentage of one CPU.
    pub idle_cpu_percent: Option<f64>,
    /// Resident set size with no recorded cgroup, KiB.
    pub rss_kib_0: Option<u64>,
    /// Resident set size with 50 recorded cgroups, KiB.
    pub rss_kib_50: Option<u64>,
    /// From `recorderctl stop` to the profile file on disk, ms (median).
    pub stop_to_profile_ms: Option<f64>,
}

/// Measures the daemon if it is built; never fails the bench.
/// `bin_dir` holds recorderd and recorderctl (target/release by default).
pub(super) fn measure(
    bin_dir: &Path,
    out_dir: &Path,
    hierarchy: &Hierarchy,
    idle: Duration,
) -> Daemon {
    let mut report = Daemon {
        idle_window_s: idle.as_secs_f64(),
        ..Daemon::default()
    };
    let bin = bin_dir.join("recorderd");
    let ctl = bin_dir.join("recorderctl");
    if !bin.exists() || !ctl.exists() {
        report.note = Some(format!(
            "recorderd or recorderctl not built in {}",
            bin_dir.display()
        ));
        return report;
    }
    if let Err(e) = run(&bin, &ctl, out_dir, hierarchy, idle, &mut report) {
        report.note = Some(format!("{e:#}"));
    }
    report
}

/// Kills the daemon however the measurement ends.
struct DaemonGuard(Child);

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the child this guard started, by its pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        _ = self.0.kill();
        _ = self.0.wait();
    }
}

/// Removes the bench's daemon cgroups however the measurement ends.
struct CgroupsGuard<'a> {
    hierarchy: &'a Hierarchy,
    paths: Vec<String>,
    parent: String,
}

impl Drop for CgroupsGuard<'_> {
    fn drop(&mut self) {
        for p in self.paths.iter().chain([&self.parent]) {
            _ = self.hierarchy.remove(p, Duration::from_secs(2));
        }
    }
}

fn run(
    bin: &Path,
    ctl: &Path,
    out_dir: &Path,
    hierarchy: &Hierarchy,
    idle: Duration,
    report: &mut Daemon,
) -> anyhow::Result<()> {
    let dir = out_dir.join("daemon");
    _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let socket = dir.join("recorderd.sock");
    let profiles = dir.join("profiles");
    fs::create_dir_all(&profiles)?;
    let pins = PinDir(PathBuf::from(format!(
        "/sys/fs/bpf/recorder-bench-{}",
        std::process::id()
    )));
    let log = fs::File::create(dir.join("recorderd.log"))?;
    let child = Command::new(bin)
        .arg("--socket")
        .arg(&socket)
        .arg("--profiles-dir")
        .arg(&profiles)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--pin-dir")
        .arg(&pins.0)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut daemon = DaemonGuard(child);
    let pid = daemon.0.id();

    // Wait until it answers on the socket.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = daemon.0.try_wait()? {
            bail!(
                "recorderd exited ({status}) before answering; see {}",
                dir.join("recorderd.log").display()
            );
        }
        if UnixStream::connect(&socket).is_ok() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "recorderd did not answer on {} within 10 s",
                socket.display()
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
    // Let start-up work settle before the idle window.
    thread::sleep(Duration::from_secs(1));
    report.rss_kib_0 = rss_kib(pid);
    let before = cpu_ticks(pid);
    let start = Instant::now();
    thread::sleep(idle);
    let elapsed = start.elapsed().as_secs_f64();
    if let (Some(b), Some(a)) = (before, cpu_ticks(pid)) {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        report.idle_cpu_percent = Some((a.saturating_sub(b)) as f64 / hz / elapsed * 100.0);
    }

    let parent = format!("/recorder-bench-daemon-{}", std::process::id());
    let mut cgroups = CgroupsGuard {
        hierarchy,
        paths: Vec::new(),
        parent: parent.clone(),
    };
    for i in 0..RECORDED {
        let rel = format!("{parent}/c{i}");
        hierarchy.create(&rel)?;
        cgroups.paths.push(rel.clone());
        ctl_ok(ctl, &socket, &["start", "--cgroup", &rel])?;
    }
    thread::sleep(Duration::from_millis(500));
    report.rss_kib_50 = rss_kib(pid);

    // Stop latency, over the recorded cgroups (a few suffice): from the
    // stop command to one more file under the profiles directory.
    let mut latencies = Vec::new();
    for rel in cgroups.paths.iter().take(9) {
        let before = count_files(&profiles);
        let start = Instant::now();
        ctl_ok(ctl, &socket, &["stop", "--cgroup", rel])?;
        wait_for_files(&profiles, before + 1, Duration::from_secs(10))?;
        latencies.push(start.elapsed().as_secs_f64() * 1e3);
    }
    report.stop_to_profile_ms = super::stats::median(&mut latencies);
    drop(daemon);
    drop(pins);
    Ok(())
}

/// Removes the daemon's pin directory however the measurement ends (after
/// the daemon, declared before it, is gone).
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        _ = fs::remove_dir_all(&self.0);
    }
}

fn ctl_ok(ctl: &Path, socket: &Path, args: &[&str]) -> anyhow::Result<()> {
    // The socket through the environment: it works whether --socket is a
    // global or a per-command option.
    let out = Command::new(ctl)
        .env("RECORDER_SOCKET", socket)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", ctl.display()))?;
    if !out.status.success() {
        bail!(
            "recorderctl {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => n += 1,
                Err(_) => {}
            }
        }
    }
    n
}

fn wait_for_files(dir: &Path, count: usize, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while count_files(dir) < count {
        if Instant::now() > deadline {
            bail!(
                "no new profile under {} after `recorderctl stop`",
                dir.display()
            );
        }
        thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at state.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // state is field 3 overall; utime and stime are 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

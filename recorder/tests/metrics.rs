//! recorderd's Prometheus endpoint, checked with the real tools: promtool
//! lints a scrape and the alert rules, and a real Prometheus server scrapes
//! a real daemon recording a real podman container.
//!
//! Needs root, podman + runc, busybox-static and Debian's `prometheus`
//! package (prometheus and promtool).

mod common;

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use common::*;

/// How long to wait for something that should happen within a few ticks.
const PATIENCE: Duration = Duration::from_secs(90);

/// A name unique to this test process and call.
fn unique(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `f` until it returns Some, or panics with `what` after PATIENCE.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// GET `url` (with an optional Accept header); the status and body.
fn get(url: &str, accept: Option<&str>) -> Option<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut req = agent.get(url);
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    let mut resp = req.call().ok()?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().ok()?;
    Some((status, body))
}

/// A recorderd on its own socket, dirs, pin dir and metrics port.
struct Daemon {
    child: Child,
    dir: PathBuf,
    pin_dir: PathBuf,
    socket: PathBuf,
    metrics: String,
}

impl Daemon {
    fn start(name: &str, extra: &[&str]) -> Self {
        require_root();
        let dir = scratch(&unique(name));
        let pin_dir = PathBuf::from(format!("/sys/fs/bpf/{}", unique("recorder-test-metrics")));
        let socket = dir.join("sock");
        let off = extra.contains(&"--metrics-addr");
        let metrics = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(recorderd_path());
        if !off {
            cmd.args(["--metrics-addr", &metrics]);
        }
        let child = cmd
            .arg("--socket")
            .arg(&socket)
            .arg("--profiles-dir")
            .arg(dir.join("profiles"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--pin-dir")
            .arg(&pin_dir)
            .args(extra)
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("recorderd.log")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let mut d = Self {
            child,
            dir,
            pin_dir,
            socket,
            metrics,
        };
        eventually("recorderd's control socket to answer", || {
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!(
                    "recorderd exited with {status}: {}",
                    std::fs::read_to_string(d.dir.join("recorderd.log")).unwrap_or_default()
                );
            }
            let out = recorderctl()
                .args(["status", "--socket"])
                .arg(&d.socket)
                .output()
                .ok()?;
            out.status.success().then_some(())
        });
        if !off {
            eventually("recorderd's /healthz to answer 200", || {
                get(&format!("http://{}/healthz", d.metrics), None)
                    .filter(|(status, _)| *status == 200)
            });
        }
        d
    }

    /// A scrape in the classic Prometheus text format (what curl gets).
    fn scrape(&self) -> String {
        let (status, body) = get(&format!("http://{}/metrics", self.metrics), None)
            .expect("recorderd's /metrics answers");
        assert_eq!(status, 200, "{body}");
        body
    }

    fn ctl(&self, args: &[&str]) -> String {
        let out = run_ok(recorderctl().args(args).arg("--socket").arg(&self.socket));
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        _ = self.child.wait();
        _ = Command::new(recorderd_path())
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .arg("--unpin")
            .output();
    }
}

/// A Prometheus server with its own storage that scrapes `target` every second.
struct Prometheus {
    child: Child,
    url: String,
}

impl Prometheus {
    fn start(dir: &Path, target: &str) -> Self {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: recorder\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("prometheus.log")).unwrap(),
            ))
            .spawn()
            .expect("prometheus is not installed (cargo xtask setup installs Debian's prometheus)");
        Self {
            child,
            url: format!("http://{addr}"),
        }
    }

    /// The value of an instant vector query with at most one series
    /// (`None`: no series, or Prometheus is not ready).
    fn query_one(&self, query: &str) -> Option<f64> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut resp = agent
            .get(format!("{}/api/v1/query", self.url))
            .query("query", query)
            .call()
            .ok()?;
        let body = resp.body_mut().read_to_string().ok()?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        assert_eq!(v["status"], "success", "{body}");
        let result = v["data"]["result"].as_array()?;
        assert!(result.len() <= 1, "{query} matched several series: {body}");
        result.first()?["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        _ = self.child.kill();
        _ = self.child.wait();
    }
}

/// A podman busybox container that waits; removed on drop.
struct Container {
    id: String,
    name: String,
}

impl Container {
    fn start() -> Self {
        let name = unique("metrics");
        let out = run_ok(&mut podman_run(
            &["-d", "--name", &name],
            &["sh", "-c", "exec sleep 3600"],
        ));
        let id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert_eq!(id.len(), 64, "podman run -d printed {id:?}");
        Self { id, name }
    }

    fn exec(&self, script: &str) {
        run_ok(Command::new("podman").args(["exec", &self.id, "sh", "-c", script]));
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.id])
            .output();
    }
}

/// The metric families an operator relies on; each must have a HELP line.
const FAMILIES: [&str; 16] = [
    "recorder_build_info",
    "recorder_recordings",
    "recorder_container_syscalls",
    "recorder_profiles_written_total",
    "recorder_errors_total",
    "recorder_enrol_failures_total",
    "recorder_enrolments_total",
    "recorder_pending_writes",
    "recorder_attached",
    "recorder_map_entries",
    "recorder_map_capacity",
    "recorder_bpf_stats_enabled",
    "recorder_bpf_run_time_seconds_total",
    "recorder_bpf_run_count_total",
    "recorder_bpf_recursion_misses_total",
    "recorder_last_refresh_timestamp_seconds",
];

/// The value of the one sample in `scrape` whose line starts with `prefix`.
fn sample(scrape: &str, prefix: &str) -> Option<f64> {
    scrape
        .lines()
        .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn promtool(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is not installed (cargo xtask setup installs Debian's prometheus)");
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn scrape_passes_promtool_and_bpf_stats_count_runs() {
    // Attached from the start (not idle-detached), with BPF statistics on.
    let d = Daemon::start("metrics-lint", &["--bpf-stats", "--no-detach-when-idle"]);
    let scrape = d.scrape();

    let out = promtool(&["check", "metrics"], Some(&scrape));
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}\n{}{}\nscrape:\n{scrape}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for family in FAMILIES {
        assert!(
            scrape
                .lines()
                .any(|l| l.starts_with(&format!("# HELP {family} "))),
            "no HELP for {family} in\n{scrape}"
        );
    }
    assert_eq!(
        sample(
            &scrape,
            &format!(
                "recorder_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(sample(&scrape, "recorder_attached"), Some(1.0), "{scrape}");
    assert_eq!(
        sample(&scrape, "recorder_bpf_stats_enabled"),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        sample(&scrape, "recorder_map_capacity"),
        Some(1024.0),
        "{scrape}"
    );

    // The kernel counts the recorder's runs on sys_enter (every syscall on
    // the host runs it, these scrapes included).
    let runs = eventually(
        "recorder_bpf_run_count_total{program=\"sys_enter\"} > 0",
        || {
            let s = d.scrape();
            let runs = sample(&s, "recorder_bpf_run_count_total{program=\"sys_enter\"}")?;
            let time = sample(
                &s,
                "recorder_bpf_run_time_seconds_total{program=\"sys_enter\"}",
            )?;
            (runs > 0.0 && time > 0.0).then_some(runs)
        },
    );
    assert!(runs > 0.0);
    // Read from the program's fdinfo: present on this kernel, and 0 (the
    // kernel ran the recorder for every syscall).
    assert_eq!(
        sample(
            &scrape,
            "recorder_bpf_recursion_misses_total{program=\"sys_enter\"}"
        ),
        Some(0.0),
        "{scrape}"
    );

    // OpenMetrics for those who ask for it (Prometheus does).
    let (status, om) = get(
        &format!("http://{}/metrics", d.metrics),
        Some("application/openmetrics-text; version=1.0.0"),
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(
        om.contains("# TYPE recorder_profiles_written counter\n"),
        "{om}"
    );

    let (status, _) = get(&format!("http://{}/nothing", d.metrics), None).unwrap();
    assert_eq!(status, 404);
}

/// TCP sockets process `pid` listens on (from /proc).
fn listening_sockets(pid: u32) -> Vec<u64> {
    let mine: Vec<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect();
    let mut listening = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // Fields: sl local remote st ... inode (the 10th).
            if f.get(3) == Some(&"0A")
                && let Some(inode) = f.get(9).and_then(|i| i.parse().ok())
                && mine.contains(&inode)
            {
                listening.push(inode);
            }
        }
    }
    listening
}

#[test]
fn metrics_off_serves_nothing() {
    let on = Daemon::start("metrics-on", &[]);
    assert_eq!(listening_sockets(on.child.id()).len(), 1);
    drop(on);
    let off = Daemon::start("metrics-off", &["--metrics-addr", "off"]);
    assert_eq!(listening_sockets(off.child.id()), Vec::<u64>::new());
    drop(off);
    // A taken port is a startup error: tests/crowd.rs,
    // a_taken_metrics_port_is_a_startup_error.
}

#[test]
fn prometheus_ingests_container_syscalls() {
    let d = Daemon::start("metrics-prom", &[]);
    let c = Container::start();
    d.ctl(&["start", &c.id]);
    // Some work, then idle (sleep makes no syscalls), so the set is stable.
    c.exec("ls / > /dev/null; cat /etc/passwd > /dev/null; echo hi > /tmp/x; rm /tmp/x");
    let profile = d.ctl(&["profile", &c.id]);
    let names = allowed_names(&profile).len();
    assert!(names > 10, "too few syscalls recorded: {profile}");

    let prom = Prometheus::start(&d.dir, &d.metrics);
    let query = format!("recorder_container_syscalls{{container_id=\"{}\"}}", c.id);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = prom.query_one(&query);
        if got == Some(names as f64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus reports {got:?} for {query}, the profile has {names} names:\n{profile}\nlast scrape:\n{}",
            d.scrape()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // The series carries the container's name.
    let named = format!(
        "recorder_container_syscalls{{container_id=\"{}\",container_name=\"{}\"}}",
        c.id, c.name
    );
    assert_eq!(prom.query_one(&named), Some(names as f64));
    assert_eq!(
        prom.query_one("recorder_recordings{state=\"active\"}"),
        Some(1.0)
    );

    // Once the profile is written the series goes: from the daemon's very
    // next scrape, and from Prometheus once it scrapes again.
    d.ctl(&["stop", &c.id]);
    let scrape = d.scrape();
    assert!(!scrape.contains(&c.id), "{scrape}");
    assert_eq!(
        sample(&scrape, "recorder_profiles_written_total"),
        Some(1.0)
    );
    eventually("Prometheus to drop the container's series", || {
        prom.query_one(&query).is_none().then_some(())
    });
    eventually("Prometheus to see the written profile", || {
        (prom.query_one("recorder_profiles_written_total") == Some(1.0)).then_some(())
    });
}

#[test]
fn alert_rules_pass_promtool() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let rules = docs.join("alerts.yml");
    let out = promtool(&["check", "rules", rules.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The rules fire on the series they should (promtool's rule unit tests).
    let tests = docs.join("alerts.test.yml");
    let out = promtool(&["test", "rules", tests.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn errors_and_pending_writes_are_counted() {
    // Room for one cgroup only.
    let d = Daemon::start("metrics-errors", &["--capacity", "1"]);
    let a = Container::start();
    let b = Container::start();
    d.ctl(&["start", &a.id]);
    let refused = run(recorderctl()
        .args(["start", &b.id, "--socket"])
        .arg(&d.socket));
    assert!(
        !refused.status.success(),
        "a second recording fit in a map of 1"
    );
    let s = d.scrape();
    assert_eq!(
        sample(&s, "recorder_errors_total{reason=\"map_full\"}"),
        Some(1.0),
        "{s}"
    );
    assert_eq!(
        sample(&s, "recorder_errors_total{reason=\"profile_write\"}"),
        Some(0.0)
    );

    // The profiles dir becomes a file: the profile cannot be written, the
    // recording is kept and retried.
    let profiles = d.dir.join("profiles");
    std::fs::remove_dir_all(&profiles).unwrap();
    std::fs::write(&profiles, "in the way").unwrap();
    let failed = run(recorderctl()
        .args(["stop", &a.id, "--socket"])
        .arg(&d.socket));
    assert!(
        !failed.status.success(),
        "the profile was written into a file?"
    );
    let s = eventually("recorder_pending_writes 1", || {
        let s = d.scrape();
        (sample(&s, "recorder_pending_writes") == Some(1.0)).then_some(s)
    });
    assert!(
        sample(&s, "recorder_errors_total{reason=\"profile_write\"}").is_some_and(|n| n >= 1.0),
        "{s}"
    );
    assert_eq!(
        sample(&s, "recorder_profiles_written_total"),
        Some(0.0),
        "{s}"
    );

    // Once the directory is back, the retry writes the profile.
    std::fs::remove_file(&profiles).unwrap();
    std::fs::create_dir(&profiles).unwrap();
    // The counter moves at the write, the pending gauge at the next tick.
    let s = eventually("the retried profile to be written", || {
        let s = d.scrape();
        (sample(&s, "recorder_profiles_written_total") == Some(1.0)
            && sample(&s, "recorder_pending_writes") == Some(0.0))
        .then_some(s)
    });
    assert_eq!(sample(&s, "recorder_pending_writes"), Some(0.0), "{s}");
    assert!(profiles.join(format!("{}.json", a.id)).exists());
    assert!(!s.contains(&a.id), "{s}");
}

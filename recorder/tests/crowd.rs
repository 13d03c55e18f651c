//! recorderd under a crowd: idle connections held against the metrics
//! endpoint (by an unprivileged user) and the control socket, a second
//! request on one connection, a taken metrics port, and the daemon's
//! memory over a churn of 1,000 container cgroups.
//!
//! Needs root (the daemon loads eBPF; the metrics crowd runs as uid 65534
//! through `setpriv`).

mod common;

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpListener,
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{daemon::Daemon, *};

/// GETs `/metrics` on `port` with a plain HTTP/1.1 request; returns the
/// status line, or panics after 10 s.
fn scrape(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(
        text.contains("recorder_build_info"),
        "not a scrape: {text:?}"
    );
    text.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn a_scrape_answers_while_an_unprivileged_user_holds_200_connections() {
    require_root();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let d = Daemon::start("crowd-metrics", &["--metrics-addr", &addr]);
    // uid 65534 opens 200 connections, says so, and holds them (sending
    // nothing) until killed.
    let script = format!(
        "for i in $(seq 200); do exec {{fd}}<>/dev/tcp/127.0.0.1/{port} || exit 1; done; echo ready; exec sleep 120"
    );
    let mut crowd = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "bash",
            "-c",
            &script,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(crowd.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready", "the crowd did not connect");
    // At once (the crowd's connections are all open), then while the
    // server times them out, then after.
    let mut took = Vec::new();
    for _ in 0..8 {
        let t = Instant::now();
        let status = scrape(port);
        took.push(t.elapsed());
        assert!(status.contains(" 200 "), "{status}");
        std::thread::sleep(Duration::from_millis(700));
    }
    _ = crowd.kill();
    _ = crowd.wait();
    // How long each took is reported, not asserted (no timing assertions
    // in tests): a starved server fails `scrape`'s read timeout instead.
    eprintln!("scrapes with 200 idle connections held by uid 65534: {took:?}");
    drop(d);
}

#[test]
fn a_taken_metrics_port_is_a_startup_error() {
    require_root();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = scratch("crowd-port-taken");
    let pin_dir = PathBuf::from("/sys/fs/bpf/recorder-test-crowd-port-taken");
    _ = std::fs::remove_dir_all(&pin_dir);
    let out = run(Command::new(recorderd_path())
        .arg("--socket")
        .arg(dir.join("sock"))
        .arg("--profiles-dir")
        .arg(dir.join("profiles"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--pin-dir")
        .arg(&pin_dir)
        .args(["--metrics-addr", &addr])
        .stdin(Stdio::null()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "recorderd started: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr}"
    );
    assert!(stderr.contains(&addr), "{stderr}");
    // Nothing was loaded or pinned.
    let pinned = std::fs::read_dir(&pin_dir).map_or(0, Iterator::count);
    assert_eq!(pinned, 0, "{} is not empty", pin_dir.display());
    assert!(!dir.join("sock").exists());
    _ = std::fs::remove_dir_all(&pin_dir);
}

/// One raw request on the control socket: its reply line, and how long
/// it took (panics after 20 s without an answer).
fn raw_status(socket: &Path) -> (String, Duration) {
    let t = Instant::now();
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"{\"version\":1,\"op\":\"status\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    (line, t.elapsed())
}

#[test]
fn status_answers_with_2000_idle_control_connections_held() {
    require_root();
    let d = Daemon::start("crowd-control", &[]);
    let idle: Vec<UnixStream> = (0..2000)
        .map(|_| UnixStream::connect(&d.socket).unwrap())
        .collect();
    let mut took = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let out = run(&mut d.ctl(&["status"]));
        took.push(t.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (line, _) = raw_status(&d.socket);
        assert!(line.contains("\"status\""), "{line}");
    }
    // Reported, not asserted: a starved server fails `raw_status`'s read
    // timeout instead.
    eprintln!("status with 2000 idle control connections held: {took:?}");
    drop(idle);
}

#[test]
fn a_second_request_on_a_connection_gets_eof() {
    require_root();
    let d = Daemon::start("crowd-second", &[]);
    let req = b"{\"version\":1,\"op\":\"status\"}\n";
    // Two requests in one write: one reply, then end of file.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&[&req[..], &req[..]].concat()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text)
        .expect("EOF after the reply, not a hang");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("\"status\""), "{text}");
    // One request, its reply, then a second: refused (EPIPE) or EOF.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(req).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("\"status\""), "{line}");
    std::thread::sleep(Duration::from_millis(100));
    let second = s.write_all(req);
    let mut rest = String::new();
    let n = reader
        .read_to_string(&mut rest)
        .expect("EOF after the reply, not a hang");
    assert_eq!(n, 0, "a second reply: {rest}");
    eprintln!("second request on one connection: write {second:?}, then EOF");
}

/// The daemon's resident memory, in kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn rss_is_flat_over_a_churn_of_1000_container_cgroups() {
    require_root();
    let d = Daemon::start("crowd-churn", &["--all"]);
    let h = recorder::cgroup::Hierarchy::detect().unwrap();
    let parent = format!("/recorder-test-churn-{}", std::process::id());
    let parent_dir = h.mount.join(parent.trim_start_matches('/'));
    std::fs::create_dir_all(&parent_dir).unwrap();
    const BATCH: usize = 25;
    const TOTAL: usize = 1000;
    let started = Instant::now();
    let mut curve = Vec::new();
    for batch in 0..TOTAL / BATCH {
        let ids: Vec<String> = (0..BATCH)
            .map(|i| format!("{:032x}{:032x}", std::process::id(), batch * BATCH + i))
            .collect();
        let dirs: Vec<PathBuf> = ids
            .iter()
            .map(|id| parent_dir.join(format!("libpod-{id}.scope")))
            .collect();
        for dir in &dirs {
            std::fs::create_dir(dir).unwrap();
        }
        for dir in &dirs {
            std::fs::remove_dir(dir).unwrap();
        }
        for id in &ids {
            d.wait_for(&d.profile_path(id));
        }
        let n = (batch + 1) * BATCH;
        if n.is_multiple_of(100) {
            // Let the daemon settle (a tick or two) before measuring.
            std::thread::sleep(Duration::from_millis(1500));
            curve.push((n, rss_kb(d.pid())));
        }
    }
    _ = std::fs::remove_dir(&parent_dir);
    eprintln!(
        "VmRSS (kB) by containers churned, in {:?}: {curve:?}",
        started.elapsed()
    );
    let at = |n: usize| curve.iter().find(|(k, _)| *k == n).unwrap().1;
    let (first, last) = (at(100), at(TOTAL));
    let peak = curve.iter().map(|(_, r)| *r).max().unwrap();
    assert!(
        last as f64 <= first as f64 * 1.05 && peak as f64 <= first as f64 * 1.05,
        "RSS grew from {first} kB (100 containers) to {last} kB ({TOTAL}), peak {peak} kB: {curve:?}"
    );
    let status = d.ctl_ok(&["status"]);
    assert!(status.contains("recordings"), "{status}");
}

/// A burst of container cgroups at once: more cgroup events than the
/// channels between the kernel task and the manager hold. The kernel task
/// once waited for room in a full channel while the manager waited for
/// the kernel task's answer, and the daemon stood still for good. Now
/// `status` keeps answering, and every container gets its profile.
#[test]
fn a_burst_of_cgroups_never_wedges_the_daemon() {
    require_root();
    let d = Daemon::start("crowd-burst", &["--all"]);
    let h = recorder::cgroup::Hierarchy::detect().unwrap();
    let parent = format!("/recorder-test-burst-{}", std::process::id());
    let parent_dir = h.mount.join(parent.trim_start_matches('/'));
    std::fs::create_dir_all(&parent_dir).unwrap();
    // Under the default capacity (1024), over the 1,280 events the two
    // channels hold once the removals are counted.
    const TOTAL: usize = 900;
    let ids: Vec<String> = (0..TOTAL)
        .map(|i| format!("{:032x}{:032x}", std::process::id() + 1, i))
        .collect();
    let dirs: Vec<PathBuf> = ids
        .iter()
        .map(|id| parent_dir.join(format!("libpod-{id}.scope")))
        .collect();
    for dir in &dirs {
        std::fs::create_dir(dir).unwrap();
    }
    for dir in &dirs {
        std::fs::remove_dir(dir).unwrap();
    }
    // The daemon answers while it works through the burst...
    // (Requests queue behind the burst's events: a generous timeout, far
    // below the "never" of a wedged daemon.)
    let out = run(&mut d.ctl(&["status", "--timeout", "90"]));
    assert!(
        out.status.success(),
        "status during the burst: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ...and gets through it.
    let deadline = Instant::now() + Duration::from_secs(240);
    for id in &ids {
        while !d.profile_path(id).exists() {
            assert!(
                Instant::now() < deadline,
                "no profile for {id} after 240 s: {}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    _ = std::fs::remove_dir(&parent_dir);
    let status = d.ctl_ok(&["status", "--output", "json", "--timeout", "90"]);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["pending_writes"], 0, "{status}");
}

//! Hardening from an adversarial run (issue 22): blank container ids, a
//! failed start that must leave nothing behind, recorderctl's timeout, and
//! flag errors that name the flag.

mod common;

use std::{
    collections::BTreeSet,
    fs,
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use common::{daemon::Daemon, recorderd_path, require_root, run, scratch, serial};

/// Sends raw bytes as a request and reads one reply line (or "" on close).
fn raw_call(socket: &Path, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    _ = s.write_all(bytes);
    let mut line = String::new();
    _ = BufReader::new(s).read_line(&mut line);
    line
}

/// The lines of stderr that say something (clap adds a blank line and a
/// "For more information" hint after its one error line).
fn error_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("For more information"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn blank_container_ids_are_refused_and_match_nothing() {
    require_root();
    let _serial = serial();
    let d = Daemon::start("blank-ids", &[]);
    let h = recorder::cgroup::Hierarchy::detect().unwrap();
    let (done, running) = ("/recorder-test-blank-done", "/recorder-test-blank-running");
    for cg in [done, running] {
        _ = h.remove(cg, Duration::from_secs(1));
        h.create(cg).unwrap();
    }
    // One profile in the index, one recording running.
    d.ctl_ok(&["start", "--cgroup", done]);
    d.ctl_ok(&["stop", "--cgroup", done]);
    d.ctl_ok(&["start", "--cgroup", running]);

    for cmd in ["stop", "profile", "start"] {
        for id in ["", "  "] {
            let out = run(&mut d.ctl(&[cmd, id]));
            assert_eq!(out.status.code(), Some(2), "{cmd} '{id}'");
            let lines = error_lines(&out.stderr);
            assert_eq!(lines.len(), 1, "{cmd} '{id}': one line: {lines:?}");
            assert!(lines[0].contains("cannot be empty"), "{lines:?}");
            assert!(out.stdout.is_empty(), "{cmd} '{id}' printed a profile");
        }
    }
    for op in ["profile", "stop", "start"] {
        for id in ["", " \t"] {
            let line = format!(
                "{}\n",
                serde_json::json!({"version": 1, "op": op, "target": {"container": id}})
            );
            let reply: serde_json::Value =
                serde_json::from_str(&raw_call(&d.socket, line.as_bytes())).unwrap();
            assert_eq!(reply["reply"], "error", "{line}: {reply}");
            assert_eq!(reply["kind"], "bad_request", "{line}: {reply}");
        }
    }
    // The running recording was left alone.
    let list: serde_json::Value =
        serde_json::from_str(&d.ctl_ok(&["list", "--output", "json"])).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["cgroup"], running);
    d.ctl_ok(&["stop", "--cgroup", running]);
    for cg in [done, running] {
        h.remove(cg, Duration::from_secs(1)).unwrap();
    }
}

/// The names pinned under `dir` (empty if it does not exist).
fn pinned(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The BPF links on the host (`bpftool link show`, one per line).
fn links() -> String {
    let out = run(Command::new("bpftool").args(["link", "show"]));
    assert!(out.status.success(), "bpftool link show failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs recorderd with its own state, expecting a start failure; returns
/// its stderr lines.
fn failed_start(dir: &Path, socket: &Path, pin_dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut cmd = Command::new(recorderd_path());
    cmd.arg("--socket")
        .arg(socket)
        .arg("--profiles-dir")
        .arg(dir.join("profiles"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--pin-dir")
        .arg(pin_dir)
        .args(["--metrics-addr", "off"])
        .args(extra);
    let out = run(&mut cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{cmd:?}: {stderr}");
    stderr.lines().map(str::to_owned).collect()
}

#[test]
fn a_failed_start_leaves_nothing_pinned_or_attached() {
    require_root();
    let _serial = serial();
    let d = Daemon::start("failed-start", &[]);
    let dir = scratch("hardening-failed-start");
    let fresh = PathBuf::from("/sys/fs/bpf/recorder-test-failed-start-2");
    _ = fs::remove_dir_all(&fresh);
    let (pins_before, links_before) = (pinned(&d.pin_dir), links());
    assert!(!pins_before.is_empty(), "the first daemon pinned its maps");

    // A busy socket.
    let lines = failed_start(&dir, &d.socket, &fresh, &[]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("another recorderd is serving this socket"),
        "{lines:?}"
    );
    assert!(pinned(&fresh).is_empty(), "{:?}", pinned(&fresh));
    // A socket path under a regular file.
    let file = dir.join("a-file");
    fs::write(&file, "").unwrap();
    let lines = failed_start(&dir, &file.join("sock"), &fresh, &[]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("a-file"), "{lines:?}");
    assert!(pinned(&fresh).is_empty(), "{:?}", pinned(&fresh));
    // A capacity the kernel cannot allocate.
    let socket = dir.join("sock");
    let lines = failed_start(&dir, &socket, &fresh, &["--capacity", "4000000000"]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("capacity 4000000000") && lines[0].contains("MiB"),
        "{lines:?}"
    );
    assert!(pinned(&fresh).is_empty(), "{:?}", pinned(&fresh));
    assert!(!socket.exists(), "the failed start left its socket");

    assert_eq!(pinned(&d.pin_dir), pins_before);
    assert_eq!(links(), links_before);
    d.ctl_ok(&["status"]);
    _ = fs::remove_dir(&fresh);
}

/// Sends SIGCONT to a stopped daemon when dropped (also on a failure).
struct Continue(i32);

impl Drop for Continue {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the test's own child.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

#[test]
fn recorderctl_times_out_against_a_stopped_daemon() {
    require_root();
    let _serial = serial();
    let d = Daemon::start("stopped", &[]);
    let pid = d.pid() as i32;
    // SAFETY: kill(2) on the test's own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let cont = Continue(pid);
    let started = std::time::Instant::now();
    let out = run(&mut d.ctl(&["status", "--timeout", "2"]));
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // Not before the timeout; the upper bound only tells a client that
    // never gives up (the daemon stays stopped) from one that does.
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(60),
        "took {took:?}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(&d.socket.display().to_string()) && lines[0].contains("within 2 s"),
        "{lines:?}"
    );
    drop(cont);
    d.ctl_ok(&["status"]);
}

#[test]
fn flag_errors_name_the_flag_in_one_line() {
    require_root();
    for (flag, value, code) in [
        ("--log-level", "loud", 2),
        ("--metrics-addr", "notanaddr", 2),
        ("--capacity", "0", 2),
    ] {
        let out = run(Command::new(recorderd_path()).args([flag, value]));
        assert_eq!(out.status.code(), Some(code), "{flag} {value}");
        let lines = error_lines(&out.stderr);
        assert!(
            lines[0].contains(flag) && lines[0].contains(value),
            "{flag}: {lines:?}"
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("recorderd.toml"),
            "{flag} blamed on the config file: {lines:?}"
        );
    }
    // A regular file as the profiles dir: one line, nothing pinned.
    let dir = scratch("hardening-flags");
    let file = dir.join("a-file");
    fs::write(&file, "").unwrap();
    let pin_dir = PathBuf::from("/sys/fs/bpf/recorder-test-flags");
    _ = fs::remove_dir_all(&pin_dir);
    let out = run(Command::new(recorderd_path())
        .arg("--profiles-dir")
        .arg(&file)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--socket")
        .arg(dir.join("sock"))
        .arg("--pin-dir")
        .arg(&pin_dir)
        .args(["--metrics-addr", "off"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(&file.display().to_string()) && lines[0].contains("not a directory"),
        "{lines:?}"
    );
    assert!(!pin_dir.exists());
}

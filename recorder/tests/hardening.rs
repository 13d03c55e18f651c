//! Hardening from an adversarial run (issue 22): blank container ids, a
//! failed start that must leave nothing behind, recorderctl's timeout, and
//! flag errors that name the flag.

mod common;

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use common::{daemon::Daemon, require_root, run};

/// Sends raw bytes as a request and reads one reply line (or "" on close).
fn raw_call(socket: &Path, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(bytes);
    let mut line = String::new();
    let _ = BufReader::new(s).read_line(&mut line);
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
    let d = Daemon::start("blank-ids", &[]);
    let h = recorder::cgroup::Hierarchy::detect().unwrap();
    let (done, running) = ("/recorder-test-blank-done", "/recorder-test-blank-running");
    for cg in [done, running] {
        let _ = h.remove(cg, Duration::from_secs(1));
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

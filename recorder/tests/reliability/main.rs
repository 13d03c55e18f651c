//! Reliability and security: load, concurrency, faults and bad input
//! against a real recorderd, kernel and podman. Figures are printed (run
//! with --nocapture to see them), never asserted as times.
//!
//! One test binary: the helpers are here, the tests in `load`,
//! `bad_clients`, `paths` and `faults`.

#[path = "../common/mod.rs"]
mod common;

mod bad_clients;
mod faults;
mod load;
mod paths;

use std::{
    collections::BTreeSet,
    fs,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Barrier},
    thread,
    time::{Duration, Instant},
};

use common::{allowed_names, daemon::Daemon, podman_run, require_root, run, run_ok};
use recorder::cgroup::Hierarchy;
use recorder_common::programs;

// ---------------------------------------------------------------- helpers

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

fn status(d: &Daemon) -> serde_json::Value {
    serde_json::from_str(&d.ctl_ok(&["status", "--output", "json"])).unwrap()
}

/// Sends raw bytes as a request and reads one reply line (or "" on close).
fn raw_call(socket: &Path, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    _ = s.write_all(bytes);
    let mut line = String::new();
    _ = BufReader::new(s).read_line(&mut line);
    line
}

/// 64 x86_64 syscalls that a plain C program does not otherwise make, each
/// harmless with (-1, 0, 0, ...).
const RARE: [(u32, &str); 64] = [
    (42, "connect"),
    (43, "accept"),
    (44, "sendto"),
    (45, "recvfrom"),
    (46, "sendmsg"),
    (47, "recvmsg"),
    (48, "shutdown"),
    (49, "bind"),
    (50, "listen"),
    (51, "getsockname"),
    (52, "getpeername"),
    (54, "setsockopt"),
    (55, "getsockopt"),
    (73, "flock"),
    (74, "fsync"),
    (75, "fdatasync"),
    (77, "ftruncate"),
    (78, "getdents"),
    (81, "fchdir"),
    (91, "fchmod"),
    (93, "fchown"),
    (138, "fstatfs"),
    (187, "readahead"),
    (190, "fsetxattr"),
    (193, "fgetxattr"),
    (196, "flistxattr"),
    (199, "fremovexattr"),
    (221, "fadvise64"),
    (232, "epoll_wait"),
    (233, "epoll_ctl"),
    (242, "mq_timedsend"),
    (243, "mq_timedreceive"),
    (244, "mq_notify"),
    (245, "mq_getsetattr"),
    (254, "inotify_add_watch"),
    (255, "inotify_rm_watch"),
    (258, "mkdirat"),
    (259, "mknodat"),
    (260, "fchownat"),
    (261, "futimesat"),
    (263, "unlinkat"),
    (264, "renameat"),
    (265, "linkat"),
    (266, "symlinkat"),
    (267, "readlinkat"),
    (268, "fchmodat"),
    (269, "faccessat"),
    (275, "splice"),
    (276, "tee"),
    (277, "sync_file_range"),
    (278, "vmsplice"),
    (280, "utimensat"),
    (281, "epoll_pwait"),
    (285, "fallocate"),
    (286, "timerfd_settime"),
    (287, "timerfd_gettime"),
    (288, "accept4"),
    (292, "dup3"),
    (295, "preadv"),
    (296, "pwritev"),
    (299, "recvmmsg"),
    (306, "syncfs"),
    (307, "sendmmsg"),
    (326, "copy_file_range"),
];

/// The race program, compiled once per test binary: tests run in parallel,
/// and each compiling it into the same (wiped) scratch dir removed the
/// binary from under another test.
fn race_program() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let bin = common::scratch("race64").join("race64");
        run_ok(
            Command::new("gcc")
                .args(["-O2", "-pthread", "-o"])
                .arg(&bin)
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/programs/race64.c"
                )),
        );
        bin
    })
    .clone()
}

/// Runs the race program `bin` with the syscalls `nrs` inside the cgroup
/// directory `dir` (the shell joins it before exec).
fn race_in(dir: &Path, bin: &Path, nrs: &[(u32, &str)]) {
    run_ok(
        Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"echo $$ > "$0" && exec "$@""#)
            .arg(dir.join("cgroup.procs"))
            .arg(bin)
            .args(nrs.iter().map(|(nr, _)| nr.to_string())),
    );
}

/// Runs the race program inside cgroup `rel` (recorded by `d` with
/// `start --cgroup`), stops the recording and returns the allowed names.
fn record_race(d: &Daemon, h: &Hierarchy, rel: &str, bin: &Path) -> BTreeSet<String> {
    let dir = h.create(rel).unwrap();
    d.ctl_ok(&["start", "--cgroup", rel]);
    race_in(&dir, bin, &RARE);
    let id = h.id(rel).unwrap();
    d.ctl_ok(&["stop", "--cgroup", rel]);
    let text = fs::read_to_string(d.profile_path(&format!("cgroup-{id}"))).unwrap();
    h.remove(rel, Duration::from_secs(5)).unwrap();
    allowed_names(&text)
}

fn lost(names: &BTreeSet<String>) -> Vec<&'static str> {
    RARE.iter()
        .map(|(_, n)| *n)
        .filter(|n| !names.contains(*n))
        .collect()
}

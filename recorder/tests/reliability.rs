//! Reliability and security: load, concurrency, faults and bad input
//! against a real recorderd, kernel and podman. Figures are printed (run
//! with --nocapture to see them), never asserted as times.

mod common;

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

// ---------------------------------------------------------------- load

#[test]
fn sixty_four_threads_at_a_barrier_twenty_rounds_nothing_lost() {
    require_root();
    let bin = race_program();
    let h = Hierarchy::detect().unwrap();
    let d = Daemon::start("race64", &[]);
    let mut total_lost = 0;
    for round in 0..20 {
        let rel = format!("/recorder-test-race64-{}-{round}", std::process::id());
        let names = record_race(&d, &h, &rel, &bin);
        let missing = lost(&names);
        assert!(missing.is_empty(), "round {round}: lost {missing:?}");
        total_lost += missing.len();
    }
    println!("RESULT race64: 20 rounds x 64 threads, lost = {total_lost}");
}

/// A cgroup that takes over the cache slot of a stopped recording starts
/// from an empty set: nothing of the first recording leaks into it, and
/// nothing of its own is lost.
#[test]
fn a_reused_cache_slot_is_handed_over_clean() {
    require_root();
    let bin = race_program();
    let h = Hierarchy::detect().unwrap();
    let d = Daemon::start("cacheslot", &[]);
    let pid = std::process::id();
    let run_in = |rel: &str, nrs: &[(u32, &str)]| race_in(&h.dir(rel).unwrap(), &bin, nrs);
    // A records all 64 rare syscalls in its cache slot.
    let rel_a = format!("/recorder-test-slot-a-{pid}");
    h.create(&rel_a).unwrap();
    let id_a = h.id(&rel_a).unwrap();
    d.ctl_ok(&["start", "--cgroup", &rel_a]);
    run_in(&rel_a, &RARE);
    assert_eq!(status(&d)["cached"], 1, "A records in the cache");
    d.ctl_ok(&["stop", "--cgroup", &rel_a]);
    let a = allowed_names(&fs::read_to_string(d.profile_path(&format!("cgroup-{id_a}"))).unwrap());
    assert!(lost(&a).is_empty(), "A lost {:?}", lost(&a));
    // B: a new cgroup whose id maps to the same slot (ids are inode
    // numbers, handed out in order, so one turns up within a few thousand).
    let slot = recorder_common::cache_slot(id_a);
    let rel_b = format!("/recorder-test-slot-b-{pid}");
    let mut tries = 0;
    let id_b = loop {
        h.create(&rel_b).unwrap();
        let id = h.id(&rel_b).unwrap();
        if recorder_common::cache_slot(id) == slot {
            break id;
        }
        h.remove(&rel_b, Duration::from_secs(5)).unwrap();
        tries += 1;
        assert!(tries < 20_000, "no cgroup id with cache slot {slot}");
    };
    // The slot is freed a second after A's release, on the daemon's next
    // command.
    thread::sleep(Duration::from_millis(1500));
    status(&d);
    let (first, second) = RARE.split_at(32);
    d.ctl_ok(&["start", "--cgroup", &rel_b]);
    run_in(&rel_b, first);
    assert_eq!(status(&d)["cached"], 1, "B took the freed slot");
    d.ctl_ok(&["stop", "--cgroup", &rel_b]);
    let b = allowed_names(&fs::read_to_string(d.profile_path(&format!("cgroup-{id_b}"))).unwrap());
    h.remove(&rel_a, Duration::from_secs(5)).unwrap();
    h.remove(&rel_b, Duration::from_secs(5)).unwrap();
    let leaked: Vec<_> = second.iter().filter(|(_, n)| b.contains(*n)).collect();
    let missing: Vec<_> = first.iter().filter(|(_, n)| !b.contains(*n)).collect();
    println!(
        "RESULT cache slot {slot}: A={id_a}, B={id_b} after {tries} tries; leaked {}, lost {}",
        leaked.len(),
        missing.len()
    );
    assert!(leaked.is_empty(), "A's syscalls leaked into B: {leaked:?}");
    assert!(missing.is_empty(), "B lost {missing:?}");
}

#[test]
fn five_hundred_concurrent_clients_and_a_recording_meanwhile() {
    require_root();
    let bin = race_program();
    let h = Hierarchy::detect().unwrap();
    let d = Daemon::start("clients500", &[]);
    const CLIENTS: usize = 500;
    const ROUNDS: usize = 4;
    let barrier = Arc::new(Barrier::new(CLIENTS + 1));
    let socket = d.socket.clone();
    let start = Instant::now();
    let handles: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let barrier = barrier.clone();
            let socket = socket.clone();
            thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || {
                    barrier.wait();
                    let mut ok = 0;
                    for r in 0..ROUNDS {
                        let op = if (i + r) % 2 == 0 { "status" } else { "list" };
                        let line = raw_call(
                            &socket,
                            format!("{{\"version\":1,\"op\":\"{op}\"}}\n").as_bytes(),
                        );
                        let v: serde_json::Value = match serde_json::from_str(&line) {
                            Ok(v) => v,
                            Err(_) => continue,
                        };
                        if v["reply"] == op {
                            ok += 1;
                        }
                    }
                    ok
                })
                .unwrap()
        })
        .collect();
    barrier.wait();
    // A recording meanwhile.
    let rel = format!("/recorder-test-clients500-{}", std::process::id());
    let names = record_race(&d, &h, &rel, &bin);
    let answered: usize = handles.into_iter().map(|t| t.join().unwrap()).sum();
    let fully_served = answered;
    println!(
        "RESULT clients500: {fully_served}/{} requests answered from {CLIENTS} concurrent clients in {:?}; recording meanwhile lost = {}",
        CLIENTS * ROUNDS,
        start.elapsed(),
        lost(&names).len()
    );
    assert_eq!(answered, CLIENTS * ROUNDS);
    assert!(lost(&names).is_empty(), "lost {:?}", lost(&names));
}

/// Starts two containers at a time in auto mode; each must get a valid
/// profile; the map returns to its baseline; RSS stays flat.
#[test]
fn short_lived_containers_under_auto_mode() {
    require_root();
    let count: usize = std::env::var("RECORDER_STRESS_CONTAINERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let d = Daemon::start("stress", &["--all"]);
    let baseline = status(&d)["map_entries"].as_u64().unwrap();
    let rss = |pid: u32| -> u64 {
        fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    };
    let dir = d.dir.clone();
    let one = |n: usize| -> String {
        let cid = dir.join(format!("cid-{n}"));
        _ = fs::remove_file(&cid);
        let out = run(&mut podman_run(
            &["--cidfile", cid.to_str().unwrap()],
            &["/bin/sh", "-c", "echo $$ > /tmp/p && cat /tmp/p"],
        ));
        assert!(out.status.success(), "container {n}: {out:?}");
        fs::read_to_string(&cid).unwrap().trim().to_owned()
    };
    let start = Instant::now();
    let mut ids = Vec::new();
    let mut rss_after_20 = None;
    let mut n = 0;
    while n < count {
        let (a, b) = thread::scope(|s| {
            let a = s.spawn(|| one(n));
            let b = (n + 1 < count).then(|| s.spawn(|| one(n + 1)));
            (a.join().unwrap(), b.map(|b| b.join().unwrap()))
        });
        ids.push(a);
        ids.extend(b);
        n = ids.len();
        if rss_after_20.is_none() && n >= 20 {
            // Let the profiles of the first 20 be written first.
            for id in &ids {
                d.wait_for(&d.profile_path(id));
            }
            rss_after_20 = Some(rss(d.pid()));
        }
    }
    let elapsed = start.elapsed();
    for id in &ids {
        let profile = d.wait_for(&d.profile_path(id));
        let names = allowed_names(&profile);
        assert!(
            names.contains("execve") && names.contains("exit_group"),
            "{id}: {names:?}"
        );
    }
    let written = ids.iter().filter(|id| d.profile_path(id).exists()).count();
    // Our containers' recordings are gone, and so are their map entries.
    // An --all daemon also records containers that others run on the host
    // meanwhile: their entries are theirs, so the baseline is checked when
    // no such recording is alive (and reported otherwise).
    let mut entries = 0;
    let mut foreign = 0;
    wait_until("our recordings and map entries to go", 60, || {
        let list = d.ctl_ok(&["list", "--output", "json"]);
        let st = status(&d);
        entries = st["map_entries"].as_u64().unwrap();
        foreign = st["recordings"].as_u64().unwrap();
        !ids.iter().any(|id| list.contains(id.as_str())) && (foreign > 0 || entries <= baseline)
    });
    if foreign > 0 {
        println!("NOTE stress: {foreign} recordings of other containers alive; map check skipped");
    }
    // The filter in front of the map counts exactly the map's entries: every
    // kernel enrolment and every removal kept it in step.
    let mut filter = 0;
    wait_until("the filter to count the map's entries", 10, || {
        let st = status(&d);
        entries = st["map_entries"].as_u64().unwrap();
        filter = st["filter_count"].as_u64().unwrap();
        filter == entries
    });
    let rss_end = rss(d.pid());
    let drift = rss_after_20.map(|r| (rss_end as f64 - r as f64) / r as f64 * 100.0);
    println!(
        "RESULT stress: {count} containers (2 at a time) in {elapsed:?}, {:?} per container; profiles {written}/{count}; map entries {entries} (baseline {baseline}), filter count {filter}; RSS after 20 {:?} kB, at end {rss_end} kB, drift {drift:?} %",
        elapsed / count as u32,
        rss_after_20
    );
    assert_eq!(written, count);
    if let Some(drift) = drift {
        assert!(drift <= 10.0, "RSS grew by {drift:.1} %");
    }
}

// ---------------------------------------------------------------- bad clients

#[test]
fn bad_requests_get_errors_and_a_slow_client_blocks_no_one() {
    require_root();
    let d = Daemon::start("badclients", &[]);
    let expect_error = |what: &str, reply: &str, needle: &str| {
        let v: serde_json::Value = serde_json::from_str(reply)
            .unwrap_or_else(|e| panic!("{what}: no JSON reply ({e}): {reply:?}"));
        assert_eq!(v["reply"], "error", "{what}: {reply}");
        let msg = v["message"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{what}: {msg}");
    };
    expect_error(
        "malformed",
        &raw_call(&d.socket, b"{nope\n"),
        "malformed request",
    );
    expect_error(
        "unknown op",
        &raw_call(&d.socket, b"{\"version\":1,\"op\":\"reboot\"}\n"),
        "unknown or malformed request",
    );
    expect_error(
        "wrong version",
        &raw_call(&d.socket, b"{\"version\":7,\"op\":\"list\"}\n"),
        "protocol",
    );
    expect_error(
        "incomplete line",
        &{
            let mut s = UnixStream::connect(&d.socket).unwrap();
            s.write_all(b"{\"version\":1,\"op\":\"list\"}").unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut r = String::new();
            s.read_to_string(&mut r).unwrap();
            r
        },
        "incomplete",
    );
    // Over the size limit: an error reply, or the daemon closes on us.
    let big = {
        let mut v = vec![b'x'; recorder::control::MAX_REQUEST + 4096];
        v.push(b'\n');
        v
    };
    let reply = raw_call(&d.socket, &big);
    if !reply.is_empty() {
        expect_error("oversized", &reply, "larger than");
    }
    // Slow clients that never finish their line: others are served
    // meanwhile, and each slow one gets the timeout error.
    let slow: Vec<_> = (0..8)
        .map(|_| {
            let socket = d.socket.clone();
            thread::spawn(move || {
                let mut s = UnixStream::connect(&socket).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                s.write_all(b"{\"version\":1,").unwrap();
                let t = Instant::now();
                let mut line = String::new();
                _ = BufReader::new(s).read_line(&mut line);
                (line, t.elapsed(), Instant::now())
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let mut served = 0;
    for _ in 0..50 {
        let reply = raw_call(&d.socket, b"{\"version\":1,\"op\":\"status\"}\n");
        let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(v["reply"], "status", "{reply}");
        served += 1;
    }
    let served_in = t.elapsed();
    let served_at = Instant::now();
    for h in slow {
        let (line, waited, answered_at) = h.join().unwrap();
        expect_error("slow client", &line, "timed out");
        // The others were served while this one still hung: had the slow
        // clients blocked the server, they would have been answered first.
        assert!(
            answered_at > served_at,
            "a slow client was answered before the others were served"
        );
        println!("RESULT slow client answered after {waited:?}");
    }
    println!("RESULT badclients: {served}/50 served in {served_in:?} while 8 slow clients hung");
    // Still serving after all that.
    d.ctl_ok(&["status"]);
}

#[test]
fn fuzzed_requests_never_kill_the_daemon() {
    require_root();
    let d = Daemon::start("fuzzsock", &[]);
    let seeds: &[&[u8]] = &[
        b"{\"version\":1,\"op\":\"status\"}\n",
        b"{\"version\":1,\"op\":\"start\",\"target\":{\"cgroup\":\"/x\"}}\n",
        b"{\"version\":1,\"op\":\"stop\",\"target\":{\"container\":\"abc\"}}\n",
        b"{\"version\":1,\"op\":\"profile\",\"target\":{\"pid\":1}}\n",
    ];
    let mut rng = fuzz::Rng(0x5eed_1234_abcd_0001);
    let cases = fuzz::cases(300);
    for i in 0..cases {
        let mut input = fuzz::mutate(&mut rng, seeds[i % seeds.len()]);
        input.retain(|&b| b != b'\n');
        input.push(b'\n');
        let reply = raw_call(&d.socket, &input);
        assert!(
            reply.is_empty() || serde_json::from_str::<serde_json::Value>(&reply).is_ok(),
            "case {i}: {:?} -> {reply:?}",
            String::from_utf8_lossy(&input)
        );
    }
    d.ctl_ok(&["status"]);
    println!("RESULT fuzz socket: {cases} mutated requests, daemon alive");
}

/// Bounded mutation fuzzing of a live daemon's socket without extra
/// dependencies: a fixed seed, so a failure reproduces; RECORDER_FUZZ_CASES
/// raises the count. (The parsers themselves are fuzzed with coverage
/// guidance by cargo-fuzz: fuzz/, `cargo xtask fuzz`.)
mod fuzz {
    pub(crate) struct Rng(pub u64);
    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }
    pub(crate) fn cases(default: usize) -> usize {
        std::env::var("RECORDER_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
    const TOKENS: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"",
        b":",
        b",",
        b"null",
        b"-1",
        b"1e999",
        b"\\u0000",
        b"\"op\"",
        b"\"version\"",
        b"\"target\"",
        b"\"cgroup\"",
        b"\"/../..\"",
        b"\"output\"",
        b"\"base\"",
        b"\"syscalls\"",
        b"\"names\"",
        b"18446744073709551616",
        b"\xff\xfe",
        b"true",
    ];
    pub(crate) fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
        let mut v = seed.to_vec();
        for _ in 0..=rng.below(6) {
            let at = rng.below(v.len() + 1);
            match rng.below(4) {
                0 if !v.is_empty() => {
                    let end = (at + rng.below(8)).min(v.len());
                    v.drain(at.min(end)..end);
                }
                1 => {
                    let t = TOKENS[rng.below(TOKENS.len())];
                    v.splice(at..at, t.iter().copied());
                }
                2 if at < v.len() => v[at] = rng.next() as u8,
                _ => {
                    let end = (at + rng.below(16)).min(v.len());
                    let chunk = v[at.min(end)..end].to_vec();
                    v.splice(at..at, chunk);
                }
            }
        }
        v
    }
}

#[test]
fn malformed_base_profile_is_refused_with_location() {
    let dir = common::scratch("bad-base");
    let base = dir.join("base.json");
    fs::write(
        &base,
        "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscalls\": [ {\"names\": 3} ]\n}\n",
    )
    .unwrap();
    let out = run(common::recorderctl()
        .args([
            "start",
            "--cgroup",
            "/x",
            "--socket",
            "/nonexistent.sock",
            "--base",
        ])
        .arg(&base));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&base.display().to_string()) && err.contains("line 3"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

// ---------------------------------------------------------------- paths

#[test]
fn planted_symlink_is_not_followed_and_dotdot_is_refused() {
    require_root();
    let d = Daemon::start("symlink", &[]);
    let h = Hierarchy::detect().unwrap();
    let rel = format!("/recorder-test-symlink-{}", std::process::id());
    let dir = h.create(&rel).unwrap();
    d.ctl_ok(&["start", "--cgroup", &rel]);
    let id = h.id(&rel).unwrap();
    // The attacker plants a symlink at the profile's path.
    let victim = d.dir.join("victim");
    fs::write(&victim, "untouched").unwrap();
    fs::create_dir_all(&d.profiles).unwrap();
    let path = d.profile_path(&format!("cgroup-{id}"));
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    run_ok(
        Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"echo $$ > "$0" && exec /bin/true"#)
            .arg(dir.join("cgroup.procs")),
    );
    // The cgroup goes: the daemon finishes the recording by itself.
    h.remove(&rel, Duration::from_secs(5)).unwrap();
    wait_until("the profile to replace the symlink", 30, || {
        fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file())
    });
    assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
    assert!(allowed_names(&fs::read_to_string(&path).unwrap()).contains("execve"));
    // No temp files left behind.
    let left: Vec<_> = fs::read_dir(&d.profiles)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, [format!("cgroup-{id}.json")], "{left:?}");

    // `..` in a cgroup path or an output path is refused.
    for bad in ["/../..", "/..", "/a/../../etc"] {
        let out = run(&mut d.ctl(&["start", "--cgroup", bad]));
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid cgroup path"), "{bad}: {err}");
    }
    let rel2 = format!("/recorder-test-symlink2-{}", std::process::id());
    h.create(&rel2).unwrap();
    for out in ["/tmp/../etc/passwd", "relative.json"] {
        let req = serde_json::json!({
            "version": 1, "op": "start",
            "target": {"cgroup": rel2}, "output": out,
        });
        let reply = raw_call(&d.socket, format!("{req}\n").as_bytes());
        assert!(
            reply.contains("\"error\"") && reply.contains("must be an absolute path without '..'"),
            "{out}: {reply}"
        );
    }
    // Container ids from the outside are validated too.
    let out = run(&mut d.ctl(&["start", "../../etc"]));
    assert!(!out.status.success());
    h.remove(&rel2, Duration::from_secs(5)).unwrap();
    assert_eq!(status(&d)["recordings"], 0);
}

// ---------------------------------------------------------------- faults

fn mount_tmpfs(at: &Path, opts: &str) {
    run_ok(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(at),
    );
}

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

/// The profiles dir read-only, then full: the error is in the log and in
/// status; the recording is kept (list, map) and written once possible.
#[test]
fn profiles_dir_read_only_or_full_keeps_and_retries() {
    require_root();
    let d = Daemon::start("rofull", &[]);
    let h = Hierarchy::detect().unwrap();
    fs::create_dir_all(&d.profiles).unwrap();
    mount_tmpfs(&d.profiles, "size=64k,mode=755");
    let _guard = Unmount(d.profiles.clone());

    for case in ["read-only", "full"] {
        match case {
            "read-only" => {
                run_ok(
                    Command::new("mount")
                        .args(["-o", "remount,ro"])
                        .arg(&d.profiles),
                );
            }
            _ => {
                run_ok(
                    Command::new("mount")
                        .args(["-o", "remount,rw"])
                        .arg(&d.profiles),
                );
                // Fill it up.
                let _ = run(Command::new("dd")
                    .args(["if=/dev/zero", "bs=4k", "count=64"])
                    .arg(format!("of={}", d.profiles.join("filler").display())));
                run(&mut Command::new("sync"));
            }
        }
        let rel = format!("/recorder-test-rofull-{case}-{}", std::process::id());
        let dir = h.create(&rel).unwrap();
        d.ctl_ok(&["start", "--cgroup", &rel]);
        let id = h.id(&rel).unwrap();
        let key = format!("cgroup-{id}");
        run_ok(
            Command::new("/bin/sh")
                .arg("-c")
                .arg(r#"echo $$ > "$0" && exec /bin/true"#)
                .arg(dir.join("cgroup.procs")),
        );
        let entries_before = status(&d)["map_entries"].as_u64().unwrap();
        h.remove(&rel, Duration::from_secs(5)).unwrap();
        let mut st = serde_json::Value::Null;
        wait_until("a failed write in status", 30, || {
            st = status(&d);
            st["pending_writes"] == 1
        });
        let last_error = st["last_error"].as_str().unwrap_or_default().to_owned();
        let want = if case == "read-only" {
            "Read-only file system"
        } else {
            "No space left on device"
        };
        assert!(
            last_error.contains(&key) && last_error.contains(want),
            "{case}: {last_error}"
        );
        assert!(d.log_text().contains(&last_error), "{case}: not logged");
        // Kept in memory and in the map.
        let list = d.ctl_ok(&["list", "--output", "json"]);
        assert!(list.contains(&key), "{case}: {list}");
        assert_eq!(
            st["map_entries"].as_u64().unwrap(),
            entries_before,
            "{case}: map entry dropped"
        );
        println!("RESULT {case}: last_error = {last_error}; pending_writes = 1");
        // Space returns: the retry writes it.
        match case {
            "read-only" => {
                run_ok(
                    Command::new("mount")
                        .args(["-o", "remount,rw"])
                        .arg(&d.profiles),
                );
            }
            _ => {
                fs::remove_file(d.profiles.join("filler")).unwrap();
                run_ok(&mut Command::new("sync"));
            }
        }
        let text = d.wait_for(&d.profile_path(&key));
        assert!(allowed_names(&text).contains("execve"), "{case}: {text}");
        wait_until("pending writes cleared", 30, || {
            status(&d)["pending_writes"] == 0
        });
    }
}

#[test]
fn cgroup_removed_while_stop_is_in_flight() {
    require_root();
    let d = Daemon::start("stoprace", &[]);
    let h = Hierarchy::detect().unwrap();
    for round in 0..10 {
        let rel = format!("/recorder-test-stoprace-{}-{round}", std::process::id());
        let dir = h.create(&rel).unwrap();
        d.ctl_ok(&["start", "--cgroup", &rel]);
        let key = format!("cgroup-{}", h.id(&rel).unwrap());
        run_ok(
            Command::new("/bin/sh")
                .arg("-c")
                .arg(r#"echo $$ > "$0" && exec /bin/true"#)
                .arg(dir.join("cgroup.procs")),
        );
        let go = Barrier::new(2);
        let (stop, _) = thread::scope(|s| {
            let stop = s.spawn(|| {
                go.wait();
                run(&mut d.ctl(&["stop", "--cgroup", &rel]))
            });
            go.wait();
            h.remove(&rel, Duration::from_secs(5)).unwrap();
            (stop.join().unwrap(), ())
        });
        let path = d.profile_path(&key);
        let text = d.wait_for(&path);
        assert!(allowed_names(&text).contains("execve"), "{round}");
        // One profile, no leftovers, no recording left, daemon alive.
        let files = fs::read_dir(&d.profiles)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(&key))
            .count();
        assert_eq!(files, 1, "round {round}");
        wait_until("the recording to go", 10, || status(&d)["recordings"] == 0);
        if !stop.status.success() {
            let err = String::from_utf8_lossy(&stop.stderr);
            assert!(
                err.contains("not being recorded") || err.contains("does not exist"),
                "round {round}: {err}"
            );
        }
    }
    assert_eq!(
        fs::read_dir(&d.profiles).unwrap().count(),
        10,
        "one profile per recording"
    );
}

/// tracefs and bpffs unmounted when recorderd starts: it mounts them. Done
/// in a private mount namespace, so the host (and every other test) keeps
/// its mounts whatever happens.
#[test]
fn missing_tracefs_and_bpffs_are_mounted_at_startup() {
    require_root();
    let dir = common::scratch("nomounts");
    let socket = dir.join("sock");
    let log = dir.join("log");
    let pin = format!("/sys/fs/bpf/recorder-test-nomounts-{}", std::process::id());
    let script = r#"
        umount -l /sys/kernel/tracing 2>/dev/null
        umount -l /sys/kernel/debug/tracing 2>/dev/null
        umount -l /sys/fs/bpf 2>/dev/null
        if grep -qE ' /sys/(kernel/tracing|fs/bpf) ' /proc/self/mountinfo; then
            echo "still mounted" >&2; exit 99
        fi
        exec "$@"
    "#;
    let mut child = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            script,
            "sh",
        ])
        .arg(common::recorderd_path())
        .arg("--socket")
        .arg(&socket)
        .arg("--profiles-dir")
        .arg(dir.join("profiles"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--pin-dir")
        .arg(&pin)
        .args(["--log-level", "debug"])
        .stdout(fs::File::create(&log).unwrap())
        .stderr(fs::File::create(dir.join("err")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let answered = loop {
        let out = run(common::recorderctl()
            .args(["status", "--socket"])
            .arg(&socket));
        if out.status.success() {
            break true;
        }
        if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            break false;
        }
        thread::sleep(Duration::from_millis(100));
    };
    let stderr = fs::read_to_string(dir.join("err")).unwrap_or_default();
    let mountinfo =
        fs::read_to_string(format!("/proc/{}/mountinfo", child.id())).unwrap_or_default();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    _ = child.wait();
    assert!(answered, "recorderd did not come up:\n{stderr}");
    assert!(!stderr.contains("still mounted"), "{stderr}");
    // It mounted both in its namespace.
    assert!(mountinfo.contains(" /sys/fs/bpf "), "{mountinfo}");
    assert!(mountinfo.contains("tracefs"), "{mountinfo}");
    println!("RESULT nomounts: recorderd mounted tracefs and bpffs and answered");
}

/// kill -9 of recorderd with a manual (`start --cgroup`) recording running
/// and a profile write pending; then a restart. tests/auto.rs covers auto
/// mode; this covers what it does not: syscalls made while the daemon is
/// down land in a manual recording, and a pending write survives the kill.
#[test]
fn kill_9_with_a_manual_recording_and_a_pending_write() {
    require_root();
    let bin = race_program();
    let h = Hierarchy::detect().unwrap();
    let mut d = Daemon::start("kill9manual", &[]);
    fs::create_dir_all(&d.profiles).unwrap();
    mount_tmpfs(&d.profiles, "size=64k,mode=755");
    let _guard = Unmount(d.profiles.clone());
    let pid = std::process::id();
    let (first, second) = RARE.split_at(32);
    let in_cgroup = |dir: &Path, nrs: &[(u32, &str)]| race_in(dir, &bin, nrs);
    // A: recorded; half its syscalls before the kill, half while down.
    let rel_a = format!("/recorder-test-kill9-a-{pid}");
    let dir_a = h.create(&rel_a).unwrap();
    d.ctl_ok(&["start", "--cgroup", &rel_a]);
    let key_a = format!("cgroup-{}", h.id(&rel_a).unwrap());
    // B: finished while the profiles dir is read-only: a pending write.
    let rel_b = format!("/recorder-test-kill9-b-{pid}");
    let dir_b = h.create(&rel_b).unwrap();
    d.ctl_ok(&["start", "--cgroup", &rel_b]);
    let key_b = format!("cgroup-{}", h.id(&rel_b).unwrap());
    in_cgroup(&dir_a, first);
    in_cgroup(&dir_b, RARE.as_slice());
    run_ok(
        Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&d.profiles),
    );
    h.remove(&rel_b, Duration::from_secs(5)).unwrap();
    wait_until("the pending write", 30, || {
        status(&d)["pending_writes"] == 1
    });

    d.signal(libc::SIGKILL);
    // The recorder stays attached with the hooks that keep its last-caller
    // entries honest (a recorder without them could credit a task's
    // syscalls to the cgroup it just left).
    for prog in [
        programs::SYS_ENTER,
        programs::CGROUP_ATTACH_TASK,
        programs::SCHED_PROCESS_FORK,
    ] {
        let link = format!("link_{prog}");
        assert!(d.pin_dir.join(&link).exists(), "{link} not pinned");
    }
    in_cgroup(&dir_a, second);
    d.spawn();

    // B is still pending after the restart, and is written once possible.
    let st = status(&d);
    let list = d.ctl_ok(&["list", "--output", "json"]);
    assert!(list.contains(&key_a) && list.contains(&key_b), "{list}");
    // The pinned filter came back with the pinned map, in step with it.
    assert_eq!(st["filter_count"], st["map_entries"], "{st}");
    run_ok(
        Command::new("mount")
            .args(["-o", "remount,rw"])
            .arg(&d.profiles),
    );
    let b = allowed_names(&d.wait_for(&d.profile_path(&key_b)));
    assert!(lost(&b).is_empty(), "B lost {:?}", lost(&b));
    // A has both halves.
    d.ctl_ok(&["stop", "--cgroup", &rel_a]);
    let a = allowed_names(&fs::read_to_string(d.profile_path(&key_a)).unwrap());
    h.remove(&rel_a, Duration::from_secs(5)).unwrap();
    println!(
        "RESULT kill9 manual: A lost = {}, B lost = {}, pending after restart = {}",
        lost(&a).len(),
        lost(&b).len(),
        st["pending_writes"]
    );
    assert!(lost(&a).is_empty(), "A lost {:?}", lost(&a));
}

/// Connects from a thread whose own credentials (raw setresuid/setresgid,
/// which change the calling thread only) are uid/gid 65534 without
/// supplementary groups, sends `line` and returns the reply.
fn call_as_nobody(socket: &Path, line: String) -> String {
    let socket = socket.to_owned();
    thread::spawn(move || {
        // SAFETY: raw syscalls change this thread's credentials only; the
        // thread ends right after.
        unsafe {
            assert_eq!(
                libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<u32>()),
                0
            );
            assert_eq!(libc::syscall(libc::SYS_setresgid, 65534, 65534, 65534), 0);
            assert_eq!(libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534), 0);
        }
        raw_call(&socket, line.as_bytes())
    })
    .join()
    .unwrap()
}

/// A socket-group member is not root: it must not choose where recorderd
/// (running as root) writes a file.
#[test]
fn a_group_member_cannot_choose_the_output_path() {
    require_root();
    let d = Daemon::start("groupoutput", &["--socket-group", "65534"]);
    let h = Hierarchy::detect().unwrap();
    let rel = format!("/recorder-test-groupoutput-{}", std::process::id());
    let dir = h.create(&rel).unwrap();
    // Root-only target the attacker wants to overwrite.
    let victim = d.dir.join("root-only");
    fs::write(&victim, "untouched").unwrap();
    // The member is served otherwise.
    let reply = call_as_nobody(&d.socket, "{\"version\":1,\"op\":\"status\"}\n".into());
    assert!(reply.contains("\"status\""), "{reply}");
    let req = serde_json::json!({
        "version": 1, "op": "start",
        "target": {"cgroup": rel}, "output": victim,
    });
    let reply = call_as_nobody(&d.socket, format!("{req}\n"));
    // Let the cgroup go, so that a recording (if one started) is written.
    run_ok(
        Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"echo $$ > "$0" && exec /bin/true"#)
            .arg(dir.join("cgroup.procs")),
    );
    h.remove(&rel, Duration::from_secs(5)).unwrap();
    wait_until("no recording left", 30, || status(&d)["recordings"] == 0);
    assert_eq!(
        fs::read_to_string(&victim).unwrap(),
        "untouched",
        "a group member overwrote a root-only file; reply: {reply}"
    );
    assert!(
        reply.contains("permission_denied") && reply.contains("only root may choose"),
        "{reply}"
    );
    assert!(d.log_text().contains("refused output path"));
    // Root still may.
    let rel2 = format!("/recorder-test-groupoutput2-{}", std::process::id());
    h.create(&rel2).unwrap();
    let out = d.dir.join("chosen.json");
    let req = serde_json::json!({
        "version": 1, "op": "start",
        "target": {"cgroup": rel2}, "output": out,
    });
    let reply = raw_call(&d.socket, format!("{req}\n").as_bytes());
    assert!(reply.contains("\"started\""), "{reply}");
    h.remove(&rel2, Duration::from_secs(5)).unwrap();
    d.wait_for(&out);
}

//! recorderd + `recorderctl start/stop/profile/list/status` on real
//! podman/runc containers, proven by enforcing the recorded profiles.

mod common;

use std::{
    fs,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use common::{allowed_names, daemon::Daemon, podman_run, require_root, run, run_ok, without};

/// The workload: waits for /tmp/go (when `wait` is set), then uses chmod,
/// mkdir, symlink and a TCP connection over 127.0.0.1 in the container's
/// own network namespace.
fn workload(wait: bool) -> String {
    let wait = if wait {
        "while [ ! -e /tmp/go ]; do sleep 0.1; done; "
    } else {
        ""
    };
    // The client retries until the listener is up; every wait is bounded.
    // The listener's stdin is a pipe that stays open: busybox nc shuts its
    // side of the connection down when its stdin ends, and with /dev/null a
    // client that had not yet read "ping" from its own pipe would see EOF
    // and quit without sending it (about 1 run in 20 lost the data).
    format!(
        "{wait}echo hi > /tmp/f && chmod 600 /tmp/f && mkdir /tmp/d && ln -s /tmp/d /tmp/l && \
         (sleep 30 | nc -l -p 7777 > /tmp/got &) && \
         for i in $(seq 50); do echo ping | nc -w 2 127.0.0.1 7777 && break; sleep 0.1; done; \
         for i in $(seq 50); do grep -q ping /tmp/got && echo WORKLOAD-OK && break; sleep 0.1; done"
    )
}

fn podman_detached(name: &str, script: &str) -> String {
    _ = Command::new("podman").args(["rm", "-f", name]).output();
    let out = run_ok(&mut podman_run(
        &["-d", "--name", name],
        &["/bin/sh", "-c", script],
    ));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn podman_rm(name: &str) {
    _ = Command::new("podman")
        .args(["rm", "-f", "-t", "0", name])
        .output();
}

/// The shipped base profile for mid-life recordings on podman + runc.
fn base_profile() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../profiles/base-podman-runc.json"
    ))
}

#[test]
fn start_stop_profile_enforced() {
    require_root();
    let d = Daemon::start("core", &[]);
    // Kept alive after the workload, so its logs can be read.
    let id = podman_detached("recorder-core", &format!("{}; sleep 60", workload(true)));
    let short = &id[..12];

    let out = d.ctl_ok(&["start", short]);
    assert!(out.contains(&id), "start names the full id: {out}");
    // list shows the recording with its cgroup
    let list = d.ctl_ok(&["list", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v[0]["key"], id.as_str());
    assert!(
        v[0]["cgroup"]
            .as_str()
            .unwrap()
            .ends_with(&format!("libpod-{id}"))
    );

    run_ok(Command::new("podman").args(["exec", "recorder-core", "touch", "/tmp/go"]));
    // Wait for the workload to finish (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let logs = run(Command::new("podman").args(["logs", "recorder-core"]));
        if String::from_utf8_lossy(&logs.stdout).contains("WORKLOAD-OK") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "workload did not finish: {}{}",
            String::from_utf8_lossy(&logs.stdout),
            String::from_utf8_lossy(&logs.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // `profile` prints what was recorded so far and keeps recording.
    let so_far = d.ctl_ok(&["profile", short]);
    assert!(allowed_names(&so_far).contains("mkdir"), "{so_far}");
    let status = d.ctl_ok(&["status", "--output", "json"]);
    let s: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(s["recordings"], 1);
    assert_eq!(s["attached"], true);
    assert_eq!(s["filter_count"], s["map_entries"], "{s}");
    // The container's cgroup moved to a cache slot (nothing else recorded).
    assert_eq!(s["cached"], 1, "{s}");

    let path = d.ctl_ok(&["stop", short, "--base", base_profile().to_str().unwrap()]);
    let path = path.trim();
    assert_eq!(Path::new(path), d.profile_path(&id));
    podman_rm("recorder-core");
    let profile = fs::read_to_string(path).unwrap();
    let names = allowed_names(&profile);
    for any_of in [
        &["chmod", "fchmodat", "fchmodat2"][..],
        &["mkdir", "mkdirat"],
        &["symlink", "symlinkat"],
        &["socket"],
        &["connect"],
        &["accept", "accept4"],
        &["bind"],
        &["listen"],
    ] {
        assert!(
            any_of.iter().any(|n| names.contains(*n)),
            "profile lacks {any_of:?}: {names:?}"
        );
    }
    // Nothing recorded means no such rule: the daemon detaches when idle.
    let s: serde_json::Value =
        serde_json::from_str(&d.ctl_ok(&["status", "--output", "json"])).unwrap();
    assert_eq!(s["recordings"], 0);
    assert_eq!(s["attached"], false, "detach when idle");
    assert_eq!(s["filter_count"], 0, "{s}");

    // Enforce: the same workload from the start under the recorded profile
    // (plus the documented base for what happened before `start`).
    let out = run(&mut podman_run(
        &["--security-opt", &format!("seccomp={path}")],
        &["/bin/sh", "-c", &workload(false)],
    ));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("WORKLOAD-OK"),
        "workload failed under its profile ({}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Without the chmod family, chmod fails: the profile is what is enforced.
    let stripped = d.dir.join("no-chmod.json");
    without(
        &profile,
        &["chmod", "fchmod", "fchmodat", "fchmodat2"],
        &stripped,
    );
    let out = run(&mut podman_run(
        &["--security-opt", &format!("seccomp={}", stripped.display())],
        &[
            "/bin/sh",
            "-c",
            "echo x > /tmp/f; chmod 600 /tmp/f && echo CHMOD-OK",
        ],
    ));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("CHMOD-OK"), "{text}");
    // The profile's answer: podman's recording-time default (ENOSYS) is
    // carried over for what the profile does not name (docs/PROFILES.md).
    assert!(
        text.contains("Function not implemented") || text.contains("Operation not permitted"),
        "{text}"
    );
}

#[test]
fn exited_container_gets_its_profile_without_stop() {
    require_root();
    let d = Daemon::start("exit", &[]);
    let id = podman_detached(
        "recorder-exit",
        "while [ ! -e /tmp/go ]; do sleep 0.1; done; uname -a; sleep 1",
    );
    d.ctl_ok(&["start", &id]);
    run_ok(Command::new("podman").args(["exec", "recorder-exit", "touch", "/tmp/go"]));
    let profile = d.wait_for(&d.profile_path(&id));
    podman_rm("recorder-exit");
    assert!(allowed_names(&profile).contains("uname"), "{profile}");
    let list = d.ctl_ok(&["list", "--output", "json"]);
    assert_eq!(list.trim(), "[]");
}

fn ctl_err(d: &Daemon, args: &[&str]) -> String {
    let out = run(&mut d.ctl(args));
    assert!(!out.status.success(), "recorderctl {args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn errors_are_clear() {
    require_root();
    let d = Daemon::start("errors", &[]);
    // Two fake containerd containers whose ids share a prefix.
    let h = recorder::cgroup::Hierarchy::detect().unwrap();
    let a = format!("abcd{}", "1".repeat(60));
    let b = format!("abcd{}", "2".repeat(60));
    let ns = "/recorder-test-ns";
    for id in [&a, &b] {
        h.create(&format!("{ns}/{id}")).unwrap();
    }
    let err = ctl_err(&d, &["start", "abcd"]);
    assert!(
        err.contains("ambiguous") && err.contains(&a) && err.contains(&b),
        "{err}"
    );
    let err = ctl_err(&d, &["start", "fedcba9"]);
    assert!(
        err.contains("no running container matches 'fedcba9'"),
        "{err}"
    );
    let err = ctl_err(&d, &["stop", "abcd1"]);
    assert!(err.contains("not being recorded"), "{err}");
    d.ctl_ok(&["start", "abcd1"]);
    let err = ctl_err(&d, &["start", "abcd1"]);
    assert!(err.contains("already being recorded"), "{err}");
    d.ctl_ok(&["stop", "abcd1"]);
    let err = ctl_err(&d, &["start", "--cgroup", "/no/such/cgroup"]);
    assert!(err.contains("does not exist"), "{err}");
    let err = ctl_err(&d, &["start", "--cgroup", "/a/../b"]);
    assert!(err.contains("invalid cgroup path"), "{err}");
    for id in [&a, &b] {
        h.remove(&format!("{ns}/{id}"), Duration::from_secs(1))
            .unwrap();
    }
    h.remove(ns, Duration::from_secs(1)).unwrap();

    // Not root and not in the socket group: the socket's mode (0660)
    // keeps them out...
    let nobody = || {
        let mut c = Command::new("setpriv");
        c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_recorderctl"))
            .args(["status", "--socket"])
            .arg(&d.socket);
        c
    };
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let out = run(&mut nobody());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("permission denied") && err.contains("socket group"),
        "{err}"
    );
    // ...and if the mode is loosened, SO_PEERCRED still refuses them, and
    // the attempt is logged.
    fs::set_permissions(&d.socket, fs::Permissions::from_mode(0o666)).unwrap();
    let out = run(&mut nobody());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("permission denied: recorderd serves root and members"),
        "{err}"
    );
    assert!(
        d.log_text()
            .contains("refused control connection from uid 65534")
    );

    // The daemon not running: the socket path is named.
    let out = run(common::recorderctl().args(["list", "--socket", "/nonexistent/recorder.sock"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/recorder.sock") && err.contains("is recorderd running"),
        "{err}"
    );
}

#[test]
fn malformed_config_is_refused_with_location() {
    let dir = common::scratch("bad-config");
    let cfg = dir.join("recorderd.toml");
    fs::write(&cfg, "record_all = true\ncapacity = \"lots\"\n").unwrap();
    let out = run(Command::new(common::recorderd_path())
        .arg("--config")
        .arg(&cfg));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}: line 2, column 12", cfg.display())),
        "{err}"
    );
    let out = run(Command::new(common::recorderd_path()).args(["--config", "/nonexistent.toml"]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.toml"));
}

#[test]
fn sub_cgroups_existing_and_future_are_recorded() {
    require_root();
    let d = Daemon::start("subcg", &[]);
    let h = recorder::cgroup::Hierarchy::detect().unwrap();
    let top = "/recorder-test-subcg";
    _ = h.remove(&format!("{top}/later"), Duration::from_secs(1));
    _ = h.remove(&format!("{top}/early"), Duration::from_secs(1));
    _ = h.remove(top, Duration::from_secs(1));
    h.create(&format!("{top}/early")).unwrap();
    d.ctl_ok(&["start", "--cgroup", top]);
    // A process in the existing sub-cgroup, and one in a sub-cgroup made
    // from inside the recorded cgroup after `start`.
    let early = h.dir(&format!("{top}/early")).unwrap();
    let topdir = h.dir(top).unwrap();
    let script = format!(
        "echo $$ > {early}/cgroup.procs && uname > /dev/null && \
         echo $$ > {top}/cgroup.procs && mkdir {top}/later && \
         echo $$ > {top}/later/cgroup.procs && sync",
        early = early.display(),
        top = topdir.display()
    );
    run_ok(Command::new("/bin/busybox").args(["sh", "-c", &script]));
    let profile = d.ctl_ok(&["profile", "--cgroup", top]);
    let names = allowed_names(&profile);
    assert!(names.contains("uname"), "existing sub-cgroup: {names:?}");
    assert!(names.contains("sync"), "sub-cgroup made later: {names:?}");
    d.ctl_ok(&["stop", "--cgroup", top]);
    for cg in [
        format!("{top}/later"),
        format!("{top}/early"),
        top.to_owned(),
    ] {
        h.remove(&cg, Duration::from_secs(1)).unwrap();
    }
}

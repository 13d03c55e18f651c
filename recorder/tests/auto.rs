//! Auto mode: every container recorded from its first syscall; restarts
//! without loss; partial profiles at shutdown; a full map.

mod common;

use std::{
    fs,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use common::{allowed_names, daemon::Daemon, podman_run, require_root, run, run_ok, without};

/// Runs a container in the foreground; returns its full id and output.
fn run_container(dir: &Path, extra: &[&str], cmd: &[&str]) -> (String, std::process::Output) {
    let cidfile = dir.join(format!("cid-{}", fastrand_name()));
    _ = fs::remove_file(&cidfile);
    let mut args = vec!["--cidfile", cidfile.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = run(&mut podman_run(&args, cmd));
    let id = fs::read_to_string(&cidfile)
        .unwrap_or_default()
        .trim()
        .to_owned();
    (id, out)
}

fn fastrand_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn twenty_short_lived_containers_each_enforced() {
    require_root();
    let _serial = common::serial();
    let d = Daemon::start("auto20", &["--all"]);
    let workloads: [(&[&str], &[&str]); 4] = [
        (&["/bin/true"], &["execve"]),
        (
            &[
                "/bin/sh",
                "-c",
                "echo x > /tmp/x && chmod 600 /tmp/x && echo OK",
            ],
            &["chmod", "fchmodat"],
        ),
        (
            &["/bin/sh", "-c", "uname -s | grep -q Linux && echo OK"],
            &["uname"],
        ),
        (
            &["/bin/sh", "-c", "mkdir /tmp/a && ls /tmp && echo OK"],
            &["mkdir", "mkdirat"],
        ),
    ];
    let mut sizes = Vec::new();
    for i in 0..20 {
        let (cmd, needs) = workloads[i % workloads.len()];
        let (id, out) = run_container(&d.dir, &[], cmd);
        assert!(out.status.success(), "container {i} failed: {out:?}");
        let profile = d.wait_for(&d.profile_path(&id));
        let names = allowed_names(&profile);
        assert!(
            names.contains("execve") && names.contains("exit_group"),
            "{i}: {names:?}"
        );
        assert!(
            needs.iter().any(|n| names.contains(*n)),
            "{i}: lacks {needs:?}: {names:?}"
        );
        // The runtime's init before its seccomp filter load is not there.
        assert!(
            !names.contains("seccomp"),
            "{i}: runtime-init noise: {names:?}"
        );
        // The runc floor (profiles/runtime-runc.json): the Go runtime's
        // preemption, which one recording may or may not catch.
        assert!(
            names.contains("tgkill") && names.contains("sched_yield"),
            "{i}: {names:?}"
        );
        sizes.push(names.len());

        // Enforced: the same container succeeds under its profile...
        let path = d.profile_path(&id);
        let (_, out) = run_container(
            &d.dir,
            &["--security-opt", &format!("seccomp={}", path.display())],
            cmd,
        );
        assert!(
            out.status.success(),
            "{i}: {cmd:?} fails under its own profile: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // ...and fails without a syscall it needs (checked for each kind once).
        if i < workloads.len() {
            let stripped = d.dir.join(format!("stripped-{i}.json"));
            without(&profile, needs, &stripped);
            let (_, out) = run_container(
                &d.dir,
                &["--security-opt", &format!("seccomp={}", stripped.display())],
                cmd,
            );
            assert!(
                !out.status.success() || !String::from_utf8_lossy(&out.stdout).contains("OK"),
                "{i}: {cmd:?} still works without {needs:?}"
            );
        }
    }
    eprintln!("distinct syscalls per profile: {sizes:?}");
    // Every profile was written and forgotten: the map is back to empty.
    let s: serde_json::Value =
        serde_json::from_str(&d.ctl_ok(&["status", "--output", "json"])).unwrap();
    assert_eq!(s["recordings"], 0, "{s}");
    assert!(s["profiles_written"].as_u64().unwrap() >= 20, "{s}");
}

#[test]
fn kill_dash_nine_and_restart_loses_nothing() {
    require_root();
    let _serial = common::serial();
    let mut d = Daemon::start("kill9", &["--all"]);
    let name = "recorder-kill9";
    _ = Command::new("podman").args(["rm", "-f", name]).output();
    let out = run_ok(&mut podman_run(
        &["-d", "--name", name],
        &[
            "/bin/sh",
            "-c",
            "while [ ! -e /tmp/go ]; do sleep 0.1; done; sync; echo SYNCED; \
             while [ ! -e /tmp/done ]; do sleep 0.1; done",
        ],
    ));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    // A second container that will exit while the daemon is down.
    let out = run_ok(&mut podman_run(
        &["-d"],
        &["/bin/sh", "-c", "sleep 1; hostname"],
    ));
    let id2 = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    wait_until("both recordings", || {
        let list = d.ctl_ok(&["list", "--output", "json"]);
        list.contains(&id) && list.contains(&id2)
    });

    d.signal(libc::SIGKILL);
    // While the daemon is down: a new distinct syscall (sync), and an exit.
    run_ok(Command::new("podman").args(["exec", name, "touch", "/tmp/go"]));
    wait_until("the sync", || {
        String::from_utf8_lossy(&run(Command::new("podman").args(["logs", name])).stdout)
            .contains("SYNCED")
    });
    wait_until("the second container's exit", || {
        !String::from_utf8_lossy(
            &run(Command::new("podman").args(["ps", "-q", "--no-trunc"])).stdout,
        )
        .contains(&id2)
    });

    d.spawn();
    assert!(d.log_text().contains("resuming"), "{}", d.log_text());
    // The container that exited meanwhile gets its profile at the start.
    let p2 = d.wait_for(&d.profile_path(&id2));
    assert!(
        allowed_names(&p2).contains("uname"),
        "hostname calls uname: {p2}"
    );
    // The one still running is still recorded, with what it did meanwhile.
    let list = d.ctl_ok(&["list", "--output", "json"]);
    assert!(list.contains(&id), "{list}");
    run_ok(Command::new("podman").args(["exec", name, "touch", "/tmp/done"]));
    let p1 = d.wait_for(&d.profile_path(&id));
    _ = Command::new("podman")
        .args(["rm", "-f", "-t", "0", name])
        .output();
    let names = allowed_names(&p1);
    assert!(
        names.contains("sync"),
        "syscall made while the daemon was down: {names:?}"
    );
    assert!(
        names.contains("execve"),
        "from the first syscall: {names:?}"
    );
}

#[test]
fn sigterm_writes_partial_profiles() {
    require_root();
    let _serial = common::serial();
    let mut d = Daemon::start("sigterm", &["--all"]);
    let name = "recorder-sigterm";
    _ = Command::new("podman").args(["rm", "-f", name]).output();
    let out = run_ok(&mut podman_run(
        &["-d", "--name", name],
        &["/bin/sh", "-c", "uname; sleep 60"],
    ));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    wait_until("the recording", || {
        d.ctl_ok(&["list", "--output", "json"]).contains(&id)
    });
    let status = d.signal(libc::SIGTERM).expect("recorderd exit status");
    assert!(status.success(), "exit 0 on SIGTERM: {status}");
    let partial = d.profiles.join(format!("{id}.partial.json"));
    let text = fs::read_to_string(&partial)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", partial.display(), d.log_text()));
    let names = allowed_names(&text);
    assert!(
        names.contains("uname") && names.contains("execve"),
        "{names:?}"
    );
    _ = Command::new("podman")
        .args(["rm", "-f", "-t", "0", name])
        .output();
}

#[test]
fn full_map_is_reported_and_refused() {
    require_root();
    let _serial = common::serial();
    let cfg_dir = common::scratch("mapfull-config");
    let cfg = cfg_dir.join("recorderd.toml");
    fs::write(&cfg, "record_all = true\ncapacity = 1\n").unwrap();
    let d = Daemon::start("mapfull", &["--config", cfg.to_str().unwrap()]);
    let name = "recorder-mapfull";
    _ = Command::new("podman").args(["rm", "-f", name]).output();
    let out = run_ok(&mut podman_run(
        &["-d", "--name", name],
        &["/bin/sh", "-c", "sleep 60"],
    ));
    let _ = out;
    // The one slot is taken (by this container, or by one another test
    // started at the same time: every --all daemon sees every container).
    wait_until("the map to fill", || {
        let s: serde_json::Value =
            serde_json::from_str(&d.ctl_ok(&["status", "--output", "json"])).unwrap();
        s["map_entries"] == 1
    });
    // A second container does not fit: counted, logged, in status.
    let (_, out) = run_container(&d.dir, &[], &["/bin/true"]);
    assert!(out.status.success(), "the container itself still runs");
    wait_until("the enrol failure in status", || {
        let s: serde_json::Value =
            serde_json::from_str(&d.ctl_ok(&["status", "--output", "json"])).unwrap();
        s["enrol_failures"].as_u64().unwrap_or(0) >= 1
            && s["last_error"].as_str().unwrap_or("").contains("full")
    });
    assert!(
        d.log_text().contains("the recording map is full"),
        "{}",
        d.log_text()
    );
    // An explicit start is refused with a clear error.
    let h = recorder::cgroup::Hierarchy::detect().unwrap();
    h.create("/recorder-test-mapfull").unwrap();
    let out = run(&mut d.ctl(&["start", "--cgroup", "/recorder-test-mapfull"]));
    h.remove("/recorder-test-mapfull", Duration::from_secs(1))
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the recording map is full (1 cgroups)"),
        "{err}"
    );
    _ = Command::new("podman")
        .args(["rm", "-f", "-t", "0", name])
        .output();
}

#[test]
fn sighup_reloads_the_config() {
    require_root();
    let _serial = common::serial();
    let cfg_dir = common::scratch("reload-config");
    let cfg = cfg_dir.join("recorderd.toml");
    fs::write(&cfg, "record_all = false\n").unwrap();
    let d = Daemon::start("reload", &["--config", cfg.to_str().unwrap()]);
    let (id, out) = run_container(&d.dir, &[], &["/bin/true"]);
    assert!(out.status.success());
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!d.profile_path(&id).exists(), "auto mode is off");
    fs::write(&cfg, "record_all = true\n").unwrap();
    // SAFETY: kill(2) on the daemon we started.
    unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
    wait_until("record_all in status", || {
        let s: serde_json::Value =
            serde_json::from_str(&d.ctl_ok(&["status", "--output", "json"])).unwrap();
        s["record_all"] == true
    });
    let (id, out) = run_container(&d.dir, &[], &["/bin/true"]);
    assert!(out.status.success());
    let profile = d.wait_for(&d.profile_path(&id));
    assert!(allowed_names(&profile).contains("execve"));
    // A malformed config on SIGHUP is refused and the old one kept.
    fs::write(&cfg, "record_all = maybe\n").unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
    wait_until("the refusal in the log", || {
        d.log_text().contains("not reloading")
    });
    assert!(
        d.log_text().contains("line 1, column 14"),
        "{}",
        d.log_text()
    );
}

//! Runs that count, for real (issue 30, sections 2 and 3): recorderd in
//! auto mode sees, in the kernel, the exec that starts a container's
//! workload and how its first process exits. Seven runs of an image whose
//! command exits 3 leave it not ready, saying why; seven good runs of
//! another make it ready. Without a seccomp filter (docker's
//! `seccomp=unconfined`, `ctr run` without `--seccomp`) the runtime's
//! start-up (mount, pivot_root, sethostname, ...) stays out of the
//! profile, which then enforces; a run whose command does not exist (or
//! cannot be executed: podman's failed `runc create`) adds nothing to its
//! image's profile.

mod common;
mod support;

use std::{fs, path::Path};

use common::*;
use support::*;

const MKDIR: &str = "mkdir /tmp/d && echo DONE";
/// What runc does to set a container up, never the workload's.
const START_UP: &[&str] = &["mount", "pivot_root", "sethostname", "umount2"];

/// recorderd in auto mode, recording only this file's containers (named
/// `h30r-*`), `extra` flags after.
fn daemon(name: &str, extra: &[&str]) -> daemon::Daemon {
    let mut args = vec!["--all", "--include-name", "h30r-*"];
    args.extend_from_slice(extra);
    daemon::Daemon::start(name, &args)
}

fn images(daemon: &daemon::Daemon) -> Vec<serde_json::Value> {
    serde_json::from_str(&daemon.ctl_ok(&["images", "--output", "json"])).unwrap()
}

/// The row of image `id` once it has `runs` runs.
fn row(daemon: &daemon::Daemon, id: &str, runs: u64) -> serde_json::Value {
    wait_for("the image row", 60, || {
        images(daemon)
            .into_iter()
            .find(|r| r["id"] == id && r["runs"].as_u64() >= Some(runs))
    })
}

/// `docker run` (kept, so that its name and image are there to look up)
/// of `cmd` on `image` as `name` with `extra` options first; returns its
/// exit code once recorderd wrote its profile, and removes it. A command
/// that does not exist never starts: recorderd may or may not have looked
/// the container up by then, as for any container that short-lived.
fn docker_run(
    daemon: &daemon::Daemon,
    dir: &Path,
    name: &str,
    extra: &[&str],
    image: &str,
    cmd: &[&str],
) -> (Option<i32>, String) {
    let cidfile = dir.join(format!("cid-{name}"));
    // A container an earlier, failed run of the test left behind.
    _ = run(&mut docker(&["rm", "-f", name]));
    _ = fs::remove_file(&cidfile);
    let mut args = vec!["run", "--name", name];
    args.extend_from_slice(&["--cidfile", cidfile.to_str().unwrap()]);
    args.extend_from_slice(extra);
    args.push(image);
    args.extend_from_slice(cmd);
    let out = run(&mut docker(&args));
    let id = fs::read_to_string(&cidfile).unwrap().trim().to_owned();
    let profile = wait_for_file(&daemon.profile_path(&id));
    run_ok(&mut docker(&["rm", "-f", name]));
    (out.status.code(), profile)
}

/// Starts a container named `name` with `start`, given a volume option
/// (`DIR:/gate`) for it, whose command waits for `/gate/go`, made once
/// recorderd records the container: recorderd looks a container up when it
/// adopts it, and one already gone then has no name, so is out of this
/// file's scope.
fn gated<T>(daemon: &daemon::Daemon, dir: &Path, name: &str, start: impl FnOnce(&str) -> T) -> T {
    let gate = dir.join(format!("gate-{name}"));
    _ = fs::remove_dir_all(&gate);
    fs::create_dir_all(&gate).unwrap();
    let volume = format!("{}:/gate", gate.display());
    std::thread::scope(|s| {
        s.spawn(|| {
            wait_for("recorderd to record the container", 60, || {
                let list = daemon.ctl_ok(&["list", "--output", "json"]);
                let list: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
                list.iter().any(|r| r["name"] == name).then_some(())
            });
            fs::write(gate.join("go"), "").unwrap();
        });
        start(&volume)
    })
}

/// `SCRIPT` once `/gate/go` is there.
fn after_gate(script: &str) -> String {
    format!("until [ -e /gate/go ]; do sleep 0.1; done; {script}")
}

/// [`docker_run`] of `sh -c SCRIPT`, [`gated`].
fn docker_gated(
    daemon: &daemon::Daemon,
    dir: &Path,
    name: &str,
    extra: &[&str],
    image: &str,
    script: &str,
) -> (Option<i32>, String) {
    gated(daemon, dir, name, |volume| {
        let mut all = vec!["-v", volume];
        all.extend_from_slice(extra);
        docker_run(
            daemon,
            dir,
            name,
            &all,
            image,
            &["sh", "-c", &after_gate(script)],
        )
    })
}

/// Runs `attempt(i)`, a run that never starts, until `counted()`, at most
/// five times: such a container may be gone before recorderd looks it up
/// (see [`gated`]), and is then not counted at all.
fn until_counted(mut attempt: impl FnMut(usize), counted: impl Fn() -> bool) {
    for i in 0..5 {
        attempt(i);
        for _ in 0..100 {
            if counted() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    panic!("no run that never started was counted");
}

fn assert_no_start_up(profile: &str, what: &str) {
    let names = allowed_names(profile);
    for n in START_UP {
        assert!(!names.contains(*n), "{what}: {n} in {names:?}");
    }
    assert!(
        names.contains("mkdir") || names.contains("mkdirat"),
        "{what}: no mkdir(at) in {names:?}"
    );
}

#[test]
fn a_crash_looping_image_is_not_ready_and_says_why() {
    require_root();
    busybox_rootfs();
    let dir = scratch("h30r-crash");
    let _dockerd = Dockerd::start(&dir);
    let failing = import_image("h30r-crash");
    let good = import_image("h30r-good");
    let metrics = format!("127.0.0.1:{}", free_port());
    let daemon = daemon(
        "h30r-crash",
        &[
            "--ready-quiet-secs",
            "0",
            // The gate's wait is part of the run.
            "--ready-min-run-secs",
            "600",
            "--metrics-addr",
            &metrics,
        ],
    );

    for i in 0..7 {
        let name = format!("h30r-crash-{i}");
        let (code, _) = docker_gated(&daemon, &dir, &name, &[], "h30r-crash", "exit 3");
        assert_eq!(code, Some(3));
        let name = format!("h30r-good-{i}");
        let (code, _) = docker_gated(&daemon, &dir, &name, &[], "h30r-good", MKDIR);
        assert_eq!(code, Some(0));
    }
    let crash = row(&daemon, &failing, 7);
    assert_eq!(crash["runs"], 7, "{crash}");
    assert_eq!(crash["failed_runs"], 7, "{crash}");
    assert_eq!(crash["ready"], false, "{crash}");
    assert_eq!(
        crash["not_ready"][0], "7 of 7 runs failed (exit 3 within 600 s)",
        "{crash}"
    );
    assert_eq!(crash["syscalls"], 0, "failed runs add nothing: {crash}");
    let ok = row(&daemon, &good, 7);
    assert_eq!(
        (ok["runs"].as_u64(), ok["failed_runs"].as_u64()),
        (Some(7), Some(0)),
        "{ok}"
    );
    assert_eq!(ok["ready"], true, "{ok}");

    let text = daemon.ctl_ok(&["images"]);
    let line = text
        .lines()
        .find(|l| l.contains("h30r-crash"))
        .unwrap_or_else(|| panic!("no h30r-crash row in {text}"));
    assert!(
        line.contains("no: 7 of 7 runs failed (exit 3 within 600 s)"),
        "{line}"
    );
    let line = text.lines().find(|l| l.contains("h30r-good")).unwrap();
    assert!(line.ends_with("yes"), "{line}");
    let label = crash["label"].as_str().unwrap();
    let series = format!("recorder_image_failed_runs{{image=\"{label}\"}} 7");
    wait_for("the failed-runs series", 10, || {
        let mut resp = ureq::get(&format!("http://{metrics}/metrics"))
            .call()
            .ok()?;
        let text = resp.body_mut().read_to_string().ok()?;
        text.contains(&series).then_some(())
    });
    let log = daemon.log_text();
    assert!(
        log.contains("its run failed (exit 3 within 600 s): left out of the image profile"),
        "{log}"
    );
}

#[test]
fn without_a_filter_the_start_up_stays_out_and_a_missing_command_adds_nothing() {
    require_root();
    busybox_rootfs();
    let dir = scratch("h30r-unconfined");
    let _dockerd = Dockerd::start(&dir);
    let image_id = import_image("h30r-unconfined");
    let daemon = daemon("h30r-unconfined", &[]);

    // docker, no filter.
    let unconfined = ["--security-opt", "seccomp=unconfined"];
    let (code, profile) = docker_gated(
        &daemon,
        &dir,
        "h30r-unconfined-1",
        &unconfined,
        "h30r-unconfined",
        MKDIR,
    );
    assert_eq!(code, Some(0));
    assert_no_start_up(&profile, "docker seccomp=unconfined");
    let file = dir.join("unconfined.json");
    fs::write(&file, &profile).unwrap();
    assert!(
        docker_runs_under(&file, "h30r-unconfined", MKDIR),
        "the workload failed under the profile of its unconfined run"
    );
    let log = daemon.log_text();
    assert!(
        log.contains("grew to ") && log.contains("with its first run, container "),
        "{log}"
    );

    // containerd, no --seccomp.
    let ns = format!("h30r-{}", std::process::id());
    let reference = ctr_import(&ns, "h30r-unconfined");
    let ran = gated(&daemon, &dir, "h30r-ctr", |volume| {
        let (src, dst) = volume.split_once(':').unwrap();
        let mount = format!("type=bind,src={src},dst={dst},options=rbind:rw");
        let script = after_gate(MKDIR);
        let args = ["run", "--rm", "--mount", &mount, &reference, "h30r-ctr"];
        let mut cmd = ctr(&ns, &args);
        cmd.args(["sh", "-c", &script]);
        ran_to(&mut cmd, "DONE")
    });
    assert!(ran, "ctr run failed");
    let text = wait_for_file(&daemon.profiles.join(format!("{ns}+h30r-ctr.json")));
    assert_no_start_up(&text, "ctr run without --seccomp");
    let file = dir.join("ctr.json");
    fs::write(&file, &text).unwrap();
    assert!(
        ran_to(
            &mut ctr(
                &ns,
                &[
                    "run",
                    "--rm",
                    "--seccomp",
                    "--seccomp-profile",
                    file.to_str().unwrap(),
                    &reference,
                    "h30r-ctr-enforced",
                    "sh",
                    "-c",
                    MKDIR,
                ],
            ),
            "DONE"
        ),
        "the workload failed under the profile of its ctr run"
    );
    ctr_forget_namespace(&ns);

    // A command that does not exist: the run counts as failed and the
    // image profile stays as it was (docker, under its default filter and
    // without one).
    let before = daemon.ctl_ok(&["profile", "--image", &image_id]);
    let failed = |n: u64| {
        images(&daemon)
            .iter()
            .any(|r| r["id"] == image_id.as_str() && r["failed_runs"].as_u64() >= Some(n))
    };
    let mut names = Vec::new();
    for (k, extra) in [&[][..], &unconfined[..]].into_iter().enumerate() {
        until_counted(
            |i| {
                let name = format!("h30r-missing-{k}-{i}");
                _ = run(&mut docker(&["rm", "-f", &name]));
                let mut args = vec!["run", "--name", &name];
                args.extend_from_slice(extra);
                args.extend_from_slice(&["h30r-unconfined", "/nonexistent"]);
                assert_eq!(run(&mut docker(&args)).status.code(), Some(127));
                names.push(name);
            },
            || failed(k as u64 + 1),
        );
    }
    for name in &names {
        _ = run(&mut docker(&["rm", "-f", name]));
    }
    let r = row(&daemon, &image_id, 3);
    let why = r["not_ready"][0].as_str().unwrap_or_default();
    assert!(why.ends_with(" runs failed (never started)"), "{r}");
    let after = daemon.ctl_ok(&["profile", "--image", &image_id]);
    assert_eq!(
        after, before,
        "a run that never started changed the image profile"
    );
}

/// Issue 19's note: podman runs that failed in `runc create` recorded
/// runc's set and grew the image profile (63 to 70 syscalls against 50).
#[test]
fn podman_runs_that_never_start_add_nothing() {
    require_root();
    let dir = scratch("h30r-podman");
    let daemon = daemon("h30r-podman", &[]);
    let rootfs = busybox_rootfs().display().to_string();
    let mine = || {
        images(&daemon)
            .into_iter()
            .find(|r| r["keyed_by"] == "rootfs" && r["image"] == rootfs.as_str())
    };
    let cidfile = dir.join("cid-good");
    _ = fs::remove_file(&cidfile);
    let out = gated(&daemon, &dir, "h30r-podman-good", |volume| {
        let cid = cidfile.to_str().unwrap();
        let opts = ["--name", "h30r-podman-good", "--cidfile", cid, "-v", volume];
        run(&mut podman_run(&opts, &["sh", "-c", &after_gate(MKDIR)]))
    });
    assert!(out.status.success(), "{out:?}");
    let id = fs::read_to_string(&cidfile).unwrap().trim().to_owned();
    wait_for_file(&daemon.profile_path(&id));
    let good = wait_for("the rootfs row", 30, mine);
    let spec = format!("(rootfs) {rootfs}");
    let before = daemon.ctl_ok(&["profile", "--image", &spec]);
    let failed = |n: u64| mine().is_some_and(|r| r["failed_runs"].as_u64() >= Some(n));
    for (k, cmd) in [&["/nonexistent"][..], &["/etc/passwd"][..]]
        .into_iter()
        .enumerate()
    {
        until_counted(
            |i| {
                let name = format!("h30r-podman-bad-{k}-{i}");
                let code = run(&mut podman_run(&["--name", &name], cmd)).status.code();
                assert!(matches!(code, Some(126 | 127)), "{cmd:?}: {code:?}");
            },
            || failed(k as u64 + 1),
        );
    }
    let r = mine().unwrap();
    assert_eq!(r["syscalls"], good["syscalls"], "{r}");
    let after = daemon.ctl_ok(&["profile", "--image", &spec]);
    assert_eq!(
        after, before,
        "a run that never started changed the image profile"
    );
}

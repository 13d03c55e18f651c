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
/// exit code once recorderd wrote its profile, and removes it.
fn docker_run(
    daemon: &daemon::Daemon,
    dir: &Path,
    name: &str,
    extra: &[&str],
    image: &str,
    cmd: &[&str],
) -> (Option<i32>, String) {
    let cidfile = dir.join(format!("cid-{name}"));
    let mut args = vec![
        "run",
        "--name",
        name,
        "--cidfile",
        cidfile.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push(image);
    args.extend_from_slice(cmd);
    let out = run(&mut docker(&args));
    let id = fs::read_to_string(&cidfile).unwrap().trim().to_owned();
    let profile = wait_for_file(&daemon.profile_path(&id));
    run_ok(&mut docker(&["rm", "-f", name]));
    (out.status.code(), profile)
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
    let daemon = daemon("h30r-crash", &["--ready-quiet-secs", "0"]);

    for i in 0..7 {
        let name = format!("h30r-crash-{i}");
        let (code, _) = docker_run(
            &daemon,
            &dir,
            &name,
            &[],
            "h30r-crash",
            &["sh", "-c", "exit 3"],
        );
        assert_eq!(code, Some(3));
        let name = format!("h30r-good-{i}");
        let (code, _) = docker_run(&daemon, &dir, &name, &[], "h30r-good", &["sh", "-c", MKDIR]);
        assert_eq!(code, Some(0));
    }
    let crash = row(&daemon, &failing, 7);
    assert_eq!(crash["runs"], 7, "{crash}");
    assert_eq!(crash["failed_runs"], 7, "{crash}");
    assert_eq!(crash["ready"], false, "{crash}");
    assert_eq!(
        crash["not_ready"][0], "7 of 7 runs failed (exit 3 within 10 s)",
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
        line.contains("no: 7 of 7 runs failed (exit 3 within 10 s)"),
        "{line}"
    );
    let line = text.lines().find(|l| l.contains("h30r-good")).unwrap();
    assert!(line.ends_with("yes"), "{line}");
    let log = daemon.log_text();
    assert!(
        log.contains("its run failed (exit 3 within 10 s): left out of the image profile"),
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
    let (code, profile) = docker_run(
        &daemon,
        &dir,
        "h30r-unconfined-1",
        &unconfined,
        "h30r-unconfined",
        &["sh", "-c", MKDIR],
    );
    assert_eq!(code, Some(0));
    assert_no_start_up(&profile, "docker seccomp=unconfined");
    let file = dir.join("unconfined.json");
    fs::write(&file, &profile).unwrap();
    let seccomp = format!("seccomp={}", file.display());
    assert!(
        ran_to(
            &mut docker(&[
                "run",
                "--rm",
                "--security-opt",
                &seccomp,
                "h30r-unconfined",
                "sh",
                "-c",
                MKDIR
            ]),
            "DONE"
        ),
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
    assert!(ran_to(
        &mut ctr(
            &ns,
            &["run", "--rm", &reference, "h30r-ctr", "sh", "-c", MKDIR]
        ),
        "DONE"
    ));
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
    for (i, extra) in [&[][..], &unconfined[..]].into_iter().enumerate() {
        let name = format!("h30r-missing-{i}");
        let (code, _) = docker_run(
            &daemon,
            &dir,
            &name,
            extra,
            "h30r-unconfined",
            &["/nonexistent"],
        );
        assert_eq!(code, Some(127));
    }
    let r = row(&daemon, &image_id, 3);
    assert_eq!(r["failed_runs"], 2, "{r}");
    let why = r["not_ready"][0].as_str().unwrap_or_default();
    assert!(
        why.starts_with("2 of ") && why.ends_with(" runs failed (never started)"),
        "{r}"
    );
    let after = daemon.ctl_ok(&["profile", "--image", &image_id]);
    assert_eq!(
        after, before,
        "a run that never started changed the image profile"
    );
}

/// `podman run` (runc) of `cmd` as `name`: its exit code, once recorderd
/// wrote its profile.
fn podman(daemon: &daemon::Daemon, dir: &Path, name: &str, cmd: &[&str]) -> Option<i32> {
    let cidfile = dir.join(format!("cid-{name}"));
    _ = fs::remove_file(&cidfile);
    let out = run(&mut podman_run(
        &["--name", name, "--cidfile", cidfile.to_str().unwrap()],
        cmd,
    ));
    let id = fs::read_to_string(&cidfile).unwrap().trim().to_owned();
    wait_for_file(&daemon.profile_path(&id));
    out.status.code()
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
    assert_eq!(
        podman(&daemon, &dir, "h30r-podman-good", &["sh", "-c", MKDIR]),
        Some(0)
    );
    let good = wait_for("the rootfs row", 30, mine);
    let before = daemon.ctl_ok(&["profile", "--image", &format!("(rootfs) {rootfs}")]);
    for (i, cmd) in [&["/nonexistent"][..], &["/etc/passwd"][..]]
        .into_iter()
        .enumerate()
    {
        let code = podman(&daemon, &dir, &format!("h30r-podman-bad-{i}"), cmd);
        assert!(matches!(code, Some(126 | 127)), "{cmd:?}: {code:?}");
    }
    let r = wait_for("the failed runs", 30, || {
        mine().filter(|r| r["runs"].as_u64() >= Some(3))
    });
    assert_eq!(r["failed_runs"], 2, "{r}");
    assert_eq!(r["syscalls"], good["syscalls"], "{r}");
    let after = daemon.ctl_ok(&["profile", "--image", &format!("(rootfs) {rootfs}")]);
    assert_eq!(
        after, before,
        "a run that never started changed the image profile"
    );
}

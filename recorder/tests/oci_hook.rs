//! recorder-oci-hook with real podman/runc: the hooks.d JSON in a temporary
//! directory, `podman --hooks-dir DIR run --annotation
//! io.containers.trace-syscall=...`, with and without recorderd, then the
//! recorded profile enforced by `podman run --security-opt seccomp=...`.

mod common;
mod support;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use common::*;
use support::*;

const HOOK: &str = env!("CARGO_BIN_EXE_recorder-oci-hook");

/// A hooks dir holding the shipped hooks.d JSON, pointed at the built hook
/// and at `socket`.
fn hooks_dir(dir: &Path, socket: &Path) -> PathBuf {
    let hooks = dir.join("hooks.d");
    fs::create_dir_all(&hooks).unwrap();
    let shipped = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/hooks.d/recorder-oci-hook.json"
    );
    let mut json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(shipped).unwrap()).unwrap();
    json["hook"]["path"] = HOOK.into();
    json["hook"]["args"] = serde_json::json!(["recorder-oci-hook", "--socket", socket]);
    fs::write(hooks.join("recorder-oci-hook.json"), json.to_string()).unwrap();
    hooks
}

fn traced_run(hooks: &Path, annotation: &str, cmd: &[&str]) -> Command {
    let mut c = Command::new("podman");
    c.arg("--hooks-dir")
        .arg(hooks)
        .args(["--runtime", "runc", "run", "--rm"])
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
        // Each container gets its own /tmp: the rootfs is shared by tests.
        .args(["--tmpfs", "/tmp"])
        .arg("--annotation")
        .arg(format!("io.containers.trace-syscall={annotation}"))
        .arg("--rootfs")
        .arg(busybox_rootfs())
        .args(cmd);
    c
}

/// The workload: lists a directory (getdents64) and changes a mode.
const WORKLOAD: &[&str] = &[
    "sh",
    "-c",
    "ls / >/dev/null && touch /tmp/f && chmod 600 /tmp/f && echo DONE",
];

/// Checks the recorded profile: it holds what the workload calls, it lets
/// the workload run under it, and without chmod the chmod fails.
fn check_profile(dir: &Path, text: &str) {
    let names = allowed_names(text);
    for n in ["execve", "getdents64", "chmod"] {
        assert!(names.contains(n), "{n} missing from {names:?}");
    }
    let profile = dir.join("enforce.json");
    fs::write(&profile, text).unwrap();
    let seccomp = format!("seccomp={}", profile.display());
    let out = run_ok(&mut podman_run(&["--security-opt", &seccomp], WORKLOAD));
    assert!(String::from_utf8_lossy(&out.stdout).contains("DONE"));

    let denied = dir.join("no-chmod.json");
    without(text, &["chmod", "fchmod", "fchmodat", "fchmodat2"], &denied);
    let seccomp = format!("seccomp={}", denied.display());
    let out = run(&mut podman_run(&["--security-opt", &seccomp], WORKLOAD));
    assert!(
        !out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("DONE"),
        "chmod ran under a profile without it"
    );
}

#[test]
fn hook_records_without_recorderd() {
    require_root();
    // Built before any test thread forks (a copy being written cannot be exec'd).
    busybox_rootfs();
    let dir = scratch("hook-standalone");
    // No recorderd listens here: the hook records on its own.
    let hooks = hooks_dir(&dir, &dir.join("no-such-socket"));
    let base = dir.join("base.json");
    fs::write(
        &base,
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["reboot"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap();
    let out_path = dir.join("out.json");
    let ann = format!("if:{};of:{}", base.display(), out_path.display());
    let out = run_ok(&mut traced_run(&hooks, &ann, WORKLOAD));
    assert!(String::from_utf8_lossy(&out.stdout).contains("DONE"));
    let text = wait_for_file(&out_path);
    // The if: profile's syscalls are merged in.
    assert!(allowed_names(&text).contains("reboot"));
    check_profile(&dir, &text);
}

#[test]
fn hook_hands_container_to_recorderd() {
    require_root();
    // Built before any test thread forks (a copy being written cannot be exec'd).
    busybox_rootfs();
    let dir = scratch("hook-daemon");
    let daemon = Daemon::start(&dir, false);
    let hooks = hooks_dir(&dir, &daemon.socket);
    let out_path = dir.join("out.json");
    let ann = format!("of:{}", out_path.display());
    run_ok(&mut traced_run(&hooks, &ann, WORKLOAD));
    let text = wait_for_file(&out_path);
    // recorderd wrote it, not a detached hook.
    assert_eq!(daemon.status()["profiles_written"], 1);
    check_profile(&dir, &text);
}

#[test]
fn hook_with_recorderd_in_auto_mode() {
    require_root();
    // Built before any test thread forks (a copy being written cannot be exec'd).
    busybox_rootfs();
    let dir = scratch("hook-daemon-all");
    let daemon = Daemon::start(&dir, true);
    let hooks = hooks_dir(&dir, &daemon.socket);
    let out_path = dir.join("out.json");
    let ann = format!("of:{}", out_path.display());
    run_ok(&mut traced_run(&hooks, &ann, WORKLOAD));
    // Auto mode had enrolled the container already; the hook's output wins.
    let text = wait_for_file(&out_path);
    assert!(daemon.status()["profiles_written"].as_u64().unwrap() >= 1);
    check_profile(&dir, &text);
}

#[test]
fn hook_refuses_bad_annotations() {
    require_root();
    // Built before any test thread forks (a copy being written cannot be exec'd).
    busybox_rootfs();
    let dir = scratch("hook-refusals");
    let hooks = hooks_dir(&dir, &dir.join("no-such-socket"));
    let file = dir.join("a-file");
    fs::write(&file, "x").unwrap();
    let cases = [
        ("of:relative/out.json".to_owned(), "absolute path"),
        (
            format!("if:{}", dir.join("b.json").display()),
            "no output profile",
        ),
        (
            format!(
                "if:{};of:{}",
                dir.join("missing.json").display(),
                dir.join("o.json").display()
            ),
            "input profile",
        ),
        (format!("of:{}/o.json", file.display()), "cannot be written"),
        ("garbage".to_owned(), "is not of the form"),
    ];
    for (ann, msg) in cases {
        let out = run(&mut traced_run(&hooks, &ann, &["echo", "STARTED"]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{ann}: the container ran");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("STARTED"),
            "{ann}: the entrypoint ran"
        );
        assert!(
            stderr.contains("recorder-oci-hook") && stderr.contains(msg),
            "{ann}: stderr lacks '{msg}': {stderr}"
        );
    }
    assert!(!dir.join("o.json").exists());
}

/// oci-seccomp-bpf-hook's rule: what the `if:` profile blocks stays
/// blocked in the `of:` profile, even when the workload called it (its
/// test "Syscall blocked in input profile remains blocked in output
/// profile"), with and without recorderd.
#[test]
fn what_the_input_profile_blocks_stays_blocked() {
    require_root();
    // Built before any test thread forks (a copy being written cannot be exec'd).
    busybox_rootfs();
    let dir = scratch("hook-blocked");
    let input = dir.join("block-mkdir.json");
    fs::write(
        &input,
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let mkdir = &["mkdir", "/tmp/foo"];
    let daemon = Daemon::start(&dir, false);
    for (what, socket) in [
        ("detached", dir.join("no-such-socket")),
        ("recorderd", daemon.socket.clone()),
    ] {
        let hooks = hooks_dir(&dir.join(what), &socket);
        // Recorded without the input: mkdir is allowed, and runs.
        let plain = dir.join(format!("{what}-plain.json"));
        run_ok(&mut traced_run(
            &hooks,
            &format!("of:{}", plain.display()),
            mkdir,
        ));
        let text = wait_for_file(&plain);
        assert!(allowed_names(&text).contains("mkdir"), "{what}: {text}");
        let opt = format!("seccomp={}", plain.display());
        run_ok(&mut podman_run(&["--security-opt", &opt], mkdir));
        // With the input that blocks it: recorded, yet blocked.
        let out = dir.join(format!("{what}-blocked.json"));
        let ann = format!("if:{};of:{}", input.display(), out.display());
        run_ok(&mut traced_run(&hooks, &ann, mkdir));
        let text = wait_for_file(&out);
        assert!(!allowed_names(&text).contains("mkdir"), "{what}: {text}");
        let opt = format!("seccomp={}", out.display());
        let ran = run(&mut podman_run(&["--security-opt", &opt], mkdir));
        assert!(!ran.status.success(), "{what}: mkdir ran under {text}");
        assert!(
            String::from_utf8_lossy(&ran.stderr).contains("Operation not permitted"),
            "{what}: {}",
            String::from_utf8_lossy(&ran.stderr)
        );
        // A profile recorded earlier, as `if:`, extends (the original's
        // "Extend existing seccomp profile"): what it denies only because
        // that run did not call it (podman's answers it carries) is no
        // block. `ls` did not mkdir; the next run does, and may.
        let ls = dir.join(format!("{what}-ls.json"));
        run_ok(&mut traced_run(
            &hooks,
            &format!("of:{}", ls.display()),
            &["ls", "/"],
        ));
        wait_for_file(&ls);
        let opt = format!("seccomp={}", ls.display());
        assert!(
            !run(&mut podman_run(&["--security-opt", &opt], mkdir))
                .status
                .success()
        );
        let extended = dir.join(format!("{what}-extended.json"));
        let ann = format!("if:{};of:{}", ls.display(), extended.display());
        run_ok(&mut traced_run(&hooks, &ann, mkdir));
        wait_for_file(&extended);
        let opt = format!("seccomp={}", extended.display());
        run_ok(&mut podman_run(&["--security-opt", &opt], mkdir));
        run_ok(&mut podman_run(&["--security-opt", &opt], &["ls", "/"]));
    }
    assert!(daemon.status()["profiles_written"].as_u64() >= Some(4));
}

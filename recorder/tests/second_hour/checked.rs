//! Every profile the recorder makes passes its own `check`, and still
//! enforces: the workload runs under it, and what it was not recorded
//! doing fails with EPERM.

use super::*;

/// `ls /` by the host's sh, and a python workload.
const SH: &[&str] = &["sh", "-c", "ls /"];
const PYTHON: &[&str] = &[
    "/usr/bin/python3",
    "-c",
    "import json, os; print(json.dumps(sorted(os.listdir('/'))))",
];

/// `recorderctl record [--base <podman base>] --out DIR/NAME.json -- CMD`.
fn record(dir: &Path, name: &str, base: bool, cmd: &[&str]) -> PathBuf {
    require_root();
    let path = dir.join(format!("{name}.json"));
    let mut c = recorderctl();
    c.args(["record", "--cgroup-parent"])
        .arg(format!("/recorder-second-hour-{}", std::process::id()));
    if base {
        c.arg("--base").arg(podman_base());
    }
    run_ok(c.arg("--out").arg(&path).arg("--").args(cmd));
    path
}

/// `recorderctl merge A B --out DIR/NAME.json`.
fn merge(dir: &Path, name: &str, a: &Path, b: &Path) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    run_ok(
        recorderctl()
            .arg("merge")
            .arg(a)
            .arg(b)
            .arg("--out")
            .arg(&path),
    );
    path
}

/// As the README has it: `record -- sh -c 'ls /'`, a python workload and
/// their merge pass check. With the podman base (what runc does after it
/// loads the filter), they pass too, and enforce.
#[test]
fn recorded_and_merged_profiles_pass_check_and_enforce() {
    let dir = scratch("second-hour-checked");
    let sh = record(&dir, "sh", false, SH);
    let python = record(&dir, "python", false, PYTHON);
    let merged = merge(&dir, "merged", &sh, &python);
    for p in [&sh, &python, &merged] {
        passes_check(p);
    }
    let root = host_rootfs(&dir);
    let sh = record(&dir, "sh-based", true, SH);
    let python = record(&dir, "python-based", true, PYTHON);
    let merged = merge(&dir, "merged-based", &sh, &python);
    for p in [&sh, &python, &merged] {
        passes_check(p);
    }
    // Each enforces: the workload runs...
    let out = run_ok(&mut host_podman(&root, &sh, SH));
    assert!(stdout(&out).lines().any(|l| l == "usr"), "{}", stdout(&out));
    let out = run_ok(&mut host_podman(&root, &python, PYTHON));
    assert!(stdout(&out).contains("\"usr\""), "{}", stdout(&out));
    for cmd in [SH, PYTHON] {
        run_ok(&mut host_podman(&root, &merged, cmd));
    }
    // ... and what it was not recorded doing is denied.
    let mkdir_sh = &["sh", "-c", "ls / && mkdir /tmp/d"];
    let mkdir_py = &["/usr/bin/python3", "-c", "import os; os.mkdir('/tmp/d')"];
    denied(&mut host_podman(&root, &sh, mkdir_sh));
    denied(&mut host_podman(&root, &python, mkdir_py));
    denied(&mut host_podman(&root, &merged, mkdir_sh));
}

#[test]
fn check_refuses_a_profile_that_allows_no_syscall() {
    let dir = scratch("second-hour-empty");
    for (name, text) in [
        ("none.json", r#"{"defaultAction":"SCMP_ACT_ERRNO"}"#),
        (
            "empty-rule.json",
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":[],"action":"SCMP_ACT_ALLOW"}]}"#,
        ),
    ] {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        let out = run(recorderctl().arg("check").arg(&path));
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stdout(&out));
        assert!(
            stdout(&out).contains("no syscall is allowed"),
            "{name}: {}",
            stdout(&out)
        );
    }
}

/// The image profile of a docker image, recorded by `recorderd --all`:
/// it passes check (docker's filter let statx and openat2 through, the
/// workload used newfstatat and openat) and enforces.
#[test]
fn an_image_profile_passes_check_and_enforces() {
    use support::{Daemon, Dockerd, IMAGE, docker, stdout_of, wait_for_file};
    require_root();
    common::busybox_rootfs();
    let dir = scratch("second-hour-image");
    let _dockerd = Dockerd::start(&dir);
    let image = "recorder-test/second-hour-checked:1";
    run_ok(&mut docker(&["tag", IMAGE, image]));
    let daemon = Daemon(common::daemon::Daemon::start(
        "second-hour-image",
        &[
            "--all",
            "--include-image",
            "recorder-test/second-hour-checked*",
        ],
    ));
    let cidfile = dir.join("cid");
    let out = run_ok(&mut docker(&[
        "run",
        "--rm",
        "--cidfile",
        cidfile.to_str().unwrap(),
        image,
        "sh",
        "-c",
        "ls / && cat /etc/passwd",
    ]));
    assert!(stdout(&out).contains("root:x:0:0"), "{}", stdout(&out));
    let id = fs::read_to_string(&cidfile).unwrap().trim().to_owned();
    wait_for_file(&daemon.profile_path(&id));
    let path = dir.join("image.json");
    support::wait_for("the image profile", 30, || {
        run(&mut daemon.ctl(&["profile", "--image", image, "--out", path.to_str().unwrap()]))
            .status
            .success()
            .then_some(())
    });
    passes_check(&path);
    passes_check(&daemon.profile_path(&id));
    let opt = format!("seccomp={}", path.display());
    let ran = stdout_of(&mut docker(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        image,
        "sh",
        "-c",
        "ls / && cat /etc/passwd",
    ]));
    assert!(ran.contains("root:x:0:0"), "{ran}");
    denied(&mut docker(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        image,
        "sh",
        "-c",
        "mkdir /tmp/d",
    ]));
}

//! Profiles users can use anywhere: the docker-format model round-trips,
//! every output format is enforced by the tool that reads it (podman, runc,
//! nsjail) or parsed back, and the engineering commands (check, diff, merge)
//! do what they say.
//!
//! How the enforced profiles are recorded: a profile must cover what the
//! container runtime's init does after it loads the filter, not only the
//! workload. So the workload is recorded *as a container*: `recorderctl
//! record` runs a small wrapper that writes the bundle's
//! `linux.cgroupsPath` as the wrapper's own cgroup and execs `runc run`.
//! runc, its init and the workload then all run in the recorded cgroup: the
//! profile is a superset of what the container needs (it also has runc's
//! own syscalls), which is sound for enforcement. Each enforcement test
//! then removes a syscall only the workload needs and checks that the
//! workload fails: a test that passed with the profile not applied would
//! be worthless.
//!
//! One test binary: the shared helpers are here, the tests in `model`,
//! `commands`, `enforced` (docker, OCI and kafel formats), `compat32` and
//! `args` (argument rules).

#[path = "../common/mod.rs"]
mod common;

mod args;
mod commands;
mod compat32;
mod enforced;
mod model;

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use common::{recorderctl, require_root, run, run_ok, scratch};
use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/fixtures/complex.json")
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// ------------------------------------------- containers and enforcement --

/// A copy of the busybox root filesystem that tests may write to.
fn rootfs_copy(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(common::busybox_rootfs())
            .arg(&root),
    );
    root
}

/// An OCI bundle in `dir` running `args` on `root`; `record` makes the
/// bundle a template whose cgroupsPath the recording wrapper fills in.
fn bundle(dir: &Path, root: &Path, args: &[&str], seccomp: Option<Value>, record: bool) -> PathBuf {
    let b = dir.join(if record { "bundle-record" } else { "bundle" });
    _ = fs::remove_dir_all(&b);
    fs::create_dir_all(&b).unwrap();
    run_ok(Command::new("runc").arg("spec").current_dir(&b));
    let mut config = json(&fs::read_to_string(b.join("config.json")).unwrap());
    config["root"] = serde_json::json!({"path": root, "readonly": false});
    config["process"]["terminal"] = Value::Bool(false);
    config["process"]["args"] = serde_json::json!(args);
    if let Some(s) = seccomp {
        config["linux"]["seccomp"] = s;
    }
    let name = if record {
        "config.json.in"
    } else {
        "config.json"
    };
    if record {
        config["linux"]["cgroupsPath"] = Value::String("@CGROUP@".into());
        fs::remove_file(b.join("config.json")).unwrap();
    }
    fs::write(b.join(name), serde_json::to_string_pretty(&config).unwrap()).unwrap();
    b
}

/// A wrapper that runs a recording bundle inside its own cgroup2 cgroup
/// (the one `recorderctl record` created), so that the whole container is
/// recorded.
fn wrapper(dir: &Path) -> PathBuf {
    let w = dir.join("runc-in-my-cgroup.sh");
    fs::write(
        &w,
        "#!/bin/sh\n# usage: BUNDLE ID\nset -e\ncg=$(sed -n 's/^0:://p' /proc/self/cgroup)\n\
         sed \"s#@CGROUP@#$cg#\" \"$1/config.json.in\" > \"$1/config.json\"\n\
         exec runc run -b \"$1\" \"$2\"\n",
    )
    .unwrap();
    fs::set_permissions(&w, fs::Permissions::from_mode(0o755)).unwrap();
    w
}

fn container_id(tag: &str) -> String {
    format!("recorder-test-{tag}-{}", std::process::id())
}

/// Records `args` run as a runc container on `root`; returns the profile
/// in `format`.
fn record_container(dir: &Path, root: &Path, args: &[&str], format: &str) -> String {
    let b = bundle(dir, root, args, None, true);
    let path = dir.join(format!("recorded.{format}"));
    run_ok(
        recorderctl()
            .args(["record", "--format", format, "--out"])
            .arg(&path)
            .arg("--")
            .arg(wrapper(dir))
            .arg(&b)
            .arg(container_id("rec")),
    );
    fs::read_to_string(&path).unwrap()
}

/// `podman run` as `common::podman_run` does it, on this test's own
/// writable copy of the rootfs.
fn podman(root: &Path, extra: &[&str], cmd: &[&str]) -> Command {
    common::podman_on(root, extra, cmd)
}

fn nsjail() -> PathBuf {
    let path = std::env::var_os("NSJAIL").map_or_else(|| PathBuf::from("nsjail"), PathBuf::from);
    let ok = Command::new(&path).arg("--help").output().is_ok();
    assert!(
        ok,
        "nsjail is not installed (cargo xtask setup installs it; or set NSJAIL)"
    );
    path
}

//! A newcomer's second hour (issue 32): the recorder's profiles pass its
//! own `check` and still enforce; names, paths and tables behave. The
//! real binaries against the real kernel, podman and docker.
//!
//! One test binary: the shared helpers are here, the tests in `checked`
//! (recorded, merged and image profiles pass `check` and enforce), `names`
//! (every name a listing shows is taken back), `daemon` (paths, the socket,
//! status, `--unpin`) and `cli` (flags and tables).

#[path = "../common/mod.rs"]
mod common;
#[path = "../support/mod.rs"]
mod support;

mod checked;
mod daemon;
mod names;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use common::{recorderctl, require_root, run, run_ok, scratch};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The shipped base for what podman and runc do after the filter is
/// loaded: a profile recorded outside a container needs it to start one.
fn podman_base() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/base-podman-runc.json")
}

/// `recorderctl check FILE`, asserting it passes.
fn passes_check(path: &Path) {
    let out = run(recorderctl().arg("check").arg(path));
    assert!(
        out.status.success() && stdout(&out).ends_with(": ok\n"),
        "{} fails check ({}):\n{}{}",
        path.display(),
        out.status,
        stdout(&out),
        stderr(&out)
    );
}

/// A root filesystem whose programs are the host's own (`/usr`, bound
/// read-only by [`host_podman`], with the merged-usr links): what
/// `recorderctl record` ran on the host runs the same in a container.
fn host_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("host-root");
    for d in ["etc", "tmp", "proc", "sys", "dev", "root", "usr"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    for l in ["bin", "lib", "lib64", "sbin"] {
        std::os::unix::fs::symlink(format!("usr/{l}"), root.join(l)).unwrap();
    }
    root
}

/// `podman run` of `cmd` on `root` with the host's `/usr`, under the
/// seccomp profile `profile`.
fn host_podman(root: &Path, profile: &Path, cmd: &[&str]) -> Command {
    let seccomp = format!("seccomp={}", profile.display());
    common::podman_on(
        root,
        &[
            "--tmpfs",
            "/tmp",
            "-v",
            "/usr:/usr:ro",
            "--security-opt",
            &seccomp,
        ],
        cmd,
    )
}

/// Asserts that `cmd` failed with EPERM: the profile denied what the
/// workload was not recorded doing.
fn denied(cmd: &mut Command) {
    let out = run(cmd);
    assert!(
        !out.status.success(),
        "{cmd:?} ran although its profile does not allow it:\n{}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("Operation not permitted") || err.contains("[Errno 1]"),
        "{cmd:?}: {err}"
    );
}

//! Helpers shared by the integration tests: real binaries, real kernel,
//! real podman/runc containers on a busybox root filesystem built here.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
};

/// A port nobody listens on right now (racy by nature: bind it soon).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The recorderctl binary under test.
pub(crate) fn recorderctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_recorderctl"))
}

/// The recorderd binary under test.
pub(crate) fn recorderd_path() -> &'static str {
    env!("CARGO_BIN_EXE_recorderd")
}

/// `cargo xtask ARGS` (the packaging tests build what users install with
/// the same task users run), in the workspace, with the cargo running the
/// tests.
pub(crate) fn xtask(args: &[&str]) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(cargo);
    c.args(["run", "--quiet", "--package", "xtask", "--"])
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    c
}

/// The cargo target directory the tests are built in.
pub(crate) fn target_dir() -> &'static Path {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is <target>/tmp")
}

/// The eBPF tests need root; they fail (never skip) without it.
pub(crate) fn require_root() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the integration tests load eBPF programs and must run as root (cargo xtask test)"
    );
}

/// Runs a command and returns its output; panics with stderr if it cannot start.
pub(crate) fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command and asserts success.
pub(crate) fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A scratch directory under target/ (kept for inspection after a failure).
pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A busybox root filesystem (Debian's busybox-static with its applet
/// links), built once per test binary.
pub(crate) fn busybox_rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let root =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("rootfs-{}", std::process::id()));
        _ = fs::remove_dir_all(&root);
        for d in [
            "bin", "etc", "tmp", "proc", "sys", "dev", "root", "var", "run",
        ] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox-static is not installed (cargo xtask setup installs it)");
        fs::copy(busybox, root.join("bin/busybox")).unwrap();
        // The source binary: running the fresh copy while another test thread
        // forks can fail with ETXTBSY.
        let list = run_ok(Command::new(busybox).arg("--list"));
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            let link = root.join("bin").join(applet);
            if !link.exists() {
                std::os::unix::fs::symlink("busybox", link).unwrap();
            }
        }
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
        )
        .unwrap();
        fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
        root
    })
}

/// `podman run` with the options that work on this kind of host (runc,
/// bounded ulimits, a private /tmp) on the busybox rootfs.
pub(crate) fn podman_run(extra: &[&str], cmd: &[&str]) -> Command {
    // Each container gets its own /tmp: the rootfs is shared by tests.
    let mut options = vec!["--tmpfs", "/tmp"];
    options.extend_from_slice(extra);
    podman_on(busybox_rootfs(), &options, cmd)
}

/// `podman run` with the options that work on this kind of host (runc,
/// bounded ulimits), `extra`, on root filesystem `root`.
pub(crate) fn podman_on(root: &Path, extra: &[&str], cmd: &[&str]) -> Command {
    let mut c = Command::new("podman");
    c.args(["--runtime", "runc", "run", "--rm"])
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .args(extra)
        .arg("--rootfs")
        .arg(root)
        .args(cmd);
    c
}

/// Parses a profile and returns the names allowed by its ALLOW rules.
pub(crate) fn allowed_names(profile: &str) -> std::collections::BTreeSet<String> {
    let v: serde_json::Value = serde_json::from_str(profile)
        .unwrap_or_else(|e| panic!("profile is not JSON ({e}): {profile}"));
    v["syscalls"]
        .as_array()
        .expect("syscalls array")
        .iter()
        .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
        .flat_map(|r| r["names"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect()
}

/// Writes a copy of `profile` without `names` in any rule.
pub(crate) fn without(profile: &str, names: &[&str], out: &Path) {
    let mut v: serde_json::Value = serde_json::from_str(profile).unwrap();
    for rule in v["syscalls"].as_array_mut().unwrap() {
        if let Some(list) = rule["names"].as_array_mut() {
            list.retain(|n| !names.contains(&n.as_str().unwrap_or_default()));
        }
    }
    fs::write(out, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}
pub(crate) mod daemon;

/// Compiles the C test program (tests/programs/syscalls.c) with `flags` into CARGO_TARGET_TMPDIR/`name`.
pub(crate) fn compile_test_program(name: &str, flags: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/syscalls.c");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let tmp = dir.join(format!("{name}.{}", std::process::id()));
    let out = dir.join(name);
    run_ok(
        Command::new("gcc")
            .args(flags)
            .args(["-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-o"])
            .arg(&tmp)
            .arg(&src),
    );
    fs::rename(&tmp, &out).unwrap();
    out
}

/// The C test program, compiled once per test binary.
pub(crate) fn test_program() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| compile_test_program("syscalls", &[]))
}

/// Serialises the tests of one binary that must not overlap: every
/// `recorderd --all` records every new container on the host, so two such
/// daemons side by side see each other's containers.
pub(crate) fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

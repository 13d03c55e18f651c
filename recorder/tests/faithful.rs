//! Faithful profiles, with real runtimes: a profile never changes the
//! answer a workload got while it was recorded. A static pthread program
//! (tests/programs/threads.c) recorded by `recorderd --all` under docker's
//! and podman's default seccomp filters runs under its own profile (glibc
//! falls back from clone3 to clone only on ENOSYS), and the OCI hook's
//! profile of `ls /` leaves runc's start-up out and enforces.
//!
//! Each test prints a line starting with `ACCEPTANCE` (profile size, answers
//! carried over, whether it enforces); run with `--nocapture` to see them.

mod common;
mod support;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use common::*;
use support::*;

/// The docker image of the busybox rootfs with /bin/threads in it.
const THREADS_IMAGE: &str = "recorder-test/threads";
const THREADS_OK: &str = "threads ok";

/// The busybox rootfs with the static pthread program at /bin/threads.
fn threads_rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let root = busybox_rootfs();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/threads.c");
        let tmp = root.join(format!("bin/.threads.{}", std::process::id()));
        run_ok(
            Command::new("gcc")
                .args([
                    "-static", "-pthread", "-O2", "-Wall", "-Wextra", "-Werror", "-o",
                ])
                .arg(&tmp)
                .arg(&src),
        );
        fs::rename(&tmp, root.join("bin/threads")).unwrap();
        root.to_owned()
    })
}

/// The profile's JSON.
fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The number of names in rules that are not ALLOW: the answers carried
/// over from the recording-time policy.
fn carried(text: &str) -> usize {
    json(text)["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] != "SCMP_ACT_ALLOW")
        .map(|r| r["names"].as_array().map_or(0, Vec::len))
        .sum()
}

/// The action and errno the profile gives `name`: a rule's, or the default.
fn answer(text: &str, name: &str) -> (String, Option<u64>) {
    let v = json(text);
    for r in v["syscalls"].as_array().unwrap() {
        if r["names"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n == name))
        {
            return (
                r["action"].as_str().unwrap().to_owned(),
                r["errnoRet"].as_u64(),
            );
        }
    }
    (
        v["defaultAction"].as_str().unwrap().to_owned(),
        v["defaultErrnoRet"].as_u64(),
    )
}

fn acceptance(workload: &str, runtime: &str, text: &str, enforces: bool) {
    eprintln!(
        "ACCEPTANCE {workload} under {runtime}: {} allowed names, {} carried-over answers, default {:?}, enforces: {enforces}",
        allowed_names(text).len(),
        carried(text),
        answer(text, "no-such-syscall"),
    );
}

/// The docker pthread case of issue 18: recorded in auto mode with no
/// flags, under docker's default filter (clone3 -> ENOSYS), then run under
/// its own profile.
#[test]
fn docker_threads_run_under_their_own_profile() {
    require_root();
    threads_rootfs();
    let _serial = serial();
    let dir = scratch("faithful-docker");
    let _dockerd = Dockerd::start(&dir);
    pipe(
        Command::new("tar")
            .arg("-C")
            .arg(threads_rootfs())
            .args(["-c", "."]),
        Command::new("docker").args(["import", "-", THREADS_IMAGE]),
    );
    let daemon = Daemon::start(&dir, true);
    let cidfile = dir.join("cid");
    let out = run_ok(&mut docker(&[
        "run",
        "--rm",
        "--cidfile",
        cidfile.to_str().unwrap(),
        THREADS_IMAGE,
        "/bin/threads",
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).contains(THREADS_OK));
    let id = fs::read_to_string(&cidfile).unwrap().trim().to_owned();
    let text = wait_for_file(&daemon.profiles.join(format!("{id}.json")));
    let names = allowed_names(&text);
    assert!(names.contains("clone"), "{names:?}");
    assert!(
        !names.contains("clone3"),
        "clone3 never reached the recorder"
    );
    // Docker's filter answered clone3 with ENOSYS: so does the profile.
    assert_eq!(
        answer(&text, "clone3"),
        ("SCMP_ACT_ERRNO".to_owned(), Some(38)),
        "{text}"
    );

    let profile = dir.join("profile.json");
    fs::write(&profile, &text).unwrap();
    let seccomp = format!("seccomp={}", profile.display());
    let out = run(&mut docker(&[
        "run",
        "--rm",
        "--security-opt",
        &seccomp,
        THREADS_IMAGE,
        "/bin/threads",
    ]));
    let enforces =
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(THREADS_OK);
    acceptance("threads", "docker", &text, enforces);
    assert!(
        enforces,
        "threads failed under their own profile: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Without the carried-over answer, clone3 gets the default EPERM and
    // glibc does not fall back: the defect of issue 18.
    let unfaithful = dir.join("no-clone3-answer.json");
    without(&text, &["clone3"], &unfaithful);
    let seccomp = format!("seccomp={}", unfaithful.display());
    assert!(
        !ran_to(
            &mut docker(&[
                "run",
                "--rm",
                "--security-opt",
                &seccomp,
                THREADS_IMAGE,
                "/bin/threads"
            ]),
            THREADS_OK
        ),
        "threads ran with clone3 answered EPERM"
    );

    // Without chmod, the profile stops the workload: it is enforced.
    let denied = dir.join("no-chmod.json");
    without(&text, &["chmod", "fchmodat", "fchmodat2"], &denied);
    let seccomp = format!("seccomp={}", denied.display());
    assert!(
        !ran_to(
            &mut docker(&[
                "run",
                "--rm",
                "--security-opt",
                &seccomp,
                THREADS_IMAGE,
                "/bin/threads"
            ]),
            THREADS_OK
        ),
        "chmod ran under a profile without it"
    );
}

/// The same under podman, whose default filter allows clone3 and answers
/// ENOSYS to what it does not list.
#[test]
fn podman_threads_run_under_their_own_profile() {
    require_root();
    threads_rootfs();
    let _serial = serial();
    let dir = scratch("faithful-podman");
    let daemon = Daemon::start(&dir, true);
    let cidfile = dir.join("cid");
    let cid = format!("--cidfile={}", cidfile.display());
    let out = run_ok(&mut podman_run(&[&cid], &["/bin/threads"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains(THREADS_OK));
    let id = fs::read_to_string(&cidfile).unwrap().trim().to_owned();
    let text = wait_for_file(&daemon.profiles.join(format!("{id}.json")));
    let names = allowed_names(&text);
    assert!(
        names.contains("clone3") || names.contains("clone"),
        "{names:?}"
    );
    // The daemon found podman's bundle (under its graph root) and read the
    // policy: ENOSYS to what it does not list, EPERM to a few named ones.
    assert!(
        !daemon
            .log_text()
            .contains(&format!("{id}: seccomp policy unknown")),
        "{}",
        daemon.log_text()
    );
    assert_eq!(
        answer(&text, "kexec_load"),
        ("SCMP_ACT_ERRNO".to_owned(), Some(1))
    );

    let profile = dir.join("profile.json");
    fs::write(&profile, &text).unwrap();
    let seccomp = format!("seccomp={}", profile.display());
    let out = run(&mut podman_run(
        &["--security-opt", &seccomp],
        &["/bin/threads"],
    ));
    let enforces =
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(THREADS_OK);
    acceptance("threads", "podman", &text, enforces);
    assert!(
        enforces,
        "threads failed under their own profile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let denied = dir.join("no-chmod.json");
    without(&text, &["chmod", "fchmodat", "fchmodat2"], &denied);
    let seccomp = format!("seccomp={}", denied.display());
    assert!(
        !ran_to(
            &mut podman_run(&["--security-opt", &seccomp], &["/bin/threads"]),
            THREADS_OK
        ),
        "chmod ran under a profile without it"
    );
}

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
    json["hook"]["path"] = env!("CARGO_BIN_EXE_recorder-oci-hook").into();
    json["hook"]["args"] = serde_json::json!(["recorder-oci-hook", "--socket", socket]);
    fs::write(hooks.join("recorder-oci-hook.json"), json.to_string()).unwrap();
    hooks
}

/// The hook's profile of `ls /` (recorded by `socket`'s recorderd, or by
/// the hook itself when none listens there): no runc start-up in it, and
/// `ls /` runs under it.
fn hook_ls(dir: &Path, socket: &Path, how: &str) {
    let hooks = hooks_dir(dir, socket);
    let out_path = dir.join("ls.json");
    let annotation = format!("io.containers.trace-syscall=of:{}", out_path.display());
    let mut cmd = podman_run(&["--annotation", &annotation], &["ls", "/"]);
    cmd.arg0_hooks(&hooks);
    let out = run_ok(&mut cmd);
    assert!(String::from_utf8_lossy(&out.stdout).contains("bin"));
    let text = wait_for_file(&out_path);
    let names = allowed_names(&text);
    for n in ["mount", "pivot_root", "sethostname"] {
        assert!(
            !names.contains(n),
            "runc's {n} is in the profile: {names:?}"
        );
    }
    assert!(names.contains("getdents64"), "{names:?}");

    let profile = dir.join("enforce.json");
    fs::write(&profile, &text).unwrap();
    let seccomp = format!("seccomp={}", profile.display());
    let out = run(&mut podman_run(&["--security-opt", &seccomp], &["ls", "/"]));
    let enforces = out.status.success() && String::from_utf8_lossy(&out.stdout).contains("bin");
    acceptance("ls /", how, &text, enforces);
    assert!(
        enforces,
        "ls / failed under its own profile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `podman --hooks-dir DIR run ...`: the global option goes first.
trait HooksDir {
    fn arg0_hooks(&mut self, hooks: &Path);
}

impl HooksDir for Command {
    fn arg0_hooks(&mut self, hooks: &Path) {
        let args: Vec<_> = self.get_args().map(ToOwned::to_owned).collect();
        let mut c = Command::new(self.get_program());
        c.arg("--hooks-dir").arg(hooks).args(args);
        *self = c;
    }
}

#[test]
fn hook_profile_of_ls_leaves_runc_out_and_enforces() {
    require_root();
    busybox_rootfs();
    let dir = scratch("faithful-hook");
    // No recorderd listens here: the hook records on its own.
    hook_ls(
        &dir,
        &dir.join("no-such-socket"),
        "podman (OCI hook, detached)",
    );
}

#[test]
fn hook_profile_of_ls_through_recorderd_leaves_runc_out() {
    require_root();
    busybox_rootfs();
    let _serial = serial();
    let dir = scratch("faithful-hook-daemon");
    let daemon = Daemon::start(&dir, false);
    hook_ls(&dir, &daemon.socket, "podman (OCI hook, recorderd)");
}

//! Helpers for the runtime tests (OCI hook, docker, containerd, kubepods):
//! a recorderd of the test's own, a dockerd the test starts, bounded waits.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::{
    fs,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use crate::common::{run, run_ok};

/// Polls `f` every 100 ms until it gives a value, for at most `secs`.
pub(crate) fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (bounded) for a file to appear and returns its text.
pub(crate) fn wait_for_file(path: &Path) -> String {
    wait_for(&path.display().to_string(), 60, || {
        fs::read_to_string(path).ok().filter(|t| !t.is_empty())
    })
}

/// The shared test daemon (tests/common/daemon.rs), started by directory
/// name, with or without auto mode, plus JSON views of `status` and `list`.
pub(crate) struct Daemon(pub crate::common::daemon::Daemon);

impl std::ops::Deref for Daemon {
    type Target = crate::common::daemon::Daemon;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Daemon {
    pub(crate) fn start(dir: &Path, all: bool) -> Self {
        let name = format!("rt-{}", dir.file_name().unwrap().to_string_lossy());
        let extra: &[&str] = if all { &["--all"] } else { &[] };
        Self(crate::common::daemon::Daemon::start(&name, extra))
    }

    pub(crate) fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.ctl_ok(&["status", "--output", "json"])).unwrap()
    }

    pub(crate) fn list(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.ctl_ok(&["list", "--output", "json"])).unwrap()
    }
}

/// The image the docker and containerd tests run: the busybox rootfs.
pub(crate) const IMAGE: &str = "recorder-test/busybox";

/// The docker tests' workload: `ls` (getdents64) and `chmod`.
pub(crate) const WORKLOAD: &str =
    "ls / >/dev/null && touch /tmp/f && chmod 600 /tmp/f && echo DONE";

/// The syscalls that chmod: a profile without them must refuse WORKLOAD.
pub(crate) const CHMODS: &[&str] = &["chmod", "fchmod", "fchmodat", "fchmodat2"];

/// Asserts that a profile of WORKLOAD allows what it calls.
pub(crate) fn assert_recorded(text: &str) {
    let names = crate::common::allowed_names(text);
    for n in ["getdents64", "chmod"] {
        assert!(names.contains(n), "{n} missing from {names:?}");
    }
}

/// `docker run --rm` of WORKLOAD on IMAGE as `name`; asserts that it ran,
/// returns the container's id (written to `cidfile`).
pub(crate) fn docker_workload(name: &str, cidfile: &Path) -> String {
    let out = run_ok(&mut docker(&[
        "run",
        "--rm",
        "--name",
        name,
        "--cidfile",
        cidfile.to_str().unwrap(),
        IMAGE,
        "sh",
        "-c",
        WORKLOAD,
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("DONE"));
    fs::read_to_string(cidfile).unwrap().trim().to_owned()
}

/// Checks that docker enforces the profile `text` of WORKLOAD: the
/// workload runs under it, and not under a copy without CHMODS (written
/// in `dir`).
pub(crate) fn assert_docker_enforces(text: &str, dir: &Path) {
    let runs_under = |profile: &Path| docker_runs_under(profile, IMAGE, WORKLOAD);
    let profile = dir.join("profile.json");
    fs::write(&profile, text).unwrap();
    assert!(
        runs_under(&profile),
        "the workload failed under its own profile"
    );
    let denied = dir.join("no-chmod.json");
    crate::common::without(text, CHMODS, &denied);
    assert!(!runs_under(&denied), "chmod ran under a profile without it");
}

/// Whether `sh -c script` in a docker container of `image`, under the
/// seccomp profile file `profile`, succeeds and prints DONE.
pub(crate) fn docker_runs_under(profile: &Path, image: &str, script: &str) -> bool {
    let seccomp = format!("seccomp={}", profile.display());
    ran_to(
        &mut docker(&[
            "run",
            "--rm",
            "--security-opt",
            &seccomp,
            image,
            "sh",
            "-c",
            script,
        ]),
        "DONE",
    )
}

fn docker_up() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A dockerd on /var/run/docker.sock, started by the test unless one runs
/// already, and stopped when dropped unless a test of another process (of
/// any checkout on the machine) still uses it. Tests that use it run one at
/// a time. Its data root is a directory of the tests', which docker's own
/// files on disk do not point to: the names the tests see come from the
/// Engine API.
pub(crate) struct Dockerd {
    child: Option<Child>,
    users: fs::File,
    _lock: MutexGuard<'static, ()>,
}

static DOCKER_LOCK: Mutex<()> = Mutex::new(());

/// Locked (shared) by every process whose tests use the dockerd, taken
/// before looking whether one runs.
const DOCKER_USERS: &str = "/run/lock/recorder-test-dockerd.lock";

fn flock(f: &fs::File, op: i32) -> bool {
    use std::os::fd::AsRawFd as _;
    // SAFETY: flock(2) on a descriptor we own.
    unsafe { libc::flock(f.as_raw_fd(), op) == 0 }
}

impl Dockerd {
    pub(crate) fn start(log_dir: &Path) -> Self {
        let lock = DOCKER_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let users = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(DOCKER_USERS)
            .unwrap();
        assert!(flock(&users, libc::LOCK_SH), "flock {DOCKER_USERS}");
        let child = if docker_up() {
            None
        } else {
            let child = Command::new("dockerd")
                .args(["--host", "unix:///var/run/docker.sock"])
                .arg("--data-root")
                .arg(Path::new(env!("CARGO_TARGET_TMPDIR")).join("docker-data-root"))
                .stdout(Stdio::null())
                .stderr(fs::File::create(log_dir.join("dockerd.log")).unwrap())
                .spawn()
                .expect("dockerd is not installed (cargo xtask setup installs docker.io)");
            Some(child)
        };
        let d = Self {
            child,
            users,
            _lock: lock,
        };
        wait_for("dockerd", 60, || docker_up().then_some(()));
        import_rootfs(IMAGE);
        d
    }
}

/// Imports the busybox rootfs as image `tag` (each import a new id).
pub(crate) fn import_rootfs(tag: &str) {
    let rootfs = crate::common::busybox_rootfs();
    pipe(
        Command::new("tar").arg("-C").arg(rootfs).args(["-c", "."]),
        Command::new("docker").args(["import", "-", tag]),
    );
}

/// [`import_rootfs`] as an image of the test's own, `tag`: returns its id,
/// which no other test's containers share.
pub(crate) fn import_image(tag: &str) -> String {
    import_rootfs(tag);
    stdout_of(&mut docker(&["image", "inspect", "-f", "{{.Id}}", tag]))
}

/// Runs `script` in a fresh container of `image` (extra `docker run`
/// options first); waits for its profile and returns the container id.
pub(crate) fn run_container(
    daemon: &Daemon,
    dir: &Path,
    extra: &[&str],
    image: &str,
    script: &str,
) -> String {
    let cidfile = dir.join(format!("cid-{}", fs::read_dir(dir).unwrap().count()));
    let cid = cidfile.to_str().unwrap();
    let mut args = vec!["run", "--rm", "--cidfile", cid];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[image, "sh", "-c", script]);
    assert!(ran_to(&mut docker(&args), "DONE"), "docker {args:?} failed");
    let id = fs::read_to_string(&cidfile).unwrap().trim().to_owned();
    // Written when docker removes the container's cgroup.
    wait_for_file(&daemon.profiles.join(format!("{id}.json")));
    id
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // Another process's tests use it: leave it running for them.
        if !flock(&self.users, libc::LOCK_EX | libc::LOCK_NB) {
            return;
        }
        if let Some(child) = &mut self.child {
            // SAFETY: signals our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            _ = child.kill();
            _ = child.wait();
        }
    }
}

/// dockerd's managed containerd.
pub(crate) const CONTAINERD: &str = "/var/run/docker/containerd/containerd.sock";

/// `ctr` on dockerd's containerd, in namespace `ns`.
pub(crate) fn ctr(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ctr");
    c.args(["-a", CONTAINERD, "-n", ns]).args(args);
    c
}

/// Docker's image `image` imported into containerd namespace `ns`: its
/// reference there.
pub(crate) fn ctr_import(ns: &str, image: &str) -> String {
    pipe(
        Command::new("docker").args(["save", image]),
        &mut ctr(ns, &["image", "import", "-"]),
    );
    let library = if image.contains('/') { "" } else { "library/" };
    format!("docker.io/{library}{image}:latest")
}

/// Removes containerd namespace `ns` with its images, snapshots and
/// content, and its cgroup (best effort: what is still in use stays).
pub(crate) fn ctr_forget_namespace(ns: &str) {
    let list = |what: &[&str]| -> Vec<String> {
        String::from_utf8_lossy(&run(&mut ctr(ns, what)).stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    for image in list(&["images", "ls", "-q"]) {
        _ = run(&mut ctr(ns, &["images", "rm", &image]));
    }
    let snapshots = list(&["snapshots", "ls"]);
    for line in snapshots.iter().skip(1).rev() {
        if let Some(key) = line.split_whitespace().next() {
            _ = run(&mut ctr(ns, &["snapshots", "rm", key]));
        }
    }
    for blob in list(&["content", "ls", "-q"]) {
        _ = run(&mut ctr(ns, &["content", "rm", &blob]));
    }
    _ = run(&mut ctr(ns, &["namespaces", "rm", ns]));
    if let Ok(h) = recorder::cgroup::Hierarchy::detect() {
        _ = h.remove(&format!("/{ns}"), Duration::from_secs(1));
    }
}

/// `docker` with arguments.
pub(crate) fn docker(args: &[&str]) -> Command {
    let mut c = Command::new("docker");
    c.args(args);
    c
}

/// The stdout of a successful command, trimmed.
pub(crate) fn stdout_of(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run_ok(cmd).stdout)
        .trim()
        .to_owned()
}

/// Runs a command and says whether it succeeded and printed `marker`.
pub(crate) fn ran_to(cmd: &mut Command, marker: &str) -> bool {
    let out = run(cmd);
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains(marker)
}

/// `producer | consumer`; both must succeed.
pub(crate) fn pipe(producer: &mut Command, consumer: &mut Command) {
    let mut p = producer.stdout(Stdio::piped()).spawn().unwrap();
    run_ok(consumer.stdin(p.stdout.take().unwrap()));
    let status = p.wait().unwrap();
    assert!(status.success(), "{producer:?} failed: {status}");
}

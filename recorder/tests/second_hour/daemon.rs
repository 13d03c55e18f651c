//! recorderd's edges: an empty recording says so, paths are absolute, the
//! socket goes with the daemon, `--unpin` tells what it did, `status`
//! tells two daemons apart.

use super::*;

/// A podman container (busybox rootfs), removed when dropped.
struct Podman(String);

impl Podman {
    /// Starts `script` detached as container `name`.
    fn run(name: &str, script: &str) -> Self {
        let id = support::stdout_of(&mut common::podman_run(
            &["-d", "--name", name],
            &["sh", "-c", script],
        ));
        assert_eq!(id.len(), 64, "{id}");
        Self(name.to_owned())
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.0])
            .output();
    }
}

#[test]
fn stopping_a_recording_that_saw_no_syscall_warns_why() {
    require_root();
    common::busybox_rootfs();
    let d = common::daemon::Daemon::start("second-hour-empty", &[]);
    let name = format!("recorder-test-second-hour-sleep-{}", std::process::id());
    let _c = Podman::run(&name, "sleep 120");
    // Started while it sleeps: it makes no syscall until stopped.
    run_ok(&mut d.ctl(&["start", &name]));
    let out = run_ok(&mut d.ctl(&["stop", &name]));
    let err = stderr(&out);
    assert!(
        err.contains("warning: no syscall was recorded") && err.contains("since `start`"),
        "{err}"
    );
    let path = stdout(&out).trim().to_owned();
    assert!(Path::new(&path).is_file(), "{path}");
    assert!(
        d.log_text().contains("no syscall was recorded"),
        "{}",
        d.log_text()
    );
}

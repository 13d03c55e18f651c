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

/// A bpffs pin dir of this test's own.
fn pin_dir(name: &str) -> PathBuf {
    PathBuf::from(format!("/sys/fs/bpf/recorder-test-second-hour-{name}"))
}

/// recorderd with `args`, in `cwd`; returns its output.
fn recorderd(cwd: &Path, args: &[&str]) -> Output {
    run(Command::new(common::recorderd_path())
        .current_dir(cwd)
        .args(["--metrics-addr", "off"])
        .args(args))
}

#[test]
fn relative_paths_are_made_absolute_and_status_tells_where() {
    require_root();
    let dir = scratch("second-hour-paths");
    let pins = pin_dir("paths");
    _ = fs::remove_dir_all(&pins);
    // Relative flags, from the daemon's working directory.
    let child = Command::new(common::recorderd_path())
        .current_dir(&dir)
        .args(["--socket", "sock", "--profiles-dir", "profs"])
        .args(["--state-dir", "./state", "--metrics-addr", "off"])
        .arg("--pin-dir")
        .arg(&pins)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let socket = dir.join("sock");
    let sock = socket.to_str().unwrap();
    // --timeout and --socket before the command.
    let ctl = |args: &[&str]| {
        let mut c = recorderctl();
        c.args(["--timeout", "5", "--socket", sock]).args(args);
        c
    };
    let status = support::wait_for("recorderd", 30, || {
        let out = run(&mut ctl(&["status", "-o", "json"]));
        out.status
            .success()
            .then(|| serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap())
    });
    assert_eq!(status["profiles_dir"], dir.join("profs").to_str().unwrap());
    assert_eq!(status["state_dir"], dir.join("state").to_str().unwrap());
    assert_eq!(status["socket"], sock, "{status}");
    assert_eq!(status["pin_dir"], pins.to_str().unwrap(), "{status}");
    assert_eq!(status["metrics_addr"], "off", "{status}");
    assert_eq!(status["scope"], "every container", "{status}");
    let text = stdout(&run_ok(&mut ctl(&["status"])));
    let profiles = format!("profiles dir:     {}\n", dir.join("profs").display());
    assert!(text.contains(&profiles), "{text}");
    // --timeout after the command too; a bad one is a usage error.
    run_ok(&mut ctl(&["list", "--timeout", "3"]));
    let out = run(recorderctl().args(["--timeout", "0", "status"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("more than 0"), "{}", stderr(&out));

    // SIGTERM: the socket goes with the daemon.
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let exited = child.wait_with_output().unwrap();
    assert!(exited.status.success(), "{}", stderr(&exited));
    assert!(!socket.exists(), "the socket stayed after SIGTERM");
    let out = run(&mut ctl(&["status"]));
    assert!(!out.status.success());
    assert!(
        !stderr(&out).contains("Connection refused")
            && stderr(&out).contains("is recorderd running"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unpin_dots_and_config_files_say_what_is_wrong() {
    require_root();
    let dir = scratch("second-hour-unpin");
    // --unpin of a pin dir that does not exist: nothing to remove.
    let missing = pin_dir("never-made");
    _ = fs::remove_dir_all(&missing);
    let out = recorderd(&dir, &["--unpin", "--pin-dir", missing.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing to remove") && !stderr(&out).contains("removed "),
        "{}",
        stderr(&out)
    );
    // bpffs refuses dots: said so.
    let socket = dir.join("sock");
    let out = recorderd(
        &dir,
        &[
            "--socket",
            socket.to_str().unwrap(),
            "--pin-dir",
            "/sys/fs/bpf/recorder-test.second-hour",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("bpffs refuses names with a dot"),
        "{}",
        stderr(&out)
    );
    assert!(!socket.exists(), "a failed start left its socket");
    // A relative path in the file is refused, a misspelt key gets a hint;
    // both are usage errors, as a bad flag is.
    let config = dir.join("r.toml");
    for (text, says) in [
        (
            "profiles_dir = \"profs\"\n",
            "profiles_dir 'profs' is not an absolute path",
        ),
        ("profile_dir = \"/x\"\n", "did you mean `profiles_dir`?"),
    ] {
        fs::write(&config, text).unwrap();
        let out = recorderd(&dir, &["--config", config.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
    let out = recorderd(&dir, &["--capacity", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

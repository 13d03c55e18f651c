//! A real recorderd for a test: its own socket, directories and pin dir,
//! stopped and unpinned when dropped.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::{recorderctl, recorderd_path, run};

pub(crate) struct Daemon {
    pub(crate) dir: PathBuf,
    pub(crate) socket: PathBuf,
    pub(crate) profiles: PathBuf,
    pub(crate) pin_dir: PathBuf,
    pub(crate) log: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl Daemon {
    /// Starts recorderd with `extra` flags; waits until it answers.
    pub(crate) fn start(name: &str, extra: &[&str]) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("daemon-{name}"));
        _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let pin_dir = PathBuf::from(format!("/sys/fs/bpf/recorder-test-{name}"));
        _ = fs::remove_dir_all(&pin_dir);
        let mut d = Self {
            socket: dir.join("sock"),
            profiles: dir.join("profiles"),
            log: dir.join("recorderd.log"),
            pin_dir,
            dir,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
        };
        d.spawn();
        d
    }

    /// (Re)starts the process with the same directories.
    pub(crate) fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(recorderd_path())
            .arg("--socket")
            .arg(&self.socket)
            .arg("--profiles-dir")
            .arg(&self.profiles)
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .args(["--log-level", "debug"])
            // Tests run daemons side by side: no metrics port unless asked.
            .args(if self.extra.iter().any(|a| a == "--metrics-addr") {
                &[][..]
            } else {
                &["--metrics-addr", "off"][..]
            })
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start recorderd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = run(&mut self.ctl(&["status"]));
            if out.status.success() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("recorderd exited with {status}:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "recorderd did not answer:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A recorderctl command against this daemon.
    pub(crate) fn ctl(&self, args: &[&str]) -> Command {
        let mut c = recorderctl();
        c.args(args).env("RECORDER_SOCKET", &self.socket);
        c
    }

    /// Runs recorderctl and asserts success; returns stdout.
    pub(crate) fn ctl_ok(&self, args: &[&str]) -> String {
        let out = run(&mut self.ctl(args));
        assert!(
            out.status.success(),
            "recorderctl {args:?} failed: {}\n{}\nlog:\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            self.log_text()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub(crate) fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Sends `signal` and waits for the process to exit.
    pub(crate) fn signal(&mut self, signal: i32) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        child.wait().ok()
    }

    /// The path of a container's profile.
    pub(crate) fn profile_path(&self, id: &str) -> PathBuf {
        self.profiles.join(format!("{id}.json"))
    }

    /// Waits (bounded) for a file to appear and returns its contents.
    pub(crate) fn wait_for(&self, path: &Path) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = fs::read_to_string(path)
                && !text.is_empty()
            {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not appear; log:\n{}",
                path.display(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM, then SIGKILL if it has not ended within 30 s: a wedged
        // daemon fails its test instead of hanging the suite.
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(child.try_wait(), Ok(None)) {
                _ = child.kill();
                _ = child.wait();
                assert!(
                    std::thread::panicking(),
                    "recorderd ({}) did not end within 30 s of SIGTERM",
                    self.dir.display()
                );
            }
        }
        _ = Command::new(recorderd_path())
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .arg("--unpin")
            .output();
    }
}

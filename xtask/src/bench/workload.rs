//! The benchmark workloads and how they are run inside their own cgroup.

use std::{
    fs::{self, File},
    io::{self, Read as _},
    os::{fd::AsRawFd as _, unix::process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail};

/// The C source of the syscall microbenchmark, compiled at bench time.
const GETPPID_C: &str = include_str!("../../bench/getppid.c");

/// The directory the realistic workload archives (`tar c` of it).
pub(super) const TAR_DIR: &str = "usr/include";

/// One workload: what it runs and how its result is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Workload {
    /// getppid(2) in a loop on one thread: thread CPU ns per syscall.
    Getppid1,
    /// getppid(2) in a loop on every CPU: thread CPU ns per syscall.
    GetppidN,
    /// `tar c /usr/include` into a pipe user space drains: wall ms.
    Tar,
}

impl Workload {
    pub(super) const ALL: [Workload; 3] = [Workload::Getppid1, Workload::GetppidN, Workload::Tar];

    /// Stable name, used as the JSON key.
    pub(super) fn key(self) -> &'static str {
        match self {
            Self::Getppid1 => "getppid_1t",
            Self::GetppidN => "getppid_nt",
            Self::Tar => "tar",
        }
    }

    /// The syscall microbenchmark, which the targets are measured on.
    pub(super) fn is_microbenchmark(self) -> bool {
        matches!(self, Self::Getppid1 | Self::GetppidN)
    }

    pub(super) fn unit(self) -> &'static str {
        match self {
            Self::Getppid1 | Self::GetppidN => "ns/syscall",
            Self::Tar => "ms",
        }
    }

    /// Human label for the table.
    pub(super) fn label(self, threads: usize) -> String {
        match self {
            Self::Getppid1 => "getppid, 1 thread".to_owned(),
            Self::GetppidN => format!("getppid, {threads} threads"),
            Self::Tar => format!("tar c /{TAR_DIR} (wall)"),
        }
    }
}

/// What the workloads need: the compiled microbenchmark, the cgroup to run
/// in, and the sizes.
pub(super) struct Runner {
    getppid: PathBuf,
    procs: PathBuf,
    pub iterations: u64,
    pub threads: usize,
}

impl Runner {
    /// Compiles the microbenchmark into `out_dir` and prepares to run in the
    /// cgroup directory `cgroup_dir`.
    pub(super) fn new(out_dir: &Path, cgroup_dir: &Path, iterations: u64) -> anyhow::Result<Self> {
        let src = out_dir.join("getppid.c");
        let bin = out_dir.join("getppid");
        fs::write(&src, GETPPID_C).with_context(|| format!("writing {}", src.display()))?;
        let status = Command::new("gcc")
            .args(["-O2", "-pthread", "-o"])
            .arg(&bin)
            .arg(&src)
            .status()
            .context("running gcc (install it with `apt-get install gcc`)")?;
        if !status.success() {
            bail!("gcc failed to compile {}: {status}", src.display());
        }
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(Self {
            getppid: bin,
            procs: cgroup_dir.join("cgroup.procs"),
            iterations,
            threads,
        })
    }

    /// Runs `workload` once in the cgroup and returns its result in
    /// [`Workload::unit`].
    pub(super) fn run(&self, workload: Workload) -> anyhow::Result<f64> {
        match workload {
            Workload::Getppid1 => self.getppid(1),
            Workload::GetppidN => self.getppid(self.threads),
            Workload::Tar => self.tar(),
        }
    }

    fn getppid(&self, threads: usize) -> anyhow::Result<f64> {
        let mut cmd = Command::new(&self.getppid);
        cmd.arg(self.iterations.to_string())
            .arg(threads.to_string())
            .stdout(Stdio::piped());
        let procs = self.open_procs()?;
        join_cgroup(&mut cmd, &procs);
        let out = cmd
            .output()
            .with_context(|| format!("running {}", self.getppid.display()))?;
        if !out.status.success() {
            bail!("{} failed: {}", self.getppid.display(), out.status);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim()
            .parse::<f64>()
            .with_context(|| format!("parsing the microbenchmark's output '{}'", text.trim()))
    }

    fn tar(&self) -> anyhow::Result<f64> {
        let mut cmd = Command::new("tar");
        // `-f -` into a pipe: GNU tar skips reading the files when the
        // archive is /dev/null, so the pipe is drained here instead.
        cmd.args(["-c", "-f", "-", "-C", "/", TAR_DIR])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let procs = self.open_procs()?;
        join_cgroup(&mut cmd, &procs);
        let start = Instant::now();
        let mut child = cmd.spawn().context("running tar")?;
        drop(procs);
        let mut stdout = child
            .stdout
            .take()
            .context("tar's stdout was not captured")?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("reading tar's output"),
            }
        }
        let status = child.wait().context("waiting for tar")?;
        let elapsed = start.elapsed();
        // 1: some file changed while it was read; the timing still counts.
        if !matches!(status.code(), Some(0 | 1)) {
            bail!("tar failed: {status}");
        }
        Ok(elapsed.as_secs_f64() * 1e3)
    }

    fn open_procs(&self) -> anyhow::Result<File> {
        fs::OpenOptions::new()
            .write(true)
            .open(&self.procs)
            .with_context(|| format!("opening {}", self.procs.display()))
    }
}

/// Makes the child join the cgroup whose `cgroup.procs` is `procs` between
/// fork and exec, as `recorderctl record` does: its first recorded syscall
/// is its own execve.
fn join_cgroup(cmd: &mut Command, procs: &File) {
    let fd = procs.as_raw_fd();
    // SAFETY: the closure only calls write(2), which is async-signal-safe;
    // `procs` outlives the spawn (the caller drops it afterwards).
    unsafe {
        cmd.pre_exec(move || {
            if libc::write(fd, b"0".as_ptr().cast(), 1) == 1 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
}

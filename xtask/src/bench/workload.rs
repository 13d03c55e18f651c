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
    /// [`Workload::unit`]; with `complain`, under [`complain_filter`] (a
    /// watched container's complain-mode profile).
    pub(super) fn run(&self, workload: Workload, complain: bool) -> anyhow::Result<f64> {
        match workload {
            Workload::Getppid1 => self.getppid(1, complain),
            Workload::GetppidN => self.getppid(self.threads, complain),
            Workload::Tar => self.tar(complain),
        }
    }

    fn getppid(&self, threads: usize, complain: bool) -> anyhow::Result<f64> {
        let mut cmd = Command::new(&self.getppid);
        cmd.arg(self.iterations.to_string())
            .arg(threads.to_string())
            .stdout(Stdio::piped());
        let procs = self.open_procs()?;
        join_cgroup(&mut cmd, &procs);
        if complain {
            complain_filter(&mut cmd);
        }
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

    fn tar(&self, complain: bool) -> anyhow::Result<f64> {
        let mut cmd = Command::new("tar");
        // `-f -` into a pipe: GNU tar skips reading the files when the
        // archive is /dev/null, so the pipe is drained here instead.
        cmd.args(["-c", "-f", "-", "-C", "/", TAR_DIR])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let procs = self.open_procs()?;
        join_cgroup(&mut cmd, &procs);
        if complain {
            complain_filter(&mut cmd);
        }
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

/// The audit architecture of the host's native ABI (`seccomp_data.arch`).
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_NATIVE: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_NATIVE: u32 = 0xc000_00b7;

/// A complain-mode profile that covers the workload, as a watched
/// container in its steady state (drift empty) runs under: native syscalls
/// allowed, but for `acct` (which no workload calls) logged. The kernel's
/// seccomp action cache answers the allowed ones without running it.
const COMPLAIN_FILTER: [libc::sock_filter; 6] = {
    const fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
        libc::sock_filter { code, jt, jf, k }
    }
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    [
        // seccomp_data.arch: another ABI is allowed.
        op(LD_W_ABS, 0, 0, 4),
        op(JEQ_K, 0, 3, AUDIT_ARCH_NATIVE),
        // seccomp_data.nr
        op(LD_W_ABS, 0, 0, 0),
        op(JEQ_K, 0, 1, libc::SYS_acct as u32),
        op(RET_K, 0, 0, libc::SECCOMP_RET_LOG),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
};

/// Makes the child load [`COMPLAIN_FILTER`] between fork and exec (with
/// no_new_privs, as runc does for a container without CAP_SYS_ADMIN).
fn complain_filter(cmd: &mut Command) {
    // SAFETY: the closure only calls prctl(2) and seccomp(2), which are
    // async-signal-safe; the program is a static the kernel copies.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            let prog = libc::sock_fprog {
                len: COMPLAIN_FILTER.len() as u16,
                filter: COMPLAIN_FILTER.as_ptr().cast_mut(),
            };
            let set = libc::SECCOMP_SET_MODE_FILTER;
            if libc::syscall(libc::SYS_seccomp, set, 0, &raw const prog) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

//! `recorderctl record -- CMD`: record one command, no daemon needed.
//!
//! A fresh cgroup is created and registered in the kernel's map before CMD is
//! exec'd into it (the child joins the cgroup between fork and exec), so the
//! recording starts at CMD's own execve and covers its children and threads.

use std::{
    ffi::OsString,
    fs,
    io::{self, Write as _},
    os::{
        fd::{AsFd as _, AsRawFd as _},
        unix::process::ExitStatusExt as _,
    },
    path::{Path, PathBuf},
    process::ExitStatus,
    time::Duration,
};

use recorder_common::PHASE_WORKLOAD;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::{
    cgroup::{CgroupError, Hierarchy},
    ebpf::{Kernel, KernelError, LoadOptions},
    profile::{self, Profile, ProfileError, Recorded},
    syscalls::Abi,
};

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("{0}: command not found")]
    NotFound(String),
    #[error("{0}: permission denied")]
    NotExecutable(String),
    #[error("cannot run {cmd}: {err}")]
    Spawn { cmd: String, err: io::Error },
    #[error("output {path} is not writable: {err}")]
    Output { path: PathBuf, err: io::Error },
    #[error("cannot write the profile to standard output")]
    Stdout(#[source] io::Error),
    #[error("no command given")]
    NoCommand,
}

impl RecordError {
    /// The exit code a shell would use for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::NotFound(_) => 127,
            Self::NotExecutable(_) => 126,
            _ => 1,
        }
    }
}

/// What to record and where to put it.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    pub command: Vec<OsString>,
    pub load: LoadOptions,
    /// The cgroup under which the per-run cgroup is created.
    pub cgroup_parent: String,
    /// A profile to merge into the result.
    pub base: Option<Profile>,
    /// Send CMD's stdout to our stderr, keeping our stdout for the profile.
    pub stdout_to_stderr: bool,
    /// After CMD exits, wait for every process it left behind too.
    pub wait_all: bool,
}

/// The result of a recording.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub recorded: Recorded,
    pub profile: Profile,
    /// Numbers without a name in the syscall table.
    pub unknown: Vec<(Abi, u32)>,
    /// Syscalls whose number was outside every bitmap (e.g. -1).
    pub out_of_range: u64,
    /// The processes CMD left behind, killed when the recording ended:
    /// (pid, command name).
    pub killed: Vec<(u32, String)>,
}

impl Outcome {
    /// The exit code to pass on: CMD's own, or 128 + signal.
    pub fn exit_code(&self) -> i32 {
        self.status
            .code()
            .or_else(|| self.status.signal().map(|s| 128 + s))
            .unwrap_or(1)
    }
}

/// Checks that `path` can be written, without touching an existing file.
pub fn check_writable(path: &Path) -> Result<(), RecordError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let probe = dir.join(format!(".recorder-probe.{}", std::process::id()));
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|_| fs::remove_file(&probe))
        .map_err(|source| RecordError::Output {
            path: path.to_owned(),
            err: source,
        })?;
    if path.is_dir() {
        return Err(RecordError::Output {
            path: path.to_owned(),
            err: io::Error::other("it is a directory"),
        });
    }
    Ok(())
}

/// Removes the run's cgroup however the recording ends.
struct CgroupGuard<'a> {
    hierarchy: &'a Hierarchy,
    rel: String,
}

impl Drop for CgroupGuard<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.hierarchy.remove(&self.rel, Duration::from_secs(5)) {
            log::warn!("{e}");
        }
        // The shared parent goes too once no other run uses it.
        if let Some((parent, _)) = self.rel.rsplit_once('/')
            && !parent.is_empty()
            && let Ok(dir) = self.hierarchy.dir(parent)
        {
            _ = fs::remove_dir(dir);
        }
    }
}

/// Runs and records the command.
pub async fn record(opts: RecordOptions) -> Result<Outcome, RecordError> {
    let (program, args) = opts.command.split_first().ok_or(RecordError::NoCommand)?;
    let hierarchy = Hierarchy::detect()?;
    let mut kernel = Kernel::load(&opts.load)?;

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let rel = format!(
        "{}/record-{}-{nanos}",
        opts.cgroup_parent.trim_end_matches('/'),
        std::process::id()
    );
    let dir = hierarchy.create(&rel)?;
    let guard = CgroupGuard {
        hierarchy: &hierarchy,
        rel: rel.clone(),
    };
    let id = hierarchy.id(&rel)?;
    kernel.insert(id, id, PHASE_WORKLOAD)?;
    kernel.attach()?;

    let procs_path = dir.join("cgroup.procs");
    let procs = fs::OpenOptions::new()
        .write(true)
        .open(&procs_path)
        .map_err(|source| CgroupError::Write {
            path: procs_path.clone(),
            err: source,
        })?;
    let procs_fd = procs.as_raw_fd();

    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    if opts.stdout_to_stderr {
        let stderr = io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|source| RecordError::Spawn {
                cmd: program.to_string_lossy().into_owned(),
                err: source,
            })?;
        cmd.stdout(std::process::Stdio::from(stderr));
    }
    // SAFETY: the closure only calls write(2), which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let rc = libc::write(procs_fd, b"0".as_ptr().cast(), 1);
            if rc == 1 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
    let name = program.to_string_lossy().into_owned();
    // Handlers first: a signal that arrives just after the spawn is
    // forwarded, not fatal to us.
    let signals = ForwardedSignals::new().map_err(|source| RecordError::Spawn {
        cmd: name.clone(),
        err: source,
    })?;
    let mut child = cmd.spawn().map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => RecordError::NotFound(name.clone()),
        io::ErrorKind::PermissionDenied => RecordError::NotExecutable(name.clone()),
        _ => RecordError::Spawn {
            cmd: name.clone(),
            err: source,
        },
    })?;
    drop(procs);

    let mut signals = signals;
    let status = wait_forwarding_signals(&mut child, &mut signals)
        .await
        .map_err(|source| RecordError::Spawn {
            cmd: name,
            err: source,
        })?;
    if opts.wait_all {
        wait_for_cgroup(&hierarchy, &rel, &mut signals).await?;
    }

    // Processes CMD left behind are killed (and end) before the set is read.
    let killed = hierarchy
        .pids(&rel)?
        .into_iter()
        .map(|pid| (pid, comm(pid)))
        .collect();
    drop(guard);
    let set = kernel
        .remove(id)
        .unwrap_or(recorder_common::SyscallSet::new(id, PHASE_WORKLOAD));
    let args = kernel.remove_args(id);
    _ = kernel.detach();

    let bases: Vec<&Profile> = opts.base.iter().collect();
    // CMD started under this process's filter, if it has one.
    let policy = crate::policy::of_self();
    let built = profile::build(profile::Inputs {
        sets: std::slice::from_ref(&set),
        args: args.as_ref(),
        bases: &bases,
        policy: Some(&policy),
        ..profile::Inputs::default()
    });
    Ok(Outcome {
        status,
        recorded: built.recorded,
        profile: built.profile,
        unknown: built.unknown,
        out_of_range: built.out_of_range,
        killed,
    })
}

/// The command name of process `pid` ("?" once it is gone).
fn comm(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map_or_else(|_| "?".to_owned(), |c| c.trim_end().to_owned())
}

/// Waits until no process is left in the cgroup `rel`, passing the
/// forwarded signals on to every process in it.
async fn wait_for_cgroup(
    hierarchy: &Hierarchy,
    rel: &str,
    signals: &mut ForwardedSignals,
) -> Result<(), RecordError> {
    loop {
        let pids = hierarchy.pids(rel)?;
        if pids.is_empty() {
            return Ok(());
        }
        let sig = tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(20)) => continue,
            sig = signals.recv() => sig,
        };
        for pid in pids {
            // SAFETY: plain kill(2) on a process of the recording's cgroup.
            unsafe { libc::kill(pid as i32, sig) };
        }
    }
}

/// Handlers for the signals passed on to CMD.
struct ForwardedSignals {
    int: Signal,
    term: Signal,
    hup: Signal,
    quit: Signal,
}

impl ForwardedSignals {
    fn new() -> io::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            quit: signal(SignalKind::quit())?,
        })
    }

    /// The next signal to forward.
    async fn recv(&mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => libc::SIGINT,
            _ = self.term.recv() => libc::SIGTERM,
            _ = self.hup.recv() => libc::SIGHUP,
            _ = self.quit.recv() => libc::SIGQUIT,
        }
    }
}

/// Waits for the child, passing SIGINT, SIGTERM, SIGHUP and SIGQUIT on to it
/// (the recording goes on until the child exits).
async fn wait_forwarding_signals(
    child: &mut tokio::process::Child,
    signals: &mut ForwardedSignals,
) -> io::Result<ExitStatus> {
    loop {
        let sig = tokio::select! {
            status = child.wait() => return status,
            sig = signals.recv() => sig,
        };
        if let Some(pid) = child.id() {
            // SAFETY: plain kill(2) on our own child.
            unsafe { libc::kill(pid as i32, sig) };
        }
    }
}

/// Writes the profile to `output` atomically, or to stdout.
pub fn emit(text: &str, output: Option<&Path>) -> Result<(), RecordError> {
    match output {
        Some(path) => Ok(profile::write(path, text)?),
        None => {
            let mut out = io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(RecordError::Stdout)
        }
    }
}

//! `recorder-oci-hook`: a drop-in for podman's oci-seccomp-bpf-hook.
//!
//! The OCI runtime runs the hook at `prestart`, before the container's
//! entrypoint is exec'd, with the container's state JSON on stdin. The
//! annotation `io.containers.trace-syscall` says where the profile goes:
//! `of:/abs/out.json`, or `if:/abs/base.json;of:/abs/out.json` (the `if:`
//! profile is merged into the output, and what it blocks stays blocked
//! even if the workload called it, as in the original).
//!
//! The hook records the workload from the runtime's seccomp filter load
//! on (runc's start-up before it, such as `mount` and `pivot_root`, is
//! left out, as in auto mode), and reads the policy of the container's
//! bundle ([`crate::policy`]) so that the profile keeps its answers.
//!
//! When recorderd is running, the container's cgroup is handed to it
//! (`Request::Start` with the `if:` profile as base, the `of:` path as
//! output and the policy). Otherwise the hook records on its own in a detached process, as
//! the original does: it loads the programs, registers the cgroup, waits
//! until the cgroup is gone, and writes the profile. Either way the
//! recording is running before the hook returns, so before the entrypoint's
//! execve.

use std::{
    collections::BTreeMap,
    io::{self, Read as _, Write as _},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::{Path, PathBuf},
    time::Duration,
};

use recorder_common::PHASE_RUNTIME_INIT;
use serde::Deserialize;

use crate::{
    cgroup::{CgroupError, Hierarchy},
    control::{self, ClientError, ErrorKind, Prestart, Reply, Request, Target},
    ebpf::{Kernel, KernelError, LoadOptions},
    errfmt::chain,
    profile::{self, Policy, Profile, ProfileError},
};

/// The annotation the hook acts on (the same as oci-seccomp-bpf-hook's).
pub const ANNOTATION: &str = "io.containers.trace-syscall";

/// How often the detached recorder looks whether the cgroup is gone.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("cannot read the container state from stdin: {0}")]
    State(String),
    #[error("the container has no {ANNOTATION} annotation")]
    NoAnnotation,
    #[error(
        "{ANNOTATION}: '{0}' is not of the form of:/abs/out.json or if:/abs/in.json;of:/abs/out.json"
    )]
    Syntax(String),
    #[error("{ANNOTATION}: no output profile given (of:/abs/path.json)")]
    NoOutput,
    #[error("{ANNOTATION}: {0} must be an absolute path without '..'")]
    Relative(PathBuf),
    // The sources are printed by the caller's error chain.
    #[error("{ANNOTATION}: cannot use the input profile: {0}")]
    Input(ProfileError),
    #[error("{ANNOTATION}: the output profile {path} cannot be written")]
    Output { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error("recorderd refused the container")]
    Daemon(#[source] ClientError),
    #[error("cannot start the detached recorder: {0}")]
    Detach(io::Error),
    #[error("the detached recorder failed: {0}")]
    Recorder(String),
}

/// The part of the OCI state the hook reads.
#[derive(Debug, Deserialize)]
pub struct State {
    #[serde(default)]
    pub id: String,
    pub pid: u32,
    /// The OCI bundle's directory (its config.json has the policy).
    #[serde(default)]
    pub bundle: Option<PathBuf>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl State {
    /// Reads the state JSON.
    pub fn read(mut input: impl io::Read) -> Result<Self, HookError> {
        let mut text = String::new();
        input
            .read_to_string(&mut text)
            .map_err(|e| HookError::State(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| HookError::State(e.to_string()))
    }

    /// The seccomp policy of the container's bundle; unknown when it
    /// cannot be read.
    pub fn policy(&self) -> Policy {
        self.bundle
            .as_deref()
            .and_then(|b| crate::policy::read_bundle(b).ok())
            .unwrap_or_default()
    }
}

/// The parsed annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// `if:`: merged into the output.
    pub input: Option<PathBuf>,
    /// `of:`: where the profile goes.
    pub output: PathBuf,
}

fn absolute(p: &str) -> Result<PathBuf, HookError> {
    let path = PathBuf::from(p);
    if !path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(HookError::Relative(path));
    }
    Ok(path)
}

impl Spec {
    /// Parses `of:/a.json` or `if:/b.json;of:/a.json` (either order).
    pub fn parse(value: &str) -> Result<Self, HookError> {
        let (mut input, mut output) = (None, None);
        for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once(':') {
                Some(("if", p)) if input.is_none() => input = Some(absolute(p)?),
                Some(("of", p)) if output.is_none() => output = Some(absolute(p)?),
                _ => return Err(HookError::Syntax(value.to_owned())),
            }
        }
        Ok(Self {
            input,
            output: output.ok_or(HookError::NoOutput)?,
        })
    }

    /// Reads the input profile and checks the output can be written.
    pub fn prepare(&self) -> Result<Option<Profile>, HookError> {
        let base = self
            .input
            .as_deref()
            .map(Profile::read)
            .transpose()
            .map_err(HookError::Input)?;
        crate::record::check_writable(&self.output).map_err(|e| match e {
            crate::record::RecordError::Output { path, err: source } => {
                HookError::Output { path, source }
            }
            other => HookError::Output {
                path: self.output.clone(),
                source: io::Error::other(other.to_string()),
            },
        })?;
        Ok(base)
    }
}

/// Hands the cgroup to recorderd. `Ok(None)`: no recorderd at `socket`.
pub async fn hand_to_daemon(
    socket: &Path,
    cgroup: &str,
    base: Option<Profile>,
    output: &Path,
    policy: Policy,
) -> Result<Option<String>, HookError> {
    let req = Request::Start {
        target: Target::Cgroup(cgroup.to_owned()),
        base,
        output: Some(output.to_owned()),
        prestart: Some(Prestart { policy }),
    };
    match control::call(socket, &req).await {
        Ok(Reply::Started { recording }) => Ok(Some(recording.container.key())),
        Ok(_) => Err(HookError::Daemon(ClientError::BadReply(
            "unexpected reply".to_owned(),
        ))),
        Err(ClientError::Connect { .. }) => Ok(None),
        Err(e @ ClientError::Refused { .. }) => Err(HookError::Daemon(e)),
        Err(e) => Err(HookError::Daemon(e)),
    }
}

/// Whether a refusal means the daemon is recording the cgroup already.
pub fn is_already_recording(e: &HookError) -> bool {
    matches!(
        e,
        HookError::Daemon(ClientError::Refused {
            kind: ErrorKind::AlreadyRecording,
            ..
        })
    )
}

fn last_os_error() -> HookError {
    HookError::Detach(io::Error::last_os_error())
}

/// Records cgroup `cgroup` in a detached process: returns once the
/// recording runs (or with the reason it could not start). The process
/// writes the profile to `output` when the cgroup is gone.
///
/// Must be called while the process has one thread (it forks).
pub fn record_detached(
    cgroup: &str,
    base: Option<Profile>,
    output: &Path,
    policy: &Policy,
) -> Result<(), HookError> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills two fds on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(last_os_error());
    }
    // SAFETY: both fds were just created and are owned here only.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the process is single-threaded (see above).
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(last_os_error());
    }
    if child == 0 {
        drop(read_end);
        // SAFETY: plain syscalls in the forked child.
        unsafe {
            libc::setsid();
            match libc::fork() {
                0 => {}
                -1 => libc::_exit(1),
                _ => libc::_exit(0),
            }
        }
        let code = recorder_main(cgroup, base, output, policy, write_end);
        // SAFETY: ends the detached recorder without running the parent's
        // atexit handlers.
        unsafe { libc::_exit(code) };
    }
    drop(write_end);
    let mut status = 0;
    // SAFETY: reaps the intermediate child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    let mut msg = String::new();
    let mut file = std::fs::File::from(read_end);
    // On a failed read, what arrived (maybe nothing) is reported below.
    _ = file.read_to_string(&mut msg);
    match msg.as_str() {
        "ok" => Ok(()),
        "" => Err(HookError::Recorder(
            "it ended without saying why".to_owned(),
        )),
        m => Err(HookError::Recorder(m.to_owned())),
    }
}

/// The detached recorder. Reports "ok" or the error on `report`, then
/// records until the cgroup is gone.
fn recorder_main(
    cgroup: &str,
    base: Option<Profile>,
    output: &Path,
    policy: &Policy,
    report: OwnedFd,
) -> i32 {
    close_inherited(report.as_raw_fd());
    let mut report = std::fs::File::from(report);
    let setup = || -> Result<(Hierarchy, Kernel, u64), HookError> {
        let hierarchy = Hierarchy::detect()?;
        let id = hierarchy.id(cgroup)?;
        let mut kernel = Kernel::load(&LoadOptions {
            capacity: 256,
            // Follows sub-cgroups made inside the container.
            auto_enrol: true,
            ..LoadOptions::default()
        })?;
        kernel.attach_cgroup_events()?;
        // The runtime's init is still setting up: what it calls until it
        // loads the filter goes to the `init` bitmap, left out.
        kernel.insert(id, id, PHASE_RUNTIME_INIT)?;
        kernel.attach()?;
        Ok((hierarchy, kernel, id))
    };
    let (hierarchy, mut kernel, id) = match setup() {
        Ok(v) => v,
        Err(e) => {
            _ = report.write_all(chain(&e).as_bytes());
            return 1;
        }
    };
    detach_stdio();
    _ = report.write_all(b"ok");
    drop(report);
    syslog(&format!(
        "recording cgroup {cgroup} for {}",
        output.display()
    ));

    while hierarchy.id(cgroup).ok() == Some(id) {
        std::thread::sleep(POLL);
    }
    let sets = kernel.remove_owner(id);
    _ = kernel.detach();
    let bases: Vec<&Profile> = base.iter().collect();
    let built = profile::build(profile::Inputs {
        sets: &sets,
        bases: &bases,
        // What the if: profile blocks stays blocked, as in the original.
        blocking: &bases,
        policy: Some(policy),
        ..profile::Inputs::default()
    });
    match profile::write(output, &built.profile.to_json()) {
        Ok(()) => {
            syslog(&format!(
                "profile of {cgroup} written to {}",
                output.display()
            ));
            0
        }
        Err(e) => {
            syslog(&format!("profile of {cgroup}: {e}"));
            1
        }
    }
}

/// Closes every descriptor above stderr but `keep`: whatever the runtime
/// passed the hook must not be held open for the container's lifetime.
fn close_inherited(keep: i32) {
    let fds: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => return,
    };
    for fd in fds.into_iter().filter(|&fd| fd > 2 && fd != keep) {
        // SAFETY: closing inherited descriptors nothing in this process
        // uses (the directory handle above is already closed; closing it
        // again fails harmlessly with EBADF).
        unsafe { libc::close(fd) };
    }
}

/// Points stdin, stdout and stderr at /dev/null and leaves the working
/// directory, so that the runtime waiting for the hook's output is not held.
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    _ = std::env::set_current_dir("/");
}

/// One line to the system log (the detached recorder has no terminal).
fn syslog(msg: &str) {
    let Ok(c) = std::ffi::CString::new(msg.replace('\0', " ")) else {
        return;
    };
    // SAFETY: constant format string and a valid C string.
    unsafe {
        libc::openlog(
            c"recorder-oci-hook".as_ptr(),
            libc::LOG_PID,
            libc::LOG_DAEMON,
        );
        libc::syslog(libc::LOG_INFO, c"%s".as_ptr(), c.as_ptr());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_annotations() {
        assert_eq!(
            Spec::parse("of:/tmp/o.json").unwrap(),
            Spec {
                input: None,
                output: "/tmp/o.json".into()
            }
        );
        assert_eq!(
            Spec::parse("if:/tmp/i.json;of:/tmp/o.json").unwrap(),
            Spec {
                input: Some("/tmp/i.json".into()),
                output: "/tmp/o.json".into()
            }
        );
        assert!(matches!(
            Spec::parse("if:/tmp/i.json"),
            Err(HookError::NoOutput)
        ));
        assert!(matches!(
            Spec::parse("of:o.json"),
            Err(HookError::Relative(_))
        ));
        assert!(matches!(
            Spec::parse("of:/a/../o.json"),
            Err(HookError::Relative(_))
        ));
        assert!(matches!(
            Spec::parse("/tmp/o.json"),
            Err(HookError::Syntax(_))
        ));
        assert!(matches!(
            Spec::parse("of:/a;of:/b"),
            Err(HookError::Syntax(_))
        ));
    }

    #[test]
    fn reads_state() {
        let s = State::read(
            br#"{"ociVersion":"1.0.2","id":"abc","status":"created","pid":42,"bundle":"/b","annotations":{"io.containers.trace-syscall":"of:/x"}}"#
                .as_slice(),
        )
        .unwrap();
        assert_eq!(s.pid, 42);
        assert_eq!(s.annotations[ANNOTATION], "of:/x");
    }
}

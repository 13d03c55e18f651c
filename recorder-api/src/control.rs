//! The control protocol between recorderctl and recorderd: one JSON request
//! and one JSON reply per line over a Unix stream socket, versioned, bounded
//! in size, authenticated with SO_PEERCRED.

use std::{
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::UnixStream,
};

use recorder_profile::{
    profile::{Policy, Profile},
    syscalls::Abi,
};

/// Bumped on any incompatible change of the messages below.
pub const PROTOCOL_VERSION: u32 = 1;
/// The largest request the daemon reads (a base profile fits easily).
pub const MAX_REQUEST: usize = 1 << 20;
/// The largest reply the client reads.
pub const MAX_REPLY: usize = 64 << 20;
/// How many control connections the daemon serves at once.
pub const MAX_CONNECTIONS: usize = 512;
/// How long the daemon waits for a request line (and to write its reply).
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What to record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A container id or unique id prefix.
    Container(String),
    /// The cgroup of a process.
    Pid(u32),
    /// A cgroup2 path.
    Cgroup(String),
}

impl Target {
    /// Why this target cannot name anything, if it cannot: an empty or
    /// whitespace-only container id would be a prefix of every id.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Self::Container(c) => crate::container::check_container(c),
            Self::Pid(_) | Self::Cgroup(_) => Ok(()),
        }
    }
}

/// What the OCI hook knows at prestart: the container's runtime has not
/// loaded its seccomp filter yet (its start-up is left out, as in auto
/// mode), and the policy of the container's bundle.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prestart {
    #[serde(default)]
    pub policy: Policy,
}

/// A request, with the protocol version beside it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub version: u32,
    #[serde(flatten)]
    pub body: T,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Start {
        target: Target,
        /// Merged into the profile when it is written.
        #[serde(default)]
        base: Option<Profile>,
        /// Write the profile here instead of the profiles dir (absolute).
        #[serde(default)]
        output: Option<PathBuf>,
        /// Sent by the OCI hook at prestart.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prestart: Option<Prestart>,
    },
    Stop {
        target: Target,
        #[serde(default)]
        base: Option<Profile>,
    },
    Profile {
        target: Target,
        #[serde(default)]
        base: Option<Profile>,
    },
    List,
    Status,
    /// The profiles written so far (the index).
    Profiles,
    /// The image profiles, one row per image.
    Images,
    /// The profile of an image (by key, reference or id).
    ImageProfile {
        image: String,
        #[serde(default)]
        base: Option<Profile>,
    },
    /// What a watched container (one under a chosen profile) called
    /// outside that profile; `container: None` asks for every watched
    /// container with drift. `widen` asks for the profile plus the drift.
    Drift {
        #[serde(default)]
        container: Option<String>,
        #[serde(default)]
        widen: bool,
    },
}

impl Request {
    /// The target of the request, if it has one.
    pub fn target(&self) -> Option<&Target> {
        match self {
            Self::Start { target, .. }
            | Self::Stop { target, .. }
            | Self::Profile { target, .. } => Some(target),
            Self::List
            | Self::Status
            | Self::Profiles
            | Self::Images
            | Self::ImageProfile { .. }
            | Self::Drift { .. } => None,
        }
    }
}

/// One recording, as `list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingInfo {
    /// The container (`cgroup-<inode>`: a cgroup that is none), as its
    /// runtime told when the recording started.
    #[serde(flatten)]
    pub container: crate::container::Container,
    pub cgroup: String,
    pub cgroup_id: u64,
    /// Distinct syscalls recorded so far.
    pub syscalls: usize,
    /// Seconds since the epoch.
    pub started: u64,
    /// Recorded from the first syscall (auto mode) or from `start`.
    pub auto: bool,
}

/// A watched container's drift, as `drift` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftReport {
    /// The container id.
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub image: Option<String>,
    /// The profile it runs under: its path where the runtime tells it,
    /// else `sha256:` of its canonical JSON.
    pub profile: String,
    pub default_action: String,
    /// The syscalls it made outside the profile (over all ABIs), sorted.
    pub outside: Vec<String>,
    /// When each of them was first seen (seconds since the epoch).
    pub outside_since: std::collections::BTreeMap<String, u64>,
    /// The same names by ABI.
    pub outside_by_abi: std::collections::BTreeMap<Abi, Vec<String>>,
    /// Still recorded (else: from the profile index, after it exited).
    pub running: bool,
    /// The profile denies what it does not allow: its denials never reach
    /// the recorder, so `outside` cannot show them; `denied` does.
    pub enforcing: bool,
    /// What the profile denied it, and the tasks it killed (`killed`),
    /// counted by the kernel while recorderd watched (sorted by name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied: Vec<crate::entry::Denial>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// With `widen`: the profile plus the drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widened: Option<Profile>,
}

/// The daemon's state, as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    pub version: String,
    pub protocol: u32,
    pub uptime_secs: u64,
    pub attached: bool,
    pub record_all: bool,
    pub recordings: usize,
    pub map_entries: usize,
    pub map_capacity: u32,
    /// The sum of the `RECORDED_FILTER` counters: equal to `map_entries`
    /// but for inserts and removals in flight (a diagnostic of the filter).
    #[serde(default)]
    pub filter_count: u64,
    /// Recorded cgroups whose syscalls go to a `SET_CACHE` slot (no hash
    /// lookup); the others use their map entry.
    #[serde(default)]
    pub cached: usize,
    /// Enrolments the kernel could not make because the map was full.
    pub enrol_failures: u64,
    pub profiles_written: u64,
    /// Profiles that could not be written yet (kept, retried).
    pub pending_writes: usize,
    /// Image profile files that could not be written yet (kept, retried).
    #[serde(default)]
    pub pending_image_writes: usize,
    /// Why the daemon is unhealthy (the profile index failed), if it is;
    /// `/healthz` answers 503 then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When `last_error` happened (seconds since the epoch). The error is
    /// cleared once the write it was about succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<u64>,
    /// Where this daemon keeps its things, to tell two daemons apart.
    #[serde(default)]
    pub socket: PathBuf,
    #[serde(default)]
    pub profiles_dir: PathBuf,
    #[serde(default)]
    pub state_dir: PathBuf,
    #[serde(default)]
    pub pin_dir: PathBuf,
    /// The metrics endpoint, or `off`.
    #[serde(default)]
    pub metrics_addr: String,
    /// What auto mode records ([`crate::config::ScopeConfig::summary`]).
    #[serde(default)]
    pub scope: String,
    /// The ready rule's thresholds (`[images]`), for `recorderctl publish`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_rule: Option<crate::image::ReadyRule>,
    /// Where this node pushes its image profiles (`[registry] repository`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Started {
        recording: RecordingInfo,
    },
    Stopped {
        recording: RecordingInfo,
        path: PathBuf,
    },
    Profile {
        recording: RecordingInfo,
        profile: Profile,
    },
    List {
        recordings: Vec<RecordingInfo>,
    },
    Status {
        status: StatusInfo,
    },
    /// The profile written for a container that is no longer recorded.
    StoredProfile {
        entry: crate::entry::Entry,
        profile: Profile,
    },
    Profiles {
        profiles: Vec<crate::entry::Entry>,
    },
    Images {
        images: Vec<crate::image::ImageInfo>,
    },
    ImageProfile {
        image: crate::image::ImageInfo,
        profile: Profile,
    },
    Drift {
        reports: Vec<DriftReport>,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
}

/// The class of a refused request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    PermissionDenied,
    BadRequest,
    VersionMismatch,
    NotFound,
    Ambiguous,
    AlreadyRecording,
    NotRecording,
    MapFull,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot connect to recorderd at {path}: {err} (is recorderd running? start it, or pass --socket)"
    )]
    Connect { path: PathBuf, err: io::Error },
    #[error(
        "permission denied connecting to recorderd at {path}: run as root or as a member of recorderd's socket group"
    )]
    ConnectDenied { path: PathBuf },
    #[error("talking to recorderd at {path}: {err}")]
    Io { path: PathBuf, err: io::Error },
    #[error(
        "recorderd at {} did not answer within {} s (is it stopped or overloaded? raise --timeout to wait longer)",
        .path.display(), .timeout.as_secs_f64()
    )]
    Timeout { path: PathBuf, timeout: Duration },
    #[error("recorderd closed the connection without replying")]
    NoReply,
    #[error("malformed reply from recorderd: {0}")]
    BadReply(String),
    #[error(
        "recorderctl speaks protocol {ours} but recorderd speaks {theirs}; use matching versions"
    )]
    Version { ours: u32, theirs: u32 },
    #[error("{message}")]
    Refused { kind: ErrorKind, message: String },
}

/// [`call`], given up after `timeout` (connecting, sending and reading).
pub async fn call_within(
    socket: &Path,
    request: &Request,
    timeout: Duration,
) -> Result<Reply, ClientError> {
    tokio::time::timeout(timeout, call(socket, request))
        .await
        .map_err(|_| ClientError::Timeout {
            path: socket.to_owned(),
            timeout,
        })?
}

/// Sends one request and reads the reply.
pub async fn call(socket: &Path, request: &Request) -> Result<Reply, ClientError> {
    let io_err = |err| ClientError::Io {
        path: socket.to_owned(),
        err,
    };
    let mut stream = UnixStream::connect(socket)
        .await
        .map_err(|source| match source.kind() {
            io::ErrorKind::PermissionDenied => ClientError::ConnectDenied {
                path: socket.to_owned(),
            },
            _ => ClientError::Connect {
                path: socket.to_owned(),
                err: source,
            },
        })?;
    let mut line = serde_json::to_vec(&Envelope {
        version: PROTOCOL_VERSION,
        body: request,
    })
    .map_err(|e| ClientError::BadReply(e.to_string()))?;
    line.push(b'\n');
    // A refused peer gets its reply before the daemon reads anything; the
    // write may then fail with EPIPE, and the reply is still there to read.
    if let Err(e) = stream.write_all(&line).await
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        return Err(io_err(e));
    }
    let mut reader = BufReader::new(stream).take(MAX_REPLY as u64);
    let mut reply = String::new();
    reader.read_line(&mut reply).await.map_err(io_err)?;
    if reply.is_empty() {
        return Err(ClientError::NoReply);
    }
    let envelope: Envelope<Reply> =
        serde_json::from_str(&reply).map_err(|e| ClientError::BadReply(e.to_string()))?;
    if envelope.version != PROTOCOL_VERSION {
        return Err(ClientError::Version {
            ours: PROTOCOL_VERSION,
            theirs: envelope.version,
        });
    }
    match envelope.body {
        Reply::Error { kind, message } => Err(ClientError::Refused { kind, message }),
        reply => Ok(reply),
    }
}

/// Serialises a reply line.
pub fn reply_line(reply: &Reply) -> Vec<u8> {
    let mut line = serde_json::to_vec(&Envelope {
        version: PROTOCOL_VERSION,
        body: reply,
    })
    .unwrap_or_else(|e| format!("{{\"version\":{PROTOCOL_VERSION},\"reply\":\"error\",\"kind\":\"internal\",\"message\":\"{e}\"}}").into_bytes());
    line.push(b'\n');
    line
}

/// Why a request is refused: becomes a [`Reply::Error`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub kind: ErrorKind,
    pub message: String,
}

impl Refusal {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl From<Refusal> for Reply {
    fn from(r: Refusal) -> Self {
        Self::Error {
            kind: r.kind,
            message: r.message,
        }
    }
}

/// Parses a request line, or says why it cannot be served.
pub fn parse_request(line: &str) -> Result<Request, Refusal> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| Refusal {
        kind: ErrorKind::BadRequest,
        message: format!("malformed request: {e}"),
    })?;
    let version = value.get("version").and_then(serde_json::Value::as_u64);
    if version != Some(u64::from(PROTOCOL_VERSION)) {
        return Err(Refusal {
            kind: ErrorKind::VersionMismatch,
            message: format!(
                "recorderd speaks protocol {PROTOCOL_VERSION}, the request has {}",
                version.map_or("none".to_owned(), |v| v.to_string())
            ),
        });
    }
    let request = serde_json::from_value::<Envelope<Request>>(value)
        .map(|e| e.body)
        .map_err(|e| Refusal {
            kind: ErrorKind::BadRequest,
            message: format!("unknown or malformed request: {e}"),
        })?;
    if let Some(target) = request.target() {
        target
            .check()
            .map_err(|message| Refusal::new(ErrorKind::BadRequest, message))?;
    }
    Ok(request)
}

/// The supplementary groups of process `pid`.
pub fn groups_of(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Groups:")).map(|g| {
                g.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// The gid of a group name (or a number).
pub fn gid_of(group: &str) -> Option<u32> {
    gid_in(std::fs::read_to_string("/etc/group").ok().as_deref(), group)
}

/// The gid of `group` in the text of an /etc/group, if there is one; `root`
/// is 0 without one (the container image has no /etc).
fn gid_in(etc_group: Option<&str>, group: &str) -> Option<u32> {
    if let Ok(n) = group.parse() {
        return Some(n);
    }
    etc_group
        .and_then(|text| {
            text.lines().find_map(|l| {
                let mut f = l.split(':');
                (f.next()? == group).then(|| f.nth(1)?.parse().ok())?
            })
        })
        .or_else(|| (group == "root").then_some(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip() {
        let line = serde_json::to_string(&Envelope {
            version: PROTOCOL_VERSION,
            body: Request::Start {
                target: Target::Container("abc".into()),
                base: None,
                output: None,
                prestart: None,
            },
        })
        .unwrap();
        assert!(matches!(
            parse_request(&line),
            Ok(Request::Start {
                target: Target::Container(_),
                ..
            })
        ));
    }

    #[test]
    fn bad_requests() {
        assert!(matches!(
            parse_request("{nope"),
            Err(Refusal {
                kind: ErrorKind::BadRequest,
                ..
            })
        ));
        assert!(matches!(
            parse_request(r#"{"version":99,"op":"list"}"#),
            Err(Refusal {
                kind: ErrorKind::VersionMismatch,
                ..
            })
        ));
        assert!(matches!(
            parse_request(r#"{"version":1,"op":"reboot"}"#),
            Err(Refusal {
                kind: ErrorKind::BadRequest,
                ..
            })
        ));
    }

    #[test]
    fn blank_container_ids_are_bad_requests() {
        for op in ["start", "stop", "profile"] {
            for id in ["", " ", "\\t\\n "] {
                let line =
                    format!(r#"{{"version":1,"op":"{op}","target":{{"container":"{id}"}}}}"#);
                assert!(
                    matches!(
                        parse_request(&line),
                        Err(Refusal {
                            kind: ErrorKind::BadRequest,
                            ..
                        })
                    ),
                    "{line}"
                );
            }
        }
        assert!(
            parse_request(r#"{"version":1,"op":"profile","target":{"container":"a"}}"#).is_ok()
        );
    }

    #[test]
    fn root_group_is_zero() {
        assert_eq!(gid_of("root"), Some(0));
        assert_eq!(gid_of("4242"), Some(4242));
        // The image has no /etc/group: root is still 0, other names unknown.
        assert_eq!(gid_in(None, "root"), Some(0));
        assert_eq!(gid_in(None, "docker"), None);
        assert_eq!(gid_in(Some("docker:x:998:\n"), "docker"), Some(998));
    }
}

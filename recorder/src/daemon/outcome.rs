//! What the manager answers a request with: a typed result ([`Outcome`])
//! or error ([`ManagerError`]). `server.rs` maps both to wire replies, in
//! one place. And [`LastError`], the last error `status` shows.

use std::path::PathBuf;

use super::DaemonError;
use crate::{
    cgroup::CgroupError,
    container::ContainerError,
    control::{DriftReport, RecordingInfo, StatusInfo},
    images::ImagesError,
    index::{self, IndexError},
    profile::{Profile, ProfileError},
};

/// What a request achieved.
#[derive(Debug)]
pub enum Outcome {
    Started(RecordingInfo),
    Stopped {
        recording: RecordingInfo,
        path: PathBuf,
    },
    Profile {
        recording: RecordingInfo,
        profile: Profile,
    },
    /// The profile written for a container that is no longer recorded.
    Stored {
        entry: index::Entry,
        profile: Profile,
    },
    Profiles(Vec<index::Entry>),
    Images(Vec<crate::images::ImageInfo>),
    ImageProfile {
        image: crate::images::ImageInfo,
        profile: Profile,
    },
    List(Vec<RecordingInfo>),
    Status(StatusInfo),
    Drift(Vec<DriftReport>),
}

/// Why a request was refused or failed.
/// Why a profile file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("creating {}", .dir.display())]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("{0}")]
    BadTarget(String),
    #[error("{0} is not being recorded")]
    NotRecording(String),
    /// Not recorded, and what the name means instead.
    #[error("{what} is not being recorded: {hint}")]
    NotRecordingHint { what: String, hint: String },
    #[error("'{spec}' is ambiguous; it matches: {}", .keys.join(", "))]
    Ambiguous { spec: String, keys: Vec<String> },
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("cgroup {0} does not exist")]
    NoCgroup(String),
    #[error("output {} must be an absolute path without '..'", .0.display())]
    BadOutput(PathBuf),
    #[error(
        "{key} is already being recorded (since {})",
        crate::timefmt::format_time(*.since)
    )]
    AlreadyRecording { key: String, since: u64 },
    #[error(
        "cannot record {target}: the recording map is full ({capacity} cgroups); stop some recordings or raise `capacity`"
    )]
    MapFull { target: String, capacity: u32 },
    #[error(
        "keeping the recording of {key} and retrying: cannot write its profile to {}",
        .path.display()
    )]
    Write {
        key: String,
        path: PathBuf,
        #[source]
        source: WriteError,
    },
    #[error("unknown container '{0}': it is not recorded, and no profile was written for it")]
    UnknownContainer(String),
    #[error("{key} {why}: nothing to compare")]
    NotWatched { key: String, why: String },
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Images(ImagesError),
    #[error(transparent)]
    StoredProfile(#[from] ProfileError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

impl From<ImagesError> for ManagerError {
    /// The index's errors and an unreadable stored profile keep their own
    /// variants (and so their kinds of reply).
    fn from(e: ImagesError) -> Self {
        match e {
            ImagesError::Index(e) => Self::Index(e),
            ImagesError::Stored(e) => Self::StoredProfile(e),
            e => Self::Images(e),
        }
    }
}

/// The last error, as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct LastError {
    pub(super) message: String,
    /// When it happened (seconds since the epoch).
    pub(super) at: u64,
    /// The recording whose profile could not be written, if that was it.
    pub(super) recording: Option<u64>,
}

impl LastError {
    pub(super) fn new(message: String, recording: Option<u64>) -> Self {
        Self {
            message,
            at: crate::timefmt::now_secs(),
            recording,
        }
    }
}

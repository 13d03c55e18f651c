//! One written profile, as the profile index keeps it and `recorderctl
//! profiles` shows it: the container it was recorded from, where it was
//! written and when, and the drift of a container watched under a chosen
//! profile.

use std::path::PathBuf;

use recorder_profile::{
    profile::{Profile, drift::Outside},
    syscalls::Abi,
};
use serde::{Deserialize, Serialize};

use crate::{chosen::ChosenProfile, container::Container};

/// One written profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The container it was recorded of (`cgroup-<inode>`: a cgroup that
    /// is none), as it was known when the recording started.
    #[serde(flatten)]
    pub container: Container,
    /// The image profile this run fed (`images::key`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_key: Option<String>,
    /// Where the profile was written.
    pub path: PathBuf,
    /// Seconds since the epoch.
    pub written: u64,
    /// For a container that ran under a chosen profile: what it called
    /// outside it (`recorderctl drift` after it exited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Box<Drift>>,
}

impl Entry {
    /// [`Container::key`].
    pub fn key(&self) -> String {
        self.container.key()
    }
}

/// The drift of a finished recording that ran under a chosen profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub profile: ChosenProfile,
    /// The names outside it, per ABI, with when each was first seen.
    #[serde(default)]
    pub outside: Outside,
    /// The profile itself (its filter, as the bundle had it), for `drift
    /// --widen`.
    pub policy: Profile,
    /// What the profile denied it (an enforcing profile).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied: Vec<Denial>,
}

impl Drift {
    /// How many syscalls the profile denied and tasks it killed, when it
    /// denies anything (the run was watched for denials).
    pub fn denied_count(&self) -> Option<u64> {
        crate::chosen::denies(&self.policy).then(|| self.denied.iter().map(|d| d.count).sum())
    }
}

/// A syscall an enforcing profile denied a watched container (its errno,
/// or TRAP), or a task of it that the profile killed (`killed`: KILL, or
/// TRAP's `SIGSYS` unhandled).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Denial {
    /// The syscall's name (`nr:<n>` when not in the table; `unknown` for a
    /// kill whose syscall could not be known).
    pub name: String,
    pub abi: Abi,
    /// How many times (kills: how many tasks).
    pub count: u64,
    /// When it was first seen (seconds since the epoch).
    pub first_seen: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub killed: bool,
}

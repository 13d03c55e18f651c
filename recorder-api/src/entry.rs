//! One written profile, as the profile index keeps it and `recorderctl
//! profiles` shows it: the container it was recorded from, where it was
//! written and when, and the drift of a container watched under a chosen
//! profile.

use std::path::PathBuf;

use recorder_profile::profile::{Profile, drift::Outside};
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
}

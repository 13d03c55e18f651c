//! What can go wrong with the written profiles and the image profiles.

use std::path::PathBuf;

use crate::{index::IndexError, profile::ProfileError};

/// What went wrong with the written profiles or the image profiles.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    /// The per-container entries of the index.
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("image profiles in {}", path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },
    #[error("no image profile for '{0}' (see recorderctl images)")]
    NotFound(String),
    #[error("'{spec}' is ambiguous; image profiles: {}", .keys.join(", "))]
    Ambiguous { spec: String, keys: Vec<String> },
    #[error("cannot create {}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image profile of {}", label.escape_debug())]
    Write {
        label: String,
        #[source]
        source: ProfileError,
    },
    /// The index failed beyond an error (redb panicked): not used again
    /// until recorderd restarts.
    #[error("{0}")]
    Broken(String),
    /// A per-container profile the index names cannot be read.
    #[error(transparent)]
    Stored(ProfileError),
}

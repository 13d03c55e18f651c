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
    #[error("cannot write the image profile of {label}")]
    Write {
        label: String,
        #[source]
        source: ProfileError,
    },
    /// A per-container profile the index names cannot be read.
    #[error(transparent)]
    Stored(ProfileError),
}

//! Image profiles: every recorded container of an image adds its profile
//! (as written, with its recording-time policy's answers) to the image's
//! merged profile, whose `ready` verdict says when it is fit to enforce.
//! This module is their one home, behind [`ImageBook`]: the rows and the
//! key of an image (`keys.rs`, `row.rs`), their storage in the profile
//! index (`store.rs`), their files `<profiles-dir>/images/<file>.json` and
//! the retention of per-container files (`files.rs`), and `[images]`
//! (`config.rs`). The daemon calls the book on its blocking pool
//! (`daemon/images.rs`).

mod book;
mod config;
mod files;
mod keys;
mod row;
mod store;

use std::path::PathBuf;

pub use book::{Added, ImageBook, Written};
pub use config::ImagesConfig;
pub use keys::{ImageKey, KeyedBy, file_stem, is_id_prefix, key, normalise, short_id};
pub use row::{ImageInfo, ImageRow, find, syscalls};

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

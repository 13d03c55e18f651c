//! Reading and writing profiles: [`ProfileError`], and [`write`], a
//! profile's text written atomically.

use std::{
    io,
    path::{Path, PathBuf},
};

/// Errors of reading and writing profiles.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profile {path}: {err}")]
    Read { path: PathBuf, err: io::Error },
    #[error("malformed profile {path}: line {line}, column {column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("cannot write profile {path}: {err}")]
    Write { path: PathBuf, err: io::Error },
    #[error("refusing to write profile to {path}: {reason}")]
    UnsafePath { path: PathBuf, reason: &'static str },
}

impl From<crate::atomic_file::WriteError> for ProfileError {
    fn from(e: crate::atomic_file::WriteError) -> Self {
        use crate::atomic_file::WriteError;
        match e {
            WriteError::Io { path, err: source } => Self::Write { path, err: source },
            WriteError::NoFileName { path } => Self::UnsafePath {
                path,
                reason: "it has no file name",
            },
        }
    }
}

/// Writes a profile's text (in any format) to `path` atomically
/// ([`crate::atomic_file::write`]).
pub fn write(path: &Path, text: &str) -> Result<(), ProfileError> {
    Ok(crate::atomic_file::write(path, text.as_bytes())?)
}

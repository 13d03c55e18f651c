//! The files: an image row's profile, `<profiles-dir>/images/<file>.json`
//! (written atomically whenever the row's profile changes, read back for
//! a row the index did not know, removed with the row or when a newer row
//! takes it over), and the per-container profile files that retention
//! removes. Nothing here touches the index.

use std::{
    io,
    path::{Path, PathBuf},
};

use super::{ImageRow, ImagesError};
use crate::{index::Expired, profile::Profile};

/// The directory under the profiles dir that holds the image profiles.
const DIR: &str = "images";

/// Where the profile of `row` is.
pub(super) fn path(profiles_dir: &Path, row: &ImageRow) -> PathBuf {
    profiles_dir.join(DIR).join(row.file_name())
}

/// Writes the merged profile of `row` atomically; returns its path.
pub(super) fn write(profiles_dir: &Path, row: &ImageRow) -> Result<PathBuf, ImagesError> {
    let dir = profiles_dir.join(DIR);
    std::fs::create_dir_all(&dir).map_err(|source| ImagesError::Dir {
        path: dir.clone(),
        source,
    })?;
    let path = dir.join(row.file_name());
    crate::profile::write(&path, &row.profile.to_json()).map_err(|source| ImagesError::Write {
        label: row.label().to_owned(),
        source,
    })?;
    Ok(path)
}

/// The profile the file of `row` holds, if there is one: for a row the
/// index does not know (see [`ImageRow::recover`]). A file that cannot be
/// read or parsed is logged (it is replaced at the next write).
pub(super) fn read(profiles_dir: &Path, row: &ImageRow) -> Option<Profile> {
    let path = path(profiles_dir, row);
    match Profile::read(&path) {
        Ok(p) => Some(p),
        Err(crate::profile::ProfileError::Read { err, .. })
            if err.kind() == io::ErrorKind::NotFound =>
        {
            None
        }
        Err(e) => {
            let e = crate::errfmt::chain(&e);
            log::error!("image profile {}: {e}; it will be replaced", path.display());
            None
        }
    }
}

/// Removes the profile of `row` (gone already is fine; a failure is
/// logged, the row is forgotten anyway).
pub(super) fn remove(profiles_dir: &Path, row: &ImageRow) {
    let path = path(profiles_dir, row);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            log::warn!("cannot remove {}: {e}", path.display());
        }
        _ => {}
    }
}

/// Removes the per-container profile files of the entries retention
/// picked; returns the entries whose file is gone (removed, or missing
/// already). A file that cannot be removed is logged, and its entry left
/// out: the index keeps it.
pub(super) fn remove_profiles(expired: Vec<Expired>) -> Vec<Expired> {
    expired
        .into_iter()
        .filter(|x| {
            let path = &x.entry.path;
            match std::fs::remove_file(path) {
                Ok(()) => {
                    log::info!("retention: removed {}", path.display());
                    true
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => true,
                Err(e) => {
                    log::warn!("retention: cannot remove {}: {e}", path.display());
                    false
                }
            }
        })
        .collect()
}

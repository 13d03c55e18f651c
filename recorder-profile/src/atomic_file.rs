//! Atomic file replacement, for profiles, the profile index and recorderd's
//! state file: a reader sees the old file or the new one, never a part.

use std::{
    fs,
    io::{self, Write as _},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

/// Errors of [`write()`].
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write {path}: {err}")]
    Io { path: PathBuf, err: io::Error },
    #[error("refusing to write to {path}: it has no file name")]
    NoFileName { path: PathBuf },
}

/// Writes `contents` to `path` atomically: a temporary file is created
/// exclusively (O_EXCL, O_NOFOLLOW) in the same directory, synced, and renamed
/// over `path`. A symlink planted at `path` is replaced, not followed.
pub fn write(path: &Path, contents: &[u8]) -> Result<(), WriteError> {
    let err = |source| WriteError::Io {
        path: path.to_owned(),
        err: source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path.file_name().ok_or(WriteError::NoFileName {
        path: path.to_owned(),
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(err)?;
    let result = file
        .write_all(contents)
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = result {
        _ = fs::remove_file(&tmp);
        return Err(err(e));
    }
    // Make the rename durable too.
    if let Ok(d) = fs::File::open(dir) {
        _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_symlink_without_following() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        fs::write(&target, "keep").unwrap();
        let link = dir.path().join("p.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write(&link, b"new").unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "keep");
        assert_eq!(fs::read_to_string(&link).unwrap(), "new");
        assert!(
            !fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn refuses_a_path_without_file_name() {
        let err = write(Path::new("/"), b"x").unwrap_err();
        assert!(matches!(err, WriteError::NoFileName { .. }), "{err}");
    }
}

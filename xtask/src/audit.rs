//! `cargo xtask audit`: `cargo audit` over both lockfiles (the workspace's
//! `Cargo.lock` and `fuzz/Cargo.lock`) against a snapshot of the RustSec
//! advisory database, offline (`--no-fetch`), failing on any advisory,
//! unmaintained, unsound or yanked crate (`--deny warnings`).
//!
//! The database is `$RECORDER_ADVISORY_DB`, or else `../shared/advisory-db`
//! beside the repository: the build hosts reach crates.io but not the
//! database's git repository. cargo-audit reads a plain directory (no git
//! needed, nothing written to it). Advisories deliberately ignored, each with
//! its reason, go in `.cargo/audit.toml`.

use std::{
    env,
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, ensure};

use crate::{cargo, plan::Goal, setup, status, workspace_root};

/// The environment variable that overrides the database's path.
pub(crate) const DB_ENV: &str = "RECORDER_ADVISORY_DB";

/// The lockfiles audited, relative to the repository root.
pub(crate) const LOCKFILES: [&str; 2] = ["Cargo.lock", "fuzz/Cargo.lock"];

#[derive(clap::Args, Debug, Default)]
pub(crate) struct Args {}

/// Where the database should be: `from_env` if set and not empty (relative to
/// `cwd` if relative), else `<root>/../shared/advisory-db`.
fn db_path(from_env: Option<OsString>, cwd: &Path, root: &Path) -> PathBuf {
    match from_env {
        Some(p) if !p.is_empty() => cwd.join(p),
        _ => root.join("..").join("shared").join("advisory-db"),
    }
}

/// The database, or an error of one line if `path` does not hold one (an
/// advisory-db checkout has a `crates/` directory of advisories).
fn check_db(path: PathBuf) -> anyhow::Result<PathBuf> {
    if !path.join("crates").is_dir() {
        bail!(
            "no RustSec advisory database at {} (expected ../shared/advisory-db beside the repository, or set {DB_ENV} to one)",
            path.display()
        );
    }
    Ok(path)
}

pub(crate) fn run(_args: &Args) -> anyhow::Result<()> {
    setup::setup_for(Goal::Audit, &setup::Args { no_system: true })?;
    audit()
}

/// Audits both lockfiles; fails if the database is missing or if
/// `cargo audit` fails on either lockfile.
pub(crate) fn audit() -> anyhow::Result<()> {
    let root = workspace_root();
    let cwd = env::current_dir()?;
    let db = check_db(db_path(env::var_os(DB_ENV), &cwd, &root))?;
    if let Ok(snapshot) = fs::read_to_string(db.join("SNAPSHOT")) {
        println!("advisory database: {}", snapshot.trim());
    }
    let mut failed = Vec::new();
    for lockfile in LOCKFILES {
        // cargo() runs in the repository root, where cargo-audit finds
        // .cargo/audit.toml whichever lockfile it reads.
        let st = status(cargo().arg("audit").arg("--db").arg(&db).args([
            "--no-fetch",
            "--deny",
            "warnings",
            "--file",
            lockfile,
        ]))?;
        if !st.success() {
            failed.push(lockfile);
        }
    }
    ensure!(
        failed.is_empty(),
        "cargo audit failed on {}",
        failed.join(" and ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_beside_the_repository_unless_overridden() {
        let (cwd, root) = (Path::new("/home/me"), Path::new("/src/recorder"));
        let shared = Path::new("/src/recorder/../shared/advisory-db");
        assert_eq!(db_path(None, cwd, root), shared);
        assert_eq!(db_path(Some("".into()), cwd, root), shared);
        assert_eq!(db_path(Some("/db".into()), cwd, root), Path::new("/db"));
        assert_eq!(
            db_path(Some("db".into()), cwd, root),
            Path::new("/home/me/db")
        );
    }

    #[test]
    fn a_missing_database_is_one_clear_line() {
        let dir = env::temp_dir().join(format!("xtask-no-advisory-db-{}", std::process::id()));
        let err = check_db(dir.clone()).unwrap_err().to_string();
        assert!(!err.contains('\n'), "{err}");
        assert!(err.contains(&dir.display().to_string()) && err.contains(DB_ENV));
        // A directory without advisories is no database either.
        fs::create_dir_all(&dir).unwrap();
        assert!(check_db(dir.clone()).is_err());
        fs::create_dir(dir.join("crates")).unwrap();
        assert_eq!(check_db(dir.clone()).unwrap(), dir);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_lockfiles_exist() {
        let root = workspace_root();
        for lockfile in LOCKFILES {
            assert!(root.join(lockfile).is_file(), "{lockfile}");
        }
    }
}

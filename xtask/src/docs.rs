//! `cargo xtask docs`: man pages (clap_mangen) for recorderctl, recorderd
//! and recorder-oci-hook, and shell completions (clap_complete) for
//! recorderctl and recorderd.
//!
//! The clap `Command`s live in the recorder library (`recorder::cli`); the
//! generator is the `gen-docs` example of the recorder crate, because xtask
//! itself must not depend on the recorder crate: its build script needs
//! bpf-linker, which `cargo xtask setup` is there to install.

use std::path::{Path, PathBuf};

use crate::{cargo, run_ok, setup, step, target_dir};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Where to write `man/` and `completions/{bash,zsh,fish}/`
    /// [default: target/docs].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    setup::toolchain()?;
    let out = args.out.clone().unwrap_or_else(default_dir);
    generate(&out)
}

/// The default output directory.
pub(crate) fn default_dir() -> PathBuf {
    target_dir().join("docs")
}

/// Writes the man pages and completions into `out`.
pub(crate) fn generate(out: &Path) -> anyhow::Result<()> {
    step("man pages and shell completions");
    let out = std::path::absolute(out)?;
    run_ok(
        cargo()
            .args([
                "run",
                "--quiet",
                "--package",
                "recorder",
                "--example",
                "gen-docs",
                "--",
            ])
            .arg(&out),
    )?;
    eprintln!("docs: written to {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::{fs, path::Path};

    /// Every `.rs` file below `dir`, relative to it.
    fn rust_files(dir: &Path, rel: &str, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir.join(rel)).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if entry.file_type().unwrap().is_dir() {
                rust_files(dir, &path, out);
            } else if path.ends_with(".rs") {
                out.push(path);
            }
        }
    }

    /// gen-docs writes a man page per binary, the hook's too, and the
    /// profile commands' pages carry the exit-status convention.
    #[test]
    fn gen_docs_writes_every_man_page() {
        let out = crate::target_dir().join("xtask-test-docs");
        _ = fs::remove_dir_all(&out);
        super::generate(&out).unwrap();
        let man = out.join("man");
        for page in ["recorderctl.1", "recorderd.8", "recorder-oci-hook.1"] {
            assert!(man.join(page).is_file(), "{page} missing");
        }
        let hook = fs::read_to_string(man.join("recorder-oci-hook.1")).unwrap();
        assert!(hook.contains("trace\\-syscall"), "{hook}");
        for cmd in ["convert", "merge", "diff", "check"] {
            let page = fs::read_to_string(man.join(format!("recorderctl-{cmd}.1"))).unwrap();
            assert!(page.contains("Exit status: 0"), "{cmd}: {page}");
        }
        // No page for clap's `help` pseudo-command, and every footer has
        // the version (`.TH title section date "source" manual`), not the
        // subcommand's name alone.
        let pages: Vec<String> = fs::read_dir(&man)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(pages.len() > 10, "{pages:?}");
        assert!(!pages.iter().any(|p| p.contains("-help")), "{pages:?}");
        let version = env!("CARGO_PKG_VERSION");
        for page in &pages {
            let text = fs::read_to_string(man.join(page)).unwrap();
            let th = text.lines().find(|l| l.starts_with(".TH ")).unwrap();
            assert!(th.contains(version), "{page}: {th}");
        }
        assert!(out.join("completions/bash/recorderctl.bash").is_file());
        _ = fs::remove_dir_all(&out);
    }

    /// docs/ARCHITECTURE.md is where a newcomer finds the room for a
    /// change: it must name every module file of the library, and of the
    /// profile and protocol crates that used to be part of it.
    #[test]
    fn architecture_names_every_module_file() {
        let root = crate::workspace_root();
        let map = fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
        let mut files = Vec::new();
        for src in ["recorder/src", "recorder-profile/src", "recorder-api/src"] {
            rust_files(&root.join(src), "", &mut files);
        }
        assert!(files.len() > 20, "{files:?}");
        let missing: Vec<&String> = files
            .iter()
            .filter(|f| !map.contains(&format!("`{f}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/ARCHITECTURE.md does not name {missing:?}"
        );
    }
}

//! `cargo xtask install [--prefix /usr/local] [--destdir D]`: installs the
//! release binaries, their man pages and shell completions, the systemd
//! unit, the OCI hook with its hooks.d file, and the shipped profiles
//! (`<prefix>/share/recorder/profiles/`).

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

use crate::{cargo, docs, run_ok, setup, step, target_dir};

/// The binaries the recorder ships.
const BINARIES: [&str; 2] = ["recorderctl", "recorderd"];

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The installation prefix.
    #[arg(long, default_value = "/usr/local", value_name = "DIR")]
    pub prefix: PathBuf,
    /// Stage the installation under this directory (for packaging).
    #[arg(long, value_name = "DIR")]
    pub destdir: Option<PathBuf>,
}

/// Where the files that do not go under the prefix go, and where zsh looks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    /// The systemd unit's directory, on the target system.
    pub unit_dir: &'static str,
    /// zsh's completions, relative to the prefix.
    pub zsh_dir: &'static str,
}

impl Layout {
    /// An administrator's own installation (`cargo xtask install`).
    pub(crate) const LOCAL: Self = Self {
        unit_dir: "/etc/systemd/system",
        zsh_dir: "share/zsh/site-functions",
    };
    /// A distribution package (`cargo xtask deb`, prefix /usr): the unit
    /// where packages put theirs on Debian 12 (`/lib`), zsh's vendor
    /// completions.
    pub(crate) const DEBIAN: Self = Self {
        unit_dir: "/lib/systemd/system",
        zsh_dir: "share/zsh/vendor-completions",
    };
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    setup::toolchain()?;
    install(&args.prefix, args.destdir.as_deref(), Layout::LOCAL)
}

/// Builds the release binaries, man pages and completions and installs
/// them with `layout` under `prefix` (staged under `destdir` if given).
pub(crate) fn install(prefix: &Path, destdir: Option<&Path>, layout: Layout) -> anyhow::Result<()> {
    step("build");
    run_ok(cargo().args(["build", "--release", "--package", "recorder", "--bins"]))?;
    let docs_dir = docs::default_dir();
    docs::generate(&docs_dir)?;

    step("install");
    let root = match destdir {
        // --destdir D --prefix /usr/local -> D/usr/local
        Some(d) => d.join(prefix.strip_prefix("/").unwrap_or(prefix)),
        None => prefix.to_path_buf(),
    };
    let release = target_dir().join("release");
    for bin in BINARIES {
        install_file(&release.join(bin), &root.join("bin").join(bin), 0o755)?;
    }
    let man = docs_dir.join("man");
    for entry in fs::read_dir(&man).with_context(|| format!("reading {}", man.display()))? {
        let path = entry?.path();
        // recorderctl(1), recorder-oci-hook(1), recorderd(8).
        let section = path.extension().and_then(|e| e.to_str());
        if let (Some(name), Some(section @ ("1" | "8"))) = (path.file_name(), section) {
            let to = root.join(format!("share/man/man{section}")).join(name);
            install_file(&path, &to, 0o644)?;
        }
    }
    let completions = docs_dir.join("completions");
    for bin in BINARIES {
        // Where each shell looks for completions of installed commands.
        for (from, to) in [
            (
                format!("bash/{bin}.bash"),
                format!("share/bash-completion/completions/{bin}"),
            ),
            (format!("zsh/_{bin}"), format!("{}/_{bin}", layout.zsh_dir)),
            (
                format!("fish/{bin}.fish"),
                format!("share/fish/vendor_completions.d/{bin}.fish"),
            ),
        ] {
            install_file(&completions.join(from), &root.join(to), 0o644)?;
        }
    }
    install_profiles(&crate::workspace_root().join("profiles"), &root)?;
    install_daemon_files(&root, destdir, layout)?;
    install_oci_hook(&release, &root, destdir)?;
    eprintln!("installed under {}", root.display());
    Ok(())
}

/// Installs the systemd unit (its paths under the prefix: ExecStart,
/// Documentation) in `layout.unit_dir`, the default configuration (never
/// overwriting an existing one) and the user docs the unit names.
fn install_daemon_files(root: &Path, destdir: Option<&Path>, layout: Layout) -> anyhow::Result<()> {
    let src = crate::workspace_root();
    let staged = |abs: &str| match destdir {
        Some(d) => d.join(abs.trim_start_matches('/')),
        None => PathBuf::from(abs),
    };
    // The prefix, as seen on the target system.
    let prefix = match destdir {
        Some(d) => Path::new("/").join(root.strip_prefix(d).unwrap_or(root)),
        None => root.to_path_buf(),
    };
    // The shipped unit names /usr/local/bin/recorderd and the docs under
    // /usr/local/share/doc/recorder.
    let unit = fs::read_to_string(src.join("recorder/systemd/recorderd.service"))?.replace(
        "/usr/local/",
        &format!("{}/", prefix.display().to_string().trim_end_matches('/')),
    );
    let unit_path = staged(&format!("{}/recorderd.service", layout.unit_dir));
    let tmp = src.join("target/recorderd.service");
    fs::write(&tmp, unit)?;
    install_file(&tmp, &unit_path, 0o644)?;
    let config = staged("/etc/recorder/recorderd.toml");
    if config.exists() {
        eprintln!("  {} exists: kept", config.display());
    } else {
        install_file(&src.join("recorder/systemd/recorderd.toml"), &config, 0o644)?;
    }
    for doc in ["usage.md", "ARCHITECTURE.md"] {
        let from = src.join("docs").join(doc);
        if from.exists() {
            install_file(&from, &root.join("share/doc/recorder").join(doc), 0o644)?;
        }
    }
    Ok(())
}

/// Installs the shipped profiles (`profiles/*.json`, e.g. the base profile
/// docs/usage.md passes to `--base`) in `<root>/share/recorder/profiles/`.
fn install_profiles(from: &Path, root: &Path) -> anyhow::Result<()> {
    let to = root.join("share/recorder/profiles");
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let path = entry?.path();
        if let Some(name) = path
            .file_name()
            .filter(|_| path.extension().is_some_and(|e| e == "json"))
        {
            install_file(&path, &to.join(name), 0o644)?;
        }
    }
    Ok(())
}

/// Installs recorder-oci-hook in `<root>/libexec/recorder/` and its hooks.d
/// file (pointing there) where podman looks by default.
fn install_oci_hook(release: &Path, root: &Path, destdir: Option<&Path>) -> anyhow::Result<()> {
    let src = crate::workspace_root();
    let bin = root.join("libexec/recorder/recorder-oci-hook");
    install_file(&release.join("recorder-oci-hook"), &bin, 0o755)?;
    // The path the hook runs from, as seen on the target system.
    let target = match destdir {
        Some(d) => Path::new("/").join(bin.strip_prefix(d).unwrap_or(&bin)),
        None => bin,
    };
    let json = fs::read_to_string(src.join("recorder/hooks.d/recorder-oci-hook.json"))?.replace(
        "/usr/local/libexec/recorder/recorder-oci-hook",
        &target.display().to_string(),
    );
    let tmp = src.join("target/recorder-oci-hook.json");
    fs::write(&tmp, json)?;
    let hooks_d = "/usr/share/containers/oci/hooks.d/recorder-oci-hook.json";
    let to = match destdir {
        Some(d) => d.join(hooks_d.trim_start_matches('/')),
        None => PathBuf::from(hooks_d),
    };
    install_file(&tmp, &to, 0o644)
}

/// Copies `from` to `to` with `mode`, replacing `to` atomically (a running
/// binary can be replaced).
fn install_file(from: &Path, to: &Path, mode: u32) -> anyhow::Result<()> {
    let dir = to.parent().context("install target has no parent")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = to.file_name().context("install target has no name")?;
    let tmp = dir.join(format!(".{}.xtask-tmp", name.to_string_lossy()));
    fs::copy(from, &tmp)
        .with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(&tmp, to).with_context(|| format!("installing {}", to.display()))?;
    eprintln!("  {}", to.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_the_shipped_profiles() {
        let root = crate::workspace_root().join("target/xtask-test-install-profiles");
        _ = fs::remove_dir_all(&root);
        let profiles = crate::workspace_root().join("profiles");
        install_profiles(&profiles, &root).unwrap();
        let installed = root.join("share/recorder/profiles");
        for name in ["base-podman-runc.json", "runtime-runc.json"] {
            assert_eq!(
                fs::read(installed.join(name)).unwrap(),
                fs::read(profiles.join(name)).unwrap(),
                "{name}"
            );
        }
        // Only the profiles, not the test fixtures beside them.
        assert!(!installed.join("fixtures").exists());
        _ = fs::remove_dir_all(&root);
    }
}

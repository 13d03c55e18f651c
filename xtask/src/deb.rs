//! `cargo xtask deb`: target/debian/recorder_<version>_<arch>.deb, built
//! with dpkg-deb (dpkg's own, on every Debian machine; no tool to install).
//!
//! The tree is `cargo xtask install --prefix /usr` with the distribution
//! layout (install.rs: the unit in /lib/systemd/system, zsh's vendor
//! completions), then made the Debian way: binaries stripped, man pages and
//! the changelog compressed, the docs and copyright in
//! /usr/share/doc/recorder, `/etc/recorder/recorderd.toml` a conffile, the
//! maintainer scripts of dh_installsystemd (deploy/debian/), `Depends:` from
//! dpkg-shlibdeps, md5sums. lintian checks the result; an error fails.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail, ensure};

use crate::{
    git,
    install::{self, Layout},
    output,
    plan::Goal,
    run_ok,
    setup::{self, timed},
    step, target_dir, workspace_root,
};

/// The conffiles: every file the package installs under /etc.
const CONFFILES: [&str; 1] = ["/etc/recorder/recorderd.toml"];

/// The user documentation shipped in /usr/share/doc/recorder (install.rs
/// adds usage.md and ARCHITECTURE.md).
const DOCS: [&str; 6] = [
    "README.md",
    "docs/runtimes.md",
    "docs/PROFILES.md",
    "docs/metrics.md",
    "docs/reliability.md",
    "docs/fleet.md",
];

/// The ELF files, stripped and passed to dpkg-shlibdeps.
const ELF: [&str; 3] = [
    "usr/bin/recorderd",
    "usr/bin/recorderctl",
    "usr/libexec/recorder/recorder-oci-hook",
];

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Do not run lintian on the package.
    #[arg(long)]
    pub no_lintian: bool,
}

/// The package's path for this version and architecture.
pub(crate) fn package_path(arch: &str) -> PathBuf {
    target_dir()
        .join("debian")
        .join(format!("recorder_{}_{arch}.deb", env!("CARGO_PKG_VERSION")))
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    setup::setup_for(Goal::Deb, &setup::Args::default())?;
    let arch = output("dpkg", ["--print-architecture"])
        .map(|a| a.trim().to_owned())
        .context("dpkg --print-architecture failed: `cargo xtask deb` needs Debian's dpkg")?;
    let deb = package_path(&arch);
    let root = deb.with_extension("");
    _ = fs::remove_dir_all(&root);
    timed(
        "deb: build and stage (cargo xtask install --prefix /usr)",
        || install::install(Path::new("/usr"), Some(&root), Layout::DEBIAN),
    )?;
    timed("deb: the Debian tree", || debianize(&root, &arch))?;
    timed("deb: dpkg-deb --build", || {
        run_ok(
            Command::new("dpkg-deb")
                .args(["--root-owner-group", "--build"])
                .arg(&root)
                .arg(&deb)
                .env("SOURCE_DATE_EPOCH", source_date_epoch()),
        )
    })?;
    eprintln!(
        "deb: {} ({:.1} MB)",
        deb.display(),
        fs::metadata(&deb)?.len() as f64 / 1e6
    );
    if !args.no_lintian {
        timed("deb: lintian", || lintian(&deb))?;
    }
    Ok(())
}

/// Turns the installed tree into a Debian package tree: files, then
/// DEBIAN/.
fn debianize(root: &Path, arch: &str) -> anyhow::Result<()> {
    step("the Debian tree");
    let src = workspace_root();
    for elf in ELF {
        strip(&root.join(elf))?;
    }
    for section in ["man1", "man8"] {
        let dir = root.join("usr/share/man").join(section);
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            gzip(&entry?.path())?;
        }
    }
    let doc = root.join("usr/share/doc/recorder");
    for file in DOCS {
        let from = src.join(file);
        let name = from.file_name().context("a doc without a name")?;
        fs::copy(&from, doc.join(name)).with_context(|| format!("copying {}", from.display()))?;
    }
    fs::copy(src.join("deploy/debian/copyright"), doc.join("copyright"))?;
    let changelog = doc.join("changelog");
    fs::write(&changelog, changelog_text()?)?;
    gzip(&changelog)?;
    normalise_modes(root)?;

    let debian = root.join("DEBIAN");
    fs::create_dir_all(&debian)?;
    for script in ["postinst", "prerm", "postrm"] {
        let to = debian.join(script);
        fs::copy(src.join("deploy/debian").join(script), &to)?;
        fs::set_permissions(&to, fs::Permissions::from_mode(0o755))?;
    }
    for conffile in CONFFILES {
        ensure!(
            root.join(conffile.trim_start_matches('/')).is_file(),
            "{conffile} is not installed"
        );
    }
    fs::write(
        debian.join("conffiles"),
        format!("{}\n", CONFFILES.join("\n")),
    )?;
    let control = fs::read_to_string(src.join("deploy/debian/control.in"))?
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"))
        .replace("@ARCH@", arch)
        .replace("@INSTALLED_SIZE@", &installed_size(root)?.to_string())
        .replace("@DEPENDS@", &depends(root)?);
    fs::write(debian.join("control"), control)?;
    md5sums(root)
}

/// Strips a binary's symbols, as dh_strip does.
pub(crate) fn strip(bin: &Path) -> anyhow::Result<()> {
    run_ok(
        Command::new("strip")
            .args([
                "--remove-section=.comment",
                "--remove-section=.note",
                "--strip-unneeded",
            ])
            .arg(bin),
    )
}

/// `gzip -9n FILE` (FILE.gz, no name or time stored), as dh_compress does.
fn gzip(file: &Path) -> anyhow::Result<()> {
    run_ok(Command::new("gzip").args(["-9nf"]).arg(file))
}

/// 0755 for directories and executables, 0644 for the rest, whatever the
/// umask was.
fn normalise_modes(dir: &Path) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let meta = entry.metadata()?;
        let mode = if meta.is_dir() {
            normalise_modes(&path)?;
            0o755
        } else if meta.permissions().mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Every regular file under `dir`, relative to `root`, DEBIAN/ left out.
fn files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let rel = path.strip_prefix(root)?.to_path_buf();
        if rel == Path::new("DEBIAN") {
            continue;
        }
        if path.is_dir() {
            files(root, &path, out)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}

/// Installed-Size: KiB, each file rounded up, one per directory (as
/// dpkg-gencontrol counts).
fn installed_size(root: &Path) -> anyhow::Result<u64> {
    fn walk(dir: &Path, total: &mut u64) -> anyhow::Result<()> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_name() == "DEBIAN" {
                continue;
            }
            let meta = entry.metadata()?;
            *total += if meta.is_dir() {
                walk(&entry.path(), total)?;
                1
            } else {
                meta.len().div_ceil(1024)
            };
        }
        Ok(())
    }
    let mut total = 0;
    walk(root, &mut total)?;
    Ok(total)
}

/// The shared libraries the binaries need, as dpkg-shlibdeps writes them
/// (`libc6 (>= 2.34), libgcc-s1 (>= 4.2)`); it wants a debian/control.
fn depends(root: &Path) -> anyhow::Result<String> {
    let dir = target_dir().join("debian").join("shlibdeps");
    fs::create_dir_all(dir.join("debian"))?;
    fs::write(
        dir.join("debian/control"),
        "Source: recorder\n\nPackage: recorder\nArchitecture: any\n",
    )?;
    let mut cmd = Command::new("dpkg-shlibdeps");
    cmd.arg("-O").current_dir(&dir);
    for elf in ELF {
        cmd.arg(format!("-e{}", root.join(elf).display()));
    }
    let out = cmd
        .output()
        .context("cannot run dpkg-shlibdeps (dpkg-dev)")?;
    ensure!(
        out.status.success(),
        "dpkg-shlibdeps failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .map(str::to_owned)
        .context("dpkg-shlibdeps printed no shlibs:Depends")
}

/// DEBIAN/md5sums, as dh_md5sums writes it.
fn md5sums(root: &Path) -> anyhow::Result<()> {
    let mut all = Vec::new();
    files(root, root, &mut all)?;
    all.sort();
    let out = Command::new("md5sum")
        .args(&all)
        .current_dir(root)
        .output()
        .context("cannot run md5sum")?;
    ensure!(out.status.success(), "md5sum failed");
    fs::write(root.join("DEBIAN/md5sums"), out.stdout)?;
    Ok(())
}

/// The commit's time (seconds since the epoch), for reproducible dates; now
/// outside a git checkout.
fn source_date_epoch() -> String {
    git(&["log", "-1", "--format=%ct"])
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs().to_string())
                .unwrap_or_default()
        })
}

/// A native package's changelog: one entry for this version.
fn changelog_text() -> anyhow::Result<String> {
    let date = output("date", ["-R", "-d", &format!("@{}", source_date_epoch())])
        .context("cannot run date")?;
    let revision = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    Ok(format!(
        "recorder ({}) unstable; urgency=medium\n\n  * Built by `cargo xtask deb` from revision {revision}.\n\n -- recorder developers <recorder@example.org>  {}\n",
        env!("CARGO_PKG_VERSION"),
        date.trim()
    ))
}

/// Runs lintian; fails on any error (warnings are printed).
pub(crate) fn lintian(deb: &Path) -> anyhow::Result<()> {
    let out = Command::new("lintian")
        .args(["--fail-on", "error", "--info"])
        .arg(deb)
        .output()
        .context("cannot run lintian (`cargo xtask setup --for deb` installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    eprint!("{text}{}", String::from_utf8_lossy(&out.stderr));
    let errors = text.lines().filter(|l| l.starts_with("E: ")).count();
    if !out.status.success() || errors > 0 {
        bail!("lintian: {errors} errors");
    }
    eprintln!("lintian: 0 errors");
    Ok(())
}

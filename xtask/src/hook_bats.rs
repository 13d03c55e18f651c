//! `cargo xtask hook-bats`: the original oci-seccomp-bpf-hook's own test
//! suite (`test/00-simple.bats`) against `recorder-oci-hook`, the best
//! proof that the hook is a drop-in.
//!
//! The suite is not ours to commit: it is fetched at run time from
//! Debian's source package (`apt-get source --download-only
//! oci-seccomp-bpf-hook`, with the `deb-src` stanza [`deb_src`] adds) into
//! target/hook-bats, never into git. What it needs around it is ours: a
//! `helpers.bash` that names a local busybox image as `ALPINE` (imported
//! into podman from busybox-static) and 127.0.0.1 as the host to ping, the
//! `block-mkdir.json` fixture, a hooks dir pointing at the built hook (it
//! records on its own, as the original does), and a containers.conf for
//! this host (runc, bounded ulimits). The "Version check" test needs the
//! original's source tree and skips itself; the six others must pass.
//!
//! `$RECORDER_HOOK_SOURCE_DIR` may name a directory that holds the source
//! package instead (an offline mirror). Where the archive does not serve
//! the source tarball (a mirror or proxy that serves binary packages
//! only), the step is skipped, saying why; tests/oci_hook.rs checks the
//! same behaviour either way.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{cargo, output, run_ok, step, target_dir};

/// The Debian source package of the original hook.
const PACKAGE: &str = "oci-seccomp-bpf-hook";
/// The podman image the suite runs as `ALPINE`.
const IMAGE: &str = "localhost/recorder-hook-bats/busybox:latest";
/// Where to take the source package from instead of `apt-get source`.
const SOURCE_DIR: &str = "RECORDER_HOOK_SOURCE_DIR";
/// The apt sources file [`deb_src`] writes.
const DEB_SRC: &str = "/etc/apt/sources.list.d/recorder-deb-src.sources";

/// How the step ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    Passed,
    Failed(String),
    /// Could not run here, for a reason outside the project (said).
    Skipped(String),
}

#[derive(clap::Args, Debug)]
pub(crate) struct Args {}

pub(crate) fn run(_: &Args) -> anyhow::Result<()> {
    crate::setup::setup(&crate::setup::Args::default())?;
    match suite() {
        Outcome::Passed => Ok(()),
        Outcome::Failed(why) => bail!("{why}"),
        Outcome::Skipped(why) => {
            eprintln!("hook-bats: skipped: {why}");
            Ok(())
        }
    }
}

/// For setup: a `deb-src` stanza for each deb822 stanza of Debian's
/// archive that has none, so that `apt-get source` works. Idempotent.
pub(crate) fn deb_src() -> anyhow::Result<()> {
    step("deb-src for Debian's archive (apt-get source)");
    let dir = Path::new("/etc/apt/sources.list.d");
    let mut has_src = false;
    let mut stanzas = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let name = path.to_string_lossy();
        if name.ends_with(".list") {
            has_src |= text.lines().any(|l| l.trim_start().starts_with("deb-src "));
        }
        if !name.ends_with(".sources") {
            continue;
        }
        for stanza in text.split("\n\n") {
            let types = stanza
                .lines()
                .find_map(|l| l.strip_prefix("Types:"))
                .unwrap_or_default();
            if types.split_whitespace().any(|t| t == "deb-src") {
                has_src = true;
            } else if types.split_whitespace().any(|t| t == "deb")
                && stanza.contains("debian.org/debian")
            {
                stanzas.push(stanza.replacen(types, " deb-src", 1));
            }
        }
    }
    if has_src {
        eprintln!("deb-src: present");
        return Ok(());
    }
    if stanzas.is_empty() {
        eprintln!("deb-src: no Debian archive in {}: skipped", dir.display());
        return Ok(());
    }
    fs::write(DEB_SRC, format!("{}\n", stanzas.join("\n\n")))
        .with_context(|| format!("writing {DEB_SRC}"))?;
    eprintln!("deb-src: written to {DEB_SRC}");
    run_ok(
        Command::new("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Fetches the suite, sets up around it and runs it.
pub(crate) fn suite() -> Outcome {
    match try_suite() {
        Ok(o) => o,
        Err(e) => Outcome::Failed(format!("{e:#}")),
    }
}

fn try_suite() -> anyhow::Result<Outcome> {
    let dir = target_dir().join("hook-bats");
    _ = fs::remove_dir_all(&dir);
    let src = dir.join("src");
    fs::create_dir_all(&src)?;
    // A directory that holds the source package already (an offline
    // mirror), else apt-get source.
    let (from, fetched) = match std::env::var_os(SOURCE_DIR) {
        Some(d) => (PathBuf::from(d), None),
        None => {
            let out = Command::new("apt-get")
                .args(["source", "--download-only", PACKAGE])
                .current_dir(&src)
                .output()
                .context("running apt-get source")?;
            (src.clone(), Some(out))
        }
    };
    let tarball = fs::read_dir(&from)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains(".orig.tar."));
    let ok = fetched.as_ref().is_none_or(|o| o.status.success());
    let Some(tarball) = tarball.filter(|_| ok) else {
        let Some(fetched) = fetched else {
            bail!("no {PACKAGE}_*.orig.tar.* in ${SOURCE_DIR}");
        };
        let err = String::from_utf8_lossy(&fetched.stderr);
        let why = err
            .lines()
            .filter(|l| l.starts_with("E:"))
            .collect::<Vec<_>>()
            .join("; ");
        return Ok(Outcome::Skipped(format!(
            "the source of {PACKAGE} cannot be fetched from Debian's archive here ({why})"
        )));
    };
    run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(&tarball)
            .arg("-C")
            .arg(&src)
            .args(["--wildcards", "*/test/00-simple.bats"]),
    )?;
    let bats = find(&src, "00-simple.bats").context("no test/00-simple.bats in the tarball")?;
    let test = dir.join("test");
    fs::create_dir_all(test.join("fixtures"))?;
    fs::copy(&bats, test.join("00-simple.bats"))?;
    let hook = build_hook()?;
    import_image(&dir)?;
    let block = test.join("fixtures/block-mkdir.json");
    fs::write(
        &block,
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )?;
    fs::write(
        test.join("helpers.bash"),
        format!(
            "# recorder's: a local image, a loopback host (no registry, no network).\n\
             ALPINE={IMAGE}\nBLOCK_MKDIR={}\nPINGABLE_HOST=127.0.0.1\nNET_HOST=127.0.0.1\n",
            block.display()
        ),
    )?;
    let hooks = dir.join("hooks.d");
    fs::create_dir_all(&hooks)?;
    // No recorderd at this socket: the hook records on its own.
    let hook_json = format!(
        r#"{{"version":"1.0.0","hook":{{"path":"{}","args":["recorder-oci-hook","--socket","{}"]}},"when":{{"annotations":{{"^io\\.containers\\.trace-syscall$":".*"}}}},"stages":["prestart"]}}"#,
        hook.display(),
        dir.join("no-recorderd.sock").display()
    );
    fs::write(hooks.join("recorder-oci-hook.json"), hook_json)?;
    let conf = dir.join("containers.conf");
    fs::write(
        &conf,
        format!(
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
             [engine]\nruntime = \"runc\"\nhooks_dir = [\"{}\"]\n",
            hooks.display()
        ),
    )?;
    let out = Command::new("bats")
        .arg("00-simple.bats")
        .current_dir(&test)
        .env("CONTAINERS_CONF", &conf)
        .output()
        .context("running bats (cargo xtask setup installs it)")?;
    let tap = String::from_utf8_lossy(&out.stdout);
    print!("{tap}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let (passed, failed) = count(&tap);
    println!("hook-bats: {passed} passed, {failed} failed");
    Ok(if out.status.success() && failed == 0 && passed >= 6 {
        Outcome::Passed
    } else {
        Outcome::Failed(format!(
            "{PACKAGE}'s 00-simple.bats: {passed} passed, {failed} failed (6 must pass)"
        ))
    })
}

/// Passed (not skipped) and failed tests in bats' TAP output.
fn count(tap: &str) -> (usize, usize) {
    let passed = tap
        .lines()
        .filter(|l| l.starts_with("ok ") && !l.contains("# skip"))
        .count();
    let failed = tap.lines().filter(|l| l.starts_with("not ok ")).count();
    (passed, failed)
}

/// The first file named `name` below `dir`.
fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(p) = find(&path, name) {
                return Some(p);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}

/// Builds recorder-oci-hook; returns its path.
fn build_hook() -> anyhow::Result<PathBuf> {
    run_ok(cargo().args(["build", "-p", "recorder", "--bin", "recorder-oci-hook"]))?;
    Ok(target_dir().join("debug/recorder-oci-hook"))
}

/// Imports a busybox root filesystem (busybox-static and its applet
/// links) into podman as [`IMAGE`].
fn import_image(dir: &Path) -> anyhow::Result<()> {
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "root"] {
        fs::create_dir_all(root.join(d))?;
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("busybox-static is not installed (cargo xtask setup installs it)")?;
    fs::copy(busybox, root.join("bin/busybox"))?;
    let list = output(busybox, ["--list"]).context("busybox --list")?;
    for applet in list.lines().filter(|a| *a != "busybox") {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    let tar = dir.join("rootfs.tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    )?;
    run_ok(
        Command::new("podman")
            .args(["import", "-q"])
            .arg(&tar)
            .arg(IMAGE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_tap_results_without_skips() {
        let tap = "1..7\nok 1 Podman available\nok 2 Version check # skip no tree\n\
                   ok 3 Trace\nnot ok 4 Use\n# (in test file)\nok 5 Blocked\n";
        assert_eq!(count(tap), (3, 1));
    }
}

//! The Debian package, as users get it: `cargo xtask deb` builds it; its
//! contents and conffile; lintian finds no error; `dpkg -i` installs it
//! (enabling the unit the Debian way on a machine without systemd),
//! `/usr/bin/recorderctl --version` runs, and `dpkg --purge` leaves the
//! machine as it was.

mod common;

use std::{
    collections::BTreeSet,
    fs,
    os::{fd::AsRawFd as _, unix::fs::PermissionsExt as _},
    path::Path,
    process::{Command, Output},
    time::{Duration, Instant},
};

use common::*;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the package must hold (as `dpkg-deb -c` lists it).
const CONTENTS: &[&str] = &[
    "./usr/bin/recorderd",
    "./usr/bin/recorderctl",
    "./usr/libexec/recorder/recorder-oci-hook",
    "./lib/systemd/system/recorderd.service",
    "./etc/recorder/recorderd.toml",
    "./usr/share/man/man8/recorderd.8.gz",
    "./usr/share/man/man1/recorderctl.1.gz",
    "./usr/share/man/man1/recorderctl-record.1.gz",
    "./usr/share/man/man1/recorder-oci-hook.1.gz",
    "./usr/share/bash-completion/completions/recorderctl",
    "./usr/share/zsh/vendor-completions/_recorderctl",
    "./usr/share/fish/vendor_completions.d/recorderctl.fish",
    "./usr/share/containers/oci/hooks.d/recorder-oci-hook.json",
    "./usr/share/doc/recorder/copyright",
    "./usr/share/doc/recorder/changelog.gz",
    "./usr/share/doc/recorder/usage.md",
    "./usr/share/recorder/profiles/runtime-runc.json",
];

/// Where dpkg, deb-systemd-helper and recorderd itself could leave
/// something behind besides the package's own paths.
const AROUND: &[&str] = &[
    "/etc/recorder",
    "/etc/systemd/system",
    "/var/lib/systemd/deb-systemd-helper-enabled",
    "/var/lib/systemd/deb-systemd-helper-masked",
    "/var/lib/recorder",
    "/run/recorder",
    "/usr/share/doc/recorder",
    "/usr/libexec/recorder",
    "/usr/share/recorder",
];

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Serialises this test with the same test of other checkouts on the
/// machine: there is one dpkg database and one package named recorder.
fn machine_lock() -> fs::File {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/run/lock/recorder-deb-test.lock")
        .unwrap();
    // SAFETY: flock(2) on a descriptor we own; released when it closes.
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
    f
}

/// dpkg with `args`, waiting (bounded) while another dpkg or apt holds
/// the database's lock.
fn dpkg(args: &[&str]) -> Output {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let out = run(Command::new("dpkg").args(args));
        let locked = String::from_utf8_lossy(&out.stderr).contains("lock");
        if out.status.success() || !locked || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn dpkg_ok(args: &[&str]) -> Output {
    let out = dpkg(args);
    assert!(
        out.status.success(),
        "dpkg {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        stdout(&out)
    );
    out
}

fn installed() -> bool {
    let out = run(Command::new("dpkg-query").args(["-W", "-f=${db:Status-Status}", "recorder"]));
    out.status.success() && stdout(&out).trim() == "installed"
}

/// Every path below `path` (itself included) that exists, with its kind
/// and mode.
fn walk(path: &Path, out: &mut BTreeSet<String>) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    let kind = if meta.is_dir() {
        "dir"
    } else if meta.is_symlink() {
        "link"
    } else {
        "file"
    };
    out.insert(format!(
        "{} {kind} {:o}",
        path.display(),
        meta.permissions().mode()
    ));
    if meta.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            walk(&entry.unwrap().path(), out);
        }
    }
}

/// The state of every path the package or its scripts could touch.
fn snapshot(package_paths: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for p in package_paths {
        let abs = Path::new("/").join(p.trim_start_matches("./"));
        match fs::symlink_metadata(&abs) {
            // A shared directory (/usr/bin): itself, not what others put in.
            Ok(m) if m.is_dir() => {
                out.insert(format!("{} dir", abs.display()));
            }
            Ok(_) => {
                out.insert(format!("{} present", abs.display()));
            }
            Err(_) => {}
        }
    }
    for p in AROUND {
        walk(Path::new(p), &mut out);
    }
    for entry in fs::read_dir("/var/lib/dpkg/info").unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with("recorder.") || name.starts_with("recorder:") {
            out.insert(format!("/var/lib/dpkg/info/{name}"));
        }
    }
    out
}

/// Purges the package if a failed assertion left it installed.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        if installed() {
            _ = dpkg(&["--purge", "recorder"]);
        }
    }
}

#[test]
fn deb_builds_passes_lintian_installs_and_purges_cleanly() {
    require_root();
    let _lock = machine_lock();
    run_ok(&mut xtask(&["deb"]));
    let arch = stdout(&run_ok(Command::new("dpkg").arg("--print-architecture")));
    let deb = target_dir()
        .join("debian")
        .join(format!("recorder_{VERSION}_{}.deb", arch.trim()));
    let deb = deb.to_str().unwrap();

    // The contents: binaries, unit, man pages, completions, hook, docs.
    let listing = stdout(&run_ok(Command::new("dpkg-deb").args(["-c", deb])));
    let paths: Vec<String> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(str::to_owned)
        .collect();
    for want in CONTENTS {
        assert!(paths.iter().any(|p| p == want), "{want} not in\n{listing}");
    }
    let conffiles = stdout(&run_ok(Command::new("dpkg-deb").args([
        "--info",
        deb,
        "conffiles",
    ])));
    assert_eq!(conffiles.trim(), "/etc/recorder/recorderd.toml");
    let depends = stdout(&run_ok(
        Command::new("dpkg-deb").args(["-f", deb, "Depends"]),
    ));
    assert!(depends.contains("libc6"), "Depends: {depends}");

    // lintian: no error (warnings and infos are printed).
    let out = run(Command::new("lintian").args(["--fail-on", "error", deb]));
    let report = stdout(&out);
    eprintln!("lintian:\n{report}");
    assert!(
        out.status.success() && !report.lines().any(|l| l.starts_with("E: ")),
        "lintian errors:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert!(
        !installed(),
        "recorder is installed already: purge it first"
    );
    let before = snapshot(&paths);
    let _purge = Purge;
    // No systemd runs here (as in a container or CI): the scripts must not
    // fail, and the unit is enabled for the next boot all the same.
    assert!(!Path::new("/run/systemd/system").exists());
    dpkg_ok(&["-i", deb]);
    let version = run_ok(Command::new("/usr/bin/recorderctl").arg("--version"));
    assert_eq!(stdout(&version).trim(), format!("recorderctl {VERSION}"));
    let daemon = run_ok(Command::new("/usr/bin/recorderd").arg("--version"));
    assert_eq!(stdout(&daemon).trim(), format!("recorderd {VERSION}"));
    let wants = Path::new("/etc/systemd/system/multi-user.target.wants/recorderd.service");
    assert_eq!(
        fs::read_link(wants).unwrap(),
        Path::new("/lib/systemd/system/recorderd.service")
    );
    let unit = fs::read_to_string("/lib/systemd/system/recorderd.service").unwrap();
    assert!(
        unit.contains("ExecStart=/usr/bin/recorderd --all")
            && unit.contains("Documentation=file:/usr/share/doc/recorder/usage.md"),
        "{unit}"
    );
    let hook: serde_json::Value = serde_json::from_str(
        &fs::read_to_string("/usr/share/containers/oci/hooks.d/recorder-oci-hook.json").unwrap(),
    )
    .unwrap();
    let hook_path = hook["hook"]["path"].as_str().unwrap();
    assert_eq!(hook_path, "/usr/libexec/recorder/recorder-oci-hook");
    run_ok(Command::new(hook_path).arg("--version"));
    assert_ne!(snapshot(&paths), before, "dpkg -i installed nothing");

    dpkg_ok(&["--purge", "recorder"]);
    assert!(!installed());
    let after = snapshot(&paths);
    let left: Vec<&String> = after.difference(&before).collect();
    let gone: Vec<&String> = before.difference(&after).collect();
    assert!(
        left.is_empty() && gone.is_empty(),
        "the purge left {left:#?} and took {gone:#?}"
    );
}

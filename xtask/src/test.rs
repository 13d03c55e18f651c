//! `cargo xtask test`: set up, then build and run the whole suite (unit and
//! integration tests of every user-space crate, clippy, rustfmt, the
//! dependency audit, the bench's smoke run, an install check, the original
//! OCI hook's test suite against ours, and 60 s of fuzzing per fuzz
//! target), with the test output shown and kept in
//! target/xtask-test.log.
//!
//! The run fails when any step fails or when no test ran at all, and ends
//! with a line `N passed, M failed, K skipped`.

use std::{
    fs::File,
    io::{self, BufRead as _, BufReader, Read, Write},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    thread,
};

use anyhow::Context as _;

use crate::{cargo, describe, is_root, setup, status, step, target_dir};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Skip clippy, rustfmt, the dependency audit, the bench smoke run, the
    /// install check and fuzzing.
    #[arg(long)]
    pub no_lint: bool,
    /// Skip fuzzing only.
    #[arg(long)]
    pub no_fuzz: bool,
    /// Arguments for the test binaries (after `--`), e.g. a name filter.
    #[arg(last = true)]
    pub test_args: Vec<String>,
}

/// Sums of libtest's `test result:` lines.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
    /// How many test binaries reported a result.
    pub binaries: u64,
}

impl Totals {
    /// Adds one line of output if it is a libtest summary:
    /// `test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s`.
    pub(crate) fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        let Some((_, counts)) = rest.split_once(". ") else {
            return;
        };
        self.binaries += 1;
        for part in counts.split(';') {
            let mut words = part.split_whitespace();
            let (Some(n), Some(what)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else {
                continue;
            };
            match what {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

/// Copies `from` to `to` and to the log line by line, feeding each line to
/// `on_line`.
fn tee(
    from: impl Read,
    mut to: impl Write,
    log: Arc<Mutex<File>>,
    mut on_line: impl FnMut(&str),
) -> io::Result<()> {
    let mut reader = BufReader::new(from);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        to.write_all(&buf)?;
        to.flush()?;
        if let Ok(mut log) = log.lock() {
            log.write_all(&buf)?;
        }
        on_line(&String::from_utf8_lossy(&buf));
    }
}

/// Runs `cmd` with its output shown and appended to `log`; returns whether
/// it succeeded, and adds libtest summaries to `totals`.
fn run_logged(
    cmd: &mut Command,
    log: &Arc<Mutex<File>>,
    totals: &mut Totals,
) -> anyhow::Result<bool> {
    eprintln!("$ {}", describe(cmd));
    if let Ok(mut f) = log.lock() {
        writeln!(f, "$ {}", describe(cmd))?;
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", describe(cmd)))?;
    let stdout = child.stdout.take().context("child stdout")?;
    let stderr = child.stderr.take().context("child stderr")?;
    let err_log = Arc::clone(log);
    let err_thread = thread::spawn(move || tee(stderr, io::stderr(), err_log, |_| {}));
    let mut found = Totals::default();
    tee(stdout, io::stdout(), Arc::clone(log), |line| {
        found.add_line(line)
    })?;
    err_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the stderr reader panicked"))??;
    let st = child.wait()?;
    totals.passed += found.passed;
    totals.failed += found.failed;
    totals.ignored += found.ignored;
    totals.binaries += found.binaries;
    Ok(st.success())
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    setup::setup(&setup::Args::default())?;
    if !is_root() {
        eprintln!("warning: not root: the integration tests will fail (they load eBPF programs)");
    }
    let log_path = target_dir().join("xtask-test.log");
    std::fs::create_dir_all(target_dir())?;
    let log = Arc::new(Mutex::new(
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?,
    ));
    // `--workspace --exclude recorder-ebpf`: every crate but the eBPF one,
    // which only builds for the BPF target (recorder/build.rs builds it).
    let workspace = ["--workspace", "--exclude", "recorder-ebpf"];
    let mut totals = Totals::default();
    let mut failed_steps = Vec::new();

    step("build the tests");
    let built = run_logged(
        cargo().args(["test", "--no-run"]).args(workspace),
        &log,
        &mut totals,
    )?;
    if built {
        step("run the tests");
        let mut test = cargo();
        test.args(["test", "--no-fail-fast"]).args(workspace);
        if !args.test_args.is_empty() {
            test.arg("--").args(&args.test_args);
        }
        if !run_logged(&mut test, &log, &mut totals)? {
            failed_steps.push("cargo test");
        }
    } else {
        failed_steps.push("building the tests");
    }

    let mut checks_passed = 0;
    let mut skipped_steps = 0;
    if !args.no_lint {
        step("clippy");
        let clippy = status(
            cargo()
                .args(["clippy", "--all-targets", "--all-features"])
                .args(workspace)
                .args(["--", "-D", "warnings"]),
        )?;
        step("rustfmt");
        let fmt = status(cargo().args(["fmt", "--all", "--check"]))?;
        // fuzz/ is a workspace of its own.
        let fmt_fuzz = status(cargo().args([
            "fmt",
            "--all",
            "--check",
            "--manifest-path",
            "fuzz/Cargo.toml",
        ]))?;
        step("audit (cargo audit of Cargo.lock and fuzz/Cargo.lock, offline)");
        let audit = crate::audit::audit();
        if let Err(e) = &audit {
            println!("audit: {e:#}");
        }
        // The bench's smoke test: it runs end to end (its figures are not
        // checked here; see docs/performance.md).
        step("bench smoke (cargo xtask bench --quick --no-compare)");
        let bench = status(crate::bench_command().args(["--quick", "--no-compare"]))?;
        step("install check (cargo xtask install --destdir target/install-check)");
        let install = install_check();
        if let Err(e) = &install {
            println!("install check: {e:#}");
        }
        // The original hook's own suite against ours (skipped, saying
        // why, where Debian's archive does not serve its source).
        step("oci-seccomp-bpf-hook's 00-simple.bats (cargo xtask hook-bats)");
        let bats = match crate::hook_bats::suite() {
            crate::hook_bats::Outcome::Passed => Some(true),
            crate::hook_bats::Outcome::Failed(why) => {
                println!("hook-bats: {why}");
                Some(false)
            }
            crate::hook_bats::Outcome::Skipped(why) => {
                println!("hook-bats: skipped: {why}");
                skipped_steps += 1;
                None
            }
        };
        let mut checks = vec![
            (clippy.success(), "clippy"),
            (fmt.success() && fmt_fuzz.success(), "rustfmt"),
            (audit.is_ok(), "audit"),
            (bench.success(), "bench smoke"),
            (install.is_ok(), "install check"),
        ];
        if let Some(ok) = bats {
            checks.push((ok, "hook bats"));
        }
        if !args.no_fuzz {
            // Both targets, 60 s each, from the corpus in fuzz/corpus.
            step("fuzz (cargo xtask fuzz --seconds 60)");
            let fuzz = crate::fuzz::run(&crate::fuzz::Args::default());
            if let Err(e) = &fuzz {
                println!("fuzz: {e:#}");
            }
            checks.push((fuzz.is_ok(), "fuzz"));
        }
        for (ok, name) in checks {
            if ok {
                checks_passed += 1;
            } else {
                failed_steps.push(name);
            }
        }
    }

    step("summary");
    println!("test log: {}", log_path.display());
    println!(
        "tests: {} passed, {} failed, {} ignored in {} test binaries; lint checks passed: {checks_passed}",
        totals.passed, totals.failed, totals.ignored, totals.binaries
    );
    let mut problems: Vec<String> = failed_steps.iter().map(|s| format!("{s} failed")).collect();
    if totals.passed == 0 {
        problems.push("no test ran".to_owned());
    }
    for p in &problems {
        println!("FAILED: {p}");
    }
    // The failed count includes failed steps (build, clippy, rustfmt) and a
    // test binary that died without a summary, so that the last line alone
    // tells the truth.
    let step_failures = failed_steps
        .iter()
        .filter(|s| **s != "cargo test" || totals.failed == 0)
        .count() as u64;
    println!(
        "{} passed, {} failed, {} skipped",
        totals.passed + checks_passed,
        totals.failed + step_failures,
        totals.ignored + skipped_steps
    );
    if problems.is_empty() {
        Ok(())
    } else {
        std::process::exit(1)
    }
}

/// Stages an installation and checks that every file it must install is
/// there: the binaries, man pages, completions, the systemd unit (pointing
/// at the installed recorderd), the default config and the OCI hook.
fn install_check() -> anyhow::Result<()> {
    let dest = target_dir().join("install-check");
    _ = std::fs::remove_dir_all(&dest);
    crate::install::run(&crate::install::Args {
        prefix: "/usr/local".into(),
        destdir: Some(dest.clone()),
    })?;
    let want = [
        "usr/local/bin/recorderd",
        "usr/local/bin/recorderctl",
        "usr/local/share/man/man1/recorderctl.1",
        "usr/local/share/man/man8/recorderd.8",
        "usr/local/share/bash-completion/completions/recorderctl",
        "etc/systemd/system/recorderd.service",
        "etc/recorder/recorderd.toml",
        "usr/share/containers/oci/hooks.d/recorder-oci-hook.json",
    ];
    let missing: Vec<&str> = want
        .iter()
        .copied()
        .filter(|p| !dest.join(p).exists())
        .collect();
    anyhow::ensure!(missing.is_empty(), "not installed: {}", missing.join(", "));
    let unit = std::fs::read_to_string(dest.join("etc/systemd/system/recorderd.service"))?;
    anyhow::ensure!(
        unit.contains("ExecStart=/usr/local/bin/recorderd --all"),
        "the unit does not run the installed recorderd"
    );
    println!("install check: {} files in place", want.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_libtest_summaries() {
        let mut t = Totals::default();
        for line in [
            "running 3 tests",
            "test a ... ok",
            "test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s",
            "test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.50s",
            "",
            "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s",
        ] {
            t.add_line(line);
        }
        assert_eq!(
            t,
            Totals {
                passed: 5,
                failed: 1,
                ignored: 1,
                binaries: 3
            }
        );
    }

    #[test]
    fn ignores_other_lines() {
        let mut t = Totals::default();
        t.add_line("test result of something else");
        t.add_line("   Doc-tests recorder");
        assert_eq!(t, Totals::default());
    }
}

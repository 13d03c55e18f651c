//! `cargo xtask fuzz [--seconds N] [TARGET...]`: coverage-guided fuzzing of
//! the profile parser and the control protocol with cargo-fuzz (libFuzzer,
//! nightly), each target for a bounded time.
//!
//! The targets live in `fuzz/` (its own workspace). Each run starts from the
//! corpus kept in the repository (`fuzz/corpus/<target>`), copied to a
//! scratch directory under the target dir: what the run finds goes there,
//! so the work tree stays clean (`--save-corpus` writes it back, minimised).
//! The build goes to `<target dir>/fuzz`. A crash fails the task, and its
//! input's path is printed.

use std::{
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::PathBuf,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail};

use crate::{describe, plan::Goal, run_ok, setup, step, target_dir, workspace_root};

/// The fuzz targets (`fuzz/fuzz_targets/<name>.rs`).
pub(crate) const TARGETS: [&str; 2] = ["profile", "control"];

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// How long each target runs, in seconds.
    #[arg(long, default_value_t = 60, value_name = "N")]
    pub seconds: u64,
    /// After a run without a crash, replace the inputs found before in
    /// fuzz/corpus/<target> with the run's corpus, minimised to the inputs
    /// that reach new code edges (`cargo fuzz cmin`); named seeds are kept.
    #[arg(long)]
    pub save_corpus: bool,
    /// The targets to run (default: all).
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(TARGETS))]
    pub targets: Vec<String>,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            seconds: 60,
            save_corpus: false,
            targets: Vec::new(),
        }
    }
}

/// What libFuzzer reported at the end of a run.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Inputs executed.
    pub execs: u64,
    /// Coverage: code edges reached.
    pub cov: u64,
    /// Features (edges with hit counts, compared values, ...).
    pub ft: u64,
    /// Inputs in the corpus at the end.
    pub corpus: u64,
    /// Their total size, as libFuzzer prints it (e.g. `1133Kb`).
    pub corpus_size: String,
}

impl Stats {
    /// Reads a libFuzzer status line:
    /// `#82537 DONE   cov: 6385 ft: 21007 corp: 1295/1133Kb lim: 3071 exec/s: 2662 rss: 461Mb`.
    /// Returns `None` for other lines.
    pub(crate) fn parse(line: &str) -> Option<Self> {
        let rest = line.trim().strip_prefix('#')?;
        let mut words = rest.split_whitespace();
        let execs = words.next()?.parse().ok()?;
        let mut stats = Self {
            execs,
            ..Self::default()
        };
        let mut seen_cov = false;
        while let Some(word) = words.next() {
            match word {
                "cov:" => {
                    stats.cov = words.next()?.parse().ok()?;
                    seen_cov = true;
                }
                "ft:" => stats.ft = words.next()?.parse().ok()?,
                "corp:" => {
                    let (n, size) = words.next()?.split_once('/')?;
                    stats.corpus = n.parse().ok()?;
                    stats.corpus_size = size.to_owned();
                }
                _ => {}
            }
        }
        seen_cov.then_some(stats)
    }
}

/// What one target's run came to.
#[derive(Debug, Default)]
struct Outcome {
    /// The last status line (`DONE` when the run ended normally).
    stats: Option<Stats>,
    /// `stat::number_of_executed_units` of `-print_final_stats`.
    final_execs: Option<u64>,
    /// `stat::average_exec_per_sec` of `-print_final_stats`.
    execs_per_sec: Option<u64>,
    /// The input libFuzzer wrote when a target crashed.
    crash: Option<PathBuf>,
}

impl Outcome {
    fn add_line(&mut self, line: &str) {
        if let Some(s) = Stats::parse(line) {
            self.stats = Some(s);
        } else if let Some(n) = line.trim().strip_prefix("stat::number_of_executed_units:") {
            self.final_execs = n.trim().parse().ok();
        } else if let Some(n) = line.trim().strip_prefix("stat::average_exec_per_sec:") {
            self.execs_per_sec = n.trim().parse().ok();
        } else if let Some(path) = crash_input(line) {
            self.crash = Some(path);
        }
    }
}

/// The path in libFuzzer's `Test unit written to PATH` (after a crash, a
/// leak, a timeout or running out of memory).
pub(crate) fn crash_input(line: &str) -> Option<PathBuf> {
    let (_, path) = line.split_once("Test unit written to ")?;
    let path = path.trim();
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// The fuzz workspace.
fn fuzz_dir() -> PathBuf {
    workspace_root().join("fuzz")
}

/// Where the fuzz build, the scratch corpora and the logs go.
fn fuzz_target_dir() -> PathBuf {
    target_dir().join("fuzz")
}

/// `cargo +nightly fuzz SUB TARGET` with the options build and run share
/// (they must match, or `run` rebuilds).
///
/// Without a sanitizer: the code under test is safe Rust (no `unsafe` in
/// the parsers, models and formatters), so AddressSanitizer would find
/// nothing there, while it makes the targets about 5 times slower (2 700
/// against 14 000 profiles a second here) and the cold build half as long
/// again. Panics, debug assertions and overflow checks (on in cargo-fuzz's
/// release builds) are what the targets check.
fn cargo_fuzz(sub: &str, target: &str) -> Command {
    // The rustup proxy, not $CARGO (the stable cargo running xtask), so that
    // `+nightly` selects the toolchain.
    let mut cmd = Command::new("cargo");
    cmd.current_dir(fuzz_dir())
        .args(["+nightly", "fuzz", sub, "--sanitizer", "none"])
        .arg("--target-dir")
        .arg(fuzz_target_dir());
    cmd.arg(target);
    cmd
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    // The targets link the host-free crates only (recorder-profile and
    // recorder-api, never recorder's eBPF build): nightly and cargo-fuzz.
    setup::setup_for(Goal::Fuzz, &setup::Args { no_system: true })?;
    let targets: Vec<&str> = if args.targets.is_empty() {
        TARGETS.to_vec()
    } else {
        TARGETS
            .into_iter()
            .filter(|t| args.targets.iter().any(|a| a == t))
            .collect()
    };

    step("fuzz: build (cargo-fuzz, nightly)");
    let build_started = Instant::now();
    for target in &targets {
        run_ok(&mut cargo_fuzz("build", target))?;
    }
    let built_in = build_started.elapsed();

    let mut failures = Vec::new();
    for target in &targets {
        step(&format!("fuzz: {target} for {} s", args.seconds));
        match run_target(target, args.seconds) {
            Ok(None) if args.save_corpus => {
                if let Err(e) = save_corpus(target) {
                    failures.push(format!("{target}: saving the corpus: {e:#}"));
                }
            }
            Ok(None) => {}
            Ok(Some(problem)) => failures.push(problem),
            Err(e) => failures.push(format!("{target}: {e:#}")),
        }
    }
    println!(
        "fuzz: built in {:.0} s, {} target(s) in {:.0} s in all",
        built_in.as_secs_f64(),
        targets.len(),
        started.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        for f in &failures {
            println!("FUZZ FAILED: {f}");
        }
        bail!("fuzzing found {} problem(s)", failures.len());
    }
    Ok(())
}

/// Whether a corpus file is named by libFuzzer (the SHA-1 of its content)
/// rather than by hand (a seed or a regression, kept whatever happens).
fn found_by_fuzzer(name: &str) -> bool {
    name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Minimises the scratch corpus of `target` to the inputs that reach new
/// code edges (hit counts and compared values, which libFuzzer also keeps by
/// default, would make it several times larger), and makes it the inputs
/// found by the fuzzer in fuzz/corpus/<target>.
fn save_corpus(target: &str) -> anyhow::Result<()> {
    let scratch = fuzz_target_dir().join("corpus").join(target);
    run_ok(
        cargo_fuzz("cmin", target)
            .arg(&scratch)
            .args(["--", "-use_counters=0", "-use_cmp=0"]),
    )?;
    let repo = fuzz_dir().join("corpus").join(target);
    let mut named = Vec::new();
    for entry in fs::read_dir(&repo)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if found_by_fuzzer(name) {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        } else {
            named.push(fs::read(&path)?);
        }
    }
    let (mut files, mut bytes) = (named.len(), 0);
    for entry in fs::read_dir(&scratch)? {
        let path = entry?.path();
        let content = fs::read(&path)?;
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if found_by_fuzzer(name) && !named.contains(&content) {
            fs::write(repo.join(name), &content)?;
            files += 1;
            bytes += content.len();
        }
    }
    println!(
        "fuzz {target}: saved {} ({files} files, {} KiB found by the fuzzer)",
        repo.display(),
        bytes / 1024
    );
    Ok(())
}

/// Runs one target for `seconds` over a scratch copy of its corpus; prints
/// its RESULT line. Returns what went wrong, if anything did.
fn run_target(target: &str, seconds: u64) -> anyhow::Result<Option<String>> {
    let seeds = fuzz_dir().join("corpus").join(target);
    let scratch = fuzz_target_dir().join("corpus").join(target);
    _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let mut seeded = 0;
    for entry in fs::read_dir(&seeds).with_context(|| format!("reading {}", seeds.display()))? {
        let path = entry?.path();
        if let Some(name) = path.file_name().filter(|_| path.is_file()) {
            fs::copy(&path, scratch.join(name))
                .with_context(|| format!("copying {}", path.display()))?;
            seeded += 1;
        }
    }
    let log_path = fuzz_target_dir().join(format!("{target}.log"));
    let mut log =
        fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;

    let mut cmd = cargo_fuzz("run", target);
    cmd.arg(&scratch).arg("--").args([
        // One process (libFuzzer's default: no -jobs, no -fork).
        format!("-max_total_time={seconds}"),
        // Any input that takes this long is a bug (a request is read with
        // a 5 s timeout; a profile should parse in milliseconds).
        "-timeout=20".to_owned(),
        "-print_final_stats=1".to_owned(),
    ]);
    eprintln!("$ {}", describe(&cmd));
    eprintln!(
        "(libFuzzer's output: {}; {seeded} seed inputs from {})",
        log_path.display(),
        seeds.display()
    );
    writeln!(log, "$ {}", describe(&cmd))?;
    // libFuzzer writes everything to stderr; cargo's build lines too.
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", describe(&cmd)))?;
    let stdout = child.stdout.take().context("child stdout")?;
    let out_thread = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let stderr = child.stderr.take().context("child stderr")?;
    let mut outcome = Outcome::default();
    let mut tail: Vec<String> = Vec::new();
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    while reader.read_until(b'\n', &mut buf)? != 0 {
        let line = String::from_utf8_lossy(&buf).into_owned();
        buf.clear();
        log.write_all(line.as_bytes())?;
        let line = line.trim_end();
        // The milestones, not every new input.
        if matches!(
            line.split_whitespace().nth(1),
            Some("INITED" | "pulse" | "DONE")
        ) {
            eprintln!("{line}");
        }
        outcome.add_line(line);
        tail.push(line.to_owned());
        if tail.len() > 80 {
            tail.remove(0);
        }
    }
    let status = child.wait()?;
    for line in out_thread.join().unwrap_or_default() {
        writeln!(log, "{line}")?;
        outcome.add_line(&line);
    }

    let execs = outcome
        .final_execs
        .or(outcome.stats.as_ref().map(|s| s.execs))
        .unwrap_or(0);
    let coverage = match &outcome.stats {
        Some(s) => format!(
            "cov {}, ft {}, corpus {} inputs ({})",
            s.cov, s.ft, s.corpus, s.corpus_size
        ),
        // A crash while loading the corpus comes before any status line.
        None => "no coverage figures".to_owned(),
    };
    let verdict = match (&outcome.crash, status.success()) {
        (None, true) => "no crash".to_owned(),
        (Some(_), _) => "CRASH".to_owned(),
        (None, false) => format!("FAILED ({status})"),
    };
    println!(
        "RESULT fuzz {target}: {execs} execs in {seconds} s ({}/s), {coverage}, {verdict}",
        outcome.execs_per_sec.unwrap_or(execs / seconds.max(1)),
    );
    if status.success() && outcome.crash.is_none() {
        return Ok(None);
    }
    eprintln!("--- the end of {} ---", log_path.display());
    for line in &tail {
        eprintln!("{line}");
    }
    Ok(Some(match outcome.crash {
        Some(input) => {
            let input = fuzz_dir().join(input);
            println!("fuzz {target}: the crashing input is {}", input.display());
            let mut again = cargo_fuzz("run", target);
            again.arg(&input);
            println!(
                "reproduce: cd {} && {}",
                fuzz_dir().display(),
                describe(&again)
            );
            format!("{target} crashed on {}", input.display())
        }
        None => format!(
            "{target}: cargo fuzz run failed ({status}); see {}",
            log_path.display()
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_status_lines() {
        assert_eq!(
            Stats::parse(
                "#82537\tDONE   cov: 6385 ft: 21007 corp: 1295/1133Kb lim: 3071 exec/s: 2662 rss: 461Mb"
            ),
            Some(Stats {
                execs: 82537,
                cov: 6385,
                ft: 21007,
                corpus: 1295,
                corpus_size: "1133Kb".to_owned(),
            })
        );
        assert_eq!(
            Stats::parse("#2\tINITED cov: 10 ft: 11 corp: 1/3b exec/s: 0 rss: 30Mb")
                .map(|s| (s.execs, s.corpus)),
            Some((2, 1))
        );
        for other in [
            "INFO: Seed: 190794590",
            "#1 hello",
            "Done 82537 runs in 31 second(s)",
            "",
        ] {
            assert_eq!(Stats::parse(other), None, "{other}");
        }
    }

    #[test]
    fn finds_the_crashing_input() {
        let mut o = Outcome::default();
        for line in [
            "==1234== ERROR: libFuzzer: deadly signal",
            "artifact_prefix='/r/fuzz/artifacts/profile/'; Test unit written to /r/fuzz/artifacts/profile/crash-da39a3ee",
            "stat::number_of_executed_units: 4242",
            "stat::average_exec_per_sec:     707",
        ] {
            o.add_line(line);
        }
        assert_eq!(
            o.crash,
            Some(PathBuf::from("/r/fuzz/artifacts/profile/crash-da39a3ee"))
        );
        assert_eq!((o.final_execs, o.execs_per_sec), (Some(4242), Some(707)));
        assert_eq!(crash_input("Test unit written to "), None);
    }

    /// fuzz/ links neither the recorder crate nor anything of the eBPF
    /// build (aya, aya-build: bpf-linker), so it builds and runs without
    /// them (issue 27): its lockfile names none of them.
    #[test]
    fn fuzz_links_no_recorder_and_no_ebpf_build() {
        let lock = fs::read_to_string(fuzz_dir().join("Cargo.lock")).unwrap();
        let packages: Vec<&str> = lock
            .lines()
            .filter_map(|l| l.strip_prefix("name = \""))
            .filter_map(|l| l.strip_suffix('"'))
            .collect();
        for linked in ["recorder-api", "recorder-profile", "libfuzzer-sys"] {
            assert!(packages.contains(&linked), "{linked}: {packages:?}");
        }
        for absent in ["recorder", "recorder-ebpf", "aya", "aya-build", "aya-obj"] {
            assert!(!packages.contains(&absent), "{absent}: {packages:?}");
        }
    }

    #[test]
    fn tells_found_inputs_from_named_seeds() {
        assert!(found_by_fuzzer("da39a3ee5e6b4b0d3255bfef95601890afd80709"));
        for name in ["huge-version.json", "status", "da39a3ee", ""] {
            assert!(!found_by_fuzzer(name), "{name}");
        }
    }
}

//! `cargo xtask bench`: the recorder's overhead on the syscall path.
//!
//! Every workload runs in a cgroup of its own under each configuration of
//! [`config::Config`]. Configurations are interleaved: every round sets each
//! one up, runs every workload under it and tears it down, and the order of
//! configurations rotates from round to round. Results are medians over the
//! rounds; overheads are paired by round (t(x) − t(no BPF) of the same
//! round) so that the machine's slow drifts cancel. See docs/performance.md.

mod config;
mod daemon;
mod probe;
mod report;
mod stats;
mod workload;

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use recorder::cgroup::Hierarchy;
use recorder_common::programs;

use self::{
    config::{Config, Context, Setup},
    report::{Machine, Report, Sample},
    workload::{Runner, Workload},
};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Fewer rounds and iterations: finishes in under 3 minutes.
    #[arg(long)]
    pub quick: bool,
    /// Do not compare the results with the targets (no PASS/MISS lines).
    #[arg(long)]
    pub no_compare: bool,
    /// Measured rounds (default 61, or 11 with --quick), after one warm-up round.
    #[arg(long, value_name = "N")]
    pub rounds: Option<usize>,
    /// getppid calls per thread per run (default 100000).
    #[arg(long, value_name = "N")]
    pub iterations: Option<u64>,
    /// Skip the daemon measurements (idle CPU, RSS, stop latency).
    #[arg(long)]
    pub no_daemon: bool,
    /// Where recorderd and recorderctl are for the daemon measurements.
    #[arg(long, value_name = "DIR", default_value = "target/release")]
    pub bin_dir: PathBuf,
    /// Also measure the object's raw_tp program NAME attached alone, with
    /// the map filled as in configuration 4 (for profiling variants).
    #[arg(long = "program", value_name = "NAME")]
    pub programs: Vec<String>,
}

/// Number of idle cgroups recorded besides the workload's.
const OTHER_CGROUPS: usize = 8;

/// The workspace root (xtask lives one level below it).
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_owned()
}

/// Removes the bench's cgroups however the run ends.
struct Cgroups<'a> {
    hierarchy: &'a Hierarchy,
    parent: String,
    children: Vec<String>,
}

impl Drop for Cgroups<'_> {
    fn drop(&mut self) {
        for rel in self.children.iter().chain([&self.parent]) {
            if let Err(e) = self.hierarchy.remove(rel, Duration::from_secs(5)) {
                eprintln!("bench: {e}");
            }
        }
    }
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("cargo xtask bench loads eBPF programs and creates cgroups: run it as root");
    }
    let started = Instant::now();
    // Many short rounds: this machine's speed drifts over seconds, and a
    // round compares its configurations within about a second.
    let rounds = args
        .rounds
        .unwrap_or(if args.quick { 11 } else { 61 })
        .max(1);
    let iterations = args.iterations.unwrap_or(100_000).max(1);
    let idle = Duration::from_secs(if args.quick { 5 } else { 30 });

    let root = workspace_root();
    let out_dir = root.join("target/bench");
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;

    let hierarchy = Hierarchy::detect()?;
    let parent = format!("/recorder-bench-{}", std::process::id());
    let mut cgroups = Cgroups {
        hierarchy: &hierarchy,
        parent: parent.clone(),
        children: Vec::new(),
    };
    let work = format!("{parent}/work");
    let work_dir = hierarchy.create(&work)?;
    cgroups.children.push(work.clone());
    let mut other_ids = Vec::new();
    for i in 0..OTHER_CGROUPS {
        let rel = format!("{parent}/other-{i}");
        hierarchy.create(&rel)?;
        cgroups.children.push(rel.clone());
        other_ids.push(hierarchy.id(&rel)?);
    }
    let ctx = Context {
        workload_id: hierarchy.id(&work)?,
        other_ids,
    };
    let runner = Runner::new(&out_dir, &work_dir, iterations)?;

    let mut configs: Vec<Config> = Config::ALL.to_vec();
    // Leaked: a handful of names that live as long as the run.
    configs.extend(
        args.programs
            .iter()
            .map(|p| Config::Program(Box::leak(p.clone().into_boxed_str()))),
    );
    let measured: Vec<Config> = configs.iter().copied().filter(|c| c.available()).collect();
    eprintln!(
        "bench: cgroup2 at {}, workload cgroup {work}; {} configurations × {} workloads, 1 warm-up + {rounds} rounds",
        hierarchy.mount.display(),
        measured.len(),
        Workload::ALL.len()
    );
    let mut samples = Vec::new();
    let (mut checks, mut foreign_seen, mut foreign_max) = (0usize, 0usize, 0usize);
    let mut own_programs = std::collections::BTreeSet::new();
    let mut failed = std::collections::BTreeMap::new();
    // The microbenchmarks of all configurations first, then the tar runs:
    // each pass is short, so the configurations a round compares run close
    // together in time (this machine's speed drifts). Every round loads the
    // configurations afresh: where the kernel places a program and its maps
    // shifts the timings a little, and differently on each load.
    let passes: [&[Workload]; 2] = [&[Workload::Getppid1, Workload::GetppidN], &[Workload::Tar]];
    for round in 0..=rounds {
        let label = if round == 0 {
            "warm-up".to_owned()
        } else {
            format!("round {round}/{rounds}")
        };
        eprint!("bench: {label}:");
        _ = std::io::stderr().flush();
        let mut setups = Vec::new();
        for i in 0..measured.len() {
            let config = measured[(i + round) % measured.len()];
            if failed.contains_key(config.key()) {
                continue;
            }
            // A configuration this kernel cannot set up is reported, not fatal.
            match Setup::new(config, &ctx) {
                Ok(mut setup) => {
                    // Loaded already (the floor) or at its first attach.
                    if let Some(info) = setup.sys_enter_info() {
                        own_programs.insert(info.id());
                    }
                    setups.push((config, setup));
                }
                Err(e) => {
                    eprint!(" ({} failed: {e:#})", config.key());
                    failed.insert(config.key(), format!("{e:#}"));
                }
            }
        }
        for pass in passes {
            for (seq, i) in run_order(&setups, pass).into_iter().enumerate() {
                let (config, setup) = &mut setups[i];
                let config = *config;
                if failed.contains_key(config.key()) {
                    continue;
                }
                if let Err(e) = setup.attach() {
                    eprint!(" ({} failed: {e:#})", config.key());
                    failed.insert(config.key(), format!("{e:#}"));
                    continue;
                }
                for &workload in pass {
                    let value = runner.run(workload, config.complain())?;
                    if round > 0 {
                        samples.push(Sample {
                            round,
                            seq,
                            config,
                            workload,
                            at: started.elapsed().as_secs_f64(),
                            value,
                        });
                    }
                }
                if let Some(info) = setup.sys_enter_info() {
                    own_programs.insert(info.id());
                }
                setup.detach()?;
                // Programs of others (tests, a running recorderd) on the same
                // hook slow every configuration alike; note them.
                checks += 1;
                let others = foreign_sys_enter_programs(&own_programs);
                if others > 0 {
                    foreign_seen += 1;
                    foreign_max = foreign_max.max(others);
                }
            }
        }
        drop(setups);
        eprintln!(" {} configurations", measured.len() - failed.len());
    }

    eprintln!("bench: BPF program sizes and bpf_stats run time");
    let working: Vec<Config> = measured
        .iter()
        .copied()
        .filter(|c| !failed.contains_key(c.key()))
        .collect();
    let programs = probe::programs(&ctx, &runner, &working, rounds.div_ceil(2).max(3));
    let memory = probe::memory();
    let daemon = if args.no_daemon {
        daemon::Daemon {
            note: Some("skipped (--no-daemon)".to_owned()),
            ..daemon::Daemon::default()
        }
    } else {
        eprintln!(
            "bench: daemon measurements ({} s idle window) if recorderd is built",
            idle.as_secs()
        );
        daemon::measure(&root.join(&args.bin_dir), &out_dir, &hierarchy, idle)
    };
    drop(cgroups);

    let workloads = report::workloads(&samples, &configs, runner.threads);
    let targets = if args.no_compare {
        Vec::new()
    } else {
        report::targets(&workloads)
    };
    let report = Report {
        configs,
        failed_configs: failed,
        machine: machine(),
        foreign_programs: report::Foreign {
            checks,
            seen: foreign_seen,
            max: foreign_max,
        },
        quick: args.quick,
        rounds,
        iterations,
        threads: runner.threads,
        workloads,
        targets,
        programs,
        memory,
        daemon,
    };

    let markdown = report::markdown(&report);
    let json = serde_json::to_string(&report)?;
    fs::write(out_dir.join("bench.md"), &markdown)?;
    fs::write(out_dir.join("bench.json"), format!("{json}\n"))?;
    fs::write(
        out_dir.join("samples.json"),
        serde_json::to_string(&report::samples_json(&samples))?,
    )?;
    println!("{markdown}");
    for t in &report.targets {
        let ratio = t
            .ratio
            .map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}"));
        let control = t
            .control
            .map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}"));
        println!(
            "{}: {} on {} = {ratio} (limit {:.2}; control {control})",
            t.verdict, t.what, t.workload, t.limit
        );
    }
    println!(
        "bench: done in {:.0} s; wrote {} and {}",
        started.elapsed().as_secs_f64(),
        out_dir.join("bench.md").display(),
        out_dir.join("bench.json").display()
    );
    // The last line: the JSON, on one line.
    println!("{json}");
    Ok(())
}

/// The order of a round's runs of `pass`, as indices into `setups` (which
/// are in this round's rotated order). The getppid pass puts a floor run
/// between every two others (F X1 F X2 … Xn F): this machine flips between
/// a fast and a slow state every few hundred milliseconds, and a run next
/// to a floor run is most often in the same state (see
/// `report::overhead_of`). The tar runs, long and not held to a target,
/// run once each.
fn run_order(setups: &[(Config, Setup)], pass: &[Workload]) -> Vec<usize> {
    let floor = setups.iter().position(|(c, _)| *c == Config::Floor);
    match floor {
        Some(f) if pass.iter().any(|w| w.is_microbenchmark()) => {
            let mut order = vec![f];
            for i in (0..setups.len()).filter(|&i| i != f) {
                order.extend([i, f]);
            }
            order
        }
        _ => (0..setups.len()).collect(),
    }
}

/// How many BPF programs named sys_enter* others have loaded now. The
/// bench's own (`own`, by id) are left out: they are dropped when this is
/// called, but the kernel frees a detached program only after a grace
/// period, so they may still be listed.
fn foreign_sys_enter_programs(own: &std::collections::BTreeSet<u32>) -> usize {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| {
            p.name_as_str()
                .is_some_and(|n| n.starts_with(programs::SYS_ENTER))
        })
        .filter(|p| !own.contains(&p.id()))
        .count()
}

fn machine() -> Machine {
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown CPU".to_owned(), |(_, m)| m.trim().to_owned());
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    Machine {
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        cpu,
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        date_utc: date,
    }
}

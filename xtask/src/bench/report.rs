//! The results: medians, overheads against no BPF, ratios against the floor,
//! the targets, and their markdown and JSON forms.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;

use super::{
    config::Config,
    daemon::Daemon,
    probe::{Memory, Program},
    stats::median,
    workload::Workload,
};

/// One measurement of one workload under one configuration in one round.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub round: usize,
    pub config: Config,
    pub workload: Workload,
    /// When the run ended, in seconds since the bench started.
    pub at: f64,
    pub value: f64,
}

/// Every sample, one JSON object each (`target/bench/samples.json`): the
/// raw data behind the medians, for anyone who wants another estimate.
pub fn samples_json(samples: &[Sample]) -> serde_json::Value {
    samples
        .iter()
        .map(|s| {
            serde_json::json!({
                "round": s.round,
                "config": s.config.key(),
                "workload": s.workload.key(),
                "at_s": s.at,
                "value": s.value,
            })
        })
        .collect()
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub kernel: String,
    pub cpu: String,
    pub cpus: usize,
    pub date_utc: String,
}

/// Other processes' `sys_enter*` BPF programs seen loaded between
/// configurations: they slow every configuration alike and add noise.
#[derive(Debug, Serialize)]
pub struct Foreign {
    pub checks: usize,
    /// In how many checks some were loaded.
    pub seen: usize,
    /// The most seen at once.
    pub max: usize,
}

#[derive(Debug, Serialize)]
pub struct WorkloadResult {
    pub label: String,
    pub unit: &'static str,
    /// Median per configuration; null when not measured.
    pub median: BTreeMap<&'static str, Option<f64>>,
    /// Median over rounds of t(x) − t(no_bpf) measured in the same round.
    pub overhead: BTreeMap<&'static str, Option<f64>>,
    /// overhead(x) / overhead(floor).
    pub ratio_to_floor: BTreeMap<&'static str, Option<f64>>,
}

#[derive(Debug, Serialize)]
pub struct Target {
    pub workload: &'static str,
    pub what: &'static str,
    pub ratio: Option<f64>,
    pub limit: f64,
    /// "PASS", "MISS" or "n/a".
    pub verdict: &'static str,
    /// The control's ratio on the same workload (the floor loaded again):
    /// how far from 1.00 an identical program measured in this run.
    pub control: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// The configurations measured, in table order.
    #[serde(skip)]
    pub configs: Vec<Config>,
    pub machine: Machine,
    /// Configurations that could not be set up, and why.
    pub failed_configs: BTreeMap<&'static str, String>,
    pub foreign_programs: Foreign,
    pub quick: bool,
    pub rounds: usize,
    pub iterations: u64,
    pub threads: usize,
    pub workloads: BTreeMap<&'static str, WorkloadResult>,
    /// Empty with --no-compare.
    pub targets: Vec<Target>,
    pub programs: Vec<Program>,
    pub memory: Memory,
    pub daemon: Daemon,
}

/// Median over rounds of the values of (`config`, `workload`).
fn median_of(samples: &[Sample], config: Config, workload: Workload) -> Option<f64> {
    let mut v: Vec<f64> = samples
        .iter()
        .filter(|s| s.config == config && s.workload == workload)
        .map(|s| s.value)
        .collect();
    median(&mut v)
}

/// Median over rounds of t(config) − t(no BPF), paired by round so that slow
/// drifts of the machine cancel.
fn overhead_of(samples: &[Sample], config: Config, workload: Workload) -> Option<f64> {
    let base: BTreeMap<usize, f64> = samples
        .iter()
        .filter(|s| s.config == Config::NoBpf && s.workload == workload)
        .map(|s| (s.round, s.value))
        .collect();
    let mut diffs: Vec<f64> = samples
        .iter()
        .filter(|s| s.config == config && s.workload == workload)
        .filter_map(|s| base.get(&s.round).map(|b| s.value - b))
        .collect();
    median(&mut diffs)
}

pub fn workloads(
    samples: &[Sample],
    configs: &[Config],
    threads: usize,
) -> BTreeMap<&'static str, WorkloadResult> {
    let mut out = BTreeMap::new();
    for w in Workload::ALL {
        let mut result = WorkloadResult {
            label: w.label(threads),
            unit: w.unit(),
            median: BTreeMap::new(),
            overhead: BTreeMap::new(),
            ratio_to_floor: BTreeMap::new(),
        };
        let floor = overhead_of(samples, Config::Floor, w);
        for &c in configs {
            result.median.insert(c.key(), median_of(samples, c, w));
            if c == Config::NoBpf {
                continue;
            }
            let o = overhead_of(samples, c, w);
            result.overhead.insert(c.key(), o);
            if c != Config::Floor {
                let ratio = o.zip(floor).and_then(|(o, f)| (f > 0.0).then(|| o / f));
                result.ratio_to_floor.insert(c.key(), ratio);
            }
        }
        out.insert(w.key(), result);
    }
    out
}

/// The targets, on the syscall microbenchmark (the realistic workload's
/// overheads are within its noise and only reported).
pub fn targets(workloads: &BTreeMap<&'static str, WorkloadResult>) -> Vec<Target> {
    let mut out = Vec::new();
    for w in [Workload::Getppid1, Workload::GetppidN] {
        let Some(result) = workloads.get(w.key()) else {
            continue;
        };
        let control = result
            .ratio_to_floor
            .get(Config::FloorAgain.key())
            .copied()
            .flatten();
        for (config, what, limit) in [
            (Config::Recorded, "recorded overhead(4)/overhead(2)", 1.3),
            (
                Config::Unrecorded,
                "unrecorded overhead(3)/overhead(2)",
                1.1,
            ),
        ] {
            let ratio = result.ratio_to_floor.get(config.key()).copied().flatten();
            let verdict = match ratio {
                Some(r) if r <= limit => "PASS",
                Some(_) => "MISS",
                None => "n/a",
            };
            out.push(Target {
                workload: w.key(),
                what,
                ratio,
                limit,
                verdict,
                control,
            });
        }
    }
    out
}

fn num(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.decimals$}"))
}

fn signed(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:+.decimals$}"))
}

/// The markdown report.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Machine: {} ({} CPUs), Linux {}, {}. {} rounds{}, {} getppid calls per thread per run.\n",
        r.machine.cpu,
        r.machine.cpus,
        r.machine.kernel,
        r.machine.date_utc,
        r.rounds,
        if r.quick { " (--quick)" } else { "" },
        r.iterations
    );
    let _ = write!(s, "| configuration |");
    for w in Workload::ALL {
        let unit = w.unit();
        let label = w.label(r.threads);
        let _ = write!(s, " {label}: {unit} | overhead | /floor |");
    }
    let _ = write!(s, "\n| --- |");
    for _ in Workload::ALL {
        let _ = write!(s, " ---: | ---: | ---: |");
    }
    s.push('\n');
    for &c in &r.configs {
        let _ = write!(s, "| {} |", c.label());
        for w in Workload::ALL {
            let Some(result) = r.workloads.get(w.key()) else {
                let _ = write!(s, " n/a | n/a | n/a |");
                continue;
            };
            let d = 1;
            let median = result.median.get(c.key()).copied().flatten();
            let (overhead, ratio) = match c {
                Config::NoBpf => ("—".to_owned(), "—".to_owned()),
                Config::Floor => (
                    signed(result.overhead.get(c.key()).copied().flatten(), d),
                    "1.00".to_owned(),
                ),
                _ => (
                    signed(result.overhead.get(c.key()).copied().flatten(), d),
                    num(result.ratio_to_floor.get(c.key()).copied().flatten(), 2),
                ),
            };
            let _ = write!(s, " {} | {overhead} | {ratio} |", num(median, d));
        }
        s.push('\n');
    }
    for (config, why) in &r.failed_configs {
        let _ = writeln!(s, "\nConfiguration {config} could not be set up: {why}");
    }
    if r.foreign_programs.seen > 0 {
        let _ = writeln!(
            s,
            "\nWarning: other processes had sys_enter BPF programs loaded in {} of {} checks (up to {} at once); they slow every configuration and add noise.",
            r.foreign_programs.seen, r.foreign_programs.checks, r.foreign_programs.max
        );
    }
    s.push_str("\noverhead(x) = median over rounds of t(x) − t(1) measured in the same round; /floor = overhead(x) / overhead(2).\n");

    if !r.targets.is_empty() {
        s.push_str("\n| target | workload | ratio | limit | verdict | control |\n| --- | --- | ---: | ---: | --- | ---: |\n");
        for t in &r.targets {
            let _ = writeln!(
                s,
                "| {} | {} | {} | ≤ {:.2} | {} | {} |",
                t.what,
                t.workload,
                num(t.ratio, 2),
                t.limit,
                t.verdict,
                num(t.control, 2)
            );
        }
        s.push_str("\ncontrol = the ratio of configuration 2' (the floor loaded a second time) on the same workload: an identical program, so its distance from 1.00 is this run's resolution.\n");
    }

    if !r.programs.is_empty() {
        s.push_str("\n| sys_enter program of | xlated insns | JIT bytes | verified insns | bpf_stats ns/run |\n| --- | ---: | ---: | ---: | ---: |\n");
        for p in &r.programs {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                p.config,
                p.xlated_insns.map_or("n/a".to_owned(), |v| v.to_string()),
                p.jited_bytes,
                p.verified_insns.map_or("n/a".to_owned(), |v| v.to_string()),
                num(p.run_ns, 1)
            );
        }
    }

    let m = &r.memory;
    let kib = |b: Option<u64>| b.map_or("n/a".to_owned(), |b| format!("{:.0}", b as f64 / 1024.0));
    let _ = writeln!(
        s,
        "\nKernel memory per recorded cgroup: value {} B (size_of::<SyscallSet>()); {} B per map slot with the hash map's overhead (kernel memlock accounting, preallocated: paid per capacity slot, recorded or not); map at capacity 1024: {} KiB. Fixed, at any capacity: the counting filter {} KiB and the set cache {} KiB.",
        m.value_bytes,
        num(m.bytes_per_slot, 0),
        kib(m.memlock_at_1024),
        kib(m.filter_bytes),
        kib(m.cache_bytes),
    );

    let d = &r.daemon;
    let kib = |v: Option<u64>| v.map_or("n/a".to_owned(), |v| v.to_string());
    let _ = writeln!(
        s,
        "\n| recorderd | value |\n| --- | ---: |\n| idle CPU over {:.0} s, % of one CPU | {} |\n| RSS, 0 recorded cgroups, KiB | {} |\n| RSS, 50 recorded cgroups, KiB | {} |\n| `recorderctl stop` → profile on disk, ms | {} |",
        d.idle_window_s,
        num(d.idle_cpu_percent, 3),
        kib(d.rss_kib_0),
        kib(d.rss_kib_50),
        num(d.stop_to_profile_ms, 1),
    );
    if let Some(note) = &d.note {
        let _ = writeln!(s, "\nrecorderd: n/a: {note}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overhead_is_paired_by_round() {
        let w = Workload::Getppid1;
        let s = |round, config, value| Sample {
            round,
            config,
            workload: w,
            at: 0.0,
            value,
        };
        // Round 1 is slow across the board; pairing cancels it.
        let samples = [
            s(0, Config::NoBpf, 100.0),
            s(0, Config::Floor, 120.0),
            s(0, Config::Recorded, 126.0),
            s(1, Config::NoBpf, 200.0),
            s(1, Config::Floor, 220.0),
            s(1, Config::Recorded, 226.0),
            s(2, Config::NoBpf, 100.0),
            s(2, Config::Floor, 120.0),
            s(2, Config::Recorded, 126.0),
        ];
        let results = workloads(&samples, &Config::ALL, 2);
        let r = &results[w.key()];
        assert_eq!(r.overhead["floor"], Some(20.0));
        assert_eq!(r.overhead["recorded"], Some(26.0));
        assert_eq!(r.ratio_to_floor["recorded"], Some(1.3));
        assert_eq!(r.ratio_to_floor["unrecorded"], None);
        let t = targets(&results);
        assert_eq!(t[0].verdict, "PASS");
        assert_eq!(t[1].verdict, "n/a");
    }
}

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
pub(super) struct Sample {
    pub round: usize,
    /// The run's position in its round's pass (see `run_order`).
    pub seq: usize,
    pub config: Config,
    pub workload: Workload,
    /// When the run ended, in seconds since the bench started.
    pub at: f64,
    pub value: f64,
}

/// Every sample, one JSON object each (`target/bench/samples.json`): the
/// raw data behind the medians, for anyone who wants another estimate.
pub(super) fn samples_json(samples: &[Sample]) -> serde_json::Value {
    samples
        .iter()
        .map(|s| {
            serde_json::json!({
                "round": s.round,
                "seq": s.seq,
                "config": s.config.key(),
                "workload": s.workload.key(),
                "at_s": s.at,
                "value": s.value,
            })
        })
        .collect()
}

#[derive(Debug, Serialize)]
pub(super) struct Machine {
    pub kernel: String,
    pub cpu: String,
    pub cpus: usize,
    pub date_utc: String,
}

/// Other processes' `sys_enter*` BPF programs seen loaded between
/// configurations: they slow every configuration alike and add noise.
#[derive(Debug, Serialize)]
pub(super) struct Foreign {
    pub checks: usize,
    /// In how many checks some were loaded.
    pub seen: usize,
    /// The most seen at once.
    pub max: usize,
}

#[derive(Debug, Serialize)]
pub(super) struct WorkloadResult {
    pub label: String,
    pub unit: &'static str,
    /// Median per configuration; null when not measured.
    pub median: BTreeMap<&'static str, Option<f64>>,
    /// t(x) − t(no_bpf), measured against the floor runs next to each run
    /// (see `overhead_of`).
    pub overhead: BTreeMap<&'static str, Option<f64>>,
    /// overhead(x) / overhead(floor).
    pub ratio_to_floor: BTreeMap<&'static str, Option<f64>>,
    /// The recorder's cost on a watched container, t(6) − t(6') (both under
    /// the complain-mode filter), over its cost on a recorded one,
    /// overhead(4) = t(4) − t(1), in the same run (reported, never asserted).
    pub watched_to_recorded: Option<f64>,
}

#[derive(Debug, Serialize)]
pub(super) struct Target {
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
pub(super) struct Report {
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

/// overhead(`config`) = t(config) − t(no BPF), estimated through the floor:
/// overhead(floor) + the median over rounds of d(config), where d(x) is t(x)
/// minus the floor runs next to it (the mean of those right before and
/// after it in the round, else the round's floor run), and overhead(floor)
/// = −median d(no BPF).
///
/// Why not the median of t(x) − t(no BPF) in the same round: this machine
/// flips between a fast and a slow state (getppid with no BPF at ~215 or
/// ~290 ns) every few hundred milliseconds, so two runs of a round are often
/// in different states; a run and the floor runs around it mostly are not,
/// and the pairs that straddle a flip are a minority the median ignores.
/// The ratios to the floor, 1 + median d(x) / overhead(floor), then depend
/// on how x differs from the floor measured next to it.
fn overhead_of(samples: &[Sample], config: Config, workload: Workload) -> Option<f64> {
    let floor = -median(&mut floor_differences(samples, Config::NoBpf, workload))?;
    if config == Config::Floor {
        return Some(floor);
    }
    Some(floor + median(&mut floor_differences(samples, config, workload))?)
}

/// d(`config`) in every round that has it and a floor run.
fn floor_differences(samples: &[Sample], config: Config, workload: Workload) -> Vec<f64> {
    let floors: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.config == Config::Floor && s.workload == workload)
        .collect();
    samples
        .iter()
        .filter(|s| s.config == config && s.workload == workload)
        .filter_map(|s| {
            let in_round = floors.iter().filter(|f| f.round == s.round);
            let next_to: Vec<f64> = in_round
                .clone()
                .filter(|f| f.seq.abs_diff(s.seq) == 1)
                .map(|f| f.value)
                .collect();
            let around = if next_to.is_empty() {
                in_round.map(|f| f.value).collect()
            } else {
                next_to
            };
            (!around.is_empty()).then(|| s.value - around.iter().sum::<f64>() / around.len() as f64)
        })
        .collect()
}

pub(super) fn workloads(
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
            watched_to_recorded: None,
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
        let of = |c: Config| result.overhead.get(c.key()).copied().flatten();
        result.watched_to_recorded = of(Config::Watched)
            .zip(of(Config::FilterOnly))
            .zip(of(Config::Recorded))
            .and_then(|((w, f), r)| (r > 0.0).then(|| (w - f) / r));
        out.insert(w.key(), result);
    }
    out
}

/// The targets, on the syscall microbenchmark (the realistic workload's
/// overheads are within its noise and only reported).
pub(super) fn targets(workloads: &BTreeMap<&'static str, WorkloadResult>) -> Vec<Target> {
    let mut out = Vec::new();
    for w in Workload::ALL.into_iter().filter(|w| w.is_microbenchmark()) {
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
            // recorderd's default (issue 30, section 4).
            (
                Config::Compat,
                "recorded + compat overhead(5a)/overhead(2)",
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
pub(super) fn markdown(r: &Report) -> String {
    // Writing to a String cannot fail: the `_ =` below discard `Ok(())`.
    let mut s = String::new();
    _ = writeln!(
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
    _ = write!(s, "| configuration |");
    for w in Workload::ALL {
        let unit = w.unit();
        let label = w.label(r.threads);
        _ = write!(s, " {label}: {unit} | overhead | /floor |");
    }
    _ = write!(s, "\n| --- |");
    for _ in Workload::ALL {
        _ = write!(s, " ---: | ---: | ---: |");
    }
    s.push('\n');
    for &c in &r.configs {
        _ = write!(s, "| {} |", c.label());
        for w in Workload::ALL {
            let Some(result) = r.workloads.get(w.key()) else {
                _ = write!(s, " n/a | n/a | n/a |");
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
            _ = write!(s, " {} | {overhead} | {ratio} |", num(median, d));
        }
        s.push('\n');
    }
    for (config, why) in &r.failed_configs {
        _ = writeln!(s, "\nConfiguration {config} could not be set up: {why}");
    }
    if r.foreign_programs.seen > 0 {
        _ = writeln!(
            s,
            "\nWarning: other processes had sys_enter BPF programs loaded in {} of {} checks (up to {} at once); they slow every configuration and add noise.",
            r.foreign_programs.seen, r.foreign_programs.checks, r.foreign_programs.max
        );
    }
    if r.configs.contains(&Config::Watched) {
        s.push_str("\nwatched / recorded, the recorder's cost under the complain-mode profile over its cost without, (overhead(6) − overhead(6')) / overhead(4), in this run:");
        for w in Workload::ALL {
            let ratio = r.workloads.get(w.key()).and_then(|x| x.watched_to_recorded);
            _ = write!(s, " {} {};", w.key(), num(ratio, 2));
        }
        s.push_str(" a watched container is recorded as any other, under a complain-mode profile that covers it (that filter's own cost, 6' − 1, is the runtime's, not the recorder's); drift is computed from the sets the daemon reads anyway.\n");
    }
    s.push_str("\noverhead(x) = t(x) − t(1), measured against the floor runs next to each run: overhead(2) = the median over rounds of (floor runs around the no-BPF run) − (that run), overhead(x) = overhead(2) + the median over rounds of t(x) − (floor runs around it); /floor = overhead(x) / overhead(2).\n");

    if !r.targets.is_empty() {
        s.push_str("\n| target | workload | ratio | limit | verdict | control |\n| --- | --- | ---: | ---: | --- | ---: |\n");
        for t in &r.targets {
            _ = writeln!(
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
            _ = writeln!(
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
    _ = writeln!(
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
    _ = writeln!(
        s,
        "\n| recorderd | value |\n| --- | ---: |\n| idle CPU over {:.0} s, % of one CPU | {} |\n| RSS, 0 recorded cgroups, KiB | {} |\n| RSS, 50 recorded cgroups, KiB | {} |\n| `recorderctl stop` → profile on disk, ms | {} |",
        d.idle_window_s,
        num(d.idle_cpu_percent, 3),
        kib(d.rss_kib_0),
        kib(d.rss_kib_50),
        num(d.stop_to_profile_ms, 1),
    );
    if let Some(note) = &d.note {
        _ = writeln!(s, "\nrecorderd: n/a: {note}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One round of the getppid pass: F N F R F, values in that order.
    fn round(round: usize, values: [f64; 5]) -> Vec<Sample> {
        let configs = [
            Config::Floor,
            Config::NoBpf,
            Config::Floor,
            Config::Recorded,
            Config::Floor,
        ];
        configs
            .into_iter()
            .zip(values)
            .enumerate()
            .map(|(seq, (config, value))| Sample {
                round,
                seq,
                config,
                workload: Workload::Getppid1,
                at: 0.0,
                value,
            })
            .collect()
    }

    #[test]
    fn overhead_is_measured_against_the_floor_runs_next_to_each_run() {
        let w = Workload::Getppid1;
        let samples: Vec<Sample> = [
            // Slow across the board.
            round(0, [220.0, 200.0, 220.0, 226.0, 220.0]),
            // Fast.
            round(1, [120.0, 100.0, 120.0, 126.0, 120.0]),
            // Flips from fast to slow after the no-BPF run: only the pair
            // that straddles the flip is off, and the median leaves it out.
            round(2, [120.0, 100.0, 220.0, 226.0, 220.0]),
        ]
        .concat();
        let results = workloads(&samples, &Config::ALL, 2);
        let r = &results[w.key()];
        assert_eq!(r.overhead["floor"], Some(20.0));
        assert_eq!(r.overhead["recorded"], Some(26.0));
        assert_eq!(r.ratio_to_floor["recorded"], Some(1.3));
        assert_eq!(r.ratio_to_floor["unrecorded"], None);
        let t = targets(&results);
        assert_eq!(t[0].verdict, "PASS");
        assert_eq!(t[1].verdict, "n/a");
        assert_eq!(t[2].what, "recorded + compat overhead(5a)/overhead(2)");
    }

    #[test]
    fn without_a_floor_run_next_to_it_a_run_is_measured_against_the_rounds() {
        // The tar pass: each configuration once, in rotating order.
        let s = |round, seq, config, value| Sample {
            round,
            seq,
            config,
            workload: Workload::Tar,
            at: 0.0,
            value,
        };
        let samples = [
            s(0, 0, Config::Recorded, 130.0),
            s(0, 1, Config::NoBpf, 100.0),
            s(0, 2, Config::Floor, 110.0),
            s(1, 0, Config::NoBpf, 200.0),
            s(1, 1, Config::Floor, 210.0),
            s(1, 2, Config::Recorded, 230.0),
        ];
        let r = &workloads(&samples, &Config::ALL, 2)[Workload::Tar.key()];
        assert_eq!(r.overhead["floor"], Some(10.0));
        assert_eq!(r.overhead["recorded"], Some(30.0));
        assert_eq!(r.ratio_to_floor["recorded"], Some(3.0));
    }

    #[test]
    fn watched_is_compared_with_recorded_net_of_the_filter() {
        // F N F R F F W F F 6' F: the filter costs 10, the recorder 26 with
        // or without it.
        let configs = [
            (Config::Floor, 120.0),
            (Config::NoBpf, 100.0),
            (Config::Floor, 120.0),
            (Config::Recorded, 126.0),
            (Config::Floor, 120.0),
            (Config::Watched, 136.0),
            (Config::Floor, 120.0),
            (Config::FilterOnly, 110.0),
            (Config::Floor, 120.0),
        ];
        let samples: Vec<Sample> = configs
            .into_iter()
            .enumerate()
            .map(|(seq, (config, value))| Sample {
                round: 0,
                seq,
                config,
                workload: Workload::Getppid1,
                at: 0.0,
                value,
            })
            .collect();
        let r = &workloads(&samples, &Config::ALL, 2)[Workload::Getppid1.key()];
        assert_eq!(r.overhead["watched"], Some(36.0));
        assert_eq!(r.overhead["complain_filter_only"], Some(10.0));
        assert_eq!(r.watched_to_recorded, Some(1.0));
    }
}

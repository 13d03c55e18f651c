//! Measurements beside the timing table: the kernel memory of the map, and
//! the `sys_enter` programs' size and in-kernel run time (bpf_stats).

use std::{
    fs,
    os::fd::{AsFd as _, AsRawFd as _},
};

use anyhow::Context as _;
use aya::{
    EbpfLoader,
    maps::{Array, HashMap, IterableMap as _, MapData},
};
use recorder::ebpf::Kernel;
use recorder_common::{
    CachedSet, SyscallSet,
    globals::COMPAT_STATUS_OFFSET,
    maps::{RECORDED_FILTER, SET_CACHE, SYSCALL_SETS},
};
use serde::Serialize;

use super::{
    config::{Config, Context, Setup},
    stats::median,
    workload::{Runner, Workload},
};

/// Kernel memory of the syscall-set map.
#[derive(Debug, Serialize)]
pub(super) struct Memory {
    /// `size_of::<SyscallSet>()`: the map value.
    pub value_bytes: usize,
    /// What the hash map costs per slot (element header, key and value, and
    /// bucket), from the kernel's own accounting (`memlock` in fdinfo) at two
    /// capacities.
    pub bytes_per_slot: Option<f64>,
    /// The map's `memlock` at capacity 1024 (the default).
    pub memlock_at_1024: Option<u64>,
    /// `memlock` of the fixed-size arrays in front of the map: the counting
    /// filter and the set cache (the same at any capacity).
    pub filter_bytes: Option<u64>,
    pub cache_bytes: Option<u64>,
}

pub(super) fn memory() -> Memory {
    let at = |capacity, name: &str| -> anyhow::Result<u64> {
        let zero = 0u32;
        let mut ebpf = EbpfLoader::new()
            .override_global(COMPAT_STATUS_OFFSET, &zero, true)
            .map_max_entries(SYSCALL_SETS, capacity)
            .load(Kernel::object())?;
        let map = ebpf.take_map(name).context("no such map")?;
        let of = |data: &MapData| -> anyhow::Result<u64> {
            let fd = data.fd().as_fd().as_raw_fd();
            memlock(&fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))?)
                .context("no memlock line in the map's fdinfo")
        };
        match name {
            SYSCALL_SETS => of(HashMap::<MapData, u64, SyscallSet>::try_from(map)?.map()),
            SET_CACHE => of(Array::<MapData, CachedSet>::try_from(map)?.map()),
            _ => of(Array::<MapData, u64>::try_from(map)?.map()),
        }
    };
    let small = at(1024, SYSCALL_SETS).ok();
    let large = at(4096, SYSCALL_SETS).ok();
    Memory {
        value_bytes: size_of::<SyscallSet>(),
        bytes_per_slot: small
            .zip(large)
            .map(|(s, l)| (l.saturating_sub(s)) as f64 / 3072.0),
        memlock_at_1024: small,
        filter_bytes: at(1024, RECORDED_FILTER).ok(),
        cache_bytes: at(1024, SET_CACHE).ok(),
    }
}

fn memlock(fdinfo: &str) -> Option<u64> {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The `sys_enter` program of one configuration, as the kernel sees it.
#[derive(Debug, Serialize)]
pub(super) struct Program {
    pub config: &'static str,
    /// Instructions after verification and rewriting (`bpftool prog dump xlated`).
    pub xlated_insns: Option<u32>,
    /// Bytes of JIT-compiled machine code.
    pub jited_bytes: u32,
    /// Instructions the verifier processed.
    pub verified_insns: Option<u32>,
    /// Run time per invocation under the 1-thread getppid loop, from the
    /// kernel's bpf_stats (which add their own clock reads around each run,
    /// so only the differences between configurations mean much): the
    /// median over rounds of the mean over a run.
    pub run_ns: Option<f64>,
}

/// Sets each BPF configuration up again with bpf_stats enabled, `rounds`
/// times in rotating order, runs the 1-thread microbenchmark under it and
/// keeps the median run time per invocation.
pub(super) fn programs(
    ctx: &Context,
    runner: &Runner,
    configs: &[Config],
    rounds: usize,
) -> Vec<Program> {
    let configs: Vec<Config> = configs
        .iter()
        .copied()
        .filter(|&c| !matches!(c, Config::NoBpf | Config::FilterOnly) && c.available())
        .collect();
    let mut out: Vec<Program> = Vec::new();
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    for round in 0..rounds {
        for i in 0..configs.len() {
            let k = (i + round) % configs.len();
            match program(configs[k], ctx, runner) {
                Ok(p) => {
                    if let Some(ns) = p.run_ns {
                        runs[k].push(ns);
                    }
                    if round == 0 {
                        out.push(p);
                    }
                }
                Err(e) => eprintln!("bench: bpf_stats for {}: {e:#}", configs[k].key()),
            }
        }
    }
    for p in &mut out {
        if let Some(k) = configs.iter().position(|c| c.key() == p.config) {
            p.run_ns = median(&mut runs[k]);
        }
    }
    out
}

fn program(config: Config, ctx: &Context, runner: &Runner) -> anyhow::Result<Program> {
    let mut setup = Setup::new(config, ctx)?;
    setup.attach()?;
    let before = setup
        .sys_enter_info()
        .context("no sys_enter program info")?;
    let run_ns = match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
        Ok(stats) => {
            let before = setup.sys_enter_info();
            runner.run(Workload::Getppid1, config.complain())?;
            let after = setup.sys_enter_info();
            drop(stats);
            before.zip(after).and_then(|(b, a)| {
                let runs = a.run_count().saturating_sub(b.run_count());
                let time = a.run_time().saturating_sub(b.run_time());
                (runs > 0).then(|| time.as_nanos() as f64 / runs as f64)
            })
        }
        Err(e) => {
            eprintln!("bench: cannot enable bpf_stats: {e}");
            None
        }
    };
    Ok(Program {
        config: config.key(),
        xlated_insns: before.size_translated().map(|b| b / 8),
        jited_bytes: before.size_jitted(),
        verified_insns: before.verified_instruction_count(),
        run_ns,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_memlock() {
        let fdinfo = "pos:\t0\nflags:\t02000002\nmap_type:\t1\nmemlock:\t614656\n";
        assert_eq!(super::memlock(fdinfo), Some(614_656));
        assert_eq!(super::memlock("pos: 0\n"), None);
    }
}

//! The kernel-side configurations the workloads run under, and how each is
//! set up (loaded and attached) and torn down (dropped: aya detaches the
//! programs and closes the maps).

use std::fs;

use anyhow::Context as _;
use aya::{
    Ebpf, EbpfLoader,
    maps::HashMap,
    programs::{ProgramInfo, RawTracePoint, TracePoint},
};
use recorder::ebpf::{Kernel, LoadOptions, SETS_MAP};
use recorder_common::{PHASE_WORKLOAD, SyscallSet};

/// One configuration of the overhead table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Config {
    /// 1. Nothing loaded.
    NoBpf,
    /// 2. `sys_enter_floor`, the empty raw_tp program, attached.
    Floor,
    /// 3. The recorder attached; other cgroups recorded, not the workload's.
    Unrecorded,
    /// 4. The recorder attached, the workload's cgroup recorded, compat off.
    Recorded,
    /// 5a. As 4 with 32-bit compat detection on.
    Compat,
    /// 5b. As 4 with auto mode: `cgroup_mkdir`/`cgroup_rmdir` attached and
    /// `AUTO_ENROL` = 1.
    Auto,
    /// 5c. As 4 with syscall argument recording (`--args`).
    Args,
    /// `--program NAME`: the object's raw_tp program NAME attached alone to
    /// `sys_enter`, with the map filled as in 4 (for profiling variants).
    Program(&'static str),
}

impl Config {
    pub const ALL: [Config; 7] = [
        Config::NoBpf,
        Config::Floor,
        Config::Unrecorded,
        Config::Recorded,
        Config::Compat,
        Config::Auto,
        Config::Args,
    ];

    /// Stable name, used as the JSON key.
    pub fn key(self) -> &'static str {
        match self {
            Self::NoBpf => "no_bpf",
            Self::Floor => "floor",
            Self::Unrecorded => "unrecorded",
            Self::Recorded => "recorded",
            Self::Compat => "recorded_compat",
            Self::Auto => "recorded_auto",
            Self::Args => "recorded_args",
            Self::Program(name) => name,
        }
    }

    /// Number and description for the table.
    pub fn label(self) -> String {
        match self {
            Self::Program(name) => return format!("x program {name} alone"),
            Self::NoBpf => "1 no BPF",
            Self::Floor => "2 floor: empty raw_tp",
            Self::Unrecorded => "3 recorder, cgroup not recorded",
            Self::Recorded => "4 recorder, cgroup recorded",
            Self::Compat => "5a = 4 + compat detection",
            Self::Auto => "5b = 4 + auto-mode enrolment",
            Self::Args => "5c = 4 + --args",
        }
        .to_owned()
    }

    /// Whether this build can set the configuration up.
    pub fn available(self) -> bool {
        true
    }
}

/// What every configuration needs to know.
pub struct Context {
    /// The cgroup id the workloads run in.
    pub workload_id: u64,
    /// Other, idle cgroups to record (so the map is not trivially small).
    pub other_ids: Vec<u64>,
    /// Offsets of the `cgroup:cgroup_mkdir` record fields (root, id, path).
    pub tp_offsets: [u32; 3],
}

/// A configuration set up in the kernel; dropping it tears it down.
pub enum Setup {
    None,
    Kernel(Box<Kernel>),
    Ebpf(Box<Ebpf>),
}

impl Setup {
    pub fn new(config: Config, ctx: &Context) -> anyhow::Result<Self> {
        let opts = |compat| LoadOptions {
            capacity: 1024,
            compat,
            ..LoadOptions::default()
        };
        let with_args = LoadOptions {
            args: true,
            ..opts(false)
        };
        Ok(match config {
            Config::NoBpf => Self::None,
            Config::Floor => {
                let mut kernel = Kernel::load(&opts(false))?;
                attach_raw_tp(kernel.ebpf_mut(), "sys_enter_floor")?;
                Self::Kernel(Box::new(kernel))
            }
            Config::Unrecorded | Config::Recorded | Config::Compat => {
                let mut kernel = Kernel::load(&opts(config == Config::Compat))?;
                for &id in &ctx.other_ids {
                    kernel.insert(id, id, PHASE_WORKLOAD)?;
                }
                if config != Config::Unrecorded {
                    kernel.insert(ctx.workload_id, ctx.workload_id, PHASE_WORKLOAD)?;
                }
                kernel.attach()?;
                Self::Kernel(Box::new(kernel))
            }
            Config::Auto => Self::Ebpf(Box::new(load_auto(ctx)?)),
            Config::Program(name) => {
                let mut kernel = Kernel::load(&opts(false))?;
                for &id in ctx.other_ids.iter().chain([&ctx.workload_id]) {
                    kernel.insert(id, id, PHASE_WORKLOAD)?;
                }
                attach_raw_tp(kernel.ebpf_mut(), name)?;
                Self::Kernel(Box::new(kernel))
            }
            Config::Args => {
                let mut kernel = Kernel::load(&with_args)?;
                for &id in ctx.other_ids.iter().chain([&ctx.workload_id]) {
                    kernel.insert(id, id, PHASE_WORKLOAD)?;
                }
                kernel.attach()?;
                Self::Kernel(Box::new(kernel))
            }
        })
    }

    /// The `sys_enter` program that runs on the syscall path, if any.
    pub fn sys_enter_info(&mut self, config: Config) -> Option<ProgramInfo> {
        let name = match config {
            Config::Floor => "sys_enter_floor",
            Config::Program(name) => name,
            _ => "sys_enter",
        };
        let ebpf = match self {
            Self::None => return None,
            Self::Kernel(k) => k.ebpf_mut(),
            Self::Ebpf(e) => e.as_mut(),
        };
        ebpf.program(name)?.info().ok()
    }
}

fn attach_raw_tp(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<()> {
    let prog: &mut RawTracePoint = ebpf
        .program_mut(name)
        .with_context(|| format!("the eBPF object has no program {name}"))?
        .try_into()?;
    prog.load().with_context(|| format!("loading {name}"))?;
    prog.attach("sys_enter")
        .with_context(|| format!("attaching {name}"))?;
    Ok(())
}

/// Loads the object as auto mode does (`recorder::ebpf::Kernel` has no
/// switch for it yet): `AUTO_ENROL` = 1, the cgroup tracepoints attached,
/// plus the recorder as in configuration 4.
fn load_auto(ctx: &Context) -> anyhow::Result<Ebpf> {
    let [root_off, id_off, path_off] = ctx.tp_offsets;
    let one = 1u32;
    // The cgroup2 (default) hierarchy has hierarchy id 0.
    let hierarchy = 0u32;
    // The same globals as `Kernel::load` with compat off, plus auto mode's.
    let globals = recorder::ebpf::globals(&LoadOptions {
        compat: false,
        ..LoadOptions::default()
    })?;
    let mut loader = EbpfLoader::new();
    for (name, value) in &globals {
        loader.override_global(name, value, true);
    }
    let mut ebpf = loader
        .override_global("AUTO_ENROL", &one, true)
        .override_global("CGROUP2_HIERARCHY", &hierarchy, true)
        .override_global("TP_ROOT_OFF", &root_off, true)
        .override_global("TP_ID_OFF", &id_off, true)
        .override_global("TP_PATH_OFF", &path_off, true)
        .map_max_entries(SETS_MAP, 1024)
        .load(Kernel::object())
        .context("loading the eBPF object for auto mode")?;
    {
        let mut sets: HashMap<_, u64, SyscallSet> = HashMap::try_from(
            ebpf.map_mut(SETS_MAP)
                .with_context(|| format!("the eBPF object has no map {SETS_MAP}"))?,
        )?;
        for &id in ctx.other_ids.iter().chain([&ctx.workload_id]) {
            sets.insert(id, SyscallSet::new(id, PHASE_WORKLOAD), 0)?;
        }
    }
    for name in ["cgroup_mkdir", "cgroup_rmdir"] {
        let prog: &mut TracePoint = ebpf
            .program_mut(name)
            .with_context(|| format!("the eBPF object has no program {name}"))?
            .try_into()?;
        prog.load().with_context(|| format!("loading {name}"))?;
        prog.attach("cgroup", name)
            .with_context(|| format!("attaching {name}"))?;
    }
    attach_raw_tp(&mut ebpf, "sys_enter")?;
    Ok(ebpf)
}

/// Reads the offsets of `root`, `id` and `path` in the `cgroup:cgroup_mkdir`
/// record from tracefs; the program's defaults when that fails.
pub fn tracepoint_offsets() -> [u32; 3] {
    let defaults = [8, 16, 24];
    let Ok(tracefs) = recorder::system::ensure_tracefs() else {
        return defaults;
    };
    let Ok(format) = fs::read_to_string(tracefs.join("events/cgroup/cgroup_mkdir/format")) else {
        return defaults;
    };
    parse_offsets(&format).unwrap_or(defaults)
}

fn parse_offsets(format: &str) -> Option<[u32; 3]> {
    let offset = |field: &str| {
        format.lines().find_map(|line| {
            let line = line.trim();
            let decl = line.strip_prefix("field:")?.split(';').next()?;
            if decl.split_whitespace().last()? != field {
                return None;
            }
            line.split(';')
                .find_map(|part| part.trim().strip_prefix("offset:"))?
                .parse()
                .ok()
        })
    };
    Some([offset("root")?, offset("id")?, offset("path")?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mkdir_format() {
        let format = "name: cgroup_mkdir\nformat:\n\
            \tfield:int root;\toffset:8;\tsize:4;\tsigned:1;\n\
            \tfield:int level;\toffset:12;\tsize:4;\tsigned:1;\n\
            \tfield:u64 id;\toffset:16;\tsize:8;\tsigned:0;\n\
            \tfield:__data_loc char[] path;\toffset:24;\tsize:4;\tsigned:0;\n";
        assert_eq!(parse_offsets(format), Some([8, 16, 24]));
        assert_eq!(parse_offsets("nothing"), None);
    }
}

//! The kernel-side configurations the workloads run under, and how each is
//! set up (loaded and attached) and torn down (dropped: aya detaches the
//! programs and closes the maps).

use anyhow::Context as _;
use aya::{
    Ebpf,
    programs::{ProgramInfo, RawTracePoint},
};
use recorder::ebpf::{Kernel, LoadOptions};
use recorder_common::PHASE_WORKLOAD;

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
}

/// A configuration set up in the kernel; dropping it tears it down.
pub enum Setup {
    None,
    Kernel(Box<Kernel>),
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
            Config::Auto => {
                // As `recorderd --all` loads it: AUTO_ENROL = 1 and the
                // cgroup tracepoints attached, plus the recorder as in 4.
                let mut kernel = Kernel::load(&LoadOptions {
                    auto_enrol: true,
                    ..opts(false)
                })?;
                for &id in ctx.other_ids.iter().chain([&ctx.workload_id]) {
                    kernel.insert(id, id, PHASE_WORKLOAD)?;
                }
                kernel.attach_cgroup_events()?;
                kernel.attach()?;
                Self::Kernel(Box::new(kernel))
            }
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

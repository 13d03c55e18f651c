//! The kernel-side configurations the workloads run under, and how each is
//! set up (loaded, maps filled), attached and detached between runs, and
//! torn down (dropped: aya closes the programs and maps).

use anyhow::Context as _;
use aya::{
    Ebpf,
    programs::{ProgramInfo, RawTracePoint, raw_trace_point::RawTracePointLinkId},
};
use recorder::ebpf::{Kernel, LoadOptions};
use recorder_common::{PHASE_WORKLOAD, programs};

/// One configuration of the overhead table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Config {
    /// 1. Nothing loaded.
    NoBpf,
    /// 2. `sys_enter_floor`, the empty raw_tp program, attached.
    Floor,
    /// 2'. The floor again, loaded separately: a control. Its ratio to the
    /// floor would be 1.00 on a quiet machine; how far it is off shows the
    /// resolution of the run.
    FloorAgain,
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
    /// 6: as 4, the workload under a complain-mode seccomp filter (a
    /// watched container, `recorderctl drift`). The kernel side is that of
    /// 4: drift is computed from the sets the daemon reads anyway.
    Watched,
    /// 6': as 1 (no BPF), the workload under the same filter: the filter's
    /// own cost, which 6 pays beside the recorder's.
    FilterOnly,
    /// 7: as 6 with compat detection (recorderd's default), the workload's
    /// cgroup watched for denials: the denial programs attached
    /// (`sys_exit`, `sched_process_exit`) and `sys_enter` noting what
    /// tasks enter, as while a
    /// container under an enforcing chosen profile runs. (They never look
    /// at the filter; a machine where none is watched has them detached,
    /// as in 4 and 5a.)
    Denials,
    /// `--program NAME`: the object's raw_tp program NAME attached alone to
    /// `sys_enter`, with the map filled as in 4 (for profiling variants).
    Program(&'static str),
}

impl Config {
    pub(super) const ALL: [Config; 11] = [
        Config::NoBpf,
        Config::Floor,
        Config::FloorAgain,
        Config::Unrecorded,
        Config::Recorded,
        Config::Compat,
        Config::Auto,
        Config::Args,
        Config::Watched,
        Config::FilterOnly,
        Config::Denials,
    ];

    /// Stable name, used as the JSON key.
    pub(super) fn key(self) -> &'static str {
        match self {
            Self::NoBpf => "no_bpf",
            Self::Floor => "floor",
            Self::FloorAgain => "floor_again",
            Self::Unrecorded => "unrecorded",
            Self::Recorded => "recorded",
            Self::Compat => "recorded_compat",
            Self::Auto => "recorded_auto",
            Self::Args => "recorded_args",
            Self::Watched => "watched",
            Self::FilterOnly => "complain_filter_only",
            Self::Denials => "watched_denials",
            Self::Program(name) => name,
        }
    }

    /// Number and description for the table.
    pub(super) fn label(self) -> String {
        match self {
            Self::Program(name) => return format!("x program {name} alone"),
            Self::NoBpf => "1 no BPF",
            Self::Floor => "2 floor: empty raw_tp",
            Self::FloorAgain => "2' floor again (control: resolution)",
            Self::Unrecorded => "3 recorder, cgroup not recorded",
            Self::Recorded => "4 recorder, cgroup recorded",
            Self::Compat => "5a = 4 + compat detection",
            Self::Auto => "5b = 4 + auto-mode enrolment",
            Self::Args => "5c = 4 + --args",
            Self::Watched => "6 = 4 under a complain-mode profile (watched)",
            Self::FilterOnly => "6' = 1 under the same profile (its own cost)",
            Self::Denials => "7 = 6 + compat + denials watched (enforcing profile)",
        }
        .to_owned()
    }

    /// Whether the workload runs under a complain-mode seccomp filter.
    pub(super) fn complain(self) -> bool {
        matches!(self, Self::Watched | Self::FilterOnly | Self::Denials)
    }

    /// Whether this build can set the configuration up.
    pub(super) fn available(self) -> bool {
        true
    }
}

/// What every configuration needs to know.
pub(super) struct Context {
    /// The cgroup id the workloads run in.
    pub workload_id: u64,
    /// Other, idle cgroups to record (so the map is not trivially small).
    pub other_ids: Vec<u64>,
}

/// A configuration loaded in the kernel (maps filled), attached only
/// between [`Setup::attach`] and [`Setup::detach`], so that the rounds can
/// switch configurations in milliseconds; dropping it unloads it.
pub(super) struct Setup {
    config: Config,
    kernel: Option<Box<Kernel>>,
    /// The link of a lone raw_tp program (floor, `--program`) while attached.
    link: Option<RawTracePointLinkId>,
    /// The workload's cgroup (watched for denials in 7).
    workload_id: u64,
}

impl Setup {
    pub(super) fn new(config: Config, ctx: &Context) -> anyhow::Result<Self> {
        let mut setup = Self {
            config,
            kernel: None,
            link: None,
            workload_id: ctx.workload_id,
        };
        if matches!(config, Config::NoBpf | Config::FilterOnly) {
            return Ok(setup);
        }
        // Auto: as `recorderd --all` loads it (AUTO_ENROL = 1, the cgroup
        // tracepoints attached with the recorder).
        let mut kernel = Kernel::load(&LoadOptions {
            capacity: 1024,
            compat: matches!(config, Config::Compat | Config::Denials),
            auto_enrol: config == Config::Auto,
            args: config == Config::Args,
            ..LoadOptions::default()
        })?;
        if let Some(name) = lone_program(config) {
            load_raw_tp(kernel.ebpf_mut(), name)?;
        }
        // The floor's maps stay empty; the others record the idle cgroups,
        // and the workload's except in configuration 3.
        if !matches!(config, Config::Floor | Config::FloorAgain) {
            for &id in &ctx.other_ids {
                kernel.insert(id, id, PHASE_WORKLOAD)?;
            }
            if config != Config::Unrecorded {
                kernel.insert(ctx.workload_id, ctx.workload_id, PHASE_WORKLOAD)?;
            }
        }
        setup.kernel = Some(Box::new(kernel));
        Ok(setup)
    }

    /// Attaches the configuration's programs.
    pub(super) fn attach(&mut self) -> anyhow::Result<()> {
        let Some(kernel) = self.kernel.as_mut() else {
            return Ok(());
        };
        match lone_program(self.config) {
            Some(name) => {
                if self.link.is_none() {
                    let link = raw_tp(kernel.ebpf_mut(), name)?
                        .attach("sys_enter")
                        .with_context(|| format!("attaching {name}"))?;
                    self.link = Some(link);
                }
            }
            None => {
                if self.config == Config::Auto {
                    kernel.attach_cgroup_events()?;
                }
                kernel.attach()?;
                if self.config == Config::Denials {
                    kernel.watch_denials(&[self.workload_id])?;
                }
            }
        }
        Ok(())
    }

    /// Detaches everything [`Setup::attach`] attached; the maps stay.
    pub(super) fn detach(&mut self) -> anyhow::Result<()> {
        let Some(kernel) = self.kernel.as_mut() else {
            return Ok(());
        };
        match (self.link.take(), lone_program(self.config)) {
            (Some(link), Some(name)) => raw_tp(kernel.ebpf_mut(), name)?
                .detach(link)
                .with_context(|| format!("detaching {name}"))?,
            _ => {
                // Unwatched: the denial programs are detached.
                kernel.watch_denials(&[])?;
                kernel.detach_all();
            }
        }
        Ok(())
    }

    /// The `sys_enter` program that runs on the syscall path, if any.
    pub(super) fn sys_enter_info(&mut self) -> Option<ProgramInfo> {
        let name = lone_program(self.config).unwrap_or(programs::SYS_ENTER);
        let ebpf = self.kernel.as_mut()?.ebpf_mut();
        ebpf.program(name)?.info().ok()
    }
}

/// The program a configuration attaches alone to `sys_enter` in place of
/// the recorder (the floor, `--program`), if any.
fn lone_program(config: Config) -> Option<&'static str> {
    match config {
        Config::Floor | Config::FloorAgain => Some(programs::SYS_ENTER_FLOOR),
        Config::Program(name) => Some(name),
        _ => None,
    }
}

fn raw_tp<'a>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut RawTracePoint> {
    Ok(ebpf
        .program_mut(name)
        .with_context(|| format!("the eBPF object has no program {name}"))?
        .try_into()?)
}

fn load_raw_tp(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<()> {
    raw_tp(ebpf, name)?
        .load()
        .with_context(|| format!("loading {name}"))
}

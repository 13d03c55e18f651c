//! The exposition: on every scrape, the snapshot and the counters as the
//! metric families of docs/metrics.md, in their order, each from a small
//! table (name, help, unit, type, samples); and the classic Prometheus text
//! format for scrapers that do not ask for OpenMetrics.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _, MetricEncoder},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Unit,
};

use super::snapshot::{
    ContainerSeries, Counters, ImageSeries, RegistrySeries, SharedSnapshot, Snapshot, read,
};
use crate::ebpf::ProgramStats;

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Encodes the snapshot and the counters on every scrape.
#[derive(Debug)]
pub(super) struct Exporter {
    pub(super) snapshot: SharedSnapshot,
    pub(super) counters: Arc<Counters>,
    /// recorderd turned the kernel's BPF statistics on.
    pub(super) bpf_stats: bool,
    pub(super) started: SystemTime,
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// One sample's value, typed as prometheus-client encodes it.
#[derive(Clone, Copy, Debug)]
enum Value {
    Gauge(i64),
    GaugeF64(f64),
    Counter(u64),
    CounterF64(f64),
}

impl Value {
    fn metric_type(self) -> MetricType {
        match self {
            Self::Gauge(_) | Self::GaugeF64(_) => MetricType::Gauge,
            Self::Counter(_) | Self::CounterF64(_) => MetricType::Counter,
        }
    }

    fn encode(self, m: MetricEncoder<'_>) -> Result<(), fmt::Error> {
        match self {
            Self::Gauge(v) => ConstGauge::new(v).encode(m),
            Self::GaugeF64(v) => ConstGauge::new(v).encode(m),
            Self::Counter(v) => ConstCounter::new(v).encode(m),
            Self::CounterF64(v) => ConstCounter::new(v).encode(m),
        }
    }
}

/// A sample's labels, in order.
type Labels<'a> = Vec<(&'static str, &'a str)>;

/// A family's samples: one without labels, or one per label set (none at
/// all still writes the family's help and type).
#[derive(Debug)]
enum Samples<'a> {
    One(Value),
    Labelled(Vec<(Labels<'a>, Value)>),
}

/// One metric family of docs/metrics.md with this scrape's samples.
#[derive(Debug)]
struct Family<'a> {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    kind: MetricType,
    samples: Samples<'a>,
}

impl<'a> Family<'a> {
    /// A family of one sample without labels.
    fn one(name: &'static str, help: &'static str, unit: Option<Unit>, value: Value) -> Self {
        Self {
            name,
            help,
            unit,
            kind: value.metric_type(),
            samples: Samples::One(value),
        }
    }

    /// A family of `kind` with a sample per label set.
    fn labelled(
        name: &'static str,
        help: &'static str,
        unit: Option<Unit>,
        kind: MetricType,
        samples: Vec<(Labels<'a>, Value)>,
    ) -> Self {
        Self {
            name,
            help,
            unit,
            kind,
            samples: Samples::Labelled(samples),
        }
    }

    fn encode(&self, e: &mut DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let mut m = e.encode_descriptor(self.name, self.help, self.unit.as_ref(), self.kind)?;
        match &self.samples {
            Samples::One(value) => value.encode(m),
            Samples::Labelled(samples) => {
                for (labels, value) in samples {
                    debug_assert_eq!(
                        value.metric_type().as_str(),
                        self.kind.as_str(),
                        "{}",
                        self.name
                    );
                    // Label values name containers and images: nothing a
                    // terminal acts on reaches a scrape (the encoder escapes
                    // only `\`, `"` and newlines).
                    let labels: Vec<(&str, std::borrow::Cow<'_, str>)> = labels
                        .iter()
                        .map(|(k, v)| (*k, crate::escape::controls(v)))
                        .collect();
                    value.encode(m.encode_family(&labels)?)?;
                }
                Ok(())
            }
        }
    }
}

/// `usize` as a gauge.
fn gauge_of(n: usize) -> Value {
    Value::Gauge(n as i64)
}

/// What the counters held at a scrape.
struct Counted {
    profiles_written: u64,
    write_errors: u64,
    index_failures: u64,
    map_full_refusals: u64,
    /// By parent.
    unrecognised: BTreeMap<String, u64>,
}

impl Counted {
    fn read(c: &Counters) -> Self {
        Self {
            profiles_written: load(&c.profiles_written),
            write_errors: load(&c.write_errors),
            index_failures: load(&c.index_failures),
            map_full_refusals: load(&c.map_full_refusals),
            unrecognised: c
                .unrecognised
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

impl Exporter {
    /// Every family, in the order of the exposition.
    fn families<'a>(
        &self,
        s: &'a Snapshot,
        counted: &'a Counted,
        keys: &'a [String],
    ) -> Vec<Family<'a>> {
        let [container_syscalls, outside_profile, denied] = container_families(&s.containers, keys);
        let mut all = self.daemon_families(s);
        all.push(recordings_family(s, counted));
        all.push(container_syscalls);
        all.extend(image_families(&s.images));
        all.extend(registry_families(s.registry.as_ref()));
        all.push(outside_profile);
        all.push(denied);
        all.extend(error_families(s, counted));
        all.extend(self.kernel_families(s));
        all.extend(program_families(&s.programs));
        all
    }

    /// The daemon itself: its version, start and last refresh.
    fn daemon_families<'a>(&self, s: &Snapshot) -> Vec<Family<'a>> {
        vec![
            Family::labelled(
                "recorder_build_info",
                "Always 1; the version of recorderd as a label.",
                None,
                MetricType::Gauge,
                vec![(vec![("version", crate::VERSION)], Value::Gauge(1))],
            ),
            Family::one(
                "recorder_start_time",
                "When recorderd started, in seconds since the Unix epoch.",
                Some(Unit::Seconds),
                Value::GaugeF64(unix_secs(self.started)),
            ),
            Family::one(
                "recorder_last_refresh_timestamp",
                "When the daemon last refreshed these metrics, in seconds since the Unix epoch (0: not yet); a stale value means the daemon is stuck.",
                Some(Unit::Seconds),
                Value::GaugeF64(s.refreshed.map_or(0.0, unix_secs)),
            ),
        ]
    }

    /// The kernel side: pending writes, the attachment, the map, whether
    /// BPF statistics are on.
    fn kernel_families<'a>(&self, s: &Snapshot) -> Vec<Family<'a>> {
        let k = &s.kernel;
        [
            (
                "recorder_pending_writes",
                "Recordings whose profile could not be written yet (retried on every tick).",
                gauge_of(s.pending_writes),
            ),
            (
                "recorder_attached",
                "1 when the syscall recorder is attached to raw_syscalls:sys_enter, else 0.",
                Value::Gauge(i64::from(k.attached)),
            ),
            (
                "recorder_map_entries",
                "Cgroups in the recording map.",
                gauge_of(k.entries),
            ),
            (
                "recorder_map_capacity",
                "How many cgroups the recording map can hold (config: capacity).",
                Value::Gauge(i64::from(k.capacity)),
            ),
            (
                "recorder_bpf_stats_enabled",
                "1 when recorderd enabled the kernel's BPF run-time statistics (--bpf-stats), else 0.",
                Value::Gauge(i64::from(self.bpf_stats)),
            ),
        ]
        .into_iter()
        .map(|(name, help, value)| Family::one(name, help, None, value))
        .collect()
    }
}

/// Recordings by state.
fn recordings_family<'a>(s: &Snapshot, counted: &Counted) -> Family<'a> {
    Family::labelled(
        "recorder_recordings",
        "Recordings by state: active (in progress) and finished (profiles written since the daemon started).",
        None,
        MetricType::Gauge,
        vec![
            (vec![("state", "active")], gauge_of(s.active)),
            (
                vec![("state", "finished")],
                Value::Gauge(i64::try_from(counted.profiles_written).unwrap_or(i64::MAX)),
            ),
        ],
    )
}

/// The per-container families, the only place that reads a
/// [`ContainerSeries`]: `recorder_container_syscalls` (recordings in
/// progress), `recorder_container_syscalls_outside_profile` (watched
/// ones, ended or not) and `recorder_container_denied_syscalls_total`
/// (watched under an enforcing profile, ended or not); `keys` are the
/// containers' keys, in their order.
fn container_families<'a>(
    containers: &'a [ContainerSeries],
    keys: &'a [String],
) -> [Family<'a>; 3] {
    let mut syscalls = Vec::new();
    let mut outside = Vec::new();
    let mut denied = Vec::new();
    for (c, key) in containers.iter().zip(keys) {
        let (name, image) = (&c.container.name, &c.container.image);
        if !c.ended {
            let mut labels = vec![("container_id", key.as_str())];
            if let Some(name) = name {
                labels.push(("container_name", name.as_str()));
            }
            syscalls.push((labels, gauge_of(c.syscalls)));
        }
        if let Some(n) = c.outside {
            let labels = vec![
                ("id", key.as_str()),
                ("name", name.as_deref().unwrap_or("")),
                ("image", image.as_deref().unwrap_or("")),
            ];
            outside.push((labels, gauge_of(n)));
        }
        if let Some(n) = c.denied {
            let labels = vec![
                ("id", key.as_str()),
                ("name", name.as_deref().unwrap_or("")),
                ("image", image.as_deref().unwrap_or("")),
            ];
            denied.push((labels, Value::Counter(n)));
        }
    }
    [
        Family::labelled(
            "recorder_container_syscalls",
            "Distinct syscalls recorded so far per recorded container (removed when its profile is written).",
            None,
            MetricType::Gauge,
            syscalls,
        ),
        Family::labelled(
            "recorder_container_syscalls_outside_profile",
            "Distinct syscalls a watched container (one under a chosen seccomp profile) made outside that profile (kept drift_series_secs after its recording ends).",
            None,
            MetricType::Gauge,
            outside,
        ),
        Family::labelled(
            "recorder_container_denied_syscalls",
            "Syscalls an enforcing chosen profile denied a watched container, and its tasks the profile killed (kept drift_series_secs after its recording ends).",
            None,
            MetricType::Counter,
            denied,
        ),
    ]
}

/// `recorder_image_*`: a row per image profile in each.
fn image_families(images: &[ImageSeries]) -> Vec<Family<'_>> {
    type ImageValue = fn(&ImageSeries) -> i64;
    let families: [(&str, &str, ImageValue); 4] = [
        (
            "recorder_image_syscalls",
            "Distinct syscalls the image profile allows (the union of its recorded containers).",
            |i| i64::try_from(i.syscalls).unwrap_or(i64::MAX),
        ),
        (
            "recorder_image_runs",
            "Containers recorded into the image profile.",
            |i| i64::try_from(i.runs).unwrap_or(i64::MAX),
        ),
        (
            "recorder_image_failed_runs",
            "Of those, runs that failed (their workload never started, or exited non-zero within ready_min_run_secs): left out of the profile.",
            |i| i64::try_from(i.failed_runs).unwrap_or(i64::MAX),
        ),
        (
            "recorder_image_ready",
            "1 when the image profile meets the ready rule ([images] in recorderd.toml), else 0.",
            |i| i64::from(i.ready),
        ),
    ];
    families
        .into_iter()
        .map(|(name, help, value)| {
            let samples = images
                .iter()
                .map(|i| (vec![("image", i.image.as_str())], Value::Gauge(value(i))))
                .collect();
            Family::labelled(name, help, None, MetricType::Gauge, samples)
        })
        .collect()
}

/// `recorder_registry_*`, only while pushing to a registry.
fn registry_families<'a>(r: Option<&RegistrySeries>) -> Vec<Family<'a>> {
    let Some(r) = r else {
        return Vec::new();
    };
    vec![
        Family::labelled(
            "recorder_registry_pushes",
            "Contributions pushed to the registry, by result (ok, failed: retried with backoff).",
            None,
            MetricType::Counter,
            vec![
                (vec![("result", "ok")], Value::Counter(r.pushed)),
                (vec![("result", "failed")], Value::Counter(r.failed)),
            ],
        ),
        Family::one(
            "recorder_registry_last_success_time",
            "When a push to the registry last succeeded, in seconds since the Unix epoch (0: never).",
            Some(Unit::Seconds),
            Value::Gauge(i64::try_from(r.last_success).unwrap_or(i64::MAX)),
        ),
        Family::one(
            "recorder_registry_pending",
            "Contributions waiting to be pushed (the registry failed; retried with backoff).",
            None,
            Value::Gauge(i64::try_from(r.pending).unwrap_or(i64::MAX)),
        ),
    ]
}

/// Profiles written, errors, unrecognised cgroups and the kernel's
/// enrolments.
fn error_families<'a>(s: &Snapshot, counted: &'a Counted) -> Vec<Family<'a>> {
    let k = &s.kernel;
    let errors = [
        ("profile_write", counted.write_errors),
        (
            "map_full",
            counted.map_full_refusals.saturating_add(k.enrol_failed),
        ),
        ("index", counted.index_failures),
    ];
    vec![
        Family::one(
            "recorder_profiles_written",
            "Profiles written since the daemon started.",
            None,
            Value::Counter(counted.profiles_written),
        ),
        Family::labelled(
            "recorder_errors",
            "Errors by reason: profile_write (a profile or image profile could not be written; retried), map_full (a container could not be recorded because the recording map was full), index (the profile index was found damaged, or failed).",
            None,
            MetricType::Counter,
            errors
                .into_iter()
                .map(|(reason, n)| (vec![("reason", reason)], Value::Counter(n)))
                .collect(),
        ),
        Family::labelled(
            "recorder_unrecognised_cgroups",
            "Cgroups made under a container runtime's parent (e.g. a containerd namespace) that no recogniser accepted, so not recorded; by parent.",
            None,
            MetricType::Counter,
            counted
                .unrecognised
                .iter()
                .map(|(parent, n)| (vec![("parent", parent.as_str())], Value::Counter(*n)))
                .collect(),
        ),
        Family::one(
            "recorder_enrol_failures",
            "New containers the kernel could not enrol because the recording map was full (auto mode).",
            None,
            Value::Counter(k.enrol_failed),
        ),
        Family::one(
            "recorder_enrolments",
            "Cgroups the kernel enrolled by itself (auto mode and sub-cgroups of recorded containers).",
            None,
            Value::Counter(k.enrolled),
        ),
    ]
}

/// Per BPF program: run time, runs, recursion misses (where the kernel
/// counts them).
fn program_families(programs: &[ProgramStats]) -> Vec<Family<'_>> {
    type ProgramValue = fn(&ProgramStats) -> Option<Value>;
    let families: [(&str, &str, Option<Unit>, ProgramValue); 3] = [
        (
            "recorder_bpf_run_time",
            "Time the kernel spent running each of recorder's BPF programs (grows only while BPF statistics are enabled).",
            Some(Unit::Seconds),
            |p| Some(Value::CounterF64(p.run_time_ns as f64 / 1e9)),
        ),
        (
            "recorder_bpf_run_count",
            "Runs of each of recorder's BPF programs (grows only while BPF statistics are enabled).",
            None,
            |p| Some(Value::Counter(p.run_count)),
        ),
        (
            "recorder_bpf_recursion_misses",
            "Runs of each of recorder's BPF programs the kernel skipped because the program was already running on that CPU; for sys_enter, syscalls that went unrecorded (absent before Linux 5.12).",
            None,
            |p| p.recursion_misses.map(Value::Counter),
        ),
    ];
    families
        .into_iter()
        .map(|(name, help, unit, value)| {
            let samples = programs
                .iter()
                .filter_map(|p| Some((vec![("program", p.name.as_str())], value(p)?)))
                .collect();
            Family::labelled(name, help, unit, MetricType::Counter, samples)
        })
        .collect()
}

impl Collector for Exporter {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let s = read(&self.snapshot);
        let counted = Counted::read(&self.counters);
        // The containers' keys, which the labels borrow.
        let keys: Vec<String> = s.containers.iter().map(|c| c.container.key()).collect();
        for family in self.families(&s, &counted, &keys) {
            family.encode(&mut e)?;
        }
        Ok(())
    }
}

/// Rewrites OpenMetrics text (as `prometheus-client` writes it) into the
/// classic Prometheus text format 0.0.4, for scrapers that do not ask for
/// OpenMetrics (promtool, curl): counter families are named with their
/// `_total` suffix, and `# UNIT` and `# EOF` go.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prometheus_client::registry::Registry;

    use super::*;
    use crate::{
        container::{Container, ContainerRef, Runtime},
        ebpf::KernelInfo,
        metrics::store,
    };

    /// When the sample's daemon started, and when it last refreshed.
    const STARTED: u64 = 1_700_000_000;
    const REFRESHED: u64 = 1_700_000_090;

    fn sample() -> String {
        let snapshot: SharedSnapshot = Arc::default();
        store(
            &snapshot,
            Snapshot {
                refreshed: Some(UNIX_EPOCH + Duration::from_secs(REFRESHED)),
                kernel: KernelInfo {
                    entries: 2,
                    filter_count: 2,
                    cached: 1,
                    capacity: 8,
                    attached: true,
                    enrolled: 3,
                    enrol_failed: 1,
                },
                active: 1,
                pending_writes: 0,
                unhealthy: None,
                containers: vec![
                    ContainerSeries {
                        owner: 7,
                        container: Container {
                            name: Some("web \"1\"".to_owned()),
                            image: Some("busybox:1".to_owned()),
                            ..ContainerRef {
                                id: "abc".to_owned(),
                                runtime: Runtime::Docker,
                                ..Default::default()
                            }
                            .into()
                        },
                        syscalls: 42,
                        outside: Some(2),
                        denied: Some(5),
                        ended: false,
                    },
                    // Not watched, no name: no drift row, no name label.
                    ContainerSeries {
                        owner: 8,
                        container: Container {
                            ..ContainerRef {
                                id: "def".to_owned(),
                                runtime: Runtime::Docker,
                                ..Default::default()
                            }
                            .into()
                        },
                        syscalls: 7,
                        outside: None,
                        denied: None,
                        ended: false,
                    },
                    // Ended: only its drift row is left.
                    ContainerSeries {
                        owner: 9,
                        container: Container {
                            ..ContainerRef {
                                id: "ghi".to_owned(),
                                runtime: Runtime::Docker,
                                ..Default::default()
                            }
                            .into()
                        },
                        syscalls: 5,
                        outside: Some(1),
                        denied: None,
                        ended: true,
                    },
                ],
                images: vec![ImageSeries {
                    image: "test/img@sha256:ab".to_owned(),
                    syscalls: 40,
                    runs: 6,
                    failed_runs: 2,
                    ready: true,
                }],
                registry: None,
                programs: vec![
                    ProgramStats {
                        name: "sys_enter".to_owned(),
                        run_time_ns: 1_500_000_000,
                        run_count: 9,
                        recursion_misses: Some(3),
                    },
                    // A kernel that does not count recursion misses.
                    ProgramStats {
                        name: "cgroup_mkdir".to_owned(),
                        run_time_ns: 250_000,
                        run_count: 2,
                        recursion_misses: None,
                    },
                ],
            },
        );
        let counters = Arc::new(Counters::default());
        counters.profiles_written.store(5, Ordering::Relaxed);
        counters.write_errors.store(4, Ordering::Relaxed);
        counters.unrecognised("/k8s.io");
        counters.unrecognised("/k8s.io");
        // A hostile parent: quotes, and an ESC that would act on a terminal.
        counters.unrecognised("/moby \"x\"\x1b[2J");
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Exporter {
            snapshot,
            counters,
            bpf_stats: true,
            started: UNIX_EPOCH + Duration::from_secs(STARTED),
        }));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn exporter_writes_the_snapshot() {
        let text = sample();
        for want in [
            "recorder_container_syscalls{container_id=\"abc\",container_name=\"web \\\"1\\\"\"} 42",
            "recorder_container_syscalls_outside_profile{id=\"abc\",name=\"web \\\"1\\\"\",image=\"busybox:1\"} 2",
            "recorder_profiles_written_total 5",
            "recorder_recordings{state=\"finished\"} 5",
            "recorder_errors_total{reason=\"map_full\"} 1",
            "recorder_bpf_run_time_seconds_total{program=\"sys_enter\"} 1.5",
            "recorder_bpf_run_count_total{program=\"sys_enter\"} 9",
            "recorder_bpf_recursion_misses_total{program=\"sys_enter\"} 3",
            "recorder_map_capacity 8",
            "recorder_image_syscalls{image=\"test/img@sha256:ab\"} 40",
            "recorder_image_runs{image=\"test/img@sha256:ab\"} 6",
            "recorder_image_failed_runs{image=\"test/img@sha256:ab\"} 2",
            "recorder_image_ready{image=\"test/img@sha256:ab\"} 1",
            "# EOF",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }

    /// The whole exposition, byte for byte: the families in their order,
    /// their help, units and types, labels and values (docs/metrics.md).
    #[test]
    fn exposition_is_exactly_this() {
        let want = EXPOSITION.replace("{VERSION}", crate::VERSION);
        assert_eq!(sample(), want);
    }

    const EXPOSITION: &str = r##"# HELP recorder_build_info Always 1; the version of recorderd as a label.
# TYPE recorder_build_info gauge
recorder_build_info{version="{VERSION}"} 1
# HELP recorder_start_time_seconds When recorderd started, in seconds since the Unix epoch.
# TYPE recorder_start_time_seconds gauge
# UNIT recorder_start_time_seconds seconds
recorder_start_time_seconds 1700000000.0
# HELP recorder_last_refresh_timestamp_seconds When the daemon last refreshed these metrics, in seconds since the Unix epoch (0: not yet); a stale value means the daemon is stuck.
# TYPE recorder_last_refresh_timestamp_seconds gauge
# UNIT recorder_last_refresh_timestamp_seconds seconds
recorder_last_refresh_timestamp_seconds 1700000090.0
# HELP recorder_recordings Recordings by state: active (in progress) and finished (profiles written since the daemon started).
# TYPE recorder_recordings gauge
recorder_recordings{state="active"} 1
recorder_recordings{state="finished"} 5
# HELP recorder_container_syscalls Distinct syscalls recorded so far per recorded container (removed when its profile is written).
# TYPE recorder_container_syscalls gauge
recorder_container_syscalls{container_id="abc",container_name="web \"1\""} 42
recorder_container_syscalls{container_id="def"} 7
# HELP recorder_image_syscalls Distinct syscalls the image profile allows (the union of its recorded containers).
# TYPE recorder_image_syscalls gauge
recorder_image_syscalls{image="test/img@sha256:ab"} 40
# HELP recorder_image_runs Containers recorded into the image profile.
# TYPE recorder_image_runs gauge
recorder_image_runs{image="test/img@sha256:ab"} 6
# HELP recorder_image_failed_runs Of those, runs that failed (their workload never started, or exited non-zero within ready_min_run_secs): left out of the profile.
# TYPE recorder_image_failed_runs gauge
recorder_image_failed_runs{image="test/img@sha256:ab"} 2
# HELP recorder_image_ready 1 when the image profile meets the ready rule ([images] in recorderd.toml), else 0.
# TYPE recorder_image_ready gauge
recorder_image_ready{image="test/img@sha256:ab"} 1
# HELP recorder_container_syscalls_outside_profile Distinct syscalls a watched container (one under a chosen seccomp profile) made outside that profile (kept drift_series_secs after its recording ends).
# TYPE recorder_container_syscalls_outside_profile gauge
recorder_container_syscalls_outside_profile{id="abc",name="web \"1\"",image="busybox:1"} 2
recorder_container_syscalls_outside_profile{id="ghi",name="",image=""} 1
# HELP recorder_container_denied_syscalls Syscalls an enforcing chosen profile denied a watched container, and its tasks the profile killed (kept drift_series_secs after its recording ends).
# TYPE recorder_container_denied_syscalls counter
recorder_container_denied_syscalls_total{id="abc",name="web \"1\"",image="busybox:1"} 5
# HELP recorder_profiles_written Profiles written since the daemon started.
# TYPE recorder_profiles_written counter
recorder_profiles_written_total 5
# HELP recorder_errors Errors by reason: profile_write (a profile or image profile could not be written; retried), map_full (a container could not be recorded because the recording map was full), index (the profile index was found damaged, or failed).
# TYPE recorder_errors counter
recorder_errors_total{reason="profile_write"} 4
recorder_errors_total{reason="map_full"} 1
recorder_errors_total{reason="index"} 0
# HELP recorder_unrecognised_cgroups Cgroups made under a container runtime's parent (e.g. a containerd namespace) that no recogniser accepted, so not recorded; by parent.
# TYPE recorder_unrecognised_cgroups counter
recorder_unrecognised_cgroups_total{parent="/k8s.io"} 2
recorder_unrecognised_cgroups_total{parent="/moby \"x\"\\u{1b}[2J"} 1
# HELP recorder_enrol_failures New containers the kernel could not enrol because the recording map was full (auto mode).
# TYPE recorder_enrol_failures counter
recorder_enrol_failures_total 1
# HELP recorder_enrolments Cgroups the kernel enrolled by itself (auto mode and sub-cgroups of recorded containers).
# TYPE recorder_enrolments counter
recorder_enrolments_total 3
# HELP recorder_pending_writes Recordings whose profile could not be written yet (retried on every tick).
# TYPE recorder_pending_writes gauge
recorder_pending_writes 0
# HELP recorder_attached 1 when the syscall recorder is attached to raw_syscalls:sys_enter, else 0.
# TYPE recorder_attached gauge
recorder_attached 1
# HELP recorder_map_entries Cgroups in the recording map.
# TYPE recorder_map_entries gauge
recorder_map_entries 2
# HELP recorder_map_capacity How many cgroups the recording map can hold (config: capacity).
# TYPE recorder_map_capacity gauge
recorder_map_capacity 8
# HELP recorder_bpf_stats_enabled 1 when recorderd enabled the kernel's BPF run-time statistics (--bpf-stats), else 0.
# TYPE recorder_bpf_stats_enabled gauge
recorder_bpf_stats_enabled 1
# HELP recorder_bpf_run_time_seconds Time the kernel spent running each of recorder's BPF programs (grows only while BPF statistics are enabled).
# TYPE recorder_bpf_run_time_seconds counter
# UNIT recorder_bpf_run_time_seconds seconds
recorder_bpf_run_time_seconds_total{program="sys_enter"} 1.5
recorder_bpf_run_time_seconds_total{program="cgroup_mkdir"} 0.00025
# HELP recorder_bpf_run_count Runs of each of recorder's BPF programs (grows only while BPF statistics are enabled).
# TYPE recorder_bpf_run_count counter
recorder_bpf_run_count_total{program="sys_enter"} 9
recorder_bpf_run_count_total{program="cgroup_mkdir"} 2
# HELP recorder_bpf_recursion_misses Runs of each of recorder's BPF programs the kernel skipped because the program was already running on that CPU; for sys_enter, syscalls that went unrecorded (absent before Linux 5.12).
# TYPE recorder_bpf_recursion_misses counter
recorder_bpf_recursion_misses_total{program="sys_enter"} 3
# EOF
"##;

    /// The registry's families, only while pushing, after the images'.
    #[test]
    fn registry_families_while_pushing() {
        assert!(!sample().contains("recorder_registry"));
        let snapshot: SharedSnapshot = Arc::default();
        store(
            &snapshot,
            Snapshot {
                registry: Some(RegistrySeries {
                    pushed: 3,
                    failed: 2,
                    last_success: STARTED,
                    pending: 1,
                }),
                ..Snapshot::default()
            },
        );
        let exporter = Exporter {
            snapshot,
            counters: Arc::default(),
            bpf_stats: false,
            started: UNIX_EPOCH + Duration::from_secs(STARTED),
        };
        let mut text = String::new();
        let mut registry = Registry::default();
        registry.register_collector(Box::new(exporter));
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let want = r##"# HELP recorder_registry_pushes Contributions pushed to the registry, by result (ok, failed: retried with backoff).
# TYPE recorder_registry_pushes counter
recorder_registry_pushes_total{result="ok"} 3
recorder_registry_pushes_total{result="failed"} 2
# HELP recorder_registry_last_success_time_seconds When a push to the registry last succeeded, in seconds since the Unix epoch (0: never).
# TYPE recorder_registry_last_success_time_seconds gauge
# UNIT recorder_registry_last_success_time_seconds seconds
recorder_registry_last_success_time_seconds 1700000000
# HELP recorder_registry_pending Contributions waiting to be pushed (the registry failed; retried with backoff).
# TYPE recorder_registry_pending gauge
recorder_registry_pending 1
"##;
        assert!(text.contains(want), "{text}");
        // Right after the images' families.
        let at = text.find("# HELP recorder_registry_pushes").unwrap();
        assert!(text[..at].contains("recorder_image_ready"), "{text}");
    }

    #[test]
    fn prometheus_text_names_counters_with_total() {
        let text = to_prometheus_text(&sample());
        assert!(text.contains("# TYPE recorder_profiles_written_total counter\n"));
        assert!(text.contains("# HELP recorder_bpf_run_time_seconds_total Time"));
        assert!(text.contains("# TYPE recorder_map_entries gauge\n"));
        assert!(!text.contains("# UNIT"));
        assert!(!text.contains("# EOF"));
    }
}

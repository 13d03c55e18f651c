//! recorderd's Prometheus endpoint: `/metrics` and `/healthz` on a small
//! HTTP server (hyper).
//!
//! Scrapes never talk to the kernel task: the manager refreshes a
//! [`Snapshot`] on every tick (every `poll_interval_ms`), and a scrape
//! encodes that snapshot plus a few atomic counters with the official
//! `prometheus-client` crate. docs/metrics.md lists the metrics.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    net::SocketAddr,
    os::fd::OwnedFd,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header,
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::{Registry, Unit},
};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::{
    conn_slots::Slots,
    ebpf::{self, KernelInfo, ProgramStats},
};

/// The value of `metrics_addr` that turns the endpoint off.
pub const OFF: &str = "off";
/// The OpenMetrics content type, served when the scraper asks for it.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic Prometheus text format, served otherwise.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// At most this many connections are open at once; when all are taken,
/// the oldest idle one is closed to make room for a new one.
const MAX_CONNECTIONS: usize = 64;
/// A connection that sends no complete request header in this long is
/// closed.
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// A connection is closed after this long, whatever it is doing.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics_addr '{0}' is neither host:port nor \"off\"")]
    BadAddr(String),
    #[error("cannot listen for metrics on {addr}: {err}")]
    Bind {
        addr: SocketAddr,
        err: std::io::Error,
    },
}

/// Parses `metrics_addr`: `None` when it is "off".
pub fn parse_addr(text: &str) -> Result<Option<SocketAddr>, MetricsError> {
    if text.eq_ignore_ascii_case(OFF) {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| MetricsError::BadAddr(text.to_owned()))
}

/// Counters the metrics endpoint reads.
#[derive(Debug, Default)]
pub struct Counters {
    pub profiles_written: AtomicU64,
    pub write_errors: AtomicU64,
    /// The profile index found damaged (moved aside), or redb panicked.
    pub index_failures: AtomicU64,
    /// `start` requests refused because the recording map was full.
    pub map_full_refusals: AtomicU64,
    /// Cgroups made under a runtime's parent that no recogniser accepted,
    /// by parent.
    pub unrecognised: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    /// Counts a cgroup under `parent` that no recogniser accepted.
    pub fn unrecognised(&self, parent: &str) {
        // A poisoned lock only means a panic elsewhere mid-update of a
        // counter; going on is safe.
        let mut map = self.unrecognised.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(parent.to_owned()).or_default() += 1;
    }
}

/// One recording's row of `recorder_container_syscalls`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerSeries {
    /// The recording's owner cgroup id (not exported; finds the row).
    pub owner: u64,
    /// Container id, or `cgroup-<id>`.
    pub id: String,
    /// The container's name, when the runtime told it.
    pub name: Option<String>,
    /// The image, when the runtime told it.
    pub image: Option<String>,
    /// Distinct syscalls recorded so far (over all ABIs), as the profile
    /// would name them.
    pub syscalls: usize,
    /// Under a chosen profile (watched): the distinct syscalls made outside
    /// it; `None` for a container that is not watched.
    pub outside: Option<usize>,
    /// Its recording ended: only its drift series is left (for a while).
    pub ended: bool,
}

/// One image profile's rows of `recorder_image_*` (as many as the
/// retention keeps image rows).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageSeries {
    /// The image row's label (`images::ImageRow::label`), fixed when the
    /// row is made.
    pub image: String,
    pub syscalls: usize,
    pub runs: u64,
    pub ready: bool,
}

/// What the manager last saw: everything a scrape needs from the kernel
/// task and the recordings.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// When it was taken (`None`: not yet).
    pub refreshed: Option<SystemTime>,
    pub kernel: KernelInfo,
    /// Recordings in progress (profiles not written yet).
    pub active: usize,
    /// Recordings whose profile could not be written and is retried.
    pub pending_writes: usize,
    /// Why the daemon is unhealthy (`/healthz` answers 503), if it is.
    pub unhealthy: Option<String>,
    pub containers: Vec<ContainerSeries>,
    pub images: Vec<ImageSeries>,
    pub programs: Vec<ProgramStats>,
}

/// The snapshot shared between the manager (writer) and scrapes (readers).
pub type SharedSnapshot = Arc<RwLock<Snapshot>>;

/// Replaces the shared snapshot.
pub fn store(shared: &SharedSnapshot, snapshot: Snapshot) {
    // A poisoned lock only means a panic elsewhere mid-write; the value is
    // replaced whole, so it is safe to go on.
    let mut guard = shared.write().unwrap_or_else(|e| e.into_inner());
    *guard = snapshot;
}

/// Drops the `recorder_container_syscalls` row of recording `owner` (its
/// profile is written) without waiting for the next refresh; a watched
/// one's drift row stays, `ended`, as the manager keeps it a while.
pub fn forget(shared: &SharedSnapshot, owner: u64) {
    let mut guard = shared.write().unwrap_or_else(|e| e.into_inner());
    guard.containers.retain_mut(|c| {
        c.ended |= c.owner == owner;
        c.owner != owner || c.outside.is_some()
    });
}

fn read(shared: &SharedSnapshot) -> Snapshot {
    shared.read().unwrap_or_else(|e| e.into_inner()).clone()
}

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Encodes the snapshot and the counters on every scrape.
#[derive(Debug)]
struct Exporter {
    snapshot: SharedSnapshot,
    counters: Arc<Counters>,
    bpf_stats: bool,
    started: SystemTime,
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Exporter {
    fn gauge<V: prometheus_client::encoding::EncodeGaugeValue + Copy>(
        e: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        value: V,
    ) -> Result<(), std::fmt::Error> {
        let g = ConstGauge::new(value);
        g.encode(e.encode_descriptor(name, help, unit, g.metric_type())?)
    }

    fn counter(
        e: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        value: u64,
    ) -> Result<(), std::fmt::Error> {
        let c = ConstCounter::new(value);
        c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
    }
}

impl Collector for Exporter {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = read(&self.snapshot);
        let profiles_written = load(&self.counters.profiles_written);
        let write_errors = load(&self.counters.write_errors);
        let map_full = load(&self.counters.map_full_refusals);

        {
            let mut m = e.encode_descriptor(
                "recorder_build_info",
                "Always 1; the version of recorderd as a label.",
                None,
                MetricType::Gauge,
            )?;
            let labels = [("version", crate::VERSION)];
            ConstGauge::new(1i64).encode(m.encode_family(&labels)?)?;
        }
        Self::gauge(
            &mut e,
            "recorder_start_time",
            "When recorderd started, in seconds since the Unix epoch.",
            Some(&Unit::Seconds),
            unix_secs(self.started),
        )?;
        Self::gauge(
            &mut e,
            "recorder_last_refresh_timestamp",
            "When the daemon last refreshed these metrics, in seconds since the Unix epoch (0: not yet); a stale value means the daemon is stuck.",
            Some(&Unit::Seconds),
            s.refreshed.map_or(0.0, unix_secs),
        )?;
        {
            let mut m = e.encode_descriptor(
                "recorder_recordings",
                "Recordings by state: active (in progress) and finished (profiles written since the daemon started).",
                None,
                MetricType::Gauge,
            )?;
            let active = [("state", "active")];
            ConstGauge::new(s.active as i64).encode(m.encode_family(&active)?)?;
            let finished = [("state", "finished")];
            ConstGauge::new(i64::try_from(profiles_written).unwrap_or(i64::MAX))
                .encode(m.encode_family(&finished)?)?;
        }
        {
            let mut m = e.encode_descriptor(
                "recorder_container_syscalls",
                "Distinct syscalls recorded so far per recorded container (removed when its profile is written).",
                None,
                MetricType::Gauge,
            )?;
            for c in s.containers.iter().filter(|c| !c.ended) {
                let mut labels = vec![("container_id", c.id.as_str())];
                if let Some(name) = &c.name {
                    labels.push(("container_name", name.as_str()));
                }
                ConstGauge::new(c.syscalls as i64).encode(m.encode_family(&labels)?)?;
            }
        }
        type ImageValue = fn(&ImageSeries) -> i64;
        let image_families: [(&str, &str, ImageValue); 3] = [
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
                "recorder_image_ready",
                "1 when the image profile meets the ready rule ([images] in recorderd.toml), else 0.",
                |i| i64::from(i.ready),
            ),
        ];
        for (name, help, value) in image_families {
            let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for i in &s.images {
                let labels = [("image", i.image.as_str())];
                ConstGauge::new(value(i)).encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let mut m = e.encode_descriptor(
                "recorder_container_syscalls_outside_profile",
                "Distinct syscalls a watched container (one under a chosen seccomp profile) made outside that profile (kept drift_series_secs after its recording ends).",
                None,
                MetricType::Gauge,
            )?;
            for c in &s.containers {
                let Some(outside) = c.outside else { continue };
                let labels = [
                    ("id", c.id.as_str()),
                    ("name", c.name.as_deref().unwrap_or("")),
                    ("image", c.image.as_deref().unwrap_or("")),
                ];
                ConstGauge::new(outside as i64).encode(m.encode_family(&labels)?)?;
            }
        }
        Self::counter(
            &mut e,
            "recorder_profiles_written",
            "Profiles written since the daemon started.",
            profiles_written,
        )?;
        {
            let mut m = e.encode_descriptor(
                "recorder_errors",
                "Errors by reason: profile_write (a profile or image profile could not be written; retried), map_full (a container could not be recorded because the recording map was full), index (the profile index was found damaged, or failed).",
                None,
                MetricType::Counter,
            )?;
            let reasons = [
                ("profile_write", write_errors),
                ("map_full", map_full.saturating_add(s.kernel.enrol_failed)),
                ("index", load(&self.counters.index_failures)),
            ];
            for (reason, n) in reasons {
                let labels = [("reason", reason)];
                ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let mut m = e.encode_descriptor(
                "recorder_unrecognised_cgroups",
                "Cgroups made under a container runtime's parent (e.g. a containerd namespace) that no recogniser accepted, so not recorded; by parent.",
                None,
                MetricType::Counter,
            )?;
            let counts = self
                .counters
                .unrecognised
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            for (parent, n) in &counts {
                let labels = [("parent", parent.as_str())];
                ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
            }
        }
        Self::counter(
            &mut e,
            "recorder_enrol_failures",
            "New containers the kernel could not enrol because the recording map was full (auto mode).",
            s.kernel.enrol_failed,
        )?;
        Self::counter(
            &mut e,
            "recorder_enrolments",
            "Cgroups the kernel enrolled by itself (auto mode and sub-cgroups of recorded containers).",
            s.kernel.enrolled,
        )?;
        Self::gauge(
            &mut e,
            "recorder_pending_writes",
            "Recordings whose profile could not be written yet (retried on every tick).",
            None,
            s.pending_writes as i64,
        )?;
        Self::gauge(
            &mut e,
            "recorder_attached",
            "1 when the syscall recorder is attached to raw_syscalls:sys_enter, else 0.",
            None,
            i64::from(s.kernel.attached),
        )?;
        Self::gauge(
            &mut e,
            "recorder_map_entries",
            "Cgroups in the recording map.",
            None,
            s.kernel.entries as i64,
        )?;
        Self::gauge(
            &mut e,
            "recorder_map_capacity",
            "How many cgroups the recording map can hold (config: capacity).",
            None,
            i64::from(s.kernel.capacity),
        )?;
        Self::gauge(
            &mut e,
            "recorder_bpf_stats_enabled",
            "1 when recorderd enabled the kernel's BPF run-time statistics (--bpf-stats), else 0.",
            None,
            i64::from(self.bpf_stats),
        )?;
        {
            let mut m = e.encode_descriptor(
                "recorder_bpf_run_time",
                "Time the kernel spent running each of recorder's BPF programs (grows only while BPF statistics are enabled).",
                Some(&Unit::Seconds),
                MetricType::Counter,
            )?;
            for p in &s.programs {
                let labels = [("program", p.name.as_str())];
                ConstCounter::new(p.run_time_ns as f64 / 1e9).encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let mut m = e.encode_descriptor(
                "recorder_bpf_run_count",
                "Runs of each of recorder's BPF programs (grows only while BPF statistics are enabled).",
                None,
                MetricType::Counter,
            )?;
            for p in &s.programs {
                let labels = [("program", p.name.as_str())];
                ConstCounter::new(p.run_count).encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let mut m = e.encode_descriptor(
                "recorder_bpf_recursion_misses",
                "Runs of each of recorder's BPF programs the kernel skipped because the program was already running on that CPU; for sys_enter, syscalls that went unrecorded (absent before Linux 5.12).",
                None,
                MetricType::Counter,
            )?;
            for p in &s.programs {
                if let Some(misses) = p.recursion_misses {
                    let labels = [("program", p.name.as_str())];
                    ConstCounter::new(misses).encode(m.encode_family(&labels)?)?;
                }
            }
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

/// The scrape handler's state.
struct Endpoint {
    registry: Registry,
    snapshot: SharedSnapshot,
    /// `/healthz` fails when the snapshot is older than this.
    stale_after: Duration,
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

impl Endpoint {
    fn metrics(&self, openmetrics: bool) -> Response<Full<Bytes>> {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            return reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("cannot encode the metrics: {e}\n"),
            );
        }
        if openmetrics {
            reply(StatusCode::OK, OPENMETRICS, text)
        } else {
            reply(StatusCode::OK, PROMETHEUS_TEXT, to_prometheus_text(&text))
        }
    }

    fn healthz(&self) -> Response<Full<Bytes>> {
        let Snapshot {
            refreshed,
            unhealthy,
            ..
        } = read(&self.snapshot);
        if let Some(why) = unhealthy {
            let body = format!("unhealthy: {}\n", why.escape_debug());
            return reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", body);
        }
        let age = refreshed.map(|t| SystemTime::now().duration_since(t).unwrap_or_default());
        match age {
            Some(age) if age <= self.stale_after => reply(StatusCode::OK, "text/plain", "ok\n"),
            Some(age) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!(
                    "stale: the daemon last refreshed its state {:.1}s ago\n",
                    age.as_secs_f64()
                ),
            ),
            None => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "starting\n"),
        }
    }

    fn respond(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "only GET and HEAD\n",
            );
            r.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        match req.uri().path() {
            "/metrics" => {
                let openmetrics = req
                    .headers()
                    .get_all(header::ACCEPT)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(|v| v.contains("application/openmetrics-text"));
                self.metrics(openmetrics)
            }
            "/healthz" => self.healthz(),
            "/" => reply(
                StatusCode::OK,
                "text/html; charset=utf-8",
                "<html><body><a href=\"/metrics\">/metrics</a> <a href=\"/healthz\">/healthz</a></body></html>\n",
            ),
            _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        }
    }
}

/// The running endpoint. Dropping it stops the server and, with
/// `--bpf-stats`, turns the kernel's BPF statistics back off.
pub struct Server {
    /// Where it listens (the port is real even when 0 was asked).
    pub addr: SocketAddr,
    task: JoinHandle<()>,
    _stats: Option<OwnedFd>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What [`serve`] needs.
pub struct Options {
    /// Enable the kernel's BPF run-time statistics while serving.
    pub bpf_stats: bool,
    /// `/healthz` fails when the snapshot is older than this.
    pub stale_after: Duration,
}

/// A bound listener, from [`bind`].
#[derive(Debug)]
pub struct Bound {
    listener: TcpListener,
    /// Where it listens (the port is real even when 0 was asked).
    pub addr: SocketAddr,
}

/// Listens on `addr` (before anything else starts, so that a port in use
/// is an error at startup).
pub async fn bind(addr: SocketAddr) -> Result<Bound, MetricsError> {
    let err = |source| MetricsError::Bind { addr, err: source };
    let listener = TcpListener::bind(addr).await.map_err(err)?;
    let addr = listener.local_addr().map_err(err)?;
    Ok(Bound { listener, addr })
}

/// Starts serving `/metrics` and `/healthz` where [`bind`] listens.
pub fn serve(
    bound: Bound,
    opts: Options,
    snapshot: SharedSnapshot,
    counters: Arc<Counters>,
) -> Server {
    let Bound { listener, addr } = bound;
    // Statistics that cannot be enabled (a kernel before 5.8) are reported
    // by recorder_bpf_stats_enabled 0, not fatal.
    let stats = if opts.bpf_stats {
        ebpf::enable_run_time_stats()
            .inspect_err(|e| log::error!("{e}"))
            .ok()
    } else {
        None
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Exporter {
        snapshot: snapshot.clone(),
        counters,
        bpf_stats: stats.is_some(),
        started: SystemTime::now(),
    }));
    let endpoint = Arc::new(Endpoint {
        registry,
        snapshot,
        stale_after: opts.stale_after,
    });
    log::info!("serving metrics on http://{addr}/metrics");
    let task = tokio::spawn(accept_loop(listener, endpoint));
    Server {
        addr,
        task,
        _stats: stats,
    }
}

/// Serves connections: idle ones (no request yet, or between requests)
/// are closed after HEADER_TIMEOUT, or earlier to make room for a new one,
/// so that a crowd of idle connections cannot stall a scrape.
async fn accept_loop(listener: TcpListener, endpoint: Arc<Endpoint>) {
    let slots = Slots::new(MAX_CONNECTIONS);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                log::warn!("metrics accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = Arc::new(slots.take().await);
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            let in_service = slot.clone();
            let service = service_fn(move |req: Request<Incoming>| {
                in_service.busy();
                let r = endpoint.respond(&req);
                in_service.idle();
                async move { Ok::<_, Infallible>(r) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            // A timeout or an eviction just closes the connection.
            tokio::select! {
                done = tokio::time::timeout(CONNECTION_TIMEOUT, conn) => {
                    if let Ok(Err(e)) = done {
                        log::debug!("metrics connection: {e}");
                    }
                }
                () = slot.evicted() => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_parses_or_is_off() {
        assert_eq!(parse_addr("off").unwrap(), None);
        assert_eq!(
            parse_addr("127.0.0.1:9977").unwrap(),
            Some("127.0.0.1:9977".parse().unwrap())
        );
        assert!(parse_addr("localhost").is_err());
    }

    fn sample() -> String {
        let snapshot: SharedSnapshot = Arc::default();
        store(
            &snapshot,
            Snapshot {
                refreshed: Some(SystemTime::now()),
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
                containers: vec![ContainerSeries {
                    owner: 7,
                    id: "abc".to_owned(),
                    name: Some("web \"1\"".to_owned()),
                    image: Some("busybox:1".to_owned()),
                    syscalls: 42,
                    outside: Some(2),
                    ended: false,
                }],
                images: vec![ImageSeries {
                    image: "test/img@sha256:ab".to_owned(),
                    syscalls: 40,
                    runs: 6,
                    ready: true,
                }],
                programs: vec![ProgramStats {
                    name: "sys_enter".to_owned(),
                    run_time_ns: 1_500_000_000,
                    run_count: 9,
                    recursion_misses: Some(3),
                }],
            },
        );
        let counters = Arc::new(Counters::default());
        counters.profiles_written.store(5, Ordering::Relaxed);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Exporter {
            snapshot,
            counters,
            bpf_stats: true,
            started: SystemTime::now(),
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
            "recorder_image_ready{image=\"test/img@sha256:ab\"} 1",
            "# EOF",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
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

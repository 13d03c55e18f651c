//! recorderd's Prometheus endpoint: `/metrics` and `/healthz` on a small
//! HTTP server (hyper).
//!
//! Scrapes never talk to the kernel task: the manager refreshes a
//! [`Snapshot`] on every tick (every `poll_interval_ms`), and a scrape
//! encodes that snapshot plus a few atomic counters with the official
//! `prometheus-client` crate (`metrics/exposition.rs`); the snapshot's
//! types are `metrics/snapshot.rs`. docs/metrics.md
//! lists the metrics.

use std::{
    convert::Infallible,
    net::SocketAddr,
    os::fd::OwnedFd,
    sync::Arc,
    time::{Duration, SystemTime},
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
use prometheus_client::registry::Registry;
use tokio::{net::TcpListener, task::JoinHandle};

use crate::{conn_slots::Slots, ebpf};

mod exposition;
mod snapshot;

use exposition::Exporter;
pub use exposition::to_prometheus_text;
use snapshot::read;
pub use snapshot::{
    ContainerSeries, Counters, ImageSeries, RegistrySeries, SharedSnapshot, Snapshot, forget, store,
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
}

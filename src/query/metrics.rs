//! The gateway's own telemetry over HTTP: `/metrics` in the Prometheus text exposition format
//! (0.0.4), and `/health/live` and `/health/ready`, on `service.telemetry.metrics.address`
//! (default `127.0.0.1:8888`, the Collector's own-telemetry port).
//!
//! The figures are the ones `GetStats` answers ([`Query::stats`]), so the CLI and a scrape
//! never disagree, plus the process's resident memory and CPU time from `/proc`. Counters end
//! in `_total`; gauges do not. Names: `sieve_<layer>_<what>[_<unit>]` (layers `receiver`,
//! `store`, `exporter`, `analysis`), and Prometheus's `process_*` names for the process.
//!
//! The listener is bound first thing at start, so health answers while the store replays:
//! `/health/live` is 200 as soon as the port is open, `/health/ready` is 503 until every stage
//! runs and again once shutdown begins, `/metrics` is 503 until the stages exist. At most
//! [`MAX_CONNECTIONS`] connections at once, and a client gets [`HEADER_TIMEOUT`] to send its
//! request head (a slow client cannot hold the port).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Query;
use super::exposition::Exposition;
use crate::proto::{GetStatsResponse, SignalStats};

/// Connections served at once; more are closed on accept.
pub const MAX_CONNECTIONS: usize = 64;
/// Time a client has to send its request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the endpoint serves from: the query service while the stages run, and readiness.
#[derive(Default)]
pub struct Health {
    /// Cleared by [`Health::close`]: the query service holds the store, which must be
    /// released when the gateway stops even if a scraper keeps its connection open.
    query: RwLock<Option<Query>>,
    ready: AtomicBool,
    /// Scrapes answering from `query`; [`Health::close`] waits for them.
    scrapes: TaskTracker,
    /// The intake and the memory limiter, for their gauges.
    gauges: RwLock<Option<Gauges>>,
}

/// What `/metrics` reads besides the query service: the intake's budget and flush times and
/// the memory limiter.
#[derive(Clone)]
pub struct Gauges {
    pub intake: crate::stages::intake::Intake,
    pub memory: Option<Arc<crate::stages::intake::memory::MemoryLimit>>,
    /// The OTLP receiver's per-transport counters, when it runs.
    pub receiver: Option<Arc<crate::receiver::counters::ReceiverCounters>>,
}

impl Health {
    /// The stages run: `/metrics` answers from `query` and `gauges`, and `/health/ready`
    /// says ready.
    pub fn started(&self, query: Query, gauges: Gauges) {
        *self.query.write().unwrap_or_else(|p| p.into_inner()) = Some(query);
        *self.gauges.write().unwrap_or_else(|p| p.into_inner()) = Some(gauges);
        self.ready.store(true, Ordering::Release);
    }

    /// Shutdown began: no longer ready.
    pub fn stopping(&self) {
        self.ready.store(false, Ordering::Release);
    }

    /// The stages are gone: `/metrics` answers 503 from now on, and once the scrapes in
    /// flight have answered nothing here holds the store.
    pub async fn close(&self) {
        self.stopping();
        self.query.write().unwrap_or_else(|p| p.into_inner()).take();
        self.gauges
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.scrapes.close();
        self.scrapes.wait().await;
    }

    fn query(&self) -> Option<Query> {
        self.query.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// What a listener of this module answers.
#[derive(Clone)]
enum Endpoint {
    /// `/metrics`, `/health/live`, `/health/ready`.
    Telemetry,
    /// The Collector's `health_check` extension: `GET <path>` answers JSON with the status.
    HealthCheck(Arc<str>),
}

/// Serves the telemetry endpoint on `listener` until `stop` is cancelled.
pub async fn serve(listener: TcpListener, health: Arc<Health>, stop: CancellationToken) {
    serve_endpoint(listener, health, stop, Endpoint::Telemetry).await
}

/// Serves the `health_check` extension on `listener` until `stop`: `GET path` is 200
/// `{"status":"Server available"}` while ready and 503 `{"status":"Server not available"}`
/// otherwise (while the store replays at start, and once shutdown begins), as the
/// Collector's.
pub async fn serve_health_check(
    listener: TcpListener,
    health: Arc<Health>,
    path: &str,
    stop: CancellationToken,
) {
    serve_endpoint(listener, health, stop, Endpoint::HealthCheck(path.into())).await
}

async fn serve_endpoint(
    listener: TcpListener,
    health: Arc<Health>,
    stop: CancellationToken,
    endpoint: Endpoint,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors and the like: the next accept may work.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // dropped: closed
        };
        let health = health.clone();
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let health = health.clone();
                let endpoint = endpoint.clone();
                async move {
                    Ok::<_, Infallible>(match endpoint {
                        Endpoint::Telemetry => respond(&health, req).await,
                        Endpoint::HealthCheck(path) => health_check(&health, &path, &req),
                    })
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(slot);
        });
    }
}

fn health_check<B>(health: &Health, path: &str, req: &Request<B>) -> Response<Full<bytes::Bytes>> {
    let (status, body) = if req.uri().path() != path {
        (StatusCode::NOT_FOUND, r#"{"status":"Not found"}"#)
    } else if req.method() != Method::GET && req.method() != Method::HEAD {
        (StatusCode::METHOD_NOT_ALLOWED, r#"{"status":"GET only"}"#)
    } else if health.is_ready() {
        (StatusCode::OK, r#"{"status":"Server available"}"#)
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"Server not available"}"#,
        )
    };
    let mut r = Response::new(Full::new(bytes::Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn respond<B>(health: &Health, req: Request<B>) -> Response<Full<bytes::Bytes>> {
    let text = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(bytes::Bytes::from(body)));
        *r.status_mut() = status;
        r
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match req.uri().path() {
        "/health/live" => text(StatusCode::OK, "live\n".into()),
        "/health/ready" if health.is_ready() => text(StatusCode::OK, "ready\n".into()),
        "/health/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n".into()),
        "/metrics" => {
            // Taken before the query service and dropped after it, so `close` waits for
            // every scrape that got the service.
            let scrape = health.scrapes.token();
            let Some(q) = health.query() else {
                return text(StatusCode::SERVICE_UNAVAILABLE, "not running\n".into());
            };
            let stats = q.stats().await;
            let (spans, edges) = q.analysis_totals();
            let alerts = q.alert_counts();
            drop(q);
            let gauges = health
                .gauges
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            drop(scrape);
            let mut body = render(&stats, &Process::read());
            let mut connectors = Exposition::default();
            if let Some(g) = &gauges {
                render_gauges(&mut connectors, g, alerts);
            }
            super::connectors::render(&mut connectors, &spans, &edges);
            body.push_str(&connectors.into_text());
            let mut r = text(StatusCode::OK, body);
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /health/live or /health/ready\n".into(),
        ),
    }
}

/// The process's own figures, from `/proc/self`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Process {
    pub resident_bytes: u64,
    pub cpu_seconds: f64,
}

impl Process {
    /// Reads `/proc/self/status` and `/proc/self/stat`; what cannot be read stays 0.
    pub fn read() -> Process {
        let resident_bytes = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kib * 1024)
            })
            .unwrap_or(0);
        // Fields 14 and 15 (utime, stime) in clock ticks, counted after the command name,
        // which is in parentheses and may hold spaces.
        let cpu_seconds = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                let rest = &s[s.rfind(')')? + 1..];
                let f: Vec<&str> = rest.split_whitespace().collect();
                let ticks: u64 =
                    f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
                // SAFETY: sysconf has no preconditions.
                let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
                (hz > 0).then(|| ticks as f64 / hz as f64)
            })
            .unwrap_or(0.0);
        Process {
            resident_bytes,
            cpu_seconds,
        }
    }
}

/// The exposition text of `stats` and `process`.
pub fn render(stats: &GetStatsResponse, process: &Process) -> String {
    let mut out = Exposition::default();
    let signals: [(&str, &Option<SignalStats>); 3] = [
        ("traces", &stats.spans),
        ("logs", &stats.log_records),
        ("metrics", &stats.metric_points),
    ];
    type Field = fn(&SignalStats) -> u64;
    let per_signal: [(&str, &str, Field); 7] = [
        (
            "sieve_receiver_received_items_total",
            "Items (spans, log records, metric points) in decoded requests.",
            |s| s.received,
        ),
        (
            "sieve_receiver_accepted_items_total",
            "Items written to the store and acknowledged.",
            |s| s.accepted,
        ),
        (
            "sieve_receiver_rejected_items_total",
            "Items rejected by validation (reported in partial_success).",
            |s| s.rejected,
        ),
        (
            "sieve_receiver_expired_items_total",
            "Items already past retention on arrival: not stored.",
            |s| s.expired,
        ),
        (
            "sieve_receiver_refused_requests_total",
            "Requests refused because intake was full (the client retries).",
            |s| s.refused,
        ),
        (
            "sieve_receiver_requests_total",
            "Export requests answered OK.",
            |s| s.requests,
        ),
        (
            "sieve_store_written_bytes_total",
            "Bytes of keys and values written to the store.",
            |s| s.stored_bytes,
        ),
    ];
    for (name, help, field) in per_signal {
        out.family(name, help, "counter");
        for (signal, s) in signals {
            let v = s.as_ref().map(field).unwrap_or(0);
            out.sample(name, &[("signal", signal)], v as f64);
        }
    }
    out.one(
        "sieve_receiver_undecodable_requests_total",
        "Requests whose body could not be decoded.",
        "counter",
        stats.undecodable_requests as f64,
    );

    out.one(
        "sieve_store_disk_bytes",
        "Bytes the data directory occupies on disk, as du counts them.",
        "gauge",
        stats.disk_bytes as f64,
    );
    if let Some(s) = &stats.storage {
        if s.max_disk_bytes > 0 {
            out.one(
                "sieve_store_max_disk_bytes",
                "storage.max_disk_size.",
                "gauge",
                s.max_disk_bytes as f64,
            );
        }
        out.one(
            "sieve_store_compactions_total",
            "Value-log ranges rewritten as compressed segments.",
            "counter",
            s.compactions as f64,
        );
        out.one(
            "sieve_store_compaction_input_bytes_total",
            "Raw bytes of the ranges compacted.",
            "counter",
            s.compacted_raw_bytes as f64,
        );
        out.one(
            "sieve_store_compaction_output_bytes_total",
            "Bytes of the compressed segments written.",
            "counter",
            s.compacted_bytes as f64,
        );
        out.one(
            "sieve_store_compaction_seconds_total",
            "Time spent compacting.",
            "counter",
            s.compaction_micros as f64 / 1e6,
        );
        out.one(
            "sieve_store_partitions_dropped_for_size_total",
            "Partitions dropped because the data directory was over storage.max_disk_size.",
            "counter",
            s.dropped_for_size as f64,
        );
    }

    type ExporterField = fn(&crate::proto::ExporterStats) -> u64;
    let per_exporter: [(&str, &str, &str, ExporterField); 10] = [
        (
            "sieve_exporter_queue_entries",
            "Entries waiting in the persistent queue.",
            "gauge",
            |e| e.queue_entries,
        ),
        (
            "sieve_exporter_queue_items",
            "Items waiting in the persistent queue.",
            "gauge",
            |e| e.queue_items,
        ),
        (
            "sieve_exporter_queue_bytes",
            "Bytes waiting in the persistent queue.",
            "gauge",
            |e| e.queue_bytes,
        ),
        (
            "sieve_exporter_sent_items_total",
            "Items the downstream accepted.",
            "counter",
            |e| e.sent_items,
        ),
        (
            "sieve_exporter_sent_requests_total",
            "Requests the downstream answered OK.",
            "counter",
            |e| e.sent_requests,
        ),
        (
            "sieve_exporter_failed_items_total",
            "Items given up after a non-retryable answer.",
            "counter",
            |e| e.failed_items,
        ),
        (
            "sieve_exporter_rejected_items_total",
            "Items the downstream rejected inside an OK (partial success).",
            "counter",
            |e| e.rejected_items,
        ),
        (
            "sieve_exporter_dropped_items_total",
            "Items dropped to make room in a full queue (drop_oldest).",
            "counter",
            |e| e.dropped_items,
        ),
        (
            "sieve_exporter_lost_items_total",
            "Items whose queued bytes could not be read back.",
            "counter",
            |e| e.lost_items,
        ),
        (
            "sieve_exporter_retries_total",
            "Failed attempts retried.",
            "counter",
            |e| e.retries,
        ),
    ];
    if !stats.exporters.is_empty() {
        for (name, help, kind, field) in per_exporter {
            out.family(name, help, kind);
            for e in &stats.exporters {
                out.sample(name, &[("exporter", &e.name)], field(e) as f64);
            }
        }
        let name = "sieve_exporter_breaker_state";
        out.family(
            name,
            "1 for the circuit breaker's current state (closed, open, half-open).",
            "gauge",
        );
        for e in &stats.exporters {
            for state in ["closed", "open", "half-open"] {
                let v = f64::from(u8::from(e.breaker == state));
                out.sample(name, &[("exporter", &e.name), ("state", state)], v);
            }
        }
    }

    if let Some(a) = &stats.analysis {
        let figures: [(&str, &str, &str, u64); 13] = [
            (
                "sieve_analysis_spans_total",
                "Spans analysed (every valid span, before sampling).",
                "counter",
                a.spans,
            ),
            (
                "sieve_analysis_traces_total",
                "Traces whose critical path was folded into the bottleneck figures.",
                "counter",
                a.traces,
            ),
            (
                "sieve_analysis_early_traces_total",
                "Traces analysed before trace_idle because assembly was full.",
                "counter",
                a.early_traces,
            ),
            (
                "sieve_analysis_late_spans_total",
                "Spans of traces already analysed.",
                "counter",
                a.late_spans,
            ),
            (
                "sieve_analysis_out_of_range_spans_total",
                "Spans too far in the future or past the longest analysis retention.",
                "counter",
                a.out_of_range_spans,
            ),
            (
                "sieve_analysis_assembling_traces",
                "Traces being assembled.",
                "gauge",
                a.assembling_traces,
            ),
            (
                "sieve_analysis_assembling_spans",
                "Spans of the traces being assembled.",
                "gauge",
                a.assembling_spans,
            ),
            (
                "sieve_analysis_series",
                "Span-metric series tracked.",
                "gauge",
                a.series,
            ),
            (
                "sieve_analysis_operations",
                "Bottleneck operations tracked.",
                "gauge",
                a.operations,
            ),
            (
                "sieve_analysis_graph_pending",
                "Client and server halves waiting for their pair.",
                "gauge",
                a.graph_pending,
            ),
            (
                "sieve_analysis_log_records_total",
                "Log records clustered.",
                "counter",
                a.log_records,
            ),
            (
                "sieve_analysis_log_clusters",
                "Live log clusters.",
                "gauge",
                a.log_clusters,
            ),
            (
                "sieve_analysis_new_log_clusters_total",
                "Log clusters created since start.",
                "counter",
                a.new_log_clusters,
            ),
        ];
        for (name, help, kind, v) in figures {
            out.one(name, help, kind, v as f64);
        }
    }

    out.one(
        "sieve_uptime_seconds",
        "Seconds since the gateway started.",
        "gauge",
        stats.uptime_seconds as f64,
    );
    out.one(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        "gauge",
        process.resident_bytes as f64,
    );
    out.one(
        "process_cpu_seconds_total",
        "User and system CPU time spent, seconds.",
        "counter",
        process.cpu_seconds,
    );
    out.into_text()
}

/// Flush-time buckets, seconds.
const FLUSH_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The receiver's counters per transport, in the Collector's names (see
/// [`crate::receiver::counters`]).
fn render_receiver(out: &mut Exposition, counters: &crate::receiver::counters::ReceiverCounters) {
    use crate::otlp::Signal;
    use crate::receiver::counters::{Counts, Outcome, Transport};
    type Field = fn(&Counts) -> u64;
    let kinds: [(&str, &str, Field); 3] = [
        ("accepted", "stored and acknowledged", |c| c.accepted),
        (
            "refused",
            "in requests refused retryably (full intake, memory limiter, queues)",
            |c| c.refused,
        ),
        (
            "failed",
            "rejected by validation or past retention (partial_success)",
            |c| c.failed,
        ),
    ];
    // One snapshot per transport and signal, read once.
    let counts: Vec<(Transport, Signal, Counts)> = Transport::ALL
        .into_iter()
        .flat_map(|t| Signal::ALL.map(|s| (t, s, counters.get(t, s))))
        .collect();
    for signal in Signal::ALL {
        let item = match signal {
            Signal::Traces => "spans",
            Signal::Logs => "log_records",
            Signal::Metrics => "metric_points",
        };
        for (kind, help, field) in kinds {
            let name = format!("otelcol_receiver_{kind}_{item}_total");
            out.family(&name, &format!("{} {help}.", signal.item()), "counter");
            for (t, _, c) in counts.iter().filter(|(_, s, _)| *s == signal) {
                out.sample(
                    &name,
                    &[("receiver", "otlp"), ("transport", t.as_str())],
                    field(c) as f64,
                );
            }
        }
    }
    let name = "sieve_receiver_transport_requests_total";
    out.family(
        name,
        "Export requests per transport by outcome: ok (answered), refused (retryable), \
         invalid (undecodable or too large).",
        "counter",
    );
    for (t, signal, c) in &counts {
        for (outcome, n) in Outcome::ALL.iter().zip(c.requests) {
            out.sample(
                name,
                &[
                    ("receiver", "otlp"),
                    ("transport", t.as_str()),
                    ("signal", signal.as_str()),
                    ("outcome", outcome.as_str()),
                ],
                n as f64,
            );
        }
    }
}

/// The intake's budget and flush times, the memory limiter and the alert engine.
fn render_gauges(out: &mut Exposition, g: &Gauges, (pending, firing, incidents): (u64, u64, u64)) {
    if let Some(counters) = &g.receiver {
        render_receiver(out, counters);
    }
    out.one(
        "sieve_intake_budget_bytes",
        "The in-flight budget (intake.max_inflight_mib).",
        "gauge",
        g.intake.budget_total() as f64,
    );
    out.one(
        "sieve_intake_inflight_bytes",
        "Budget held by requests in flight (body plus its decoded size).",
        "gauge",
        g.intake.budget_in_use() as f64,
    );
    let flush = g.intake.flush_times();
    out.family(
        "sieve_intake_flush_duration_seconds",
        "Duration of each group-committed flush (value log fsync, then sled).",
        "histogram",
    );
    for le in FLUSH_BUCKETS {
        let le_text = le.to_string();
        out.sample(
            "sieve_intake_flush_duration_seconds_bucket",
            &[("le", &le_text)],
            flush.count_le((le * 1e9) as u64) as f64,
        );
    }
    out.sample(
        "sieve_intake_flush_duration_seconds_bucket",
        &[("le", "+Inf")],
        flush.count() as f64,
    );
    out.sample(
        "sieve_intake_flush_duration_seconds_sum",
        &[],
        flush.sum() as f64 / 1e9,
    );
    out.sample(
        "sieve_intake_flush_duration_seconds_count",
        &[],
        flush.count() as f64,
    );
    if let Some(m) = &g.memory {
        out.one(
            "sieve_memory_limiter_soft_limit_bytes",
            "Resident memory above which receivers refuse (limit_mib - spike_limit_mib).",
            "gauge",
            m.soft_bytes() as f64,
        );
        out.one(
            "sieve_memory_limiter_refusing",
            "1 while memory is over the soft limit and requests are refused.",
            "gauge",
            f64::from(u8::from(m.is_over())),
        );
        out.one(
            "sieve_memory_limiter_refused_requests_total",
            "Requests refused by the memory limiter.",
            "counter",
            m.refused_total() as f64,
        );
    }
    out.family("sieve_alerting_alerts", "Alerts by state.", "gauge");
    out.sample(
        "sieve_alerting_alerts",
        &[("state", "pending")],
        pending as f64,
    );
    out.sample(
        "sieve_alerting_alerts",
        &[("state", "firing")],
        firing as f64,
    );
    out.one(
        "sieve_alerting_open_incidents",
        "Incidents with an alert still firing.",
        "gauge",
        incidents as f64,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{ExporterStats, StorageStats};

    #[test]
    fn renders_counters_with_labels_and_escapes() {
        let stats = GetStatsResponse {
            spans: Some(SignalStats {
                received: 10,
                accepted: 9,
                rejected: 1,
                ..SignalStats::default()
            }),
            storage: Some(StorageStats {
                compactions: 2,
                compacted_raw_bytes: 5000,
                compacted_bytes: 1000,
                compaction_micros: 1_500_000,
                ..StorageStats::default()
            }),
            exporters: vec![ExporterStats {
                name: "otlp/\"a\"\\b".into(),
                breaker: "open".into(),
                queue_items: 7,
                ..ExporterStats::default()
            }],
            ..GetStatsResponse::default()
        };
        let text = render(
            &stats,
            &Process {
                resident_bytes: 4096,
                cpu_seconds: 1.25,
            },
        );
        let has = |line: &str| text.lines().any(|l| l == line);
        assert!(has(
            "sieve_receiver_accepted_items_total{signal=\"traces\"} 9"
        ));
        assert!(has(
            "sieve_receiver_accepted_items_total{signal=\"logs\"} 0"
        ));
        assert!(has("# TYPE sieve_receiver_accepted_items_total counter"));
        assert!(has("sieve_store_compaction_input_bytes_total 5000"));
        assert!(has("sieve_store_compaction_output_bytes_total 1000"));
        assert!(has("sieve_store_compaction_seconds_total 1.5"));
        // No max_disk_size configured: no gauge for it.
        assert!(!text.contains("sieve_store_max_disk_bytes"));
        assert!(has(
            "sieve_exporter_queue_items{exporter=\"otlp/\\\"a\\\"\\\\b\"} 7"
        ));
        assert!(has(
            "sieve_exporter_breaker_state{exporter=\"otlp/\\\"a\\\"\\\\b\",state=\"open\"} 1"
        ));
        assert!(has(
            "sieve_exporter_breaker_state{exporter=\"otlp/\\\"a\\\"\\\\b\",state=\"closed\"} 0"
        ));
        assert!(has("process_resident_memory_bytes 4096"));
        assert!(has("process_cpu_seconds_total 1.25"));
        // Every sample's family is declared once, before its samples.
        let mut declared = std::collections::HashSet::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(declared.insert(name.to_string()), "{name} declared twice");
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().unwrap();
                assert!(declared.contains(name), "{name} sampled before its TYPE");
            }
        }
    }

    #[test]
    fn reads_this_process() {
        let p = Process::read();
        assert!(p.resident_bytes > 0);
        assert!(p.cpu_seconds >= 0.0);
    }
}

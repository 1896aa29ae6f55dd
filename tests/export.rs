//! Forwarding over real loopback connections: gateway A exporting to gateway B with the
//! official SDK sending to A, B down and coming up later, A killed with -9 while its queue
//! holds data, a full queue under both policies, and the otlphttp and file exporters checked
//! against what they sent or wrote. (Backoff timing and the circuit breaker are tested with
//! tokio's paused clock in src/stages/export/worker.rs.)

mod common;

use common::otlp;

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use opentelemetry::logs::{
    AnyValue as LogValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity,
};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, trace_service_client::TraceServiceClient,
};
use opentelemetry_proto::tonic::logs::v1::LogsData;
use opentelemetry_proto::tonic::metrics::v1::MetricsData;
use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::Message;
use sieve::config::Config;
use sieve::proto::{
    ExporterStats, GetStatsRequest, GetStatsResponse, GetTraceRequest, SearchLogsRequest,
};
use tonic::Code;
use tonic_types::StatusExt;

use common::apply;

/// Exporter `name` (YAML body indented by four) in every signal's pipeline.
fn forward(name: &str, body: &str) -> String {
    let pipe = |s: &str| format!("    {s}:\n      receivers: [otlp]\n      exporters: [{name}]\n");
    format!(
        "exporters:\n  {name}:\n{body}service:\n  pipelines:\n{}{}{}",
        pipe("traces"),
        pipe("logs"),
        pipe("metrics")
    )
}

/// An OTLP exporter to `endpoint` with test-sized retry and batch timings.
fn otlp_to(endpoint: &str, extra: &str) -> String {
    forward(
        "otlp/b",
        &format!(
            "    endpoint: {endpoint}\n    retry_on_failure:\n      initial_interval: 100ms\n      max_interval: 500ms\n    circuit_breaker:\n      cool_down: 500ms\n    batch:\n      timeout: 20ms\n{extra}"
        ),
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

async fn stats(url: &str) -> GetStatsResponse {
    common::query_client(url)
        .await
        .get_stats(GetStatsRequest {})
        .await
        .expect("GetStats")
        .into_inner()
}

fn exporter<'a>(s: &'a GetStatsResponse, name: &str) -> &'a ExporterStats {
    s.exporters
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no exporter {name} in {:?}", s.exporters))
}

/// `traces` traces of `spans` spans each, span ids unique across the request.
fn spans_request(first_trace: u32, traces: u32, spans: u32) -> ExportTraceServiceRequest {
    let mut out = Vec::new();
    for t in first_trace..first_trace + traces {
        let mut trace_id = [0u8; 16];
        trace_id[..4].copy_from_slice(&(t + 1).to_be_bytes());
        trace_id[15] = 0x5e;
        for s in 0..spans {
            let mut span_id = [0u8; 8];
            span_id[..4].copy_from_slice(&(t + 1).to_be_bytes());
            span_id[4..].copy_from_slice(&(s + 1).to_be_bytes());
            let now = sieve::store::now_ns();
            let name = format!("op-{}", s % 5);
            out.push(otlp::span(&trace_id, &span_id, &name, now - 1_000_000, now));
        }
    }
    otlp::traces_request("load", out)
}

fn trace_id_hex(t: u32) -> String {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&(t + 1).to_be_bytes());
    id[15] = 0x5e;
    hex::encode(id)
}

/// Sends `batches` requests of 10 traces × `spans` spans to `otlp`, retrying refusals.
async fn send_spans(otlp: &str, batches: u32, spans: u32) {
    let mut client = TraceServiceClient::new(common::channel(otlp).await);
    for b in 0..batches {
        loop {
            match client.export(spans_request(b * 10, 10, spans)).await {
                Ok(r) => {
                    assert!(r.into_inner().partial_success.is_none());
                    break;
                }
                Err(s) if s.code() == Code::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(s) => panic!("export failed: {s:?}"),
            }
        }
    }
}

/// Span ids B holds for traces 0..n, with how many copies of each.
async fn span_copies(query: &str, traces: u32) -> HashMap<Vec<u8>, usize> {
    let mut q = common::query_client(query).await;
    let mut copies = HashMap::new();
    for t in 0..traces {
        let Ok(r) = q
            .get_trace(GetTraceRequest {
                trace_id: trace_id_hex(t),
            })
            .await
        else {
            continue;
        };
        let data = r.into_inner();
        for (_, s) in sieve::otlp::spans(&data.resource_spans) {
            *copies.entry(s.span_id.clone()).or_default() += 1;
        }
    }
    copies
}

/// The official SDK sends to A; A forwards to B; B holds traces, logs and metrics equal field
/// by field to A's (which the ingest tests check against what the SDK sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_gateways_forward_everything_field_by_field() {
    let b = common::start(|_| {}).await;
    let b_addr = b.otlp.trim_start_matches("http://").to_string();
    let a = common::start(|c| apply(c, &otlp_to(&b_addr, ""))).await;

    let tp = common::tracer_provider(&a.otlp, "checkout", None);
    let lp = common::logger_provider(&a.otlp, "checkout");
    let mp = common::meter_provider(&a.otlp, "checkout");
    let tracer = tp.tracer("export-test");
    let logger = lp.logger("checkout.log");
    let mut trace_ids = Vec::new();
    for i in 0..5 {
        let root = tracer
            .span_builder(format!("GET /cart/{i}"))
            .with_kind(SpanKind::Server)
            .with_attributes(vec![
                KeyValue::new("http.route", "/cart/{id}"),
                KeyValue::new("i", i as i64),
            ])
            .start(&tracer);
        trace_ids.push(root.span_context().trace_id().to_string());
        let cx = Context::current_with_span(root);
        let mut child = tracer
            .span_builder("SELECT cart")
            .with_kind(SpanKind::Client)
            .start_with_context(&tracer, &cx);
        child.add_event("rows", vec![KeyValue::new("n", 3i64)]);
        child.set_status(Status::error("timeout"));
        child.end();
        {
            let _g = cx.clone().attach();
            let mut rec = logger.create_log_record();
            rec.set_severity_number(Severity::Error);
            rec.set_severity_text("ERROR");
            rec.set_body(LogValue::from(format!("cart {i} failed")));
            rec.add_attribute("cart", i as i64);
            logger.emit(rec);
        }
        cx.span().end();
    }
    mp.meter("m")
        .u64_counter("carts")
        .build()
        .add(5, &[KeyValue::new("k", "v")]);
    let (tp2, lp2, mp2) = (tp.clone(), lp.clone(), mp.clone());
    common::blocking(move || {
        tp2.force_flush().expect("spans");
        lp2.force_flush().expect("logs");
        mp2.force_flush().expect("metrics");
    })
    .await;

    let mut qa = a.query_client().await;
    let mut qb = b.query_client().await;
    for id in &trace_ids {
        let want = qa
            .get_trace(GetTraceRequest {
                trace_id: id.clone(),
            })
            .await
            .expect("A has the trace")
            .into_inner();
        assert_eq!(sieve::otlp::spans(&want.resource_spans).count(), 2);
        let what = format!("trace {id} in B");
        let got = common::eventually(Duration::from_secs(20), &what, async || {
            let r = qb
                .get_trace(GetTraceRequest {
                    trace_id: id.clone(),
                })
                .await;
            match r.map(|r| r.into_inner()) {
                Ok(t) if sieve::otlp::spans(&t.resource_spans).count() == 2 => Ok(t),
                other => Err(other.map(|t| sieve::otlp::spans(&t.resource_spans).count())),
            }
        })
        .await;
        assert_eq!(got, want, "B's copy differs from A's");
    }
    let search = || SearchLogsRequest {
        service_name: "checkout".into(),
        limit: 100,
        ..Default::default()
    };
    let want_logs = common::logs(&mut qa, search()).await;
    assert_eq!(want_logs.len(), 5);
    common::eventually(Duration::from_secs(20), "the logs at B", async || {
        let mut qb = qb.clone();
        let done = { common::logs(&mut qb, search()).await.len() == 5 };
        done.then_some(()).ok_or("not yet")
    })
    .await;
    let mut got_logs = common::logs(&mut qb, search()).await;
    let mut want_logs = want_logs;
    let key = |e: &sieve::proto::LogEntry| e.log_record.as_ref().map(|r| r.encode_to_vec());
    got_logs.sort_by_key(key);
    want_logs.sort_by_key(key);
    assert_eq!(got_logs, want_logs);
    let a_points = stats(&a.query)
        .await
        .metric_points
        .unwrap_or_default()
        .accepted;
    assert!(a_points >= 1);
    common::eventually(Duration::from_secs(20), "the metrics at B", async || {
        let q = b.query.clone();
        let done = { stats(&q).await.metric_points.unwrap_or_default().accepted >= a_points };
        done.then_some(()).ok_or("not yet")
    })
    .await;

    let s = stats(&a.query).await;
    let e = exporter(&s, "otlp/b");
    assert_eq!(e.breaker, "closed");
    assert_eq!((e.failed_items, e.dropped_items, e.lost_items), (0, 0, 0));
    common::eventually(Duration::from_secs(10), "A's queue to empty", async || {
        let q = a.query.clone();
        let done = { exporter(&stats(&q).await, "otlp/b").queue_entries == 0 };
        done.then_some(()).ok_or("not yet")
    })
    .await;
    a.stop().await;
    b.stop().await;
}

/// B is down while 10,000 spans reach A; once B comes up (on the address A was told), all
/// 10,000 arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_of_b_loses_nothing() {
    let port = free_port();
    let a = common::start(|c| apply(c, &otlp_to(&format!("127.0.0.1:{port}"), ""))).await;
    // 10 requests × 10 traces × 100 spans.
    send_spans(&a.otlp, 10, 100).await;
    let s = stats(&a.query).await;
    assert_eq!(exporter(&s, "otlp/b").queue_items, 10_000);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = stats(&a.query).await;
    let e = exporter(&s, "otlp/b");
    assert!(e.retries > 0, "A should have been retrying: {e:?}");
    assert_eq!(e.sent_items, 0);

    let b = common::start(|c| {
        if let Some(g) = c.otlp_grpc_mut() {
            g.endpoint = format!("127.0.0.1:{port}");
        }
    })
    .await;
    common::eventually(
        Duration::from_secs(60),
        "all 10,000 spans at B",
        async || {
            let q = b.query.clone();
            let done = { stats(&q).await.spans.unwrap_or_default().accepted >= 10_000 };
            done.then_some(()).ok_or("not yet")
        },
    )
    .await;
    let copies = span_copies(&b.query, 100).await;
    assert_eq!(copies.len(), 10_000, "distinct spans at B");
    let s = stats(&a.query).await;
    let e = exporter(&s, "otlp/b");
    assert_eq!(e.sent_items, 10_000);
    assert_eq!(e.failed_items, 0);
    a.stop().await;
    b.stop().await;
}

/// A is killed with -9 while its queue holds spans and it is sending them to B; restarted,
/// it drains the rest. At-least-once: every span arrives; batches sent but not yet marked
/// done when A died arrive twice, and the test counts and reports them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_a_full_queue_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    // Small batches, one at a time, so the kill lands in the middle of the drain.
    let small =
        "    batch:\n      send_batch_size: 100\n    sending_queue:\n      num_consumers: 1\n";
    let yaml = otlp_to(&format!("127.0.0.1:{port}"), small)
        .replace("    batch:\n      timeout: 20ms\n", "");
    let cfg = common::write_config(dir.path(), &dir.path().join("a-data"), &yaml);
    let cfg_arg = cfg.to_str().expect("utf-8 path").to_string();
    let mut a = common::spawn_sieve(&["serve", "--config", &cfg_arg], dir.path());
    send_spans(&a.otlp, 5, 100).await;
    let s = stats(&a.query).await;
    assert_eq!(exporter(&s, "otlp/b").queue_items, 5_000);

    let b = common::start(|c| {
        if let Some(g) = c.otlp_grpc_mut() {
            g.endpoint = format!("127.0.0.1:{port}");
        }
    })
    .await;
    // Kill A as soon as B has received something.
    common::eventually(
        Duration::from_secs(30),
        "A to start delivering",
        async || {
            let q = b.query.clone();
            let done = { stats(&q).await.spans.unwrap_or_default().accepted > 0 };
            done.then_some(()).ok_or("not yet")
        },
    )
    .await;
    let status = a.signal_and_wait("KILL");
    assert!(!status.success());
    let before_restart = stats(&b.query).await.spans.unwrap_or_default().accepted;

    let a = common::spawn_sieve(&["serve", "--config", &cfg_arg], dir.path());
    common::eventually(
        Duration::from_secs(60),
        "A's queue to drain after the restart",
        async || {
            let q = a.query.clone();
            let done = { exporter(&stats(&q).await, "otlp/b").queue_entries == 0 };
            done.then_some(()).ok_or("not yet")
        },
    )
    .await;
    let copies = span_copies(&b.query, 50).await;
    assert_eq!(copies.len(), 5_000, "every span arrived");
    let duplicates: usize = copies.values().map(|n| n - 1).sum();
    eprintln!(
        "kill -9 during the drain: B had {before_restart} spans at the kill; after the restart \
         all 5000 distinct spans arrived, {duplicates} of them twice (at-least-once)"
    );
    drop(a);
    b.stop().await;
}

/// Bulkheads: one exporter's backend is down, the other's is up. The live one delivers
/// everything while the dead one's queue holds it all, and the receiver keeps accepting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_backend_does_not_hold_up_another_exporter() {
    let b = common::start(|_| {}).await;
    let live = b.otlp.trim_start_matches("http://").to_string();
    let dead = format!("127.0.0.1:{}", free_port());
    let fast = "    retry_on_failure:\n      initial_interval: 100ms\n      max_interval: 500ms\n    batch:\n      timeout: 20ms\n";
    let yaml = format!(
        "exporters:\n  otlp/dead:\n    endpoint: {dead}\n{fast}  otlp/live:\n    endpoint: {live}\n{fast}service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp/dead, otlp/live]\n"
    );
    let a = common::start(|c| apply(c, &yaml)).await;
    send_spans(&a.otlp, 10, 100).await;
    common::eventually(
        Duration::from_secs(30),
        "all spans at the live backend",
        async || {
            let q = b.query.clone();
            let done = { stats(&q).await.spans.unwrap_or_default().accepted >= 10_000 };
            done.then_some(()).ok_or("not yet")
        },
    )
    .await;
    let s = stats(&a.query).await;
    let (d, l) = (exporter(&s, "otlp/dead"), exporter(&s, "otlp/live"));
    assert_eq!(d.queue_items, 10_000, "{d:?}");
    assert_eq!(d.sent_items, 0);
    assert!(d.retries > 0);
    assert_eq!(l.sent_items, 10_000, "{l:?}");
    assert_eq!(s.spans.unwrap_or_default().refused, 0);
    a.stop().await;
    b.stop().await;
}

/// With B down and a small queue: the default policy refuses new requests with UNAVAILABLE
/// and RetryInfo; drop_oldest accepts them and counts what it dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_refuses_or_drops_oldest() {
    let port = free_port();
    let small = "    sending_queue:\n      queue_size_mib: 1\n";
    let a = common::start(|c| apply(c, &otlp_to(&format!("127.0.0.1:{port}"), small))).await;
    let mut client = TraceServiceClient::new(a.otlp_channel().await);
    let mut refused = None;
    for i in 0..100 {
        match client.export(spans_request(i * 10, 10, 100)).await {
            Ok(_) => {}
            Err(s) => {
                refused = Some(s);
                break;
            }
        }
    }
    let s = refused.expect("a full queue refuses");
    assert_eq!(s.code(), Code::Unavailable, "{s:?}");
    assert!(s.message().contains("otlp/b"), "{s:?}");
    assert!(
        s.get_details_retry_info()
            .and_then(|r| r.retry_delay)
            .is_some()
    );
    let st = stats(&a.query).await;
    assert!(st.spans.unwrap_or_default().refused >= 1);
    assert!(exporter(&st, "otlp/b").queue_bytes >= 1024 * 1024);
    a.stop().await;

    let drop = format!("{small}      when_full: drop_oldest\n");
    let a = common::start(|c| apply(c, &otlp_to(&format!("127.0.0.1:{port}"), &drop))).await;
    let mut client = TraceServiceClient::new(a.otlp_channel().await);
    for i in 0..40 {
        client
            .export(spans_request(i * 10, 10, 100))
            .await
            .expect("drop_oldest never refuses");
    }
    let st = stats(&a.query).await;
    let e = exporter(&st, "otlp/b");
    assert!(e.dropped_items > 0, "{e:?}");
    assert!(e.queue_bytes <= 1024 * 1024 + 200_000, "{e:?}");
    // Dropped from the queue, not from the store: A still holds all 40,000 spans.
    assert_eq!(st.spans.unwrap_or_default().accepted, 40_000);
    assert_eq!(e.dropped_items + e.queue_items, 40_000);
    a.stop().await;
}

/// What an OTLP/HTTP backend saw: (path, headers, decompressed body).
type Seen = Arc<Mutex<Vec<(String, http::HeaderMap, Bytes)>>>;

/// A small OTLP/HTTP endpoint on loopback: answers the first request 503 with Retry-After,
/// then 200 with a partial success of one rejected span.
async fn http_backend() -> (String, Seen) {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Seen = Arc::default();
    let keep = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = keep.clone();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let bytes = body
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let plain =
                                match parts.headers.get("content-encoding").map(|v| v.as_bytes()) {
                                    Some(b"gzip") => {
                                        use std::io::Read;
                                        let mut out = Vec::new();
                                        flate2::read::GzDecoder::new(&bytes[..])
                                            .read_to_end(&mut out)
                                            .expect("gzip");
                                        Bytes::from(out)
                                    }
                                    _ => bytes,
                                };
                            let n = {
                                let mut s = seen.lock().unwrap();
                                s.push((
                                    parts.uri.path().to_string(),
                                    parts.headers.clone(),
                                    plain,
                                ));
                                s.len()
                            };
                            let resp = if n == 1 {
                                http::Response::builder()
                                    .status(503)
                                    .header("retry-after", "1")
                                    .body(http_body_util::Full::new(Bytes::from_static(b"busy")))
                            } else {
                                let body = sieve::stages::export::sink::ExportResponse {
                                    partial_success: Some(
                                        sieve::stages::export::sink::PartialSuccess {
                                            rejected: 1,
                                            error_message: "one span too old".into(),
                                        },
                                    ),
                                }
                                .encode_to_vec();
                                http::Response::builder()
                                    .status(200)
                                    .header("content-type", "application/x-protobuf")
                                    .body(http_body_util::Full::new(Bytes::from(body)))
                            };
                            Ok::<_, std::convert::Infallible>(resp.expect("response"))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), seen)
}

/// otlphttp: protobuf POSTs to /v1/traces with the configured header, gzip, the request
/// bytes unchanged; a 503 with Retry-After is retried after its delay; a partial success is
/// recorded as rejected, not retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlphttp_exporter_sends_what_it_got() {
    let (url, seen) = http_backend().await;
    let yaml = forward(
        "otlphttp",
        &format!(
            "    endpoint: {url}\n    headers:\n      x-api-key: secret\n    batch:\n      timeout: 20ms\n"
        ),
    );
    let a = common::start(|c| apply(c, &yaml)).await;
    let sent = spans_request(0, 2, 3);
    TraceServiceClient::new(a.otlp_channel().await)
        .export(sent.clone())
        .await
        .expect("export");
    let started = Instant::now();
    common::eventually(
        Duration::from_secs(20),
        "two requests at the backend",
        async || {
            let seen = seen.clone();
            let done = { seen.lock().unwrap().len() >= 2 };
            done.then_some(()).ok_or("not yet")
        },
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After: 1 was not honoured"
    );
    let seen = seen.lock().unwrap().clone();
    for (path, headers, body) in &seen[..2] {
        assert_eq!(path, "/v1/traces");
        assert_eq!(headers["content-type"], "application/x-protobuf");
        assert_eq!(headers["content-encoding"], "gzip");
        assert_eq!(headers["x-api-key"], "secret");
        assert_eq!(
            &body[..],
            &sent.encode_to_vec()[..],
            "forwarded byte for byte"
        );
    }
    let st = stats(&a.query).await;
    let e = exporter(&st, "otlphttp");
    assert_eq!(
        (e.rejected_items, e.sent_items, e.retries),
        (1, 5, 1),
        "{e:?}"
    );
    a.stop().await;
}

/// file: one OTLP JSON line per batch, readable back into the same data, rotated by size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_exporter_writes_otlp_json_lines() {
    let out = tempfile::tempdir().expect("tempdir");
    let path = out.path().join("otlp.jsonl");
    let yaml = forward(
        "file",
        &format!(
            "    path: {}\n    rotation:\n      max_megabytes: 1\n      max_backups: 2\n    batch:\n      timeout: 20ms\n",
            path.display()
        ),
    );
    let a = common::start(|c| apply(c, &yaml)).await;
    let sent = spans_request(0, 3, 4);
    TraceServiceClient::new(a.otlp_channel().await)
        .export(sent.clone())
        .await
        .expect("export");
    let lp = common::logger_provider(&a.otlp, "filer");
    let logger = lp.logger("l");
    let mut rec = logger.create_log_record();
    rec.set_body(LogValue::from("written to a file"));
    logger.emit(rec);
    let mp = common::meter_provider(&a.otlp, "filer");
    mp.meter("m").u64_counter("files").build().add(1, &[]);
    let (lp2, mp2) = (lp.clone(), mp.clone());
    common::blocking(move || {
        lp2.force_flush().expect("logs");
        mp2.force_flush().expect("metrics");
    })
    .await;
    common::eventually(
        Duration::from_secs(20),
        "three lines in the file",
        async || {
            let path = path.clone();
            let done = {
                std::fs::read_to_string(&path)
                    .map(|t| t.lines().count() >= 3)
                    .unwrap_or(false)
            };
            done.then_some(()).ok_or("not yet")
        },
    )
    .await;
    let text = std::fs::read_to_string(&path).expect("read");
    let (mut traces, mut logs, mut metrics) = (None, None, None);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
        if v.get("resourceSpans").is_some() {
            traces = Some(serde_json::from_value::<TracesData>(v).expect("TracesData"));
        } else if v.get("resourceLogs").is_some() {
            logs = Some(serde_json::from_value::<LogsData>(v).expect("LogsData"));
        } else if v.get("resourceMetrics").is_some() {
            metrics = Some(serde_json::from_value::<MetricsData>(v).expect("MetricsData"));
        }
    }
    assert_eq!(
        traces.expect("a traces line").resource_spans,
        sent.resource_spans
    );
    let logs = logs.expect("a logs line");
    let body = logs.resource_logs[0].scope_logs[0].log_records[0]
        .body
        .clone();
    assert_eq!(
        sieve::otlp::any_value_text(body.as_ref()),
        "written to a file"
    );
    let metrics = metrics.expect("a metrics line");
    assert_eq!(
        metrics.resource_metrics[0].scope_metrics[0].metrics[0].name,
        "files"
    );
    // Ids are hex in OTLP JSON.
    assert!(text.contains(&trace_id_hex(0)));
    a.stop().await;

    // Rotation: push past 1 MiB several times; at most two rotated files are kept.
    let a = common::start(|c| apply(c, &yaml)).await;
    let mut client = TraceServiceClient::new(a.otlp_channel().await);
    for i in 0..20 {
        client
            .export(spans_request(i * 10, 10, 100))
            .await
            .expect("export");
    }
    common::eventually(Duration::from_secs(30), "rotation", async || {
        let dir = out.path().to_path_buf();
        let done = {
            std::fs::read_dir(&dir)
                .map(|d| d.count() == 3)
                .unwrap_or(false)
        };
        done.then_some(()).ok_or("not yet")
    })
    .await;
    let st = stats(&a.query).await;
    assert_eq!(exporter(&st, "file").failed_items, 0);
    a.stop().await;
    let names: HashSet<String> = std::fs::read_dir(out.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains("otlp.jsonl"), "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("otlp")), "{names:?}");
}

/// Bad exporter configuration is refused at start with the key and the reason.
#[test]
fn bad_exporter_config_names_the_key() {
    for (yaml, key) in [
        (
            "exporters:\n  otlp:\n    endpoint: nowhere\n",
            "exporters.otlp.endpoint",
        ),
        (
            "exporters:\n  otlp:\n    endpoint: https://x:4317\n    tls:\n      insecure: true\n",
            "exporters.otlp.endpoint",
        ),
        (
            "exporters:\n  otlp:\n    endpoint: x:4317\n    tls:\n      insecure_skip_verify: true\n",
            "exporters.otlp.tls.insecure_skip_verify",
        ),
        (
            "exporters:\n  otlp:\n    endpoint: x:4317\n    tls:\n      ca_file: /nonexistent/ca.pem\n",
            "exporters.otlp.tls.ca_file",
        ),
        (
            "exporters:\n  otlphttp:\n    endpoint: https://x:4318\n    tls:\n      ca_file: /nonexistent/ca.pem\n",
            "exporters.otlphttp.tls.ca_file",
        ),
        ("exporters:\n  otlp:\n    timeout: 1s\n", "exporters.otlp"),
        ("exporters:\n  kafka: {}\n", "exporters.kafka"),
        ("exporters:\n  otlp/:\n    endpoint: a:1\n", "exporters"),
        (
            "exporters:\n  otlp:\n    endpoint: a:1\n    compression: lz4\n",
            "exporters.otlp.compression",
        ),
        (
            "exporters:\n  otlp:\n    endpoint: a:1\n    sending_queue:\n      when_full: panic\n",
            "exporters.otlp.sending_queue.when_full",
        ),
        (
            "exporters:\n  otlp:\n    endpoint: a:1\n    sending_queue:\n      queue_size_mib: 0\n",
            "exporters.otlp.sending_queue.queue_size_mib",
        ),
        (
            "exporters:\n  otlp:\n    endpoint: a:1\n    retry_on_failure:\n      initial_interval: 10s\n      max_interval: 1s\n",
            "exporters.otlp.retry_on_failure.max_interval",
        ),
        (
            "exporters:\n  otlp:\n    endpoint: a:1\n    circuit_breaker:\n      failure_rate: 2\n",
            "exporters.otlp.circuit_breaker.failure_rate",
        ),
        (
            "exporters:\n  otlp:\n    endpoint: a:1\n    headers:\n      'Bad Header': x\n",
            "exporters.otlp.headers",
        ),
        (
            "exporters:\n  otlphttp: {}\n",
            "exporters.otlphttp.endpoint",
        ),
        ("exporters:\n  file: {}\n", "exporters.file"),
        (
            "exporters:\n  debug:\n    verbosity: loud\n",
            "exporters.debug.verbosity",
        ),
        (
            "exporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug, debug]\n",
            "service.pipelines.traces.exporters",
        ),
        (
            "service:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [otlp/missing]\n",
            "service.pipelines.logs.exporters",
        ),
        (
            "processors:\n  batch:\n    metadata_keys: [tenant]\n",
            "processors.batch.metadata_keys",
        ),
    ] {
        let e = Config::from_yaml(yaml).expect_err(yaml).to_string();
        assert!(e.contains(key), "{yaml:?} gave {e:?}, wanted {key}");
    }
    let ok = Config::from_yaml(
        "exporters:\n  debug:\n  otlp/x:\n    endpoint: http://127.0.0.1:4317\n    compression: zstd\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug, otlp/x]\n",
    );
    assert!(ok.is_ok(), "{ok:?}");
}

/// debug: a summary line per batch and, at `normal`, a line per span on sieve's stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_exporter_logs_batches_and_items() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = forward(
        "debug",
        "    verbosity: normal\n    batch:\n      timeout: 20ms\n",
    );
    let cfg = common::write_config(dir.path(), &dir.path().join("data"), &yaml);
    let a = common::spawn_sieve(
        &["serve", "--config", cfg.to_str().expect("utf-8 path")],
        dir.path(),
    );
    TraceServiceClient::new(common::channel(&a.otlp).await)
        .export(spans_request(0, 1, 3))
        .await
        .expect("export");
    let lines = a.stderr.clone();
    common::eventually(
        Duration::from_secs(20),
        "the debug exporter's lines",
        async || {
            let lines = lines.clone();
            let done = {
                let l = lines.lock().unwrap();
                l.iter()
                    .any(|x| x.contains("debug: 3 spans in 1 resources"))
                    && l.iter()
                        .filter(|x| x.contains("load ") && x.contains(" op-"))
                        .count()
                        == 3
            };
            done.then_some(()).ok_or("not yet")
        },
    )
    .await;
}

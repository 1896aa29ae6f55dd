//! Load generator for sieve's OTLP/gRPC receiver: N concurrent clients send pre-encoded
//! export requests of realistic spans as fast as the gateway acknowledges them.
//!
//! Batches are generated and encoded once (10-30 spans per trace, five services, a handful of
//! attributes per span, events on some); before each send the first 8 bytes of every trace id
//! are overwritten with a per-send counter, so every request carries new traces without the
//! client spending its CPU on protobuf encoding. Prints accepted spans/s, request latency
//! percentiles and refusals (UNAVAILABLE under backpressure).
//!
//! ```sh
//! cargo run --release -- &                                  # the gateway
//! cargo run --release --example loadgen -- --endpoint http://127.0.0.1:4317 \
//!     --clients 8 --spans-per-request 500 --duration 30s --server-pid $(pgrep -n sieve)
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span::Event};
use prost::Message;
use rand::Rng;

#[derive(Parser, Debug)]
struct Args {
    /// OTLP/gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    /// Concurrent clients, each on its own connection.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Spans per export request.
    #[arg(long, default_value_t = 500)]
    spans_per_request: usize,
    /// How long to send.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Distinct pre-encoded batches to cycle through.
    #[arg(long, default_value_t = 64)]
    batches: usize,
    /// PID of the gateway, to report its peak RSS (VmHWM) at the end.
    #[arg(long)]
    server_pid: Option<u32>,
}

/// A pre-encoded request and where its trace ids sit in the bytes.
struct Batch {
    bytes: Vec<u8>,
    trace_id_offsets: Vec<usize>,
    spans: u64,
}

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

fn make_batch(rng: &mut impl Rng, spans_wanted: usize) -> Batch {
    const SERVICES: [&str; 5] = ["frontend", "auth", "catalog", "inventory", "pricing"];
    const OPS: [&str; 6] = ["GET /product/{id}", "POST /verify", "GET /item", "SELECT products", "GET /stock", "GET /price"];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut per_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
    let mut trace_ids = Vec::new();
    let mut made = 0;
    while made < spans_wanted {
        let n = rng.random_range(10..=30).min(spans_wanted - made);
        let tid: [u8; 16] = rng.random();
        trace_ids.push(tid);
        let start = now - rng.random_range(0..1_000_000_000u64);
        let mut ids: Vec<[u8; 8]> = Vec::new();
        for i in 0..n {
            let sid: [u8; 8] = rng.random();
            let parent = if i == 0 { vec![] } else { ids[rng.random_range(0..ids.len())].to_vec() };
            ids.push(sid);
            let svc = if i == 0 { 0 } else { rng.random_range(0..SERVICES.len()) };
            let s0 = start + i as u64 * 100_000;
            let dur = rng.random_range(50_000..50_000_000u64);
            let mut span = Span {
                trace_id: tid.to_vec(),
                span_id: sid.to_vec(),
                parent_span_id: parent,
                name: OPS[rng.random_range(0..OPS.len())].into(),
                kind: if i == 0 { 2 } else { 3 },
                start_time_unix_nano: s0,
                end_time_unix_nano: s0 + dur,
                attributes: vec![
                    kv("http.request.method", s("GET")),
                    kv("http.route", s("/product/{id}")),
                    kv("user.tier", s(if rng.random_bool(0.2) { "gold" } else { "standard" })),
                    kv("product.id", any_value::Value::IntValue(rng.random_range(0..1000))),
                    kv("net.peer.port", any_value::Value::IntValue(443)),
                ],
                ..Default::default()
            };
            if rng.random_bool(0.1) {
                span.events.push(Event {
                    time_unix_nano: s0 + dur / 2,
                    name: "retry".into(),
                    attributes: vec![kv("attempt", any_value::Value::IntValue(2))],
                    ..Default::default()
                });
            }
            if rng.random_bool(0.02) {
                span.status = Some(Status { code: 2, message: "upstream reset".into() });
            }
            per_service[svc].push(span);
        }
        made += n;
    }
    let req = ExportTraceServiceRequest {
        resource_spans: per_service
            .into_iter()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .map(|(i, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", s(SERVICES[i])),
                        kv("service.version", s("1.4.2")),
                        kv("host.name", s("node-7")),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                schema_url: String::new(),
            })
            .collect(),
    };
    let bytes = req.encode_to_vec();
    // Every place a trace id occurs: the 16 bytes after the field tag 0x0a and length 0x10.
    let mut trace_id_offsets = Vec::new();
    for tid in &trace_ids {
        let mut pat = vec![0x0a, 0x10];
        pat.extend_from_slice(tid);
        let mut from = 0;
        while let Some(pos) = bytes[from..].windows(pat.len()).position(|w| w == pat.as_slice()) {
            trace_id_offsets.push(from + pos + 2);
            from += pos + pat.len();
        }
    }
    Batch { bytes, trace_id_offsets, spans: made as u64 }
}

const PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.clients > 0 && args.spans_per_request > 0 && args.batches > 0, "counts must be positive");
    let mut rng = rand::rng();
    let batches: Arc<Vec<Batch>> = Arc::new((0..args.batches).map(|_| make_batch(&mut rng, args.spans_per_request)).collect());
    let bytes: usize = batches.iter().map(|b| b.bytes.len()).sum();
    eprintln!(
        "loadgen: {} clients, {} spans/request ({} bytes/request on average), {:?} to {}",
        args.clients,
        args.spans_per_request,
        bytes / batches.len(),
        args.duration,
        args.endpoint
    );
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let counter = Arc::new(AtomicU64::new(1));
    let start = Instant::now();
    let deadline = start + args.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..args.clients {
        let channel = tonic::transport::Endpoint::from_shared(args.endpoint.clone())?.connect().await?;
        let (batches, accepted, refused, errors, counter) =
            (batches.clone(), accepted.clone(), refused.clone(), errors.clone(), counter.clone());
        tasks.spawn(async move {
            let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
            let mut i = c;
            while Instant::now() < deadline {
                let b = &batches[i % batches.len()];
                i += 1;
                let nonce = counter.fetch_add(1, Ordering::Relaxed).to_be_bytes();
                let mut body = b.bytes.clone();
                for &off in &b.trace_id_offsets {
                    body[off..off + 8].copy_from_slice(&nonce);
                }
                let t0 = Instant::now();
                let r = sieve::otlp::send_pre_encoded::<ExportTraceServiceResponse>(channel.clone(), PATH, Bytes::from(body)).await;
                match r {
                    Ok(resp) => {
                        let rejected = resp.partial_success.map(|p| p.rejected_spans as u64).unwrap_or(0);
                        accepted.fetch_add(b.spans - rejected, Ordering::Relaxed);
                        let _ = hist.record(t0.elapsed().as_micros() as u64);
                    }
                    Err(s) if s.code() == tonic::Code::Unavailable => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(s) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("loadgen: error {s}");
                        }
                    }
                }
            }
            hist
        });
    }
    let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    while let Some(h) = tasks.join_next().await {
        hist.add(h?)?;
    }
    let secs = start.elapsed().as_secs_f64();
    let n = accepted.load(Ordering::Relaxed);
    println!("accepted spans:   {n}");
    println!("spans/s:          {:.0}", n as f64 / secs);
    println!("requests OK:      {} ({:.0}/s)", hist.len(), hist.len() as f64 / secs);
    println!("latency p50:      {:.2} ms", hist.value_at_quantile(0.50) as f64 / 1000.0);
    println!("latency p99:      {:.2} ms", hist.value_at_quantile(0.99) as f64 / 1000.0);
    println!("refusals:         {}", refused.load(Ordering::Relaxed));
    println!("errors:           {}", errors.load(Ordering::Relaxed));
    if let Some(pid) = args.server_pid {
        match peak_rss_kib(pid) {
            Some(kib) => println!("server peak RSS:  {:.1} MiB", kib as f64 / 1024.0),
            None => println!("server peak RSS:  unknown (no /proc/{pid}/status)"),
        }
    }
    Ok(())
}

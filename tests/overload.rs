//! Ten times more tiny-span traffic than the intake budget holds, against the gateway binary
//! with a memory limiter whose soft limit is below what the budget alone would let the
//! process reach: the limiter refuses, peak resident memory stays under the limit, and what
//! is refused is refused retryably (UNAVAILABLE with RetryInfo).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use tonic::Code;
use tonic_types::StatusExt;

/// `n` spans with only their ids (valid, 20 bytes each on the wire), written byte by byte.
fn tiny_spans_body(n: usize, seed: u32) -> Vec<u8> {
    let mut spans = Vec::with_capacity(n * 40);
    for i in 0..n {
        let mut span = vec![0x0a, 16]; // trace_id
        span.extend_from_slice(&seed.to_be_bytes());
        span.extend_from_slice(&(i as u64).to_be_bytes());
        span.extend_from_slice(&[1, 2, 3, 4]);
        span.extend_from_slice(&[0x12, 8]); // span_id
        span.extend_from_slice(&(i as u64 + 1).to_be_bytes());
        span.extend_from_slice(&[0x2a, 1, b'x']); // name
        spans.push(0x12); // ScopeSpans.spans (2)
        common::otlp::varint(span.len(), &mut spans);
        spans.extend_from_slice(&span);
    }
    common::otlp::raw_traces_request(&spans)
}

fn peak_rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib / 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenfold_tiny_span_overload_stays_under_the_memory_limit() {
    const LIMIT_MIB: u64 = 448;
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write_config(
        dir.path(),
        &dir.path().join("data"),
        &format!(
            "intake:\n  max_inflight_mib: 64\nprocessors:\n  memory_limiter:\n    check_interval: 100ms\n    limit_mib: {LIMIT_MIB}\n    spike_limit_mib: 160\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [memory_limiter]\n"
        ),
    );
    let gw = common::spawn_sieve(&["serve", "--config", cfg.to_str().unwrap()], dir.path());
    let pid = gw.child.id();
    // 100,000 spans a request: 3.4 MB on the wire, about 40 MB decoded; 16 senders keep
    // ten times the 64 MiB budget asked for.
    let bodies: Vec<Bytes> = (0..4)
        .map(|s| Bytes::from(tiny_spans_body(100_000, s)))
        .collect();
    let (taken, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let by_limiter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut senders = tokio::task::JoinSet::new();
    for c in 0..16usize {
        let channel = common::channel(&gw.otlp).await;
        let body = bodies[c % bodies.len()].clone();
        let (taken, refused) = (taken.clone(), refused.clone());
        let by_limiter = by_limiter.clone();
        senders.spawn(async move {
            while Instant::now() < deadline {
                let r = sieve::otlp::send_pre_encoded::<ExportTraceServiceResponse>(
                    channel.clone(),
                    "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                    body.clone(),
                )
                .await;
                match r {
                    Ok(_) => {
                        taken.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(s) => {
                        assert_eq!(s.code(), Code::Unavailable, "{s:?}");
                        assert!(s.get_error_details().retry_info().is_some(), "{s:?}");
                        refused.fetch_add(1, Ordering::Relaxed);
                        if s.message().contains("memory_limiter") {
                            by_limiter.fetch_add(1, Ordering::Relaxed);
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        });
    }
    while let Some(r) = senders.join_next().await {
        r.expect("sender");
    }
    let peak = peak_rss_mib(pid);
    let (taken, refused) = (
        taken.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    let by_limiter = by_limiter.load(Ordering::Relaxed);
    eprintln!(
        "overload: {taken} requests taken, {refused} refused ({by_limiter} by the memory \
         limiter), peak RSS {peak} MiB"
    );
    assert!(taken > 0, "some requests get in");
    assert!(refused > 0, "ten times the budget is refused in part");
    // The soft limit (288 MiB) is below what the budget alone lets the process reach.
    assert!(by_limiter > 0, "the memory limiter refused some requests");
    assert!(
        peak < LIMIT_MIB,
        "peak RSS {peak} MiB over the {LIMIT_MIB} MiB limit"
    );
    let mut gw = gw;
    assert!(gw.signal_and_wait("TERM").success());
}

//! Trace analysis end to end: traces from the official Rust SDK through a real gateway into
//! span metrics, the service graph and bottlenecks, computed on every span before sampling;
//! the figures survive a restart; the queries and the CLI refuse malformed arguments.

mod common;

use std::time::{Duration, SystemTime};

use common::apply;
use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use sieve::proto::query_service_client::QueryServiceClient;
use sieve::proto::{
    FindTracesRequest, GetBottlenecksRequest, GetServiceGraphRequest, GetSpanMetricsRequest,
    GetStatsRequest, WhatIfRequest,
};
use tonic::Code;
use tonic::transport::Channel;

const TRACES: u64 = 1000;
const MS: Duration = Duration::from_millis(1);

/// checkout `GET /cart` (SERVER, 100 ms) → checkout `GET /price` (CLIENT, 10..90 ms) →
/// pricing `GET /price` (SERVER, 15..85 ms; every 10th an error), starting a minute ago. On
/// the critical path pricing holds 70 of 100 ms, checkout's server span 20 and its client
/// span 10.
fn send_traces(endpoint: &str) {
    send_traces_at(endpoint, Duration::from_secs(60), 70);
}

/// The same `ago` in the past, with pricing's span `pricing_ms` long (the client span 10 ms
/// longer), in the middle of the root's 100 ms.
fn send_traces_at(endpoint: &str, ago: Duration, pricing_ms: u64) {
    let checkout = common::tracer_provider(endpoint, "checkout", None);
    let pricing = common::tracer_provider(endpoint, "pricing", None);
    let (ct, pt) = (checkout.tracer("test"), pricing.tracer("test"));
    let base = SystemTime::now() - ago;
    for i in 0..TRACES {
        let t0 = base + Duration::from_micros(i * 50);
        let root = ct
            .span_builder("GET /cart")
            .with_kind(SpanKind::Server)
            .with_start_time(t0)
            .start(&ct);
        let cx = Context::current_with_span(root);
        let client = ct
            .span_builder("GET /price")
            .with_kind(SpanKind::Client)
            .with_start_time(t0 + 10 * MS)
            .start_with_context(&ct, &cx);
        let ccx = cx.with_span(client);
        let mut server = pt
            .span_builder("GET /price")
            .with_kind(SpanKind::Server)
            .with_start_time(t0 + 15 * MS)
            .with_attributes([KeyValue::new("i", i as i64)])
            .start_with_context(&pt, &ccx);
        if i % 10 == 0 {
            server.set_status(Status::error("no price"));
        }
        server.end_with_timestamp(t0 + (15 + pricing_ms as u32) * MS);
        ccx.span()
            .end_with_timestamp(t0 + (20 + pricing_ms as u32) * MS);
        cx.span().end_with_timestamp(t0 + 100 * MS);
    }
    checkout.force_flush().expect("flush checkout");
    pricing.force_flush().expect("flush pricing");
}

const SAMPLED: &str = "processors:\n  probabilistic_sampler:\n    sampling_percentage: 10\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [probabilistic_sampler]\n";

fn fast(c: &mut sieve::config::Config) {
    apply(c, SAMPLED);
    c.analysis.trace_idle = Duration::from_millis(300);
}

/// Waits until the analysis stage has folded `n` traces.
async fn analysed(q: &mut QueryServiceClient<Channel>, n: u64) {
    let what = format!("{n} traces analysed");
    let a = common::eventually(Duration::from_secs(30), &what, async || {
        let s = q.get_stats(GetStatsRequest {}).await.unwrap().into_inner();
        let a = s.analysis.expect("analysis stats");
        if a.traces >= n { Ok(a) } else { Err(a) }
    })
    .await;
    assert_eq!(a.traces, n, "{a:?}");
}

async fn metrics(
    q: &mut QueryServiceClient<Channel>,
    service: &str,
) -> Vec<(String, i32, i32, u64, u64)> {
    let r = q
        .get_span_metrics(GetSpanMetricsRequest {
            service: service.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    r.series
        .iter()
        .map(|s| {
            let t = s.total.unwrap_or_default();
            (
                s.operation.clone(),
                s.kind,
                s.status_code,
                t.calls,
                t.errors,
            )
        })
        .collect()
}

/// 1,000 traces at 10% head sampling: the span metrics, the graph and the bottlenecks count
/// all 1,000; the store keeps about 100. After a restart the figures are still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_sees_every_trace_before_sampling() {
    let gw = common::start(fast).await;
    let endpoint = gw.otlp.clone();
    common::blocking(move || send_traces(&endpoint)).await;
    let mut q = gw.query_client().await;

    // RED: every span, by (operation, kind, status).
    let checkout = metrics(&mut q, "checkout").await;
    assert_eq!(
        checkout,
        vec![
            ("GET /cart".to_string(), 2, 0, TRACES, 0),
            ("GET /price".to_string(), 3, 0, TRACES, 0),
        ]
    );
    let pricing = metrics(&mut q, "pricing").await;
    assert_eq!(
        pricing,
        vec![
            ("GET /price".to_string(), 2, 0, TRACES * 9 / 10, 0),
            ("GET /price".to_string(), 2, 2, TRACES / 10, TRACES / 10),
        ]
    );
    // The percentiles are the span durations (70 ms), within the histogram's 1/64.
    let r = q
        .get_span_metrics(GetSpanMetricsRequest {
            service: "pricing".into(),
            operation: "GET /price".into(),
            step_nanos: 60_000_000_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let p99 = r.series[0].total.unwrap().p99_nanos as f64 / 1e6;
    assert!((p99 - 70.0).abs() < 70.0 / 64.0 + 0.01, "p99 {p99} ms");
    // 1-minute points: the 50 ms of data fall into one or two of them, and add up.
    let points = &r.series[0].points;
    assert!(!points.is_empty() && points.len() <= 2, "{points:?}");
    assert!(
        points
            .iter()
            .all(|p| p.start_unix_nano % 60_000_000_000 == 0)
    );
    assert_eq!(points.iter().map(|p| p.calls).sum::<u64>(), TRACES * 9 / 10);

    // The store keeps the sample: 1,000 at 10% is 100 ± 3.29·9.5 at 99.9%.
    let stored = common::traces(
        &mut q,
        FindTracesRequest {
            service_name: "checkout".into(),
            limit: 1000,
            ..Default::default()
        },
    )
    .await
    .len();
    println!("stored traces: {stored} of {TRACES}");
    assert!((69..=131).contains(&stored), "{stored} stored");

    // Service graph: one edge, every request, the failed ones.
    let g = q
        .get_service_graph(GetServiceGraphRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.edges.len(), 1, "{g:?}");
    let e = &g.edges[0];
    assert_eq!(
        (e.client.as_str(), e.server.as_str(), e.requests, e.failed),
        ("checkout", "pricing", TRACES, TRACES / 10)
    );
    assert!(
        (e.client_p50_nanos as f64 / 1e6 - 80.0).abs() < 2.0,
        "{e:?}"
    );

    // Bottlenecks, once the traces are complete.
    analysed(&mut q, TRACES).await;
    let b = q
        .get_bottlenecks(GetBottlenecksRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(b.traces, TRACES);
    assert_eq!(b.end_to_end_nanos, TRACES * 100_000_000);
    let rows: Vec<(&str, &str, u64, u64)> = b
        .bottlenecks
        .iter()
        .map(|r| {
            (
                r.service.as_str(),
                r.operation.as_str(),
                r.traces,
                r.critical_path_nanos / TRACES,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("pricing", "GET /price", TRACES, 70_000_000),
            ("checkout", "GET /cart", TRACES, 20_000_000),
            ("checkout", "GET /price", TRACES, 10_000_000),
        ]
    );
    assert!((b.bottlenecks[0].share - 0.7).abs() < 1e-9);
    assert_eq!(b.bottlenecks[0].exemplars.len(), 3);
    assert_eq!(b.slowest.len(), 3);
    // By call path, and filtered by service.
    let paths = q
        .get_bottlenecks(GetBottlenecksRequest {
            service: "pricing".into(),
            by_call_path: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paths.bottlenecks.len(), 1);
    assert_eq!(
        paths.bottlenecks[0].call_path,
        "checkout: GET /cart > checkout: GET /price > pricing: GET /price"
    );
    // What-if: pricing 30% faster saves 21 of every 100 ms.
    let w = q
        .what_if(WhatIfRequest {
            service: "pricing".into(),
            operation: "GET /price".into(),
            speedup: 0.3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((w.traces, w.affected_traces), (TRACES, TRACES));
    assert_eq!(w.projected_end_to_end_nanos, TRACES * 79_000_000);
    assert!((w.change + 0.21).abs() < 1e-9, "{w:?}");

    // A restart keeps the figures (checkpointed at shutdown).
    let dir = gw.stop_keep_dir().await;
    let gw = common::start_in(dir, fast).await;
    let mut q = gw.query_client().await;
    assert_eq!(metrics(&mut q, "checkout").await, checkout);
    let b2 = q
        .get_bottlenecks(GetBottlenecksRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((b2.traces, b2.bottlenecks.len()), (TRACES, 3));
    gw.stop().await;
}

/// Malformed arguments are INVALID_ARGUMENT naming the field; with analysis disabled the
/// queries say so; the CLI rejects bad flags before connecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_queries_refuse_bad_arguments() {
    let gw = common::start(|c| c.analysis.enabled = false).await;
    let mut q = gw.query_client().await;
    let e = q
        .get_bottlenecks(GetBottlenecksRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("analysis.enabled"), "{e:?}");
    let s = q.get_stats(GetStatsRequest {}).await.unwrap().into_inner();
    assert!(s.analysis.is_none());
    gw.stop().await;

    let gw = common::start(|_| {}).await;
    let mut q = gw.query_client().await;
    let bad: Vec<(tonic::Status, &str)> = vec![
        (
            q.get_bottlenecks(GetBottlenecksRequest {
                start_unix_nano: 20,
                end_unix_nano: 10,
                ..Default::default()
            })
            .await
            .unwrap_err(),
            "start_unix_nano 20 is not before end_unix_nano 10",
        ),
        (
            q.get_bottlenecks(GetBottlenecksRequest {
                top_k: 5000,
                ..Default::default()
            })
            .await
            .unwrap_err(),
            "top_k",
        ),
        (
            q.what_if(WhatIfRequest {
                service: "a".into(),
                operation: "b".into(),
                speedup: 1.5,
                ..Default::default()
            })
            .await
            .unwrap_err(),
            "speedup",
        ),
        (
            q.what_if(WhatIfRequest::default()).await.unwrap_err(),
            "service is required",
        ),
        (
            q.get_span_metrics(GetSpanMetricsRequest {
                service: "a".into(),
                step_nanos: 1_000,
                ..Default::default()
            })
            .await
            .unwrap_err(),
            "step_nanos must be a multiple of 10 s",
        ),
        (
            q.get_service_graph(GetServiceGraphRequest {
                start_unix_nano: u64::MAX,
                end_unix_nano: 1,
            })
            .await
            .unwrap_err(),
            "is not before",
        ),
    ];
    for (e, want) in bad {
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains(want), "{:?} lacks {want}", e.message());
    }

    for (args, want) in [
        (
            vec![
                "what-if",
                "--service",
                "a",
                "--operation",
                "b",
                "--speedup",
                "150%",
            ],
            "outside (0%, 100%]",
        ),
        (
            vec!["metrics", "--service", "a", "--step", "soon"],
            "invalid duration",
        ),
        (vec!["bottlenecks", "--top", "x"], "invalid value"),
    ] {
        let out = tokio::process::Command::new(common::sieve_bin())
            .arg("query")
            .args(&args)
            .args(["--addr", &gw.query])
            .output()
            .await
            .expect("run sieve");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    gw.stop().await;
}

/// The CLI prints the analysis queries as tables, and `--baseline` shows what got slower:
/// half an hour ago pricing took 35 of 100 ms, now 70.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_cli_tables() {
    let gw = common::start(fast).await;
    let endpoint = gw.otlp.clone();
    common::blocking(move || {
        send_traces_at(&endpoint, Duration::from_secs(30 * 60), 35);
        send_traces(&endpoint);
    })
    .await;
    let mut q = gw.query_client().await;
    analysed(&mut q, 2 * TRACES).await;
    let run = |args: Vec<&str>| {
        let addr = gw.query.clone();
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        async move {
            let out = tokio::process::Command::new(common::sieve_bin())
                .arg("query")
                .args(&args)
                .args(["--addr", &addr])
                .output()
                .await
                .expect("run sieve");
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let out = run(vec!["bottlenecks", "--since", "15m", "--baseline", "1h"]).await;
    let row = |n: usize| -> Vec<String> {
        out.lines()
            .nth(n)
            .unwrap_or_default()
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect()
    };
    assert!(out.starts_with("1000 traces"), "{out}");
    assert!(
        out.lines()
            .next()
            .unwrap()
            .ends_with("baseline 1000 traces"),
        "{out}"
    );
    // #, share, change, mean×, ..., operation
    let first = row(2);
    assert_eq!(first[..4], ["1", "70.0%", "+35.0pp", "2.00×"], "{out}");
    assert_eq!(
        first.last().map(String::as_str),
        Some("pricing: GET /price")
    );
    let second = row(3);
    assert_eq!(second[..4], ["2", "20.0%", "-35.0pp", "0.36×"], "{out}");
    let r = q
        .get_bottlenecks(GetBottlenecksRequest {
            baseline_start_unix_nano: sieve::store::now_ns() - 2 * 3600 * 1_000_000_000,
            baseline_end_unix_nano: sieve::store::now_ns() - 20 * 60 * 1_000_000_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.baseline_traces, TRACES);
    assert!((r.bottlenecks[0].mean_ratio - 2.0).abs() < 1e-9);
    let out = run(vec![
        "what-if",
        "--service",
        "pricing",
        "--operation",
        "GET /price",
        "--speedup",
        "30%",
    ])
    .await;
    assert!(out.contains("(-21.0%)"), "{out}");
    let out = run(vec!["graph"]).await;
    let edge: Vec<&str> = out
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        edge[..5],
        ["checkout", "pricing", "request", "1000", "100"],
        "{out}"
    );
    let out = run(vec![
        "metrics",
        "--service",
        "pricing",
        "--since",
        "1h",
        "--step",
        "1m",
    ])
    .await;
    assert!(
        out.contains("pricing: GET /price (server, status error) — 200 calls, 200 errors"),
        "{out}"
    );
    let json = run(vec!["--json", "bottlenecks"]).await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["traces"], 1000);
    gw.stop().await;
}

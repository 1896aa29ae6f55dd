//! The README's quick start: the demo app (`examples/demo.rs`, official Rust SDK) against a
//! real gateway, with one service made failing and one made slow.

mod common;

use std::time::Duration;

use sieve::proto::query_service_client::QueryServiceClient;
use sieve::proto::{
    FindTracesRequest, GetBottlenecksRequest, GetCriticalPathRequest, GetServiceGraphRequest,
    GetServicesRequest, GetStatsRequest, SearchLogsRequest,
};
use tonic::transport::Channel;

/// Five services arrive; the failing service's spans carry errors and its error logs are
/// correlated to their traces; the slow service makes the frontend's requests slow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_shows_a_failing_and_a_slow_service() {
    let gw = common::start(|_| {}).await;
    run_demo(
        &gw.otlp,
        &[
            "--fail-service",
            "inventory",
            "--fail-rate",
            "1.0",
            "--slow-service",
            "pricing",
            "--slow-ms",
            "120",
        ],
    )
    .await;

    let mut q = gw.query_client().await;
    let services = q
        .get_services(GetServicesRequest {})
        .await
        .unwrap()
        .into_inner()
        .services;
    assert_eq!(
        services,
        ["auth", "catalog", "frontend", "inventory", "pricing"]
    );

    let traces = common::traces(
        &mut q,
        FindTracesRequest {
            service_name: "frontend".into(),
            operation_name: "GET /product/{id}".into(),
            limit: 100,
            ..Default::default()
        },
    )
    .await;
    assert!(traces.len() >= 30, "{} traces", traces.len());
    for t in &traces {
        assert_eq!(t.span_count, 11, "{t:?}");
        assert!(
            t.error_count >= 4,
            "inventory fails, and the error propagates: {t:?}"
        );
        assert!(t.duration_nanos >= 120_000_000, "pricing is slow: {t:?}");
    }
    let slow = common::traces(
        &mut q,
        FindTracesRequest {
            service_name: "pricing".into(),
            duration_min_nanos: 120_000_000,
            limit: 5,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(slow.len(), 5);

    let errors = common::logs(
        &mut q,
        SearchLogsRequest {
            service_name: "inventory".into(),
            min_severity_number: 17,
            limit: 1000,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(errors.len(), traces.len(), "one error log per request");
    let trace_ids: std::collections::HashSet<String> =
        traces.iter().map(|t| t.trace_id.clone()).collect();
    for e in &errors {
        let tid = hex::encode(&e.log_record.as_ref().unwrap().trace_id);
        assert!(trace_ids.contains(&tid), "error log of unknown trace {tid}");
    }
    gw.stop().await;
}

/// Runs the demo against `otlp` at 20 requests/s for 2 s, with extra arguments.
async fn run_demo(otlp: &str, extra: &[&str]) {
    let mut args = vec!["--rate", "20", "--duration", "2s"];
    args.extend_from_slice(extra);
    common::run_demo(otlp, &args).await;
}

/// Waits until every demo trace (11 spans each) has been analysed, then returns the top
/// bottleneck's service, its share, and the service holding the most critical-path time in
/// the slowest trace.
async fn top_bottleneck(q: &mut QueryServiceClient<Channel>) -> (String, f64, String) {
    common::eventually(Duration::from_secs(30), "30 traces analysed", async || {
        let a = q
            .get_stats(GetStatsRequest {})
            .await
            .unwrap()
            .into_inner()
            .analysis
            .expect("analysis stats");
        if a.assembling_traces == 0 && a.traces >= 30 {
            Ok(())
        } else {
            Err(a)
        }
    })
    .await;
    let b = q
        .get_bottlenecks(GetBottlenecksRequest::default())
        .await
        .unwrap()
        .into_inner();
    let top = &b.bottlenecks[0];
    let slowest = &b.slowest[0].trace_id;
    let cp = q
        .get_critical_path(GetCriticalPathRequest {
            trace_id: slowest.clone(),
            tolerance: 0.0,
        })
        .await
        .unwrap()
        .into_inner();
    let most = cp
        .exclusive
        .iter()
        .max_by_key(|e| e.nanos)
        .and_then(|e| e.span.as_ref())
        .map(|s| s.service.clone())
        .unwrap_or_default();
    println!(
        "top bottleneck {}: {} share {:.3}; slowest trace {slowest} waits most on {most}",
        top.service, top.operation, top.share
    );
    (top.service.clone(), top.share, most)
}

/// With `--slow-service pricing`, pricing tops the bottlenecks and the critical path of the
/// slowest trace; without it, it does not (catalog's database call does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_service_tops_the_bottlenecks() {
    let fast = |c: &mut sieve::config::Config| {
        c.analysis.trace_idle = Duration::from_millis(300);
        c.analysis.graph_wait = Duration::from_millis(300);
    };
    let (slow_gw, calm_gw) = (common::start(fast).await, common::start(fast).await);
    tokio::join!(
        run_demo(
            &slow_gw.otlp,
            &["--slow-service", "pricing", "--slow-ms", "150"]
        ),
        run_demo(&calm_gw.otlp, &[]),
    );

    let (top, share, most) = top_bottleneck(&mut slow_gw.query_client().await).await;
    assert_eq!(top, "pricing");
    assert!(share > 0.5, "{share}");
    assert_eq!(most, "pricing");

    let (top, _, most) = top_bottleneck(&mut calm_gw.query_client().await).await;
    assert_ne!(top, "pricing");
    assert_ne!(most, "pricing");

    // The service graph: the four calls between services, and catalog's database as a
    // virtual node (its client span names db.system, and no server span answers it).
    let g = calm_gw
        .query_client()
        .await
        .get_service_graph(GetServiceGraphRequest::default())
        .await
        .unwrap()
        .into_inner();
    let edges: Vec<(&str, &str, bool)> = g
        .edges
        .iter()
        .map(|e| (e.client.as_str(), e.server.as_str(), e.virtual_node))
        .collect();
    assert_eq!(
        edges,
        [
            ("catalog", "inventory", false),
            ("catalog", "postgresql", true),
            ("frontend", "auth", false),
            ("frontend", "catalog", false),
            ("frontend", "pricing", false),
        ]
    );
    assert!(
        g.edges.iter().all(|e| e.requests == g.edges[0].requests),
        "{g:?}"
    );
    assert!(g.unpaired.is_empty(), "{g:?}");
    slow_gw.stop().await;
    calm_gw.stop().await;
}

//! The README's quick start: the demo app (`examples/demo.rs`, official Rust SDK) against a
//! real gateway, with one service made failing and one made slow.

mod common;

use std::path::PathBuf;

use sieve::proto::{FindTracesRequest, GetServicesRequest, SearchLogsRequest};

/// `target/<profile>/examples/demo`, next to this test's own binary in `deps/`.
fn demo_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    profile_dir.join("examples").join("demo")
}

/// Five services arrive; the failing service's spans carry errors and its error logs are
/// correlated to their traces; the slow service makes the frontend's requests slow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_shows_a_failing_and_a_slow_service() {
    let gw = common::start(|_| {}).await;
    let bin = demo_bin();
    assert!(
        bin.exists(),
        "{} is missing (cargo test builds examples)",
        bin.display()
    );
    let out = tokio::process::Command::new(&bin)
        .args(["--endpoint", &gw.otlp, "--rate", "20", "--duration", "2s"])
        .args(["--fail-service", "inventory", "--fail-rate", "1.0"])
        .args(["--slow-service", "pricing", "--slow-ms", "120"])
        .output()
        .await
        .expect("run demo");
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

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

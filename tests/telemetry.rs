//! The gateway's own telemetry endpoint: `/metrics` scraped over HTTP shows what GetStats
//! shows, compaction included, and the health endpoints answer.

mod common;

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use rand::SeedableRng;
use sieve::proto::GetStatsRequest;

/// The value of the sample `line_start` (name and labels) in an exposition.
fn sample(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_intake_and_compaction_and_health_answers() {
    let gw = common::start(|c| {
        // Small memtables: runs are written, and what they cover compacted, within the test.
        c.storage.memtable_mib = 1;
    })
    .await;
    assert!(!gw.metrics.is_empty());

    let (status, body) = common::http("GET", &format!("{}/health/live", gw.metrics)).await;
    assert_eq!((status, body.as_str()), (200, "live\n"));
    let (status, _) = common::http("GET", &format!("{}/health/ready", gw.metrics)).await;
    assert_eq!(status, 200);
    let (status, body) = common::http("GET", &format!("{}/nope", gw.metrics)).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = common::http("POST", &format!("{}/metrics", gw.metrics)).await;
    assert_eq!(status, 405);

    let mut client = TraceServiceClient::new(gw.otlp_channel().await);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let now = sieve::store::now_ns();
    let mut sent = 0u64;
    for i in 0..300 {
        let req = sieve::synth::sdk_trace_request(&mut rng, i, 100, now);
        sent += sieve::otlp::spans(&req.resource_spans).count() as u64;
        client.export(req).await.expect("export");
    }

    // Compaction runs in the background after a run is written: wait for it to show.
    let text = common::eventually(
        Duration::from_secs(30),
        "a compaction on /metrics",
        async || {
            let (status, text) = common::http("GET", &format!("{}/metrics", gw.metrics)).await;
            assert_eq!(status, 200);
            if sample(&text, "sieve_store_compactions_total").unwrap_or(0.0) > 0.0 {
                Ok(text)
            } else {
                Err(text)
            }
        },
    )
    .await;
    let accepted = sample(
        &text,
        "sieve_receiver_accepted_items_total{signal=\"traces\"}",
    );
    assert_eq!(accepted, Some(sent as f64));
    let raw = sample(&text, "sieve_store_compaction_input_bytes_total").expect("input bytes");
    let out = sample(&text, "sieve_store_compaction_output_bytes_total").expect("output bytes");
    assert!(out > 0.0 && raw > 2.0 * out, "raw {raw}, compressed {out}");
    assert!(sample(&text, "sieve_store_compaction_seconds_total").expect("seconds") > 0.0);
    assert!(sample(&text, "sieve_store_disk_bytes").expect("disk") > 0.0);
    assert!(sample(&text, "process_resident_memory_bytes").expect("rss") > 1e6);
    assert!(sample(&text, "process_cpu_seconds_total").expect("cpu") > 0.0);
    assert_eq!(
        sample(&text, "sieve_analysis_spans_total"),
        Some(sent as f64)
    );
    // The intake: its budget, and one flush at least per acknowledged request batch.
    assert_eq!(
        sample(&text, "sieve_intake_budget_bytes"),
        Some((64u64 << 20) as f64)
    );
    assert!(sample(&text, "sieve_intake_inflight_bytes").is_some());
    let flushes = sample(&text, "sieve_intake_flush_duration_seconds_count").expect("flushes");
    assert!(flushes >= 1.0, "{flushes}");
    assert_eq!(
        sample(
            &text,
            "sieve_intake_flush_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        Some(flushes)
    );
    assert_eq!(
        sample(&text, "sieve_alerting_alerts{state=\"firing\"}"),
        Some(0.0)
    );
    // Every span is in the spanmetrics series too.
    let calls: f64 = text
        .lines()
        .filter(|l| l.starts_with("traces_span_metrics_calls_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(calls, sent as f64);

    // The same figures GetStats answers (counters only grow, so the scrape is a lower bound).
    let stats = gw
        .query_client()
        .await
        .get_stats(GetStatsRequest {})
        .await
        .expect("stats")
        .into_inner();
    let storage = stats.storage.expect("storage stats");
    assert!(storage.compacted_raw_bytes as f64 >= raw);
    assert_eq!(stats.spans.expect("spans").accepted, sent);
    gw.stop().await;
}

/// The Collector's `health_check` extension, when `service.extensions` lists it: its path
/// answers the status as JSON while the gateway runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_extension_answers_in_the_collectors_shape() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = format!(
        "extensions:\n  health_check:\n    endpoint: 127.0.0.1:{port}\n    path: /health/status\nservice:\n  extensions: [health_check]\n"
    );
    let gw = common::start(|c| {
        let parsed = sieve::config::Config::from_yaml(&yaml).expect("yaml");
        c.extensions = parsed.extensions;
        c.service.extensions = parsed.service.extensions;
    })
    .await;
    let base = format!("http://127.0.0.1:{port}");
    let (status, body) = common::http("GET", &format!("{base}/health/status")).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["status"], "Server available");
    let (status, _) = common::http("GET", &format!("{base}/other")).await;
    assert_eq!(status, 404);
    gw.stop().await;
}

//! A real Prometheus (the Debian package `prometheus`, started here on a loopback port)
//! scrapes sieve's `/metrics`; PromQL over its HTTP API returns the call count of a known
//! burst of spans under the spanmetrics connector's name, and the service-graph edge's
//! request count under the servicegraph connector's.

mod common;

use std::time::Duration;

use common::otlp;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::trace::v1::{Span, Status};

/// `text` percent-encoded for a URL query.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The single value of an instant PromQL query, if it has one (None while Prometheus is
/// not up yet).
async fn promql(prometheus: &str, query: &str) -> Option<f64> {
    let url = format!("{prometheus}/api/v1/query?query={}", encode(query));
    let (status, body) = common::http_get(&url).await?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_connector_series() {
    let Some(bin) =
        common::external_program("SIEVE_PROMETHEUS", "prometheus", "SIEVE_REQUIRE_PROMETHEUS")
    else {
        return;
    };
    let gw = common::start(|_| {}).await;
    let target = gw.metrics.trim_start_matches("http://").to_string();

    // The burst: 40 ok and 10 failing server spans of burst's GET /burst, and 5 calls from
    // web (client spans) to burst (server spans, children of the client spans).
    let now = sieve::store::now_ns();
    let mut spans: Vec<Span> = (0..50u8)
        .map(|i| Span {
            kind: 2,
            status: (i >= 40).then(|| Status {
                code: 2,
                message: "boom".into(),
            }),
            ..otlp::span(&[i + 1; 16], &[1; 8], "GET /burst", now - 5_000_000, now)
        })
        .collect();
    let mut web = Vec::new();
    for i in 0..5u8 {
        let trace = [0x80 + i; 16];
        web.push(Span {
            kind: 3,
            ..otlp::span(&trace, &[2; 8], "call burst", now - 9_000_000, now)
        });
        spans.push(Span {
            kind: 2,
            parent_span_id: vec![2; 8],
            ..otlp::span(
                &trace,
                &[3; 8],
                "GET /edge",
                now - 8_000_000,
                now - 1_000_000,
            )
        });
    }
    TraceServiceClient::new(gw.otlp_channel().await)
        .export(otlp::traces_by_service(vec![
            ("burst", spans),
            ("web", web),
        ]))
        .await
        .expect("export");

    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sieve\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .expect("write prometheus.yml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _prometheus = common::KillOnDrop(
        std::process::Command::new(&bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let prometheus = format!("http://127.0.0.1:{port}");
    let calls =
        r#"sum(traces_span_metrics_calls_total{service_name="burst",span_name="GET /burst"})"#;
    common::eventually(
        Duration::from_secs(60),
        "the burst in Prometheus",
        async || match promql(&prometheus, calls).await {
            Some(50.0) => Ok(()),
            other => Err(other),
        },
    )
    .await;
    let errors =
        r#"traces_span_metrics_calls_total{service_name="burst",status_code="STATUS_CODE_ERROR"}"#;
    assert_eq!(promql(&prometheus, errors).await, Some(10.0));
    let under_10ms = r#"sum(traces_span_metrics_duration_seconds_bucket{service_name="burst",span_name="GET /burst",le="0.01"})"#;
    assert_eq!(
        promql(&prometheus, under_10ms).await,
        Some(50.0),
        "5 ms spans"
    );
    let edge = r#"traces_service_graph_request_total{client="web",server="burst"}"#;
    common::eventually(
        Duration::from_secs(30),
        "the edge in Prometheus",
        async || match promql(&prometheus, edge).await {
            Some(5.0) => Ok(()),
            other => Err(other),
        },
    )
    .await;
    gw.stop().await;
}

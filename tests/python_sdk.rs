//! The official OpenTelemetry Python SDK (`opentelemetry-sdk` + the OTLP/gRPC and the
//! OTLP/HTTP-protobuf exporters from PyPI) sends spans and logs; the test queries them back. `.ci/run` installs the SDK into a
//! venv and passes it in `SIEVE_TEST_PYTHON`; without it the test makes its own venv.

mod common;

use std::path::PathBuf;
use std::process::Command;

use sieve::proto::{FindTracesRequest, GetTraceRequest, SearchLogsRequest};

/// The Python with the SDK: `$SIEVE_TEST_PYTHON` when `.ci/run` prepared one, else a venv
/// under cargo's target tmpdir, created and filled from tests/python/requirements.txt once.
fn python() -> PathBuf {
    if let Some(py) = std::env::var_os("SIEVE_TEST_PYTHON") {
        return PathBuf::from(py);
    }
    // The tests of this file run at once: one of them makes the venv.
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _making = MAKING.lock().unwrap_or_else(|p| p.into_inner());
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("py-otel");
    let py = venv.join("bin").join("python");
    let marker = venv.join(".installed-1.45.2-grpc-http");
    if !marker.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv");
        assert!(ok.success(), "python3 -m venv failed");
        let req = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/requirements.txt");
        let ok = Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(req)
            .status()
            .expect("pip");
        assert!(ok.success(), "pip install of the OpenTelemetry SDK failed");
        std::fs::write(&marker, "").expect("marker");
    }
    py
}

/// Spans (with attributes, an event, an error status) and logs through the Python logging
/// handler arrive over OTLP/gRPC and are correlated by trace id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_spans_and_logs() {
    let gw = common::start(|_| {}).await;
    let endpoint = gw.otlp.clone();
    sends_and_finds(gw, &endpoint, "grpc").await;
}

/// The same through the SDK's OTLP/HTTP exporters (protobuf, gzip).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_http() {
    let gw = common::start(|_| {}).await;
    let endpoint = gw.otlp_http.clone();
    sends_and_finds(gw, &endpoint, "http").await;
}

/// Runs `send_otel.py` against `endpoint` with `protocol` and checks what it sent.
async fn sends_and_finds(gw: common::TestGateway, endpoint: &str, protocol: &str) {
    let py = tokio::task::spawn_blocking(python).await.expect("venv");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/send_otel.py");
    let out = tokio::process::Command::new(py)
        .arg(script)
        .arg(endpoint)
        .arg(protocol)
        .output()
        .await
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json from script");
    let trace_id = v["trace_id"].as_str().expect("trace_id").to_string();

    let mut q = gw.query_client().await;
    let trace = q
        .get_trace(GetTraceRequest {
            trace_id: trace_id.clone(),
        })
        .await
        .expect("trace stored")
        .into_inner();
    let spans: Vec<_> = sieve::otlp::spans(&trace.resource_spans)
        .map(|(_, s)| s)
        .collect();
    let mut names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["POST /recommend", "embed", "rank"]);
    let rank = spans.iter().find(|s| s.name == "rank").unwrap();
    assert_eq!(
        rank.status.as_ref().map(|s| (s.code, s.message.as_str())),
        Some((2, "model timeout"))
    );
    let embed = spans.iter().find(|s| s.name == "embed").unwrap();
    assert_eq!(embed.events[0].name, "cache_miss");

    let found = common::traces(
        &mut q,
        FindTracesRequest {
            service_name: "py-recommender".into(),
            attributes: [("user.segment".to_string(), "returning".to_string())].into(),
            limit: 5,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].trace_id, trace_id);
    assert_eq!((found[0].span_count, found[0].error_count), (3, 1));

    let logs = common::logs(
        &mut q,
        SearchLogsRequest {
            trace_id: trace_id.clone(),
            limit: 10,
            ..Default::default()
        },
    )
    .await;
    let bodies: Vec<String> = logs
        .iter()
        .map(|l| sieve::otlp::any_value_text(l.log_record.as_ref().unwrap().body.as_ref()))
        .collect();
    assert_eq!(bodies, ["ranking timed out", "embedding computed"]);
    let errors = common::logs(
        &mut q,
        SearchLogsRequest {
            service_name: "py-recommender".into(),
            min_severity_number: 17,
            limit: 10,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(errors.len(), 1);
    gw.stop().await;
}

//! OTLP/HTTP through the real gateway: curl with a JSON body written from the OTLP
//! specification's example, the official Rust SDK's HTTP/protobuf exporter, protobuf and
//! JSON bodies with gzip, zstd and deflate, `partial_success` in the request's encoding, every
//! error status the specification names, and CORS for browser SDKs.

mod common;

use std::io::Write as _;
use std::time::Duration;

use common::otlp;
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use sieve::proto::{GetTraceRequest, SearchLogsRequest};

use common::HttpAnswer as Answer;

/// Sends `method` to `url` with `headers` and `body`.
async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    common::http_request(method, url, headers, body).await
}

async fn post(url: &str, content_type: &str, encoding: Option<&str>, body: Vec<u8>) -> Answer {
    let mut headers = vec![("content-type", content_type)];
    if let Some(e) = encoding {
        headers.push(("content-encoding", e));
    }
    send("POST", url, &headers, body).await
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("deflate");
    e.finish().expect("deflate")
}

/// A span of trace `[t; 16]`, now.
fn span(t: u8, s: u8, name: &str) -> Span {
    let now = sieve::store::now_ns();
    otlp::span(&[t; 16], &[s; 8], name, now - 1_000_000, now)
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    otlp::traces_request("http-client", spans)
}

/// The span names stored for trace `[t; 16]`.
async fn stored_names(gw: &common::TestGateway, t: u8) -> Vec<String> {
    let mut q = gw.query_client().await;
    match q
        .get_trace(GetTraceRequest {
            trace_id: hex::encode([t; 16]),
        })
        .await
    {
        Ok(r) => {
            let mut names: Vec<String> = sieve::otlp::spans(&r.into_inner().resource_spans)
                .map(|(_, s)| s.name.clone())
                .collect();
            names.sort();
            names
        }
        Err(_) => Vec::new(),
    }
}

/// `google.rpc.Status` as the error bodies carry it.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The OTLP specification's example trace (opentelemetry-proto `examples/trace.json`), its
/// times moved to now so that retention keeps it: upper-case hex ids, the times once as
/// strings and once as numbers, an int attribute as a string and a kind as an enum integer.
fn spec_example_json(now: u64) -> String {
    format!(
        r#"{{
  "resourceSpans": [
    {{
      "resource": {{
        "attributes": [
          {{ "key": "service.name", "value": {{ "stringValue": "my.service" }} }}
        ]
      }},
      "scopeSpans": [
        {{
          "scope": {{
            "name": "my.library",
            "version": "1.0.0",
            "attributes": [
              {{ "key": "my.scope.attribute", "value": {{ "stringValue": "some scope attribute" }} }}
            ]
          }},
          "spans": [
            {{
              "traceId": "5B8EFFF798038103D269B633813FC60C",
              "spanId": "EEE19B7EC3C1B174",
              "parentSpanId": "EEE19B7EC3C1B173",
              "name": "I'm a server span",
              "startTimeUnixNano": "{start}",
              "endTimeUnixNano": "{end}",
              "kind": 2,
              "attributes": [
                {{ "key": "my.span.attr", "value": {{ "stringValue": "some value" }} }},
                {{ "key": "my.count", "value": {{ "intValue": "42" }} }}
              ]
            }},
            {{
              "traceId": "5b8efff798038103d269b633813fc60c",
              "spanId": "eee19b7ec3c1b175",
              "parentSpanId": "EEE19B7EC3C1B174",
              "name": "child",
              "startTimeUnixNano": {start},
              "endTimeUnixNano": {end},
              "kind": 3,
              "status": {{ "code": 2, "message": "boom" }}
            }}
          ]
        }}
      ]
    }}
  ]
}}"#,
        start = now - 2_000_000,
        end = now - 1_000_000,
    )
}

/// curl posts the specification's JSON example: 200, an empty JSON answer, and both spans are
/// stored with the ids, kinds, attributes and status the JSON gave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_posts_the_specs_json_example() {
    let gw = common::start(|_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("trace.json");
    std::fs::write(&file, spec_example_json(sieve::store::now_ns())).expect("write");
    let url = format!("{}/v1/traces", gw.otlp_http);
    let out = common::blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "-X", "POST", "-H", "Content-Type: application/json"])
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .args(["-w", "\n%{http_code} %{content_type}"])
            .arg(&url)
            .output()
            .expect("run curl (apt-get install curl)")
    })
    .await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "curl: {text} {:?}", out.stderr);
    let (body, tail) = text.rsplit_once('\n').expect("status line");
    assert_eq!(tail, "200 application/json", "{text}");
    let answer: serde_json::Value = serde_json::from_str(body).expect("JSON answer");
    assert!(
        answer.get("partialSuccess").is_none_or(|p| p.is_null()),
        "{answer}"
    );
    let mut q = gw.query_client().await;
    let trace = q
        .get_trace(GetTraceRequest {
            trace_id: "5b8efff798038103d269b633813fc60c".into(),
        })
        .await
        .expect("stored")
        .into_inner();
    let spans: Vec<&Span> = sieve::otlp::spans(&trace.resource_spans)
        .map(|(_, s)| s)
        .collect();
    assert_eq!(spans.len(), 2);
    let server = spans
        .iter()
        .find(|s| s.name == "I'm a server span")
        .expect("server span");
    assert_eq!(hex::encode(&server.span_id), "eee19b7ec3c1b174");
    assert_eq!(hex::encode(&server.parent_span_id), "eee19b7ec3c1b173");
    assert_eq!(server.kind, 2);
    let count = server
        .attributes
        .iter()
        .find(|kv| kv.key == "my.count")
        .map(|kv| sieve::otlp::any_value_text(kv.value.as_ref()));
    assert_eq!(count.as_deref(), Some("42"));
    let child = spans.iter().find(|s| s.name == "child").expect("child");
    assert_eq!(child.status.as_ref().map(|s| s.code), Some(2));
    assert_eq!(child.start_time_unix_nano, server.start_time_unix_nano);
    gw.stop().await;
}

/// The official Rust SDK's OTLP exporter over HTTP/protobuf: its spans arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_http_protobuf_exporter() {
    let gw = common::start(|_| {}).await;
    let endpoint = format!("{}/v1/traces", gw.otlp_http);
    let trace_id = common::blocking(move || {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .with_compression(opentelemetry_otlp::Compression::Gzip)
            .with_headers(Default::default())
            .build()
            .expect("http exporter");
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name("rust-http")
                    .build(),
            )
            .build();
        let tracer = provider.tracer("http-test");
        let mut span = tracer.start("GET /http");
        let id = span.span_context().trace_id();
        span.end();
        provider.force_flush().expect("flush");
        provider.shutdown().expect("shutdown");
        id
    })
    .await;
    let mut q = gw.query_client().await;
    let trace = q
        .get_trace(GetTraceRequest {
            trace_id: format!("{trace_id:032x}"),
        })
        .await
        .expect("the SDK's trace is stored")
        .into_inner();
    let names: Vec<String> = sieve::otlp::spans(&trace.resource_spans)
        .map(|(_, s)| s.name.clone())
        .collect();
    assert_eq!(names, ["GET /http"]);
    gw.stop().await;
}

/// Protobuf and JSON bodies, plain and gzip, zstd or deflate encoded, are stored; an invalid
/// span is rejected alone and reported in `partial_success`, in the request's encoding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_encodings_and_partial_success() {
    let gw = common::start(|_| {}).await;
    let url = format!("{}/v1/traces", gw.otlp_http);
    let proto = |t: u8| request(vec![span(t, 1, "ok")]).encode_to_vec();
    for (t, encoding, body) in [
        (0x10, None, proto(0x10)),
        (0x11, Some("gzip"), gzip(&proto(0x11))),
        (
            0x12,
            Some("zstd"),
            zstd::encode_all(&proto(0x12)[..], 1).unwrap(),
        ),
        (0x13, Some("deflate"), deflate(&proto(0x13))),
    ] {
        let a = post(&url, "application/x-protobuf", encoding, body).await;
        assert_eq!(a.status, 200, "{encoding:?}: {:?}", a.body);
        assert_eq!(a.headers["content-type"], "application/x-protobuf");
        let r = ExportTraceServiceResponse::decode(a.body).expect("protobuf answer");
        assert_eq!(r.partial_success, None);
        assert_eq!(stored_names(&gw, t).await, ["ok"], "{encoding:?}");
    }
    // JSON, gzip-encoded, with charset.
    let json = serde_json::to_vec(&request(vec![span(0x14, 1, "json")])).unwrap();
    let a = post(
        &url,
        "application/json; charset=utf-8",
        Some("gzip"),
        gzip(&json),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(stored_names(&gw, 0x14).await, ["json"]);

    // One bad span (zero trace id) among good ones: 200, partial_success, the rest stored.
    let mut bad = span(0x15, 2, "bad");
    bad.trace_id = vec![0; 16];
    let req = request(vec![span(0x15, 1, "good"), bad]);
    let a = post(&url, "application/x-protobuf", None, req.encode_to_vec()).await;
    assert_eq!(a.status, 200);
    let ps = ExportTraceServiceResponse::decode(a.body)
        .unwrap()
        .partial_success
        .expect("partial success");
    assert_eq!(ps.rejected_spans, 1);
    assert!(
        ps.error_message.contains("trace_id"),
        "{}",
        ps.error_message
    );
    assert_eq!(stored_names(&gw, 0x15).await, ["good"]);
    // The same in JSON answers in JSON.
    let mut bad = span(0x16, 2, "bad");
    bad.trace_id = vec![0; 16];
    let json = serde_json::to_vec(&request(vec![span(0x16, 1, "good"), bad])).unwrap();
    let a = post(&url, "application/json", None, json).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["content-type"], "application/json");
    let v: serde_json::Value = serde_json::from_slice(&a.body).expect("JSON answer");
    let rejected = &v["partialSuccess"]["rejectedSpans"];
    assert!(rejected == 1 || rejected == "1", "{v}");
    assert_eq!(stored_names(&gw, 0x16).await, ["good"]);

    // Logs go to /v1/logs.
    let logs = otlp::logs_request(
        "http-client",
        vec![otlp::log(sieve::store::now_ns(), "over http")],
    );
    let a = post(
        &format!("{}/v1/logs", gw.otlp_http),
        "application/x-protobuf",
        None,
        logs.encode_to_vec(),
    )
    .await;
    assert_eq!(a.status, 200);
    ExportLogsServiceResponse::decode(a.body).expect("logs answer");
    let found = common::logs(
        &mut gw.query_client().await,
        SearchLogsRequest {
            contains: "over http".into(),
            limit: 5,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(found.len(), 1);
    gw.stop().await;
}

/// Every error status the OTLP/HTTP specification names, each with a Status body in the
/// request's encoding; nothing of a refused body is stored, and the gateway keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_statuses() {
    let gw = common::start(|c| {
        if let Some(h) = c.otlp_http_mut() {
            h.max_request_body_size = Some(64 * 1024);
        }
        c.intake.max_inflight_mib = 1;
        c.intake.retry_delay = Duration::from_millis(1500);
    })
    .await;
    let url = format!("{}/v1/traces", gw.otlp_http);
    let status_of = |a: &Answer| RpcStatus::decode(a.body.clone()).expect("Status body");

    // 400: not protobuf, not JSON, corrupt gzip.
    let a = post(&url, "application/x-protobuf", None, vec![0xff; 16]).await;
    assert_eq!(a.status, 400);
    let s = status_of(&a);
    assert_eq!(s.code, 3, "INVALID_ARGUMENT");
    assert!(
        s.message.contains("not a valid OTLP traces"),
        "{}",
        s.message
    );
    let a = post(
        &url,
        "application/json",
        None,
        b"{\"resourceSpans\": 7}".to_vec(),
    )
    .await;
    assert_eq!(a.status, 400);
    let v: serde_json::Value = serde_json::from_slice(&a.body).expect("JSON Status");
    assert_eq!(v["code"], 3);
    let a = post(&url, "application/x-protobuf", Some("gzip"), vec![1, 2, 3]).await;
    assert_eq!(a.status, 400);
    assert!(status_of(&a).message.contains("corrupt gzip"));

    // 413: a body over the limit, and a small gzip body that inflates past it.
    let big = request(vec![Span {
        name: "x".repeat(100_000),
        ..span(0x20, 1, "")
    }]);
    let a = post(&url, "application/x-protobuf", None, big.encode_to_vec()).await;
    assert_eq!(a.status, 413);
    let bomb = gzip(&vec![0u8; 10 << 20]);
    assert!(bomb.len() < 64 * 1024);
    let a = post(&url, "application/x-protobuf", Some("gzip"), bomb).await;
    assert_eq!(a.status, 413);

    // 415: an unknown content type or encoding.
    let body = request(vec![span(0x21, 1, "ok")]).encode_to_vec();
    let a = post(&url, "text/plain", None, body.clone()).await;
    assert_eq!(a.status, 415);
    let a = post(&url, "application/x-protobuf", Some("br"), body.clone()).await;
    assert_eq!(a.status, 415);

    // 404 and 405.
    let a = post(
        &format!("{}/v1/spans", gw.otlp_http),
        "application/x-protobuf",
        None,
        body.clone(),
    )
    .await;
    assert_eq!(a.status, 404);
    let a = send("GET", &url, &[], Vec::new()).await;
    assert_eq!(a.status, 405);
    assert_eq!(a.headers["allow"], "POST");

    // 503 with Retry-After while the intake budget is spent; accepted once it frees.
    let intake = gw.gateway.as_ref().unwrap().intake.clone();
    let hold = intake.try_reserve(1 << 20).expect("the whole budget");
    let a = post(&url, "application/x-protobuf", None, body.clone()).await;
    assert_eq!(a.status, 503);
    assert_eq!(a.headers["retry-after"], "2");
    assert_eq!(status_of(&a).code, 14, "UNAVAILABLE");
    drop(hold);
    let a = post(&url, "application/x-protobuf", None, body).await;
    assert_eq!(a.status, 200);
    assert_eq!(stored_names(&gw, 0x21).await, ["ok"]);
    assert!(stored_names(&gw, 0x20).await.is_empty());

    let s = gw.stats().await;
    assert_eq!(
        s.undecodable_requests, 2,
        "the two bodies that did not decode"
    );
    assert_eq!(s.spans.unwrap_or_default().refused, 1);
    gw.stop().await;
}

/// CORS is off by default; with `allowed_origins` an allowed origin gets its headers on the
/// preflight and the POST, another origin gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_for_browser_sdks() {
    let off = common::start(|_| {}).await;
    let url = format!("{}/v1/traces", off.otlp_http);
    let a = send(
        "OPTIONS",
        &url,
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "POST"),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(a.status, 405, "no CORS unless configured");
    off.stop().await;

    let gw = common::start(|c| {
        if let Some(h) = c.otlp_http_mut() {
            h.cors = Some(sieve::config::Cors {
                allowed_origins: vec!["https://*.example.com".into()],
                allowed_headers: vec!["X-Tenant".into()],
                max_age: Some(600),
            });
        }
    })
    .await;
    let url = format!("{}/v1/traces", gw.otlp_http);
    let preflight = |origin: &'static str, headers: &'static str| {
        let url = url.clone();
        async move {
            send(
                "OPTIONS",
                &url,
                &[
                    ("origin", origin),
                    ("access-control-request-method", "POST"),
                    ("access-control-request-headers", headers),
                ],
                Vec::new(),
            )
            .await
        }
    };
    let a = preflight("https://app.example.com", "content-type, x-tenant").await;
    assert_eq!(a.status, 204);
    assert_eq!(
        a.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(a.headers["access-control-allow-methods"], "POST");
    assert_eq!(
        a.headers["access-control-allow-headers"],
        "content-type, x-tenant"
    );
    assert_eq!(a.headers["access-control-max-age"], "600");
    let a = preflight("https://evil.example.org", "content-type").await;
    assert_eq!(a.status, 204);
    assert!(a.headers.get("access-control-allow-origin").is_none());
    let a = preflight("https://app.example.com", "x-secret").await;
    assert!(a.headers.get("access-control-allow-origin").is_none());

    let body = request(vec![span(0x30, 1, "browser")]).encode_to_vec();
    let a = send(
        "POST",
        &url,
        &[
            ("content-type", "application/x-protobuf"),
            ("origin", "https://app.example.com"),
        ],
        body,
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(stored_names(&gw, 0x30).await, ["browser"]);
    gw.stop().await;
}

/// Slow clients: connections that never finish their headers are closed after
/// `read_header_timeout`, and while they hang a normal client is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_do_not_starve_others() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let gw = common::start(|c| {
        c.otlp_http_mut().expect("http").read_header_timeout = Duration::from_millis(500);
    })
    .await;
    let addr = gw.otlp_http.trim_start_matches("http://").to_string();
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut s = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        s.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("partial headers");
        slow.push(s);
    }
    let body = request(vec![span(0x40, 1, "prompt")]).encode_to_vec();
    let a = post(
        &format!("{}/v1/traces", gw.otlp_http),
        "application/x-protobuf",
        None,
        body,
    )
    .await;
    assert_eq!(a.status, 200, "served beside 200 hanging connections");
    // The hanging ones are closed by the server (read returns, with an answer or EOF).
    for mut s in slow {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        assert!(read.is_ok(), "a hanging connection was not closed");
    }
    gw.stop().await;
}

//! Connection handling of the gRPC receiver: silent clients are closed after
//! `handshake_timeout` and cannot starve the others; a client that has started its HTTP/2
//! connection may stay idle; per-transport receiver counters on `/metrics`.

mod common;

use std::time::Duration;

use common::otlp;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn request(
    tid: u8,
    n: u8,
) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
    let now = sieve::store::now_ns();
    let spans = (1..=n)
        .map(|sid| otlp::span(&[tid; 16], &[sid; 8], "op", now, now + 1000))
        .collect();
    otlp::traces_request("conn", spans)
}

/// 200 connections that send nothing, or only half the HTTP/2 preface, are closed by the
/// server after `handshake_timeout`; while they hang, a real client is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_grpc_clients_are_closed_and_do_not_starve_others() {
    let gw = common::start(|c| {
        c.otlp_grpc_mut().expect("grpc").handshake_timeout = Duration::from_millis(500);
    })
    .await;
    let addr = gw.otlp.trim_start_matches("http://").to_string();
    let mut silent = Vec::new();
    for i in 0..200 {
        let mut s = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        if i % 2 == 0 {
            s.write_all(b"PRI * HTTP/2.0\r\n")
                .await
                .expect("half preface");
        }
        silent.push(s);
    }
    let mut client = TraceServiceClient::connect(gw.otlp.clone())
        .await
        .expect("connect");
    client
        .export(request(0x51, 3))
        .await
        .expect("served beside 200 silent connections");
    for mut s in silent {
        let mut buf = [0u8; 256];
        // The server may have written its SETTINGS frame first; read until EOF or error.
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a silent connection was not closed");
    }
    gw.stop().await;
}

/// A client whose connection is established may idle past `handshake_timeout` (OTLP
/// exporters keep their channel between exports) and export again on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_established_connection_may_idle() {
    let gw = common::start(|c| {
        c.otlp_grpc_mut().expect("grpc").handshake_timeout = Duration::from_millis(300);
    })
    .await;
    let channel = tonic::transport::Endpoint::from_shared(gw.otlp.clone())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut client = TraceServiceClient::new(channel);
    client.export(request(0x52, 2)).await.expect("first export");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    client
        .export(request(0x53, 2))
        .await
        .expect("an export on the idle connection");
    gw.stop().await;
}

/// `/metrics` counts accepted, refused and failed items per receiver and transport, with
/// the Collector's own-telemetry names, so its receiver dashboards work on sieve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_counters_are_per_transport() {
    let gw = common::start(|_| {}).await;
    let mut client = TraceServiceClient::connect(gw.otlp.clone())
        .await
        .expect("connect");
    client.export(request(0x54, 4)).await.expect("grpc export");
    // One bad span (trace id of 3 bytes) beside two good ones, over HTTP.
    let mut req = request(0x55, 3);
    req.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![1, 2, 3];
    let answer = common::http_request(
        "POST",
        &format!("{}/v1/traces", gw.otlp_http),
        &[("content-type", "application/x-protobuf")],
        req.encode_to_vec(),
    )
    .await;
    assert_eq!(answer.status, 200);
    let (_, text) = common::http("GET", &format!("{}/metrics", gw.metrics)).await;
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    let grpc = "{receiver=\"otlp\",transport=\"grpc\"}";
    let http = "{receiver=\"otlp\",transport=\"http\"}";
    assert_eq!(
        value(&format!("otelcol_receiver_accepted_spans_total{grpc}")),
        4.0
    );
    assert_eq!(
        value(&format!("otelcol_receiver_accepted_spans_total{http}")),
        2.0
    );
    assert_eq!(
        value(&format!("otelcol_receiver_failed_spans_total{http}")),
        1.0
    );
    assert_eq!(
        value(&format!("otelcol_receiver_failed_spans_total{grpc}")),
        0.0
    );
    assert_eq!(
        value(&format!("otelcol_receiver_refused_spans_total{grpc}")),
        0.0
    );
    assert_eq!(
        value(&format!(
            "otelcol_receiver_accepted_log_records_total{grpc}"
        )),
        0.0
    );
    gw.stop().await;
}

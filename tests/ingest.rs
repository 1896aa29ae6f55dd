//! Ingest over OTLP/gRPC: the official Rust SDK's exporters against the real gateway, and a raw
//! tonic client for what no SDK sends (invalid items, undecodable bodies, oversize requests).

mod common;

use common::otlp;

use std::time::Duration;

use bytes::Bytes;
use opentelemetry::logs::{
    AnyValue as LogValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity,
};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{
    Link, Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse, trace_service_client::TraceServiceClient,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::{Span, TracesData};
use prost::Message;
use sieve::proto::{GetStatsRequest, GetTraceRequest, SearchLogsRequest};
use tonic::Code;
use tonic_types::StatusExt;

fn find_span<'a>(t: &'a TracesData, name: &str) -> &'a Span {
    sieve::otlp::spans(&t.resource_spans)
        .map(|(_, s)| s)
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("span {name} missing from {t:?}"))
}

fn attr<'a>(
    attrs: &'a [opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()
}

/// Spans from the official SDK come back from GetTrace with their resource, scope,
/// attributes, events, links, kind and status intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_spans_round_trip() {
    let gw = common::start(|_| {}).await;
    let provider = common::tracer_provider(&gw.otlp, "checkout", None);
    let tracer = provider.tracer("ingest-test");

    let other = tracer.start("unrelated");
    let other_ctx = other.span_context().clone();
    drop(other);

    let root = tracer
        .span_builder("GET /checkout")
        .with_kind(SpanKind::Server)
        .with_attributes([KeyValue::new("http.request.method", "GET")])
        .start(&tracer);
    let trace_id = root.span_context().trace_id();
    let cx = Context::current_with_span(root);
    let mut child = tracer
        .span_builder("SELECT orders")
        .with_kind(SpanKind::Client)
        .with_links(vec![Link::with_context(other_ctx.clone())])
        .with_attributes([
            KeyValue::new("db.system", "postgresql"),
            KeyValue::new("rows", 3i64),
        ])
        .start_with_context(&tracer, &cx);
    child.add_event("retry", vec![KeyValue::new("attempt", 2i64)]);
    child.set_status(Status::error("deadlock"));
    child.end();
    cx.span().end();

    let p = provider.clone();
    common::blocking(move || p.force_flush())
        .await
        .expect("flush");

    let mut q = gw.query_client().await;
    let trace = q
        .get_trace(GetTraceRequest {
            trace_id: trace_id.to_string(),
        })
        .await
        .expect("trace stored")
        .into_inner();
    let res = trace.resource_spans[0].resource.as_ref().expect("resource");
    assert!(
        matches!(attr(&res.attributes, "service.name"), Some(any_value::Value::StringValue(s)) if s == "checkout")
    );
    assert!(
        matches!(attr(&res.attributes, "deployment.environment"), Some(any_value::Value::StringValue(s)) if s == "test")
    );
    assert_eq!(
        trace.resource_spans[0].scope_spans[0]
            .scope
            .as_ref()
            .map(|s| s.name.as_str()),
        Some("ingest-test")
    );
    let root = find_span(&trace, "GET /checkout");
    assert_eq!(root.kind, 2, "OTLP SPAN_KIND_SERVER");
    assert!(root.parent_span_id.is_empty());
    let child = find_span(&trace, "SELECT orders");
    assert_eq!(child.parent_span_id, root.span_id);
    assert_eq!(child.kind, 3, "OTLP SPAN_KIND_CLIENT");
    assert!(
        matches!(attr(&child.attributes, "db.system"), Some(any_value::Value::StringValue(s)) if s == "postgresql")
    );
    assert!(matches!(
        attr(&child.attributes, "rows"),
        Some(any_value::Value::IntValue(3))
    ));
    assert_eq!(child.events.len(), 1);
    assert_eq!(child.events[0].name, "retry");
    assert!(matches!(
        attr(&child.events[0].attributes, "attempt"),
        Some(any_value::Value::IntValue(2))
    ));
    assert_eq!(child.links.len(), 1);
    assert_eq!(
        child.links[0].trace_id,
        other_ctx.trace_id().to_bytes().to_vec()
    );
    assert_eq!(
        child.links[0].span_id,
        other_ctx.span_id().to_bytes().to_vec()
    );
    let status = child.status.as_ref().expect("status");
    assert_eq!(status.code, 2);
    assert_eq!(status.message, "deadlock");

    let stats = q.get_stats(GetStatsRequest {}).await.unwrap().into_inner();
    let spans = stats.spans.unwrap();
    assert_eq!(spans.accepted, 3);
    assert_eq!(spans.rejected, 0);
    assert!(spans.stored_bytes > 0);

    let p = provider.clone();
    common::blocking(move || p.shutdown())
        .await
        .expect("shutdown");
    gw.stop().await;
}

/// Log records from the SDK's logs bridge keep their trace context, severity, body,
/// attributes and resource, and are found by trace id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_logs_round_trip_with_trace_context() {
    let gw = common::start(|_| {}).await;
    let tracer_provider = common::tracer_provider(&gw.otlp, "payments", None);
    let logger_provider = common::logger_provider(&gw.otlp, "payments");
    let tracer = tracer_provider.tracer("t");
    let logger = logger_provider.logger("payments.handler");

    let span = tracer.start("charge");
    let ids = span.span_context().clone();
    let cx = Context::current_with_span(span);
    {
        let _guard = cx.clone().attach();
        let mut rec = logger.create_log_record();
        rec.set_severity_number(Severity::Warn);
        rec.set_severity_text("WARN");
        rec.set_body(LogValue::from("card declined, retrying"));
        rec.add_attribute("attempt", 1i64);
        logger.emit(rec);
    }
    cx.span().end();
    let lp = logger_provider.clone();
    common::blocking(move || lp.force_flush())
        .await
        .expect("flush logs");

    let mut q = gw.query_client().await;
    let hits = common::logs(
        &mut q,
        SearchLogsRequest {
            trace_id: ids.trace_id().to_string(),
            limit: 10,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(hits.len(), 1);
    let rec = hits[0].log_record.as_ref().unwrap();
    assert_eq!(rec.span_id, ids.span_id().to_bytes().to_vec());
    assert_eq!(rec.severity_number, 13);
    assert_eq!(rec.severity_text, "WARN");
    assert!(
        matches!(rec.body.as_ref().and_then(|b| b.value.as_ref()), Some(any_value::Value::StringValue(s)) if s == "card declined, retrying")
    );
    assert!(matches!(
        attr(&rec.attributes, "attempt"),
        Some(any_value::Value::IntValue(1))
    ));
    let res = hits[0].resource.as_ref().unwrap();
    assert!(
        matches!(attr(&res.attributes, "service.name"), Some(any_value::Value::StringValue(s)) if s == "payments")
    );
    assert_eq!(
        hits[0].scope.as_ref().map(|s| s.name.as_str()),
        Some("payments.handler")
    );

    let (lp, tp) = (logger_provider.clone(), tracer_provider.clone());
    common::blocking(move || {
        let _ = lp.shutdown();
        let _ = tp.shutdown();
    })
    .await;
    gw.stop().await;
}

/// Metrics from the SDK are accepted, counted per data point and stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_metrics_are_stored_and_counted() {
    let gw = common::start(|_| {}).await;
    let provider = common::meter_provider(&gw.otlp, "inventory");
    let meter = provider.meter("inventory");
    let counter = meter.u64_counter("orders").build();
    counter.add(3, &[KeyValue::new("region", "eu")]);
    counter.add(1, &[KeyValue::new("region", "us")]);
    let hist = meter.f64_histogram("latency").build();
    hist.record(12.5, &[]);
    let p = provider.clone();
    common::blocking(move || p.force_flush())
        .await
        .expect("flush metrics");

    let mut q = gw.query_client().await;
    let m = q
        .get_stats(GetStatsRequest {})
        .await
        .unwrap()
        .into_inner()
        .metric_points
        .unwrap();
    assert_eq!(
        m.accepted, 3,
        "two counter series and one histogram point: {m:?}"
    );
    assert!(m.stored_bytes > 0);
    assert_eq!(m.requests, 1);
    let p = provider.clone();
    common::blocking(move || p.shutdown()).await.ok();
    gw.stop().await;
}

/// gzip and zstd request compression from the SDK are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_and_zstd_are_accepted() {
    let gw = common::start(|_| {}).await;
    let mut ids = Vec::new();
    for c in [
        opentelemetry_otlp::Compression::Gzip,
        opentelemetry_otlp::Compression::Zstd,
    ] {
        let provider = common::tracer_provider(&gw.otlp, "compressed", Some(c));
        let tracer = provider.tracer("t");
        let span = tracer.start(format!("{c:?}"));
        ids.push(span.span_context().trace_id().to_string());
        drop(span);
        let p = provider.clone();
        common::blocking(move || p.force_flush())
            .await
            .expect("flush");
        common::blocking(move || provider.shutdown()).await.ok();
    }
    let mut q = gw.query_client().await;
    for id in ids {
        q.get_trace(GetTraceRequest { trace_id: id })
            .await
            .expect("stored");
    }
    gw.stop().await;
}

/// A span of trace `[tid; 16]` with id `[sid; 8]`, a microsecond long, now.
fn span(tid: u8, sid: u8, name: &str) -> Span {
    let now = sieve::store::now_ns();
    otlp::span(&[tid; 16], &[sid; 8], name, now, now + 1000)
}

/// The spans of service `raw`, as one request.
fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    otlp::traces_request("raw", spans)
}

/// Invalid spans are rejected alone: the response's partial_success counts them and names the
/// problems, and the valid spans of the same request are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_spans_are_rejected_alone() {
    let gw = common::start(|_| {}).await;
    let mut client = TraceServiceClient::new(gw.otlp_channel().await);
    let mut zero_trace = span(0, 2, "zero trace id");
    zero_trace.trace_id = vec![0; 16];
    let mut backwards = span(5, 3, "backwards");
    backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1;
    let mut short_parent = span(5, 4, "short parent");
    short_parent.parent_span_id = vec![1, 2, 3];
    let resp = client
        .export(request(vec![
            span(5, 1, "good"),
            zero_trace,
            backwards,
            short_parent,
            span(5, 6, ""),
            span(5, 7, "also good"),
        ]))
        .await
        .expect("export answered")
        .into_inner();
    let ps = resp.partial_success.expect("partial success");
    assert_eq!(ps.rejected_spans, 4);
    for want in [
        "trace_id is all zeros",
        "before start time",
        "parent_span_id",
        "name is empty",
    ] {
        assert!(
            ps.error_message.contains(want),
            "{:?} lacks {want}",
            ps.error_message
        );
    }
    let mut q = gw.query_client().await;
    let trace = q
        .get_trace(GetTraceRequest {
            trace_id: hex::encode([5u8; 16]),
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = sieve::otlp::spans(&trace.resource_spans)
        .map(|(_, s)| s.name.as_str())
        .collect();
    assert_eq!(names, ["good", "also good"]);
    let s = q
        .get_stats(GetStatsRequest {})
        .await
        .unwrap()
        .into_inner()
        .spans
        .unwrap();
    assert_eq!((s.received, s.accepted, s.rejected), (6, 2, 4));

    // A fully valid request has no partial_success at all.
    let resp = client
        .export(request(vec![span(6, 1, "fine")]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.partial_success, None);

    // Logs: a bad trace id is rejected, the good record kept.
    let mut logs = LogsServiceClient::new(gw.otlp_channel().await);
    let good = LogRecord {
        time_unix_nano: sieve::store::now_ns(),
        body: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
            value: Some(any_value::Value::StringValue("kept".into())),
        }),
        ..Default::default()
    };
    let bad = LogRecord {
        trace_id: vec![1, 2],
        ..good.clone()
    };
    let resp = logs
        .export(otlp::logs_request("raw", vec![good, bad]))
        .await
        .unwrap()
        .into_inner();
    let ps = resp.partial_success.expect("partial success");
    assert_eq!(ps.rejected_log_records, 1);
    assert!(
        ps.error_message.contains("trace_id must be 16 bytes"),
        "{}",
        ps.error_message
    );
    let hits = common::logs(
        &mut q,
        SearchLogsRequest {
            contains: "kept".into(),
            limit: 10,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(hits.len(), 1);
    gw.stop().await;
}

/// A body that is not protobuf gets INVALID_ARGUMENT, is counted, and the gateway keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_body_is_invalid_argument() {
    let gw = common::start(|_| {}).await;
    let ch = gw.otlp_channel().await;
    for path in [
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    ] {
        let err = sieve::otlp::send_pre_encoded::<ExportTraceServiceResponse>(
            ch.clone(),
            path,
            Bytes::from_static(&[0xff, 0xff, 0xff, 0x0f, 0x01]),
        )
        .await
        .expect_err("garbage must fail");
        assert_eq!(err.code(), Code::InvalidArgument, "{path}: {err:?}");
        assert!(
            err.message().contains("not a valid OTLP"),
            "{}",
            err.message()
        );
    }
    let mut q = gw.query_client().await;
    assert_eq!(
        q.get_stats(GetStatsRequest {})
            .await
            .unwrap()
            .into_inner()
            .undecodable_requests,
        3
    );
    // Still serving.
    let ok = sieve::otlp::send_pre_encoded::<ExportTraceServiceResponse>(
        ch,
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        Bytes::from(request(vec![span(7, 1, "after garbage")]).encode_to_vec()),
    )
    .await;
    assert!(ok.is_ok(), "{ok:?}");
    gw.stop().await;
}

/// When the intake budget is spent, exports get UNAVAILABLE with a RetryInfo delay, the
/// refusal is counted, and the same request succeeds once the budget frees up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_intake_refuses_with_retry_info() {
    let gw = common::start(|c| {
        c.intake.max_inflight_mib = 1;
        c.intake.retry_delay = Duration::from_millis(1500);
    })
    .await;
    let intake = gw.gateway.as_ref().unwrap().intake.clone();
    let hold = intake.try_reserve(1 << 20).expect("the whole budget");
    let mut client = TraceServiceClient::new(gw.otlp_channel().await);
    let err = client
        .export(request(vec![span(8, 1, "refused")]))
        .await
        .expect_err("refused while full");
    assert_eq!(err.code(), Code::Unavailable);
    let retry = err
        .get_error_details()
        .retry_info()
        .cloned()
        .expect("RetryInfo detail");
    assert_eq!(retry.retry_delay, Some(Duration::from_millis(1500)));
    let mut q = gw.query_client().await;
    let s = q
        .get_stats(GetStatsRequest {})
        .await
        .unwrap()
        .into_inner()
        .spans
        .unwrap();
    assert_eq!((s.refused, s.accepted), (1, 0));
    drop(hold);
    client
        .export(request(vec![span(8, 1, "refused")]))
        .await
        .expect("accepted after");
    gw.stop().await;
}

/// A request over `max_recv_msg_size_mib` is refused whole with RESOURCE_EXHAUSTED and
/// nothing of it is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_request_is_refused() {
    let gw = common::start(|c| {
        if let Some(g) = c.otlp_grpc_mut() {
            g.max_recv_msg_size_mib = 1;
        }
    })
    .await;
    let mut big = span(9, 1, "big");
    big.attributes = (0..40)
        .map(|i| sieve::otlp::string_kv(&format!("k{i}"), &"x".repeat(30_000)))
        .collect();
    let mut client = TraceServiceClient::new(gw.otlp_channel().await);
    let err = client
        .export(request(vec![big]))
        .await
        .expect_err("too large");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let mut q = gw.query_client().await;
    let e = q
        .get_trace(GetTraceRequest {
            trace_id: hex::encode([9u8; 16]),
        })
        .await
        .expect_err("nothing stored");
    assert_eq!(e.code(), Code::NotFound);
    gw.stop().await;
}

/// Sends one gRPC frame over a bare HTTP/2 connection (what no gRPC client library would
/// send: a frame flagged compressed whose bytes are not) and returns the grpc-status.
async fn raw_grpc_status(
    otlp: &str,
    encoding: &str,
    compressed_flag: u8,
    payload: &[u8],
) -> String {
    let addr = otlp.trim_start_matches("http://");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (client, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut client = client.ready().await.expect("h2 ready");
    let req = http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://{addr}/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-encoding", encoding)
        .body(())
        .expect("request");
    let (response, mut send) = client.send_request(req, false).expect("send request");
    let mut frame = vec![compressed_flag];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    // A server that refuses on the headers alone (an unknown grpc-encoding) may have closed
    // the stream already; its answer is read below either way.
    let _ = send.send_data(Bytes::from(frame), true);
    let (parts, mut body) = response.await.expect("response").into_parts();
    if let Some(s) = parts.headers.get("grpc-status") {
        return s.to_str().unwrap_or("?").to_string();
    }
    while let Some(chunk) = body.data().await {
        chunk.expect("body");
    }
    let trailers = body.trailers().await.expect("trailers").unwrap_or_default();
    trailers
        .get("grpc-status")
        .and_then(|s| s.to_str().ok())
        .unwrap_or("none")
        .to_string()
}

/// A body flagged gzip that is not gzip is INVALID_ARGUMENT (tonic says INTERNAL), and a gzip
/// body that inflates past the size limit is RESOURCE_EXHAUSTED: both are permanent for OTLP
/// clients, unlike INTERNAL's ambiguity or OUT_OF_RANGE's retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_and_inflating_compressed_bodies() {
    use std::io::Write as _;
    let gw = common::start(|c| {
        if let Some(g) = c.otlp_grpc_mut() {
            g.max_recv_msg_size_mib = 1;
        }
    })
    .await;
    let invalid = (Code::InvalidArgument as i32).to_string();
    let exhausted = (Code::ResourceExhausted as i32).to_string();
    assert_eq!(
        raw_grpc_status(&gw.otlp, "gzip", 1, b"definitely not gzip").await,
        invalid
    );

    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    bomb.write_all(&vec![0u8; 8 << 20]).unwrap();
    let bomb = bomb.finish().unwrap();
    assert!(
        bomb.len() < 64 << 10,
        "8 MiB of zeros compress to {} bytes",
        bomb.len()
    );
    assert_eq!(raw_grpc_status(&gw.otlp, "gzip", 1, &bomb).await, exhausted);

    // The same with zstd: a bomb, and bytes that are not zstd.
    let zbomb = zstd::encode_all(&vec![0u8; 8 << 20][..], 19).unwrap();
    assert!(zbomb.len() < 64 << 10);
    assert_eq!(
        raw_grpc_status(&gw.otlp, "zstd", 1, &zbomb).await,
        exhausted
    );
    assert_eq!(
        raw_grpc_status(&gw.otlp, "zstd", 1, b"definitely not zstd").await,
        invalid
    );
    // An encoding the server does not have: UNIMPLEMENTED, as gRPC specifies.
    let plain = request(vec![span(0x32, 1, "snappy")]).encode_to_vec();
    assert_eq!(
        raw_grpc_status(&gw.otlp, "snappy", 1, &plain).await,
        (Code::Unimplemented as i32).to_string()
    );

    // A well-formed compressed request through the same path is accepted (status 0).
    let mut ok = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    ok.write_all(&request(vec![span(0x31, 1, "gz")]).encode_to_vec())
        .unwrap();
    assert_eq!(
        raw_grpc_status(&gw.otlp, "gzip", 1, &ok.finish().unwrap()).await,
        "0"
    );
    gw.stop().await;
}

/// `processors.memory_limiter` (the Collector's shape): while resident memory is over the
/// soft limit every request is refused with a retryable status, gRPC and HTTP alike, and
/// counted; with room under the limit the same request is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limiter_refuses_retryably_while_over() {
    let limiter = |limit_mib: u64| {
        format!(
            "processors:\n  memory_limiter:\n    check_interval: 50ms\n    limit_mib: {limit_mib}\n    spike_limit_mib: 0\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [memory_limiter]\n"
        )
    };
    // 1 MiB: this process is always over it.
    let yaml = limiter(1);
    let gw = common::start(|c| {
        common::apply(c, &yaml);
        c.intake.retry_delay = Duration::from_millis(1500);
    })
    .await;
    let mut client = TraceServiceClient::new(gw.otlp_channel().await);
    let err = common::eventually(Duration::from_secs(10), "a refusal", async || match client
        .export(request(vec![span(0x41, 1, "over")]))
        .await
    {
        Err(e) => Ok(e),
        Ok(r) => Err(r),
    })
    .await;
    assert_eq!(err.code(), Code::Unavailable);
    assert!(
        err.message().contains("memory_limiter"),
        "{}",
        err.message()
    );
    let retry = err
        .get_error_details()
        .retry_info()
        .cloned()
        .expect("RetryInfo");
    assert_eq!(retry.retry_delay, Some(Duration::from_millis(1500)));
    let a = common::http_request(
        "POST",
        &format!("{}/v1/traces", gw.otlp_http),
        &[("content-type", "application/x-protobuf")],
        request(vec![span(0x41, 2, "over")]).encode_to_vec(),
    )
    .await;
    assert_eq!(a.status, 503, "the HTTP receiver refuses too");
    assert_eq!(a.headers["retry-after"], "2");
    let s = gw.stats().await;
    assert!(s.spans.unwrap_or_default().refused >= 2);
    // The limiter on /metrics: refusing, and counting what it refused.
    let (status, text) = common::http("GET", &format!("{}/metrics", gw.metrics)).await;
    assert_eq!(status, 200);
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
    };
    assert_eq!(value("sieve_memory_limiter_refusing"), Some(1.0));
    assert!(value("sieve_memory_limiter_refused_requests_total").is_some_and(|n| n >= 2.0));
    assert_eq!(
        value("sieve_memory_limiter_soft_limit_bytes"),
        Some((1u64 << 20) as f64)
    );
    gw.stop().await;

    // 1 TiB: never over.
    let yaml = limiter(1 << 20);
    let gw = common::start(|c| common::apply(c, &yaml)).await;
    let mut client = TraceServiceClient::new(gw.otlp_channel().await);
    client
        .export(request(vec![span(0x42, 1, "under")]))
        .await
        .expect("taken under the limit");
    gw.stop().await;
}

/// An item dated further ahead than `max_clock_skew` (1 h) is rejected alone, like an invalid
/// one, with the reason in `partial_success`; within the skew it is stored. Spans and logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn far_future_items_are_rejected_alone() {
    let gw = common::start(|_| {}).await;
    let now = sieve::store::now_ns();
    let hour = 3_600_000_000_000u64;
    let at = |t: u8, start: u64| otlp::span(&[t; 16], &[1; 8], "dated", start, start + 1000);
    let mut client = TraceServiceClient::new(gw.otlp_channel().await);
    let resp = client
        .export(request(vec![
            at(0x51, now + 2 * hour),
            at(0x52, now + hour / 2),
            at(0x53, u64::MAX - 1000),
        ]))
        .await
        .expect("answered")
        .into_inner();
    let ps = resp.partial_success.expect("partial success");
    assert_eq!(ps.rejected_spans, 2);
    assert!(
        ps.error_message.contains("max_clock_skew"),
        "{}",
        ps.error_message
    );
    let mut q = gw.query_client().await;
    for (t, kept) in [(0x51u8, false), (0x52, true), (0x53, false)] {
        let got = q
            .get_trace(GetTraceRequest {
                trace_id: hex::encode([t; 16]),
            })
            .await;
        assert_eq!(got.is_ok(), kept, "trace {t:#x}");
    }
    let mut logs = LogsServiceClient::new(gw.otlp_channel().await);
    let resp = logs
        .export(otlp::logs_request(
            "raw",
            vec![
                otlp::log(now + 2 * hour, "tomorrow"),
                otlp::log(now, "today"),
            ],
        ))
        .await
        .expect("answered")
        .into_inner();
    let ps = resp.partial_success.expect("partial success");
    assert_eq!(ps.rejected_log_records, 1);
    assert!(
        ps.error_message.contains("max_clock_skew"),
        "{}",
        ps.error_message
    );
    gw.stop().await;
}

/// Invalid UTF-8 inside one span's name: prost checks every `string` field while decoding, so
/// the whole request is undecodable (INVALID_ARGUMENT, naming the field) and nothing of it is
/// stored; the connection and the next request are fine. (A per-item rejection would need a
/// decoder that keeps strings as bytes; the OTLP spec asks senders for valid UTF-8.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_rejects_the_request_it_is_in() {
    let gw = common::start(|_| {}).await;
    let mut body = request(vec![span(0x61, 1, "good"), span(0x61, 2, "UTF8MARK")]).encode_to_vec();
    let at = body
        .windows(8)
        .position(|w| w == b"UTF8MARK")
        .expect("the name is in the body");
    body[at..at + 8].copy_from_slice(&[0xff, 0xfe, 0xfd, 0xfc, 0x80, 0x81, 0xc0, 0xc1]);
    let err = sieve::otlp::send_pre_encoded::<ExportTraceServiceResponse>(
        gw.otlp_channel().await,
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        Bytes::from(body),
    )
    .await
    .expect_err("undecodable");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("name"), "{}", err.message());
    let mut q = gw.query_client().await;
    assert!(
        q.get_trace(GetTraceRequest {
            trace_id: hex::encode([0x61; 16]),
        })
        .await
        .is_err()
    );
    let mut traces = TraceServiceClient::new(gw.otlp_channel().await);
    traces
        .export(request(vec![span(0x62, 1, "next")]))
        .await
        .expect("the next request is fine");
    gw.stop().await;
}

/// A request of `n` empty spans, written byte by byte (building it as structs would take the
/// memory the test is about): two bytes a span on the wire, a few hundred decoded.
fn empty_spans_body(n: usize) -> Vec<u8> {
    // ScopeSpans.spans (2), each an empty Span.
    otlp::raw_traces_request(&[0x12u8, 0x00].repeat(n))
}

/// The intake budget counts what a body decodes to, not its wire size: a 2 MB request of a
/// million empty spans (hundreds of MB decoded) is refused before decoding, for good
/// (RESOURCE_EXHAUSTED without RetryInfo; HTTP 413), and the gateway goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_spans_are_budgeted_by_their_decoded_size() {
    let gw = common::start(|_| {}).await;
    let body = empty_spans_body(1_000_000);
    assert!(body.len() < 2_100_000, "{}", body.len());
    let err = sieve::otlp::send_pre_encoded::<ExportTraceServiceResponse>(
        gw.otlp_channel().await,
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        Bytes::from(body.clone()),
    )
    .await
    .expect_err("refused");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("intake budget"), "{}", err.message());
    assert!(
        err.get_error_details().retry_info().is_none(),
        "not to be retried"
    );
    let a = common::http_request(
        "POST",
        &format!("{}/v1/traces", gw.otlp_http),
        &[("content-type", "application/x-protobuf")],
        body,
    )
    .await;
    assert_eq!(a.status, 413);
    // A JSON body of empty objects is bounded the same way before it is parsed.
    let json = format!(
        "{{\"resourceSpans\":[{{\"scopeSpans\":[{{\"spans\":[{}]}}]}}]}}",
        vec!["{}"; 400_000].join(",")
    );
    let a = common::http_request(
        "POST",
        &format!("{}/v1/traces", gw.otlp_http),
        &[("content-type", "application/json")],
        json.into_bytes(),
    )
    .await;
    assert_eq!(a.status, 413);
    TraceServiceClient::new(gw.otlp_channel().await)
        .export(request(vec![span(0x71, 1, "after")]))
        .await
        .expect("a normal request still goes in");
    gw.stop().await;
}

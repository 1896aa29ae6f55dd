//! The query API and the `sieve query` CLI over a known data set: every filter, the ordering,
//! the span tree, and every kind of bad argument.

mod common;

use common::otlp;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, trace_service_client::TraceServiceClient,
};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::{Span, Status};
use sieve::otlp::string_kv;
use sieve::proto::{
    FindTracesRequest, GetOperationsRequest, GetServicesRequest, GetTraceRequest,
    SearchLogsRequest, TraceSummary,
};
use tonic::Code;

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

fn base() -> u64 {
    // Ten minutes ago, rounded to a second, so every time below is in the past.
    let now = sieve::store::now_ns();
    now - now % S - 600 * S
}

struct SpanSpec {
    trace: u8,
    id: u8,
    parent: u8,
    name: &'static str,
    start: u64,
    dur: u64,
    attrs: &'static [(&'static str, &'static str)],
    error: bool,
}

fn mk_span(b: u64, s: &SpanSpec) -> Span {
    Span {
        trace_id: vec![s.trace; 16],
        span_id: vec![s.id; 8],
        parent_span_id: if s.parent == 0 {
            vec![]
        } else {
            vec![s.parent; 8]
        },
        name: s.name.into(),
        kind: if s.parent == 0 { 2 } else { 3 },
        start_time_unix_nano: b + s.start,
        end_time_unix_nano: b + s.start + s.dur,
        attributes: s.attrs.iter().map(|(k, v)| string_kv(k, v)).collect(),
        status: s.error.then(|| Status {
            code: 2,
            message: "failed".into(),
        }),
        ..Default::default()
    }
}

fn traces_request(b: u64, by_service: &[(&str, Vec<SpanSpec>)]) -> ExportTraceServiceRequest {
    otlp::traces_by_service(
        by_service
            .iter()
            .map(|(svc, specs)| (*svc, specs.iter().map(|s| mk_span(b, s)).collect()))
            .collect(),
    )
}

fn sp(trace: u8, id: u8, parent: u8, name: &'static str, start: u64, dur: u64) -> SpanSpec {
    SpanSpec {
        trace,
        id,
        parent,
        name,
        start,
        dur,
        attrs: &[],
        error: false,
    }
}

fn tid(b: u8) -> String {
    hex::encode([b; 16])
}

/// Loads the data set: four traces, four log records, times relative to `base()`.
async fn load(gw: &common::TestGateway) -> u64 {
    let b = base();
    let mut traces = TraceServiceClient::new(gw.otlp_channel().await);
    let req = traces_request(
        b,
        &[
            (
                "frontend",
                vec![
                    SpanSpec {
                        attrs: &[("user.tier", "gold")],
                        ..sp(0x11, 1, 0, "GET /home", 0, 100 * MS)
                    },
                    SpanSpec {
                        attrs: &[("user.tier", "silver")],
                        ..sp(0x22, 1, 0, "GET /cart", 60 * S, 2 * S)
                    },
                    sp(0x33, 1, 0, "GET /home", 120 * S, 30 * MS),
                ],
            ),
            (
                "auth",
                vec![SpanSpec {
                    attrs: &[("user.tier", "gold")],
                    ..sp(0x11, 2, 1, "check", 5 * MS, 20 * MS)
                }],
            ),
            (
                "db",
                vec![SpanSpec {
                    error: true,
                    ..sp(0x11, 3, 1, "SELECT", 30 * MS, 60 * MS)
                }],
            ),
            ("cart", vec![sp(0x22, 2, 1, "load", 100 * MS, 1500 * MS)]),
        ],
    );
    traces.export(req).await.expect("export");
    // T4 arrives in two requests: the child first, then the root.
    traces
        .export(traces_request(
            b,
            &[(
                "frontend",
                vec![sp(0x44, 2, 1, "render", 180 * S + 10 * MS, 100 * MS)],
            )],
        ))
        .await
        .expect("export");
    traces
        .export(traces_request(
            b,
            &[(
                "frontend",
                vec![sp(0x44, 1, 0, "GET /split", 180 * S, 500 * MS)],
            )],
        ))
        .await
        .expect("export");

    let log = |t: u64, sev: i32, text: &str, body: &str, trace: Option<u8>, span: u8| LogRecord {
        severity_number: sev,
        severity_text: text.into(),
        trace_id: trace.map(|x| vec![x; 16]).unwrap_or_default(),
        span_id: trace.map(|_| vec![span; 8]).unwrap_or_default(),
        ..otlp::log(b + t, body)
    };
    let mut logs = LogsServiceClient::new(gw.otlp_channel().await);
    logs.export(otlp::logs_by_service(vec![
        (
            "frontend",
            vec![
                log(S, 9, "INFO", "user logged in", Some(0x11), 1),
                log(121 * S, 5, "DEBUG", "cache hit", None, 0),
            ],
        ),
        (
            "db",
            vec![log(2 * S, 13, "WARN", "slow query", Some(0x11), 3)],
        ),
        (
            "cart",
            vec![log(
                61 * S,
                17,
                "ERROR",
                "cart failed: timeout",
                Some(0x22),
                2,
            )],
        ),
    ]))
    .await
    .expect("export logs");
    b
}

fn ids(traces: &[TraceSummary]) -> Vec<String> {
    traces.iter().map(|t| t.trace_id.clone()).collect()
}

fn find(service: &str) -> FindTracesRequest {
    FindTracesRequest {
        service_name: service.into(),
        limit: 20,
        ..Default::default()
    }
}

/// Every FindTraces filter, newest-first order, summaries, services and operations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_queries() {
    let gw = common::start(|_| {}).await;
    let b = load(&gw).await;
    let mut q = gw.query_client().await;

    let services = q
        .get_services(GetServicesRequest {})
        .await
        .unwrap()
        .into_inner()
        .services;
    assert_eq!(services, ["auth", "cart", "db", "frontend"]);
    let ops = q
        .get_operations(GetOperationsRequest {
            service_name: "frontend".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .operations;
    let names: Vec<(&str, i32)> = ops.iter().map(|o| (o.name.as_str(), o.span_kind)).collect();
    assert_eq!(
        names,
        [
            ("GET /cart", 2),
            ("GET /home", 2),
            ("GET /split", 2),
            ("render", 3)
        ]
    );

    let all = common::traces(&mut q, find("frontend")).await;
    assert_eq!(ids(&all), [tid(0x44), tid(0x33), tid(0x22), tid(0x11)]);
    let t1 = &all[3];
    assert_eq!(
        (t1.root_service.as_str(), t1.root_operation.as_str()),
        ("frontend", "GET /home")
    );
    assert_eq!((t1.span_count, t1.error_count), (3, 1));
    assert_eq!(t1.start_unix_nano, b);
    assert_eq!(t1.duration_nanos, 100 * MS);
    let t4 = &all[0];
    assert_eq!(
        (t4.root_operation.as_str(), t4.span_count),
        ("GET /split", 2)
    );

    let by = |r: FindTracesRequest| {
        let mut q = q.clone();
        async move { ids(&common::traces(&mut q, r).await) }
    };
    assert_eq!(
        by(FindTracesRequest {
            operation_name: "GET /home".into(),
            ..find("frontend")
        })
        .await,
        [tid(0x33), tid(0x11)]
    );
    assert_eq!(by(find("cart")).await, [tid(0x22)]);
    let gold = FindTracesRequest {
        attributes: [("user.tier".to_string(), "gold".to_string())].into(),
        ..find("auth")
    };
    assert_eq!(by(gold).await, [tid(0x11)]);
    let silver = FindTracesRequest {
        attributes: [("user.tier".to_string(), "silver".to_string())].into(),
        ..find("frontend")
    };
    assert_eq!(by(silver).await, [tid(0x22)]);
    let nobody = FindTracesRequest {
        attributes: [("user.tier".to_string(), "bronze".to_string())].into(),
        ..find("frontend")
    };
    assert!(by(nobody).await.is_empty());
    assert_eq!(
        by(FindTracesRequest {
            duration_min_nanos: S,
            ..find("frontend")
        })
        .await,
        [tid(0x22)]
    );
    assert_eq!(
        by(FindTracesRequest {
            duration_max_nanos: 50 * MS,
            ..find("frontend")
        })
        .await,
        [tid(0x33)],
        "the 30ms GET /home; render (100ms) and the rest are longer"
    );
    assert_eq!(
        by(FindTracesRequest {
            duration_min_nanos: 90 * MS,
            duration_max_nanos: 110 * MS,
            ..find("frontend")
        })
        .await,
        [tid(0x44), tid(0x11)],
        "render of T4 and GET /home of T1"
    );
    assert_eq!(
        by(FindTracesRequest {
            start_time_min_unix_nano: b + 50 * S,
            start_time_max_unix_nano: b + 130 * S,
            ..find("frontend")
        })
        .await,
        [tid(0x33), tid(0x22)]
    );
    assert_eq!(
        by(FindTracesRequest {
            limit: 1,
            ..find("frontend")
        })
        .await,
        [tid(0x44)]
    );
    assert!(by(find("nope")).await.is_empty());

    // GetTrace merges the chunks of T4's two requests.
    let t = q
        .get_trace(GetTraceRequest {
            trace_id: tid(0x44),
        })
        .await
        .unwrap()
        .into_inner();
    let n = sieve::otlp::spans(&t.resource_spans).count();
    assert_eq!(n, 2);
    gw.stop().await;
}

/// Every SearchLogs filter and the newest-first order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_queries() {
    let gw = common::start(|_| {}).await;
    let b = load(&gw).await;
    let q = gw.query_client().await;
    let search = |r: SearchLogsRequest| {
        let mut q = q.clone();
        async move {
            common::logs(&mut q, r)
                .await
                .into_iter()
                .map(|e| sieve::otlp::any_value_text(e.log_record.unwrap().body.as_ref()))
                .collect::<Vec<_>>()
        }
    };
    let all = SearchLogsRequest {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        search(all.clone()).await,
        [
            "cache hit",
            "cart failed: timeout",
            "slow query",
            "user logged in"
        ]
    );
    assert_eq!(
        search(SearchLogsRequest {
            service_name: "frontend".into(),
            ..all.clone()
        })
        .await,
        ["cache hit", "user logged in"]
    );
    assert_eq!(
        search(SearchLogsRequest {
            min_severity_number: 13,
            ..all.clone()
        })
        .await,
        ["cart failed: timeout", "slow query"]
    );
    assert_eq!(
        search(SearchLogsRequest {
            trace_id: tid(0x11),
            ..all.clone()
        })
        .await,
        ["slow query", "user logged in"]
    );
    assert_eq!(
        search(SearchLogsRequest {
            contains: "timeout".into(),
            ..all.clone()
        })
        .await,
        ["cart failed: timeout"]
    );
    assert_eq!(
        search(SearchLogsRequest {
            start_time_min_unix_nano: b + 60 * S,
            start_time_max_unix_nano: b + 130 * S,
            ..all.clone()
        })
        .await,
        ["cache hit", "cart failed: timeout"]
    );
    assert_eq!(
        search(SearchLogsRequest {
            limit: 2,
            ..all.clone()
        })
        .await,
        ["cache hit", "cart failed: timeout"]
    );
    assert_eq!(
        search(SearchLogsRequest {
            service_name: "db".into(),
            min_severity_number: 17,
            ..all.clone()
        })
        .await,
        Vec::<String>::new()
    );
    gw.stop().await;
}

/// Malformed arguments get INVALID_ARGUMENT naming the problem; an unknown trace NOT_FOUND.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_arguments() {
    let gw = common::start(|_| {}).await;
    let mut q = gw.query_client().await;
    let e = q
        .get_trace(GetTraceRequest {
            trace_id: "xyz".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("trace_id"), "{}", e.message());
    let e = q
        .get_trace(GetTraceRequest {
            trace_id: tid(0x99),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    for (r, want) in [
        (
            FindTracesRequest {
                limit: 0,
                ..find("s")
            },
            "limit",
        ),
        (
            FindTracesRequest {
                limit: 100_000,
                ..find("s")
            },
            "limit",
        ),
        (find(""), "service_name"),
        (
            FindTracesRequest {
                start_time_min_unix_nano: 10,
                start_time_max_unix_nano: 5,
                ..find("s")
            },
            "start_time",
        ),
        (
            FindTracesRequest {
                duration_min_nanos: 10,
                duration_max_nanos: 5,
                ..find("s")
            },
            "duration",
        ),
    ] {
        let e = q.find_traces(r).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains(want), "{} lacks {want}", e.message());
    }
    for (r, want) in [
        (
            SearchLogsRequest {
                limit: 0,
                ..Default::default()
            },
            "limit",
        ),
        (
            SearchLogsRequest {
                limit: 5,
                trace_id: "00".into(),
                ..Default::default()
            },
            "trace_id",
        ),
        (
            SearchLogsRequest {
                limit: 5,
                min_severity_number: 99,
                ..Default::default()
            },
            "min_severity",
        ),
        (
            SearchLogsRequest {
                limit: 5,
                start_time_min_unix_nano: 9,
                start_time_max_unix_nano: 1,
                ..Default::default()
            },
            "start_time",
        ),
    ] {
        let e = q.search_logs(r).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains(want), "{} lacks {want}", e.message());
    }
    let e = q
        .get_operations(GetOperationsRequest {
            service_name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    gw.stop().await;
}

/// Past the attribute index bounds values are not indexed, and FindTraces still finds them by
/// scanning the service's traces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribute_search_beyond_index_bounds() {
    let gw = common::start(|c| c.storage.attribute_index.max_values_per_key = 1).await;
    let b = base();
    let mut traces = TraceServiceClient::new(gw.otlp_channel().await);
    traces
        .export(traces_request(
            b,
            &[(
                "shop",
                vec![SpanSpec {
                    attrs: &[("color", "red")],
                    ..sp(0x51, 1, 0, "a", 0, MS)
                }],
            )],
        ))
        .await
        .unwrap();
    traces
        .export(traces_request(
            b,
            &[(
                "shop",
                vec![SpanSpec {
                    attrs: &[("color", "blue")],
                    ..sp(0x52, 1, 0, "a", S, MS)
                }],
            )],
        ))
        .await
        .unwrap();
    let mut q = gw.query_client().await;
    for (color, want) in [("red", 0x51), ("blue", 0x52)] {
        let r = FindTracesRequest {
            attributes: [("color".to_string(), color.to_string())].into(),
            ..find("shop")
        };
        assert_eq!(
            ids(&common::traces(&mut q, r).await),
            [tid(want)],
            "{color}"
        );
    }
    gw.stop().await;
}

async fn cli(args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(common::sieve_bin())
        .args(args)
        .output()
        .await
        .expect("run sieve");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `sieve query ...` prints tables, the span tree and JSON, and fails clearly on bad input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_queries() {
    let gw = common::start(|_| {}).await;
    load(&gw).await;
    let addr = gw.query.as_str();

    let (ok, out, err) = cli(&["query", "services", "--addr", addr]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "auth\ncart\ndb\nfrontend\n");

    let (ok, out, _) = cli(&["query", "operations", "frontend", "--addr", addr]).await;
    assert!(ok);
    assert!(out.contains("GET /home") && out.contains("server"), "{out}");

    let (ok, out, err) = cli(&[
        "query",
        "traces",
        "--service",
        "frontend",
        "--since",
        "1h",
        "--json",
        "--addr",
        addr,
    ])
    .await;
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v.as_array().map(|a| a.len()), Some(4));
    assert_eq!(v[0]["trace_id"], tid(0x44));

    let (ok, out, _) = cli(&[
        "query",
        "traces",
        "--service",
        "auth",
        "--attr",
        "user.tier=gold",
        "--min-duration",
        "10ms",
        "--max-duration",
        "2s",
        "--addr",
        addr,
    ])
    .await;
    assert!(ok);
    assert!(out.starts_with("TRACE ID"), "{out}");
    assert!(
        out.contains(&tid(0x11)) && out.lines().count() == 2,
        "{out}"
    );

    let (ok, out, _) = cli(&["query", "trace", &tid(0x11), "--addr", addr]).await;
    assert!(ok);
    assert!(out.contains("3 spans, 100.0ms"), "{out}");
    assert!(out.contains("frontend: GET /home"), "{out}");
    assert!(out.contains("  auth: check"), "{out}");
    assert!(
        out.contains("  db: SELECT") && out.contains("ERROR: failed"),
        "{out}"
    );

    let (ok, out, _) = cli(&["query", "trace", &tid(0x11), "--json", "--addr", addr]).await;
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).expect("OTLP JSON");
    assert!(v["resourceSpans"].is_array(), "{out}");

    let (ok, out, _) = cli(&["query", "logs", "--severity", "warn", "--addr", addr]).await;
    assert!(ok);
    assert!(
        out.contains("ERROR") && out.contains("cart failed: timeout") && out.contains("slow query"),
        "{out}"
    );
    assert!(!out.contains("cache hit"), "{out}");

    let (ok, out, _) = cli(&[
        "query",
        "logs",
        "--trace-id",
        &tid(0x22),
        "--contains",
        "cart",
        "--json",
        "--addr",
        addr,
    ])
    .await;
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v.as_array().map(|a| a.len()), Some(1), "{out}");

    let (ok, out, _) = cli(&["query", "stats", "--json", "--addr", addr]).await;
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["spans"]["accepted"], 8);
    assert_eq!(v["log_records"]["accepted"], 4);
    let (ok, out, _) = cli(&["query", "stats", "--addr", addr]).await;
    assert!(
        ok && out.contains("RECEIVED") && out.contains("log records"),
        "{out}"
    );

    // Bad input: a clear message and a non-zero exit.
    let (ok, _, err) = cli(&["query", "trace", "nothex", "--addr", addr]).await;
    assert!(!ok);
    assert!(
        err.contains("InvalidArgument") && err.contains("trace_id"),
        "{err}"
    );
    let (ok, _, err) = cli(&["query", "trace", &tid(0x99), "--addr", addr]).await;
    assert!(!ok && err.contains("NotFound"), "{err}");
    let (ok, _, err) = cli(&[
        "query",
        "traces",
        "--service",
        "x",
        "--min-duration",
        "fast",
        "--addr",
        addr,
    ])
    .await;
    assert!(!ok && err.contains("invalid duration"), "{err}");
    let (ok, _, err) = cli(&[
        "query",
        "traces",
        "--service",
        "x",
        "--since",
        "1h",
        "--start",
        "1000",
        "--addr",
        addr,
    ])
    .await;
    assert!(!ok && err.contains("cannot be used with"), "{err}");
    let (ok, _, err) = cli(&[
        "query", "logs", "--start", "2000", "--end", "1000", "--addr", addr,
    ])
    .await;
    assert!(!ok && err.contains("--start is after --end"), "{err}");
    let (ok, _, err) = cli(&["query", "logs", "--severity", "loud", "--addr", addr]).await;
    assert!(!ok && err.contains("invalid severity"), "{err}");
    let (ok, _, err) = cli(&[
        "query",
        "traces",
        "--service",
        "x",
        "--limit",
        "0",
        "--addr",
        addr,
    ])
    .await;
    assert!(!ok && err.contains("limit"), "{err}");
    let (ok, _, err) = cli(&["query", "services", "--addr", "http://127.0.0.1:1"]).await;
    assert!(!ok && err.contains("cannot reach sieve"), "{err}");
    gw.stop().await;
}

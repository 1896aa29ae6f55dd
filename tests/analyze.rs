//! `sieve analyze critical-path` on OTLP JSON files, as the binary runs it.

mod common;

use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, TracesData};

fn span(trace: u8, id: u8, parent: Option<u8>, start: u64, end: u64, name: &str) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: name.into(),
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        ..Default::default()
    }
}

fn data(spans: Vec<Span>) -> TracesData {
    TracesData {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![sieve::otlp::string_kv("service.name", "shop")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

fn run(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    common::run_sieve(args, stdin.unwrap_or("").as_bytes())
}

/// Two traces in the file exporter's one-object-per-line form: J1 of the reference and a
/// trace with an orphan. `--json` gives the sections and exclusive times by hand; the table
/// names services and operations; stdin works the same.
#[test]
fn critical_path_of_otlp_json_lines() {
    let j1 = data(vec![
        span(1, 0xc, None, 1, 101, "GET /cart"),
        span(1, 0xd, Some(0xc), 20, 40, "SELECT"),
        span(1, 0xe, Some(0xc), 50, 60, "price"),
    ]);
    let orphan = data(vec![span(2, 0xa, Some(0x99), 0, 10, "lonely")]);
    let text = format!(
        "{}\n{}\n",
        serde_json::to_string(&j1).unwrap(),
        serde_json::to_string(&orphan).unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("traces.jsonl");
    std::fs::write(&file, &text).unwrap();
    let (ok, out, err) = run(
        &["analyze", "critical-path", file.to_str().unwrap(), "--json"],
        None,
    );
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    let t = &lines[0];
    assert_eq!(t["trace_id"], "01010101010101010101010101010101");
    let secs: Vec<(String, u64, u64)> = t["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["span_id"].as_str().unwrap()[..2].to_string(),
                s["start_unix_nano"].as_u64().unwrap(),
                s["end_unix_nano"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, u64, u64)> = [
        ("0c", 1, 20),
        ("0d", 20, 40),
        ("0c", 40, 50),
        ("0e", 50, 60),
        ("0c", 60, 101),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), *b, *c))
    .collect();
    assert_eq!(secs, want);
    let ex: Vec<(String, u64)> = t["exclusive"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["span_id"].as_str().unwrap()[..2].to_string(),
                e["nanos"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ex,
        vec![("0c".into(), 70), ("0d".into(), 20), ("0e".into(), 10)]
    );
    assert!(
        lines[1]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("not in the trace")
    );

    let (ok, table, _) = run(&["analyze", "critical-path", "-"], Some(&text));
    assert!(ok);
    assert!(
        table.contains("trace 01010101010101010101010101010101: critical path"),
        "{table}"
    );
    assert!(
        table.contains("shop") && table.contains("SELECT"),
        "{table}"
    );
    // C's last section is 41 of the 100 units.
    assert!(table.contains("41.0%"), "{table}");
    assert!(table.contains("GET /cart"), "{table}");
    assert!(table.contains("warning: 1 spans have a parent"), "{table}");
}

/// Malformed input is a clear error naming the line; an out-of-range tolerance too.
#[test]
fn bad_input_is_a_clear_error() {
    let (ok, _, err) = run(
        &["analyze", "critical-path", "-"],
        Some("{\"resourceSpans\": []}\nnot json\n"),
    );
    assert!(!ok);
    assert!(err.contains("line 2"), "{err}");
    let (ok, _, err) = run(&["analyze", "critical-path", "-"], Some(""));
    assert!(!ok);
    assert!(err.contains("no traces"), "{err}");
    let (ok, _, err) = run(&["analyze", "critical-path", "/no/such/file"], None);
    assert!(!ok);
    assert!(err.contains("cannot read /no/such/file"), "{err}");
    let (ok, _, err) = run(
        &["analyze", "critical-path", "-", "--tolerance", "3"],
        Some("{}"),
    );
    assert!(!ok);
    assert!(err.contains("--tolerance"), "{err}");
}

/// GetCriticalPath on a stored trace gives what the offline command gives; unknown and
/// malformed ids are NOT_FOUND and INVALID_ARGUMENT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_critical_path_of_a_stored_trace() {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, trace_service_client::TraceServiceClient,
    };
    let gw = common::start(|_| {}).await;
    let now = sieve::store::now_ns();
    let j1 = data(vec![
        span(7, 0xc, None, now + 1, now + 101, "GET /cart"),
        span(7, 0xd, Some(0xc), now + 20, now + 40, "SELECT"),
        span(7, 0xe, Some(0xc), now + 50, now + 60, "price"),
    ]);
    TraceServiceClient::new(gw.otlp_channel().await)
        .export(ExportTraceServiceRequest {
            resource_spans: j1.resource_spans,
        })
        .await
        .expect("export");
    let mut q = gw.query_client().await;
    let r = q
        .get_critical_path(sieve::proto::GetCriticalPathRequest {
            trace_id: "07".repeat(16),
            tolerance: 0.0,
        })
        .await
        .expect("GetCriticalPath")
        .into_inner();
    let secs: Vec<(String, u64)> = r
        .sections
        .iter()
        .map(|s| {
            let sp = s.span.clone().unwrap_or_default();
            (sp.operation, s.end_unix_nano - s.start_unix_nano)
        })
        .collect();
    assert_eq!(
        secs,
        vec![
            ("GET /cart".to_string(), 19),
            ("SELECT".to_string(), 20),
            ("GET /cart".to_string(), 10),
            ("price".to_string(), 10),
            ("GET /cart".to_string(), 41),
        ]
    );
    assert_eq!(r.sections[0].span.as_ref().unwrap().service, "shop");
    let ex: Vec<u64> = r.exclusive.iter().map(|e| e.nanos).collect();
    assert_eq!(ex, vec![70, 20, 10]);
    let missing = q
        .get_critical_path(sieve::proto::GetCriticalPathRequest {
            trace_id: "08".repeat(16),
            tolerance: 0.0,
        })
        .await
        .expect_err("unknown trace");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    for (id, tol) in [("xyz".to_string(), 0.0), ("07".repeat(16), 2.0)] {
        let e = q
            .get_critical_path(sieve::proto::GetCriticalPathRequest {
                trace_id: id,
                tolerance: tol,
            })
            .await
            .expect_err("bad argument");
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    }
    gw.stop().await;
}

//! Log template clustering offline: accuracy on the labelled loghub-2k systems, and the
//! `sieve logs` commands on odd input.

mod common;

use std::path::PathBuf;
use std::process::Command;

use opentelemetry::Context;
use opentelemetry::logs::{AnyValue as LogValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry_proto::tonic::common::v1::any_value;
use sieve::cli::logs::{SYSTEMS, evaluate, scores_text};
use sieve::log_templates::Params;
use sieve::proto::{
    GetLogClusterRequest, GetStatsRequest, ListLogClustersRequest, SearchLogsRequest,
};
use tonic::Code;

/// `$SIEVE_LOGHUB_DIR`, or `../shared/data/loghub-2k` beside the repository.
fn data_dir() -> PathBuf {
    std::env::var_os("SIEVE_LOGHUB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/loghub-2k")
        })
}

/// One default configuration for all 16 systems: average GA ≥ 0.93, none below 0.80.
#[test]
fn grouping_accuracy_on_loghub_2k() {
    let dir = data_dir();
    if !dir.is_dir() {
        assert!(
            std::env::var_os("SIEVE_REQUIRE_LOGHUB").is_none(),
            "SIEVE_REQUIRE_LOGHUB is set but the loghub-2k data is not at {}",
            dir.display()
        );
        println!(
            "SKIPPED: the loghub-2k data is not at {} (set SIEVE_LOGHUB_DIR); accuracy not checked",
            dir.display()
        );
        return;
    }
    let params = Params::default();
    let scores: Vec<_> = SYSTEMS
        .iter()
        .map(|s| evaluate(&dir, s, &params).unwrap_or_else(|e| panic!("{s}: {e}")))
        .collect();
    println!("{}", scores_text(&scores));
    let avg = scores.iter().map(|s| s.ga).sum::<f64>() / scores.len() as f64;
    assert!(avg >= 0.93, "average GA {avg:.3} < 0.93");
    for s in &scores {
        assert!(s.ga >= 0.80, "{} GA {:.3} < 0.80", s.system, s.ga);
        assert_eq!(s.lines, 2000, "{}", s.system);
    }
}

fn sieve(args: &[&str], stdin: &[u8]) -> (bool, String, String) {
    common::run_sieve(args, stdin)
}

/// Every input line gets a row, whatever it holds: empty lines, binary bytes, CRLF, a line
/// of 50,000 tokens.
#[test]
fn cluster_command_takes_anything() {
    let mut input = Vec::new();
    input.extend_from_slice(b"session opened for user 1 by root\r\n\n");
    input.extend_from_slice(&[0xff, 0xfe, 0x00, b' ', 0x80, b'\n']);
    input.extend_from_slice("x ".repeat(50_000).as_bytes());
    input.extend_from_slice(b"\nsession opened for user 2 by root");
    let (ok, out, err) = sieve(&["logs", "cluster", "--stats", "-"], &input);
    assert!(ok, "{err}");
    let mut r = csv::Reader::from_reader(out.as_bytes());
    let rows: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 5);
    let ids: Vec<&str> = rows.iter().map(|r| &r[0]).collect();
    assert_eq!(ids, ["1", "2", "3", "4", "5"]);
    assert_eq!(
        &rows[0][1], &rows[4][1],
        "the two session lines share a cluster"
    );
    assert_eq!(&rows[0][2], "session opened for user <*> by root");
    assert!(
        rows[3][2].ends_with("<*…>"),
        "the long line says it was cut"
    );
    assert!(err.contains("5 lines") && err.contains("lines/s"), "{err}");
    // A file argument works the same; a missing file is a clear error.
    let (ok, _, err) = sieve(&["logs", "cluster", "/nonexistent/file.log"], b"");
    assert!(
        !ok && err.contains("cannot open /nonexistent/file.log"),
        "{err}"
    );
    let (ok, _, err) = sieve(&["logs", "evaluate", "--data", "/nonexistent"], b"");
    assert!(!ok && err.contains("SIEVE_LOGHUB_DIR"), "{err}");
}

/// The lines the server test sends: three kinds, one with many user names.
fn lines(round: u32) -> Vec<String> {
    let mut out = Vec::new();
    for (i, u) in ["cyrus", "news", "test", "root", "guest", "admin"]
        .iter()
        .enumerate()
    {
        out.push(format!(
            "session opened for user {u} by (uid={})",
            i as u32 + round
        ));
        out.push(format!(
            "disk /dev/sda{i} is {}% full",
            50 + i as u32 + round
        ));
    }
    out.push("cupsd startup succeeded".to_string());
    out
}

/// Sends `lines` through the official SDK as service `mail`, the first one inside a span;
/// returns that span's trace id.
async fn send_logs(endpoint: &str, lines: Vec<String>) -> String {
    let endpoint = endpoint.to_string();
    common::blocking(move || {
        let tp = common::tracer_provider(&endpoint, "mail", None);
        let lp = common::logger_provider(&endpoint, "mail");
        let logger = lp.logger("mail");
        let span = tp.tracer("t").start("deliver");
        let trace_id = span.span_context().trace_id().to_string();
        let cx = Context::current_with_span(span);
        for (i, l) in lines.into_iter().enumerate() {
            let _guard = (i == 0).then(|| cx.clone().attach());
            let mut rec = logger.create_log_record();
            rec.set_body(LogValue::from(l));
            logger.emit(rec);
        }
        lp.force_flush().expect("flush logs");
        trace_id
    })
    .await
}

fn attr<'a>(
    rec: &'a opentelemetry_proto::tonic::logs::v1::LogRecord,
    key: &str,
) -> Option<&'a any_value::Value> {
    rec.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

/// The "mail" service's clusters, as ListLogClusters lists them by default.
async fn mail_clusters(
    q: &mut sieve::proto::query_service_client::QueryServiceClient<tonic::transport::Channel>,
) -> sieve::proto::ListLogClustersResponse {
    q.list_log_clusters(ListLogClustersRequest {
        service: "mail".into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
}

/// Logs sent with the official SDK come back grouped: clusters with counts, samples and the
/// trace they belong to; stored records carry their cluster's id and template; a restart
/// keeps the ids; malformed queries are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_clusters_logs_and_keeps_ids() {
    let gw = common::start(|_| {}).await;
    let trace_id = send_logs(&gw.otlp, lines(0)).await;
    let mut q = gw.query_client().await;
    let list = mail_clusters(&mut q).await;
    let got: Vec<(String, u64)> = list
        .clusters
        .iter()
        .map(|c| (c.template.clone(), c.count))
        .collect();
    assert_eq!(
        got,
        vec![
            ("session opened for user <*> by (uid=<*>)".to_string(), 6),
            ("disk <*> is <*> full".to_string(), 6),
            ("cupsd startup succeeded".to_string(), 1),
        ],
        "{list:?}"
    );
    let session = &list.clusters[0];
    assert_eq!(session.trace_ids, vec![trace_id.clone()]);
    assert_eq!(session.samples.len(), 3);
    assert_eq!(session.service, "mail");
    // Stored records carry their cluster.
    let stored = common::logs(
        &mut q,
        SearchLogsRequest {
            service_name: "mail".into(),
            limit: 100,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(stored.len(), 13);
    for e in &stored {
        let rec = e.log_record.as_ref().unwrap();
        let Some(any_value::Value::IntValue(id)) = attr(rec, "log.template.id") else {
            panic!("no cluster id on {rec:?}");
        };
        let Some(any_value::Value::StringValue(t)) = attr(rec, "log.template") else {
            panic!("no template on {rec:?}");
        };
        // The id a record got may since have merged into another cluster: it still leads
        // to the listed cluster.
        let live = q
            .get_log_cluster(GetLogClusterRequest {
                id: *id as u64,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .cluster
            .unwrap();
        let c = list
            .clusters
            .iter()
            .find(|c| c.id == live.id)
            .expect("listed");
        // Its template is the cluster's as it was then: the same, or (for the first
        // session lines, before four user names made that place a variable) with the name.
        if c.template != *t {
            assert!(
                t.starts_with("session opened for user ") && !t.contains("user <*>"),
                "{t} vs {}",
                c.template
            );
        }
    }
    // One cluster with its counts over time.
    let one = q
        .get_log_cluster(GetLogClusterRequest {
            id: session.id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.points.iter().map(|p| p.count).sum::<u64>(), 6);
    assert_eq!(one.cluster.as_ref().map(|c| c.total), Some(6));
    let ids: Vec<u64> = list.clusters.iter().map(|c| c.id).collect();

    // Bad arguments.
    for (e, want) in [
        (
            q.list_log_clusters(ListLogClustersRequest {
                order: "loudest".into(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
            "order must be count, newest or growth",
        ),
        (
            q.list_log_clusters(ListLogClustersRequest {
                limit: 5000,
                ..Default::default()
            })
            .await
            .unwrap_err(),
            "limit",
        ),
        (
            q.get_log_cluster(GetLogClusterRequest::default())
                .await
                .unwrap_err(),
            "id is required",
        ),
    ] {
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains(want), "{e:?}");
    }
    let e = q
        .get_log_cluster(GetLogClusterRequest {
            id: 999_999,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");

    // A restart keeps the clusters and their ids: the same kinds of lines make no new one.
    let dir = gw.stop_keep_dir().await;
    let gw = common::start_in(dir, |_| {}).await;
    send_logs(&gw.otlp, lines(7)).await;
    let mut q = gw.query_client().await;
    let list = mail_clusters(&mut q).await;
    let again: Vec<(u64, u64, u64)> = list
        .clusters
        .iter()
        .map(|c| (c.id, c.count, c.total))
        .collect();
    assert_eq!(
        again,
        vec![(ids[0], 12, 12), (ids[1], 12, 12), (ids[2], 2, 2)]
    );
    let stats = q.get_stats(GetStatsRequest {}).await.unwrap().into_inner();
    let a = stats.analysis.unwrap();
    assert_eq!(
        (a.log_records, a.new_log_clusters, a.log_clusters),
        (13, 0, 3)
    );
    // The CLI prints them.
    let out = Command::new(common::sieve_bin())
        .args([
            "query",
            "clusters",
            "--service",
            "mail",
            "--addr",
            &gw.query,
        ])
        .output()
        .expect("run sieve");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines()
            .nth(1)
            .unwrap_or_default()
            .contains("session opened for user <*> by (uid=<*>)"),
        "{text}"
    );
    let out = Command::new(common::sieve_bin())
        .args(["query", "cluster", &ids[0].to_string(), "--addr", &gw.query])
        .output()
        .expect("run sieve");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("cluster {} of mail: session opened", ids[0])),
        "{text}"
    );
    assert!(text.contains(&format!("trace:  {trace_id}")), "{text}");
    gw.stop().await;
}

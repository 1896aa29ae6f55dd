//! Head sampling through the real gateway: two instances with the same configuration keep
//! the same traces out of 100,000 random ones (and the kept share sits inside a 99.9%
//! binomial interval), logs follow their traces, and bad sampler configuration is refused
//! with its key.

mod common;

use std::collections::HashSet;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, logs_service_client::LogsServiceClient,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, trace_service_client::TraceServiceClient,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, TracesData};
use rand::RngCore;
use sieve::config::Config;
use sieve::proto::{GetSamplingStatsRequest, GetTraceRequest, SearchLogsRequest};

fn apply(c: &mut Config, yaml: &str) {
    let parsed = Config::from_yaml(yaml).unwrap_or_else(|e| panic!("test yaml: {e}\n{yaml}"));
    c.processors = parsed.processors;
    c.exporters = parsed.exporters;
    c.service.pipelines = parsed.service.pipelines;
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![sieve::otlp::string_kv("service.name", "sampled")],
        ..Default::default()
    })
}

fn one_span_per_trace(ids: &[[u8; 16]]) -> ExportTraceServiceRequest {
    let now = sieve::store::now_ns();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                spans: ids
                    .iter()
                    .map(|id| Span {
                        trace_id: id.to_vec(),
                        span_id: id[8..].to_vec(),
                        name: "root".into(),
                        start_time_unix_nano: now - 1000,
                        end_time_unix_nano: now,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

/// Trace ids in the file exporter's output.
fn kept_in_file(path: &std::path::Path) -> (HashSet<Vec<u8>>, HashSet<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut ids = HashSet::new();
    let mut states = HashSet::new();
    for line in text.lines() {
        let d: TracesData = serde_json::from_str(line).expect("OTLP JSON line");
        for (_, s) in sieve::otlp::spans(&d.resource_spans) {
            ids.insert(s.trace_id.clone());
            states.insert(s.trace_state.clone());
        }
    }
    (ids, states)
}

const SAMPLER: &str =
    "processors:\n  probabilistic_sampler:\n    mode: proportional\n    sampling_percentage: 25\n";

/// Same config, two gateways, the same 100,000 random trace ids: the same kept set, equal to
/// what the decision function gives for each id, its size inside the 99.9% binomial interval
/// of p = 0.25, and every kept span marked `ot=th:c`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_keep_the_same_traces() {
    const N: usize = 100_000;
    let mut rng = rand::rng();
    let ids: Vec<[u8; 16]> = (0..N)
        .map(|_| {
            let mut id = [0u8; 16];
            rng.fill_bytes(&mut id);
            id
        })
        .collect();
    let out = tempfile::tempdir().expect("tempdir");
    let mut gateways = Vec::new();
    for g in ["a", "b"] {
        let path = out.path().join(format!("{g}.jsonl"));
        let yaml = format!(
            "{SAMPLER}exporters:\n  file:\n    path: {}\n    batch:\n      timeout: 20ms\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [probabilistic_sampler]\n      exporters: [file]\n",
            path.display()
        );
        gateways.push((common::start(|c| apply(c, &yaml)).await, path));
    }
    for (gw, _) in &gateways {
        let mut client = TraceServiceClient::new(gw.otlp_channel().await);
        for chunk in ids.chunks(2000) {
            let r = client
                .export(one_span_per_trace(chunk))
                .await
                .expect("export")
                .into_inner();
            assert!(
                r.partial_success.is_none(),
                "sampled-out spans are not rejections"
            );
        }
    }
    let mut kept_sets = Vec::new();
    for (gw, path) in gateways {
        let stats = gw
            .query_client()
            .await
            .get_sampling_stats(GetSamplingStatsRequest {})
            .await
            .expect("GetSamplingStats")
            .into_inner();
        let s = &stats.samplers[0];
        assert_eq!(
            (s.name.as_str(), s.mode.as_str()),
            ("probabilistic_sampler", "proportional")
        );
        assert_eq!(s.spans_seen, N as u64);
        gw.stop().await; // drains the file exporter
        let (kept, states) = kept_in_file(&path);
        assert_eq!(kept.len() as u64, s.spans_kept);
        assert_eq!(states, HashSet::from(["ot=th:c".to_string()]));
        kept_sets.push(kept);
    }
    assert_eq!(
        kept_sets[0], kept_sets[1],
        "two instances decided differently"
    );
    // The decision function, id by id.
    let t = sieve::sampling::head::Threshold::from_probability(0.25, 4).expect("threshold");
    let expected: HashSet<Vec<u8>> = ids
        .iter()
        .filter(|id| sieve::sampling::head::trace_id_randomness(&id[..]) >= t.0)
        .map(|id| id.to_vec())
        .collect();
    assert_eq!(kept_sets[0], expected);
    // 99.9% two-sided binomial interval: p ± 3.29·sqrt(p(1−p)/n).
    let (p, n) = (0.25f64, N as f64);
    let half = 3.29 * (p * (1.0 - p) / n).sqrt();
    let share = kept_sets[0].len() as f64 / n;
    assert!(
        (share - p).abs() <= half,
        "kept share {share} outside {p} ± {half}"
    );
}

/// Logs with a trace id are kept exactly when their trace is; logs without one are sampled
/// on their own, by body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_their_traces() {
    let yaml = format!(
        "{SAMPLER}service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [probabilistic_sampler]\n    logs:\n      receivers: [otlp]\n      processors: [probabilistic_sampler]\n"
    );
    let gw = common::start(|c| apply(c, &yaml)).await;
    let mut rng = rand::rng();
    let ids: Vec<[u8; 16]> = (0..300)
        .map(|_| {
            let mut id = [0u8; 16];
            rng.fill_bytes(&mut id);
            id
        })
        .collect();
    TraceServiceClient::new(gw.otlp_channel().await)
        .export(one_span_per_trace(&ids))
        .await
        .expect("export spans");
    let now = sieve::store::now_ns();
    let mut records: Vec<LogRecord> = ids
        .iter()
        .map(|id| LogRecord {
            time_unix_nano: now,
            trace_id: id.to_vec(),
            span_id: id[8..].to_vec(),
            body: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                value: Some(
                    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                        "in a trace".into(),
                    ),
                ),
            }),
            ..Default::default()
        })
        .collect();
    for i in 0..400 {
        records.push(LogRecord {
            time_unix_nano: now,
            body: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                value: Some(
                    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(format!(
                        "no trace {i}"
                    )),
                ),
            }),
            ..Default::default()
        });
    }
    LogsServiceClient::new(gw.otlp_channel().await)
        .export(ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: resource(),
                scope_logs: vec![ScopeLogs {
                    log_records: records,
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
        })
        .await
        .expect("export logs");
    let mut q = gw.query_client().await;
    let mut kept_traces = 0;
    for id in &ids {
        let trace_kept = q
            .get_trace(GetTraceRequest {
                trace_id: hex::encode(id),
            })
            .await
            .is_ok();
        let logs = common::logs(
            &mut q,
            SearchLogsRequest {
                trace_id: hex::encode(id),
                limit: 10,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(
            logs.len(),
            usize::from(trace_kept),
            "trace {}",
            hex::encode(id)
        );
        kept_traces += usize::from(trace_kept);
    }
    assert!(
        (30..=130).contains(&kept_traces),
        "{kept_traces} of 300 at 25%"
    );
    let stats = q
        .get_sampling_stats(GetSamplingStatsRequest {})
        .await
        .expect("stats")
        .into_inner();
    let s = &stats.samplers[0];
    assert_eq!(s.logs_seen, 700);
    let untraced_kept = s.logs_kept as usize - kept_traces;
    assert!(
        (50..=160).contains(&untraced_kept),
        "{untraced_kept} of 400 at 25%"
    );
    gw.stop().await;
}

/// Sampler configuration errors name their key.
#[test]
fn bad_sampler_config_names_the_key() {
    let pipe = "service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [probabilistic_sampler]\n";
    for (yaml, key) in [
        ("processors:\n  probabilistic_sampler:\n    sampling_percentage: 101\n".to_string(), "processors.probabilistic_sampler.sampling_percentage"),
        ("processors:\n  probabilistic_sampler:\n    sampling_percentage: -1\n".to_string(), "processors.probabilistic_sampler.sampling_percentage"),
        ("processors:\n  probabilistic_sampler:\n    sampling_percentage: .nan\n".to_string(), "processors.probabilistic_sampler.sampling_percentage"),
        ("processors:\n  probabilistic_sampler:\n    sampling_percentage: 10\n    mode: random\n".to_string(), "processors.probabilistic_sampler.mode"),
        ("processors:\n  probabilistic_sampler:\n    mode: proportional\n".to_string(), "processors.probabilistic_sampler"),
        ("processors:\n  probabilistic_sampler:\n    sampling_percentage: 10\n    sampling_precision: 15\n".to_string(), "processors.probabilistic_sampler.sampling_precision"),
        ("processors:\n  probabilistic_sampler:\n    sampling_percentage: 10\n    logs:\n      sampling_percentage: 200\n".to_string(), "processors.probabilistic_sampler.logs.sampling_percentage"),
        ("processors:\n  probabilistic_sampler:\n    sampling_percentage: 10\n    hash_seed: -3\n".to_string(), "processors.probabilistic_sampler.hash_seed"),
        ("processors:\n  sampler_of_doom: {}\n".to_string(), "processors.sampler_of_doom"),
        ("processors:\n  probabilistic_sampler:\n    sampling_percentage: 10\nservice:\n  pipelines:\n    metrics:\n      receivers: [otlp]\n      processors: [probabilistic_sampler]\n".to_string(), "service.pipelines.metrics.processors"),
        (pipe.to_string(), "service.pipelines.traces.processors"),
    ] {
        let e = Config::from_yaml(&yaml).expect_err(&yaml).to_string();
        assert!(e.contains(key), "{yaml:?} gave {e:?}, wanted {key}");
    }
    assert!(Config::from_yaml(&format!("{SAMPLER}{pipe}")).is_ok());
}

//! Head sampling through the real gateway: two instances with the same configuration keep
//! the same traces out of 100,000 random ones (and the kept share sits inside a 99.9%
//! binomial interval), logs follow their traces, and bad sampler configuration is refused
//! with its key.

mod common;

use common::otlp;

use std::collections::HashSet;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, trace_service_client::TraceServiceClient,
};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::{Span, TracesData};
use rand::RngCore;
use sieve::config::Config;
use sieve::proto::{GetSamplingStatsRequest, GetTraceRequest, SearchLogsRequest};

use common::apply;

/// `n` random trace ids, as SDKs make them.
fn random_ids(n: usize) -> Vec<[u8; 16]> {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| {
            let mut id = [0u8; 16];
            rng.fill_bytes(&mut id);
            id
        })
        .collect()
}

/// One root span for each of `ids`, of service `sampled`.
fn one_span_per_trace(ids: &[[u8; 16]]) -> ExportTraceServiceRequest {
    let now = sieve::store::now_ns();
    let spans = ids
        .iter()
        .map(|id| otlp::span(id, &id[8..], "root", now - 1000, now))
        .collect();
    request(spans)
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
    let ids = random_ids(N);
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
    // The specification's rule, id by id, written out here rather than taken from the
    // sampler: keep iff R >= T.
    let expected: HashSet<Vec<u8>> = ids
        .iter()
        .filter(|id| proportional_keeps(id, THRESHOLD_25))
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

/// The OpenTelemetry specification's rejection threshold for 25%: `(1 - 0.25) * 2^56`, which
/// the tracestate writes as `th:c`.
const THRESHOLD_25: u64 = 0x00c0_0000_0000_0000;

/// Consistent probability sampling as the specification writes it: the randomness `R` is the
/// trace id's low 56 bits (bytes 9 to 15, big-endian); keep iff `R >= T`.
fn proportional_keeps(trace_id: &[u8; 16], threshold: u64) -> bool {
    let mut r = [0u8; 8];
    r[1..].copy_from_slice(&trace_id[9..]);
    u64::from_be_bytes(r) >= threshold
}

/// FNV-1a, 32-bit, as its authors define it: offset basis 2166136261, prime 16777619, xor
/// then multiply, byte by byte.
fn fnv1a_32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(2_166_136_261u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(16_777_619)
    })
}

/// The Collector's probabilisticsampler in hash_seed mode: hash the seed's four
/// little-endian bytes then the trace id, keep iff the low 14 bits are below
/// `percentage * 16384 / 100` (in float32, truncated).
fn hash_seed_keeps(seed: u32, trace_id: &[u8], percentage: f32) -> bool {
    let mut bytes = seed.to_le_bytes().to_vec();
    bytes.extend_from_slice(trace_id);
    let bound = (percentage * (16384.0f32 / 100.0f32)) as u32;
    (fnv1a_32(&bytes) & 0x3fff) < bound
}

/// The oracles above on known vectors: FNV-1a's published values, the Collector's bucket
/// values for seed 0, and the threshold's edge.
#[test]
fn the_oracles_match_known_vectors() {
    assert_eq!(fnv1a_32(b""), 0x811c_9dc5);
    assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
    assert_eq!(fnv1a_32(b"foobar"), 0xbf9c_f968);
    assert_eq!(fnv1a_32(&[0; 4]) & 0x3fff, 0x3515);
    assert_eq!(fnv1a_32(&[0; 20]) & 0x3fff, 0x2455);
    // Bucket 0x2455 = 9301 is kept at 57% (bound 9338) and dropped at 56% (9175).
    assert!(hash_seed_keeps(0, &[0; 16], 57.0));
    assert!(!hash_seed_keeps(0, &[0; 16], 56.0));
    let mut id = [0u8; 16];
    id[9] = 0xc0;
    assert!(proportional_keeps(&id, THRESHOLD_25), "R = T is kept");
    let mut id = [0xffu8; 16];
    id[9] = 0xbf;
    assert!(
        !proportional_keeps(&id, THRESHOLD_25),
        "R = T - 1 is dropped"
    );
    id[8] = 0; // byte 8 is not part of R
    assert!(!proportional_keeps(&id, THRESHOLD_25));
}

/// hash_seed mode through the real gateway: the kept set is exactly what the Collector's
/// rule, written out above, keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_seed_keeps_what_the_collectors_rule_keeps() {
    const N: usize = 20_000;
    let ids = random_ids(N);
    let out = tempfile::tempdir().expect("tempdir");
    let path = out.path().join("kept.jsonl");
    let yaml = format!(
        "processors:\n  probabilistic_sampler:\n    mode: hash_seed\n    hash_seed: 7\n    sampling_percentage: 30\nexporters:\n  file:\n    path: {}\n    batch:\n      timeout: 20ms\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [probabilistic_sampler]\n      exporters: [file]\n",
        path.display()
    );
    let gw = common::start(|c| apply(c, &yaml)).await;
    let mut client = TraceServiceClient::new(gw.otlp_channel().await);
    for chunk in ids.chunks(2000) {
        client
            .export(one_span_per_trace(chunk))
            .await
            .expect("export");
    }
    gw.stop().await; // drains the file exporter
    let (kept, _) = kept_in_file(&path);
    let expected: HashSet<Vec<u8>> = ids
        .iter()
        .filter(|id| hash_seed_keeps(7, &id[..], 30.0))
        .map(|id| id.to_vec())
        .collect();
    assert!(!expected.is_empty() && expected.len() < N);
    assert_eq!(kept, expected);
}

/// Logs with a trace id are kept exactly when their trace is; logs without one are sampled
/// on their own, by body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_their_traces() {
    let yaml = format!(
        "{SAMPLER}service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [probabilistic_sampler]\n    logs:\n      receivers: [otlp]\n      processors: [probabilistic_sampler]\n"
    );
    let gw = common::start(|c| apply(c, &yaml)).await;
    let ids = random_ids(300);
    TraceServiceClient::new(gw.otlp_channel().await)
        .export(one_span_per_trace(&ids))
        .await
        .expect("export spans");
    let now = sieve::store::now_ns();
    let mut records: Vec<LogRecord> = ids
        .iter()
        .map(|id| LogRecord {
            trace_id: id.to_vec(),
            span_id: id[8..].to_vec(),
            ..otlp::log(now, "in a trace")
        })
        .collect();
    for i in 0..400 {
        records.push(otlp::log(now, &format!("no trace {i}")));
    }
    LogsServiceClient::new(gw.otlp_channel().await)
        .export(otlp::logs_request("sampled", records))
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
        ("processors:\n  tail_sampling:\n    policies:\n      - {name: a, type: latency}\n".to_string(), "processors.tail_sampling.policies[0].latency"),
        ("processors:\n  tail_sampling:\n    policies:\n      - {name: a, type: always_sample, latency: {threshold_ms: 5}}\n".to_string(), "processors.tail_sampling.policies[0].latency"),
        ("processors:\n  tail_sampling:\n    policies:\n      - {name: a, type: telepathy}\n".to_string(), "processors.tail_sampling.policies[0].type"),
        ("processors:\n  tail_sampling:\n    policies: []\n".to_string(), "processors.tail_sampling.policies"),
        ("processors:\n  tail_sampling:\n    policies:\n      - {name: a, type: always_sample}\n      - {name: a, type: always_sample}\n".to_string(), "processors.tail_sampling.policies[1].name"),
        ("processors:\n  tail_sampling:\n    policies:\n      - {name: a, type: status_code, status_code: {status_codes: [BROKEN]}}\n".to_string(), "processors.tail_sampling.policies[0].status_code.status_codes"),
        ("processors:\n  tail_sampling:\n    policies:\n      - {name: a, type: probabilistic, probabilistic: {sampling_percentage: 120}}\n".to_string(), "processors.tail_sampling.policies[0].probabilistic.sampling_percentage"),
        ("processors:\n  tail_sampling:\n    policies:\n      - {name: a, type: numeric_attribute, numeric_attribute: {key: k, min_value: 5, max_value: 1}}\n".to_string(), "processors.tail_sampling.policies[0].numeric_attribute"),
        ("processors:\n  tail_sampling:\n    quiet_period: 1m\n    decision_wait: 10s\n    policies:\n      - {name: a, type: always_sample}\n".to_string(), "processors.tail_sampling.quiet_period"),
        ("processors:\n  tail_sampling:\n    policies:\n      - name: c\n        type: composite\n        composite:\n          max_total_spans_per_second: 100\n          policy_order: [x, y]\n          composite_sub_policy:\n            - {name: x, type: always_sample}\n            - {name: y, type: always_sample}\n          rate_allocation:\n            - {policy: x, percent: 70}\n            - {policy: y, percent: 40}\n".to_string(), "processors.tail_sampling.policies[0].composite.rate_allocation"),
        ("processors:\n  tail_sampling:\n    policies:\n      - name: c\n        type: composite\n        composite:\n          max_total_spans_per_second: 100\n          policy_order: [nope]\n          composite_sub_policy:\n            - {name: x, type: always_sample}\n          rate_allocation: []\n".to_string(), "processors.tail_sampling.policies[0].composite.policy_order"),
        ("processors:\n  tail_sampling:\n    policies:\n      - {name: a, type: always_sample}\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      processors: [tail_sampling]\n".to_string(), "service.pipelines.logs.processors"),
        ("processors:\n  adaptive_sampler:\n    target_traces_per_second: 0\n".to_string(), "processors.adaptive_sampler.target_traces_per_second"),
        ("processors:\n  adaptive_sampler:\n    target_traces_per_second: 5\n    min_probability: 0\n".to_string(), "processors.adaptive_sampler.min_probability"),
        ("processors:\n  adaptive_sampler:\n    target_traces_per_second: 5\n    initial_probability: 2\n".to_string(), "processors.adaptive_sampler.initial_probability"),
        ("processors:\n  adaptive_sampler:\n    interval: 1m\n".to_string(), "processors.adaptive_sampler"),
        ("processors:\n  tail_sampling:\n    policies:\n      - name: c\n        type: composite\n        composite:\n          max_total_spans_per_second: 100\n          policy_order: [x, x]\n          composite_sub_policy:\n            - {name: x, type: always_sample}\n          rate_allocation: []\n".to_string(), "processors.tail_sampling.policies[0].composite.policy_order"),
        ("processors:\n  tail_sampling:\n    policies:\n      - name: c\n        type: composite\n        composite:\n          max_total_spans_per_second: 100\n          policy_order: []\n          composite_sub_policy: []\n          rate_allocation: []\n".to_string(), "processors.tail_sampling.policies[0].composite.composite_sub_policy"),
        (format!("{SAMPLER}service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [probabilistic_sampler, probabilistic_sampler]\n"), "service.pipelines.traces.processors"),
        ("processors:\n  probabilistic_sampler:\n    sampling_percentage: 5\n  tail_sampling:\n    policies:\n      - {name: a, type: always_sample}\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [tail_sampling, probabilistic_sampler]\n".to_string(), "service.pipelines.traces.processors"),
    ] {
        let e = Config::from_yaml(&yaml).expect_err(&yaml).to_string();
        assert!(e.contains(key), "{yaml:?} gave {e:?}, wanted {key}");
    }
    assert!(Config::from_yaml(&format!("{SAMPLER}{pipe}")).is_ok());
}

const TAIL: &str = "processors:\n  tail_sampling:\n    decision_wait: 2s\n    quiet_period: 300ms\n    policies:\n      - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}\n      - {name: slow, type: latency, latency: {threshold_ms: 200}}\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [tail_sampling]\n";

/// A trace of `spans` spans: a root and children; `error` puts ERROR on the last child;
/// the root lasts `ms` milliseconds.
fn trace(t: u32, spans: u32, ms: u64, error: bool) -> Vec<Span> {
    let now = sieve::store::now_ns();
    let id = trace_id(t);
    (0..spans)
        .map(|i| {
            let mut sid = [0u8; 8];
            sid[..4].copy_from_slice(&t.to_be_bytes());
            sid[4..].copy_from_slice(&(i + 1).to_be_bytes());
            let mut parent = [0u8; 8];
            parent[..4].copy_from_slice(&t.to_be_bytes());
            parent[7] = 1;
            Span {
                trace_id: id.to_vec(),
                span_id: sid.to_vec(),
                parent_span_id: if i == 0 { Vec::new() } else { parent.to_vec() },
                name: format!("op{i}"),
                start_time_unix_nano: now - ms * 1_000_000,
                end_time_unix_nano: if i == 0 { now } else { now - ms * 500_000 },
                status: (error && i == spans - 1).then(|| {
                    opentelemetry_proto::tonic::trace::v1::Status {
                        code: 2,
                        message: "boom".into(),
                    }
                }),
                ..Default::default()
            }
        })
        .collect()
}

/// The spans of service `sampled`, as one request.
fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    otlp::traces_request("sampled", spans)
}

/// Trace `t`'s id: `t` up front, random-looking low bytes (splitmix64 of `t`), as real
/// trace ids are random where the samplers look.
fn trace_id(t: u32) -> [u8; 16] {
    let mut z = u64::from(t).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&t.to_be_bytes());
    id[8..].copy_from_slice(&z.to_be_bytes());
    id
}

fn trace_hex(t: u32) -> String {
    hex::encode(trace_id(t))
}

async fn spans_stored(
    q: &mut sieve::proto::query_service_client::QueryServiceClient<tonic::transport::Channel>,
    t: u32,
) -> usize {
    match q
        .get_trace(GetTraceRequest {
            trace_id: trace_hex(t),
        })
        .await
    {
        Ok(r) => sieve::otlp::spans(&r.into_inner().resource_spans).count(),
        Err(_) => 0,
    }
}

async fn tail_stats(query: &str) -> sieve::proto::TailSamplerStats {
    common::query_client(query)
        .await
        .get_sampling_stats(GetSamplingStatsRequest {})
        .await
        .expect("GetSamplingStats")
        .into_inner()
        .tail
        .expect("tail stats")
}

/// Every error trace and every trace over the latency threshold is kept whole; the rest are
/// dropped; spans arriving after the decision follow it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_policies_keep_error_and_slow_traces() {
    let gw = common::start(|c| apply(c, TAIL)).await;
    let mut client = TraceServiceClient::new(gw.otlp_channel().await);
    // 0..20 errors (fast), 20..40 slow (300 ms), 40..60 boring; each sent in two requests.
    for t in 0..60u32 {
        let spans = trace(t, 6, if (20..40).contains(&t) { 300 } else { 5 }, t < 20);
        let (a, b) = spans.split_at(3);
        client.export(request(b.to_vec())).await.expect("export");
        client.export(request(a.to_vec())).await.expect("export");
    }
    // Acknowledged but undecided: nothing stored yet.
    let mut q = gw.query_client().await;
    assert_eq!(spans_stored(&mut q, 0).await, 0);
    common::eventually(Duration::from_secs(20), "60 tail decisions", async || {
        let s = tail_stats(&gw.query).await;
        let done = s.pending_traces == 0 && s.traces_kept + s.traces_dropped == 60;
        if done { Ok(()) } else { Err(s) }
    })
    .await;
    for t in 0..60u32 {
        let want = if t < 40 { 6 } else { 0 };
        assert_eq!(spans_stored(&mut q, t).await, want, "trace {t}");
    }
    let s = tail_stats(&gw.query).await;
    assert_eq!(
        (s.traces_seen, s.traces_kept, s.traces_dropped),
        (60, 40, 20)
    );
    let kept: Vec<(String, u64)> = s
        .policies
        .iter()
        .map(|p| (p.name.clone(), p.kept))
        .collect();
    assert_eq!(kept, vec![("errors".into(), 20), ("slow".into(), 20)]);
    assert!(
        s.early_quiet > 0,
        "roots arrived and traces went quiet: {s:?}"
    );
    // Late spans follow the decision.
    let mut late_kept = trace(0, 8, 5, false);
    let mut late_dropped = trace(45, 8, 5, false);
    client
        .export(request(late_kept.split_off(7)))
        .await
        .expect("export");
    client
        .export(request(late_dropped.split_off(7)))
        .await
        .expect("export");
    assert_eq!(spans_stored(&mut q, 0).await, 7);
    assert_eq!(spans_stored(&mut q, 45).await, 0);
    let s = tail_stats(&gw.query).await;
    assert_eq!((s.late_spans_kept, s.late_spans_dropped), (1, 1));
    gw.stop().await;
}

/// kill -9 while every trace is pending; after the restart each is decided and every
/// acknowledged span is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_decisions_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = "processors:\n  tail_sampling:\n    decision_wait: 3s\n    quiet_period: 0s\n    policies:\n      - {name: all, type: always_sample}\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [tail_sampling]\n";
    let cfg = common::write_config(dir.path(), &dir.path().join("data"), yaml);
    let cfg_arg = cfg.to_str().expect("utf-8 path").to_string();
    let mut a = common::spawn_sieve(&["serve", "--config", &cfg_arg], dir.path());
    let mut client = TraceServiceClient::new(common::channel(&a.otlp).await);
    for t in 0..50u32 {
        client
            .export(request(trace(t, 20, 10, false)))
            .await
            .expect("export");
    }
    let s = tail_stats(&a.query).await;
    assert_eq!((s.pending_traces, s.pending_spans), (50, 1000));
    let status = a.signal_and_wait("KILL");
    assert!(!status.success());

    let a = common::spawn_sieve(&["serve", "--config", &cfg_arg], dir.path());
    let s = tail_stats(&a.query).await;
    assert_eq!(
        (s.pending_traces, s.pending_spans),
        (50, 1000),
        "the buffer survived"
    );
    let s = common::eventually(
        Duration::from_secs(30),
        "decisions after the restart",
        async || {
            let s = tail_stats(&a.query).await;
            if s.pending_traces == 0 { Ok(s) } else { Err(s) }
        },
    )
    .await;
    assert_eq!(s.traces_kept, 50);
    // A round counts its decisions before its one store write for all kept traces: wait
    // for that write.
    let mut q = common::query_client(&a.query).await;
    for t in 0..50u32 {
        let what = format!("trace {t}'s 20 spans stored");
        common::eventually(Duration::from_secs(10), &what, async || {
            let stored = spans_stored(&mut q, t).await;
            if stored == 20 { Ok(()) } else { Err(stored) }
        })
        .await;
    }
}

/// adaptive_sampler: a hot operation's probability falls towards target / rate, a rare one's
/// stays at 1, and a kept trace keeps all its spans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_probabilities_follow_the_traffic() {
    let yaml = "processors:\n  adaptive_sampler:\n    target_traces_per_second: 20\n    interval: 1s\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [adaptive_sampler]\n";
    let gw = common::start(|c| apply(c, yaml)).await;
    let mut client = TraceServiceClient::new(gw.otlp_channel().await);
    let start = std::time::Instant::now();
    let mut t = 0u32;
    // 2.5 s of traffic: 100 hot traces (3 spans each) and 1 cold trace every 50 ms or so.
    while start.elapsed() < std::time::Duration::from_millis(2500) {
        let mut spans = Vec::new();
        for _ in 0..100 {
            spans.extend(trace(t, 3, 5, false));
            t += 1;
        }
        let mut cold = trace(t, 3, 5, false);
        t += 1;
        for s in &mut cold {
            if s.parent_span_id.is_empty() {
                s.name = "cold".into();
            }
        }
        spans.extend(cold);
        client.export(request(spans)).await.expect("export");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let stats = gw
        .query_client()
        .await
        .get_sampling_stats(GetSamplingStatsRequest {})
        .await
        .expect("stats")
        .into_inner();
    let a = &stats.adaptive[0];
    let p = |op: &str| {
        a.operations
            .iter()
            .find(|o| o.service == "sampled" && o.operation == op)
            .unwrap_or_else(|| panic!("{op} missing from {a:?}"))
    };
    let hot = p("op0");
    assert!(hot.observed_traces_per_second > 0.0, "{a:?}");
    assert!(
        hot.probability < 0.5,
        "hot operation not sampled down: {a:?}"
    );
    assert_eq!(p("cold").probability, 1.0, "{a:?}");
    // Kept traces are whole: every stored trace has its 3 spans.
    let mut q = gw.query_client().await;
    let mut stored = 0;
    for i in (0..t).step_by(7) {
        match spans_stored(&mut q, i).await {
            0 => {}
            n => {
                assert_eq!(n, 3, "trace {i} kept in part");
                stored += 1;
            }
        }
    }
    assert!(stored > 0);
    gw.stop().await;
}

/// Past `num_traces` the oldest pending traces are decided early (counted), and
/// `record_policy` marks kept spans with the deciding policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_buffer_bound_decides_the_oldest_early() {
    let yaml = "processors:\n  tail_sampling:\n    decision_wait: 1m\n    quiet_period: 0s\n    num_traces: 5\n    decision_cache: 3\n    record_policy: true\n    policies:\n      - {name: all, type: always_sample}\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [tail_sampling]\n";
    let gw = common::start(|c| apply(c, yaml)).await;
    let mut client = TraceServiceClient::new(gw.otlp_channel().await);
    for t in 0..20u32 {
        client
            .export(request(trace(t, 2, 5, false)))
            .await
            .expect("export");
    }
    let s = common::eventually(Duration::from_secs(20), "15 early decisions", async || {
        let s = tail_stats(&gw.query).await;
        if s.early_bound >= 15 { Ok(s) } else { Err(s) }
    })
    .await;
    assert!(s.pending_traces <= 5, "{s:?}");
    // The oldest went first, whole, marked with the policy.
    let t = gw
        .query_client()
        .await
        .get_trace(GetTraceRequest {
            trace_id: trace_hex(0),
        })
        .await
        .expect("trace 0 kept early")
        .into_inner();
    let spans: Vec<_> = sieve::otlp::spans(&t.resource_spans)
        .map(|(_, s)| s.clone())
        .collect();
    assert_eq!(spans.len(), 2);
    for s in &spans {
        assert_eq!(
            sieve::otlp::string_attr(&s.attributes, "sampling.policy"),
            Some("all")
        );
    }
    // The cache (3 decisions) has forgotten trace 0: a late span of it is counted as such.
    let mut late = trace(0, 3, 5, false);
    client
        .export(request(late.split_off(2)))
        .await
        .expect("export");
    let s = tail_stats(&gw.query).await;
    assert!(s.cache_evictions >= 12, "{s:?}");
    assert_eq!(s.late_spans_forgotten, 1, "{s:?}");
    gw.stop().await;
}

//! Seed inputs for every fuzz target, built from sieve's own encoders (so a seed is what
//! sieve writes or what an SDK sends, not a copy of anyone's data). `cargo run --example
//! fuzz_seeds` writes them under `fuzz/corpus/<target>/`; `tests/fuzz_corpus.rs` replays them
//! beside the committed corpus.

use std::io::Write as _;

use prost::Message;
use rand::SeedableRng;

/// (target, input) pairs.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let now = 1_780_000_000_000_000_000u64;
    let traces = crate::synth::sdk_trace_request(&mut rng, 0, 12, now);
    let logs = crate::synth::log_request(&mut rng, 6, now);
    let traces_pb = traces.encode_to_vec();
    let logs_pb = logs.encode_to_vec();
    let tagged = |tag: u8, body: &[u8]| [&[tag][..], body].concat();

    out.push(("otlp_protobuf", tagged(0, &traces_pb)));
    out.push(("otlp_protobuf", tagged(1, &logs_pb)));
    out.push((
        "otlp_protobuf",
        tagged(2, &metrics_request().encode_to_vec()),
    ));
    out.push(("otlp_json", tagged(0, &json(&traces))));
    out.push(("otlp_json", tagged(1, &json(&logs))));
    out.push(("otlp_json", tagged(2, &json(&metrics_request()))));

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = gz.write_all(&traces_pb);
    out.push((
        "compressed_body",
        tagged(0, &gz.finish().unwrap_or_default()),
    ));
    let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = zl.write_all(&traces_pb);
    out.push((
        "compressed_body",
        tagged(1, &zl.finish().unwrap_or_default()),
    ));
    out.push((
        "compressed_body",
        tagged(2, &zstd::bulk::compress(&traces_pb, 1).unwrap_or_default()),
    ));

    for ts in [
        "ot=th:8",
        "ot=th:c;rv:8a2f9c1d3e4b5a",
        "vendor=abc,ot=th:0;x:1,other=v",
        "ot=p:8;r:62",
        "ot=",
    ] {
        out.push(("tracestate", ts.as_bytes().to_vec()));
    }

    let data = opentelemetry_proto::tonic::trace::v1::TracesData {
        resource_spans: traces.resource_spans.clone(),
    };
    if let Ok(one) = serde_json::to_vec(&data) {
        out.push(("analyze_file", one.clone()));
        out.push(("analyze_file", [&one[..], b"\n", &one[..], b"\n"].concat()));
    }

    out.push((
        "log_lines",
        b"user 42 logged in from 10.0.0.7\nuser 43 logged in from 10.0.0.9\n\
          GET /api/items/17 took 12ms\nGET /api/items/18 took 9ms\n\
          job 7f3a state=RUNNING queue=default\njob 9c1e state=PENDING queue=batch\n\
          Started nginx.service - Nginx daemon.\nStarted redis.service - Redis daemon.\n\
          Selected features for model m1: a, b, c\nSelected features for model m2: d\n"
            .to_vec(),
    ));

    out.push((
        "config_yaml",
        include_str!("../../config/sieve.yaml").as_bytes().to_vec(),
    ));
    out.push((
        "config_yaml",
        b"receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:${env:PORT}\n\
          extensions:\n  bearertokenauth:\n    token: ${env:TOKEN}\n\
          service:\n  extensions: [bearertokenauth]\n  pipelines:\n    traces:\n      receivers: [otlp]\n"
            .to_vec(),
    ));

    out.push((
        "query_args",
        b"15m\n1h30m\n2026-12-04T10:00:00Z\n2026-12-04T10:00:00.5+02:00\nhttp.method=GET\n\
          ERROR\nwarn\n1.5x\n0af7651916cd43dd8448eb211c80319c\n50GiB\n1.5 GB\n\
          service=~\"web.*\"\nseverity!=info\nerror_rate\n"
            .to_vec(),
    ));

    let ptr = crate::store::vlog::Pointer {
        offset: 4096,
        len: 321,
    };
    out.push(("store_values", tagged(0, &ptr.encode())));
    let postings: Vec<crate::store::keys::Posting> = (1..4u8)
        .map(|i| crate::store::keys::Posting {
            trace_id: [i; 16],
            min_start: now + u64::from(i),
            max_start: now + 10 * u64::from(i),
            min_duration: 1000,
            max_duration: 5000 * u64::from(i),
        })
        .collect();
    out.push((
        "store_values",
        tagged(1, &crate::store::keys::Posting::encode_list(&postings)),
    ));
    let prefix = crate::store::keys::prefix(crate::store::keys::SERVICE, &[b"web"]);
    out.push((
        "store_values",
        tagged(2, &crate::store::keys::span_index_key(&prefix, now, 9)),
    ));
    let mut cell = crate::series::Cell {
        count: 3,
        errors: 1,
        ..Default::default()
    };
    cell.hist.record(1_500_000);
    out.push(("store_values", tagged(3, &cell.encode())));
    out.push((
        "store_values",
        tagged(
            4,
            &crate::series::key(
                crate::series::Family::Red,
                0,
                now,
                &["web", "GET /", "2", "0"],
            ),
        ),
    ));
    let mut entry = vec![0u8; 8];
    entry.extend_from_slice(&[0u8; 37]);
    out.push(("store_values", tagged(5, &entry)));
    let record = crate::stages::analysis::logs::ClusterRecord {
        id: 7,
        service: "web".into(),
        template: vec!["user".into(), "<*>".into(), "logged".into(), "in".into()],
        count: 2,
        first_seen: now,
        last_seen: now + 1,
        samples: vec!["user 42 logged in".into()],
        ..Default::default()
    };
    out.push(("store_values", tagged(8, &record.encode_to_vec())));

    out.extend(store_file_seeds(&traces_pb));

    out.push(("otlp_built", (0u8..=255).collect()));
    out.push(("otlp_built", traces_pb.iter().rev().copied().collect()));
    out
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn metrics_request()
-> opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest {
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
    };
    opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "cpu".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            time_unix_nano: 1,
                            value: Some(number_data_point::Value::AsDouble(0.5)),
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A value-log file, a compressed segment and an index run, written by the store's own
/// writers in a scratch directory and read back as bytes.
fn store_file_seeds(body: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let Some(dir) = super::ScratchDir::new() else {
        return out;
    };
    let end = 3_600_000_000_000u64;
    let stem = crate::store::vlog::ValueLog::stem(crate::otlp::Signal::Traces, 0, end);
    if let Ok(log) = crate::store::vlog::ValueLog::open(dir.path().to_path_buf()) {
        let _ = log.append(crate::otlp::Signal::Traces, 0, end, &[body, b"second"]);
        if let Ok(bytes) = std::fs::read(dir.path().join(format!("{stem}.vlog"))) {
            out.push(("store_files", [&[0u8][..], &bytes].concat()));
            // The same records as a compressed segment.
            let zpath = dir.path().join("seed.zseg");
            if let Ok(mut w) = crate::store::zseg::Writer::create(&zpath, 0) {
                let _ = w.push(&bytes);
                if w.finish().is_ok()
                    && let Ok(z) = std::fs::read(&zpath)
                {
                    let to = (bytes.len() as u64).to_be_bytes();
                    out.push(("store_files", [&[1u8][..], &to, &z].concat()));
                }
            }
        }
    }
    let runs = dir.path().join("runs");
    if std::fs::create_dir_all(&runs).is_ok() {
        let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..50u8)
            .map(|i| (vec![b'k', i, i], vec![i; usize::from(i % 7)]))
            .collect();
        let iter = entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice()));
        if let Ok(run) = crate::store::run::Run::write(&runs, 99, iter, |k| k.get(..2))
            && let Ok(bytes) = std::fs::read(run.path())
        {
            out.push(("store_files", [&[2u8][..], &bytes].concat()));
        }
    }
    out
}

//! Entry points for the fuzz targets (`fuzz/`) and for the corpus test that replays their
//! corpora in the normal suite (`tests/fuzz_corpus.rs`): each takes bytes from outside and
//! runs them through one decoder the way sieve does. A panic, an abort or a broken invariant
//! (checked with `assert!` here) is the bug; an `Err` is the decoder doing its job.
//!
//! The targets, by where the bytes come from:
//! - the network: [`otlp_protobuf`] (admission estimate, decode, validation, the exporter's
//!   wire walk), [`otlp_built`] (the same on requests built from choices, structure-aware),
//!   [`otlp_json`], [`compressed_body`] (gzip, deflate, zstd),
//!   [`tracestate`] (the `ot` sub-key of the consistent sampler);
//! - files and arguments a user hands over: [`analyze_file`] (`sieve analyze`'s OTLP JSON),
//!   [`config_yaml`] (with `${env:…}` expansion), [`query_args`] (CLI and query arguments);
//! - log bodies: [`log_lines`] (masker and clusterer);
//! - the data directory: [`store_values`] (value-log pointers, posting lists, index keys,
//!   series keys and cells, queue entries, bloom filters, incident and cluster records) and
//!   [`store_files`] (a value-log file, a compressed segment or an index run, opened and read).

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use crate::config::Limits;

mod seeds;
use crate::otlp::Signal;
pub use seeds::seeds;

/// The signal a fuzz input's first byte selects.
fn signal(b: u8) -> Signal {
    Signal::ALL[usize::from(b) % 3]
}

/// An OTLP protobuf export request (the first byte picks the signal) through what a receiver
/// does with it: the decoded-size estimate, the decode, item-by-item validation and the
/// exporters' wire walk. Invariants: validation leaves only valid items; the wire walk counts
/// what prost decoded (or refuses bytes prost accepted only by skipping them).
pub fn otlp_protobuf(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let kind = signal(first);
    let _ = crate::otlp::size::decoded_size(kind, body);
    let walked = crate::stages::export::wire::count_items(body);
    let limits = Limits::default();
    match kind {
        Signal::Traces => {
            let Ok(mut req) = ExportTraceServiceRequest::decode(body) else {
                return;
            };
            let items = crate::otlp::spans(&req.resource_spans).count() as u64;
            if let Ok(n) = walked {
                assert_eq!(n, items, "wire walk and prost disagree on the span count");
            }
            let rej = crate::receiver::validate::validate_spans(&mut req.resource_spans, &limits);
            let left = crate::otlp::spans(&req.resource_spans).count() as u64;
            assert_eq!(left + rej.count, items, "validation lost or invented spans");
            let again = crate::receiver::validate::validate_spans(&mut req.resource_spans, &limits);
            assert_eq!(again.count, 0, "validation is not idempotent");
            let bytes = req.encode_to_vec();
            assert_eq!(
                crate::stages::export::wire::count_items(&bytes).ok(),
                Some(left),
                "re-encoded request"
            );
        }
        Signal::Logs => {
            let Ok(mut req) = ExportLogsServiceRequest::decode(body) else {
                return;
            };
            let items: u64 = req
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .map(|s| s.log_records.len() as u64)
                .sum();
            if let Ok(n) = walked {
                assert_eq!(n, items, "wire walk and prost disagree on the record count");
            }
            crate::receiver::validate::validate_logs(&mut req.resource_logs, &limits);
            let again = crate::receiver::validate::validate_logs(&mut req.resource_logs, &limits);
            assert_eq!(again.count, 0, "validation is not idempotent");
        }
        Signal::Metrics => {
            let Ok(req) = ExportMetricsServiceRequest::decode(body) else {
                return;
            };
            let _ = req.encode_to_vec();
        }
    }
}

/// Structure-aware traces: the bytes are read as choices (how many resources, spans,
/// attributes; which ids, times, kinds, statuses, parents; attribute values of every
/// `AnyValue` type, nested), so that inputs get past the decoder into validation, the
/// exporters' walk and the critical path, which random protobuf rarely reaches. The request
/// is encoded and run through [`otlp_protobuf`]; its spans are also checked as `sieve analyze`
/// checks them. Invariant: a critical path's sections lie inside its root span.
pub fn otlp_built(data: &[u8]) {
    use opentelemetry_proto::tonic::trace::v1::TracesData;
    let mut c = Choices(data);
    let req = built_request(&mut c);
    let mut body = vec![0u8];
    req.encode(&mut body).ok();
    otlp_protobuf(&body);
    let mut rs = req.resource_spans;
    crate::receiver::validate::validate_spans(&mut rs, &Limits::default());
    let data = [TracesData { resource_spans: rs }];
    for tolerance in [0.0, 0.1] {
        let _ = crate::cli::critical_paths(&data, tolerance);
    }
}

/// Reads choices off fuzz bytes; past the end every choice is 0.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn upto(&mut self, n: u8) -> usize {
        usize::from(self.byte() % n.max(1))
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0u64, |v, _| v << 8 | u64::from(self.byte()))
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }

    /// One of a few names, or a short string of raw bytes.
    fn name(&mut self) -> String {
        const NAMES: [&str; 6] = ["web", "db", "GET /x", "service.name", "", "\u{1F600}"];
        match self.byte() {
            b @ 0..200 => NAMES[usize::from(b) % NAMES.len()].to_string(),
            b => String::from_utf8_lossy(&self.bytes(usize::from(b - 200))).into_owned(),
        }
    }

    /// An id of 16 (or 8) bytes drawn from a few values, so that spans share traces and
    /// parents; sometimes the wrong length, sometimes zero.
    fn id(&mut self, len: usize) -> Vec<u8> {
        match self.byte() {
            0 => Vec::new(),
            1 => vec![0; len],
            2 => self.bytes(len / 2),
            b => {
                let mut id = vec![0; len];
                id[len - 1] = b % 8 + 1;
                id
            }
        }
    }

    fn value(&mut self, depth: u32) -> opentelemetry_proto::tonic::common::v1::AnyValue {
        use opentelemetry_proto::tonic::common::v1::{
            AnyValue, ArrayValue, KeyValueList, any_value::Value,
        };
        let v = match self.upto(if depth > 3 { 5 } else { 7 }) {
            0 => Value::StringValue(self.name()),
            1 => Value::IntValue(self.u64() as i64),
            2 => Value::DoubleValue(f64::from_bits(self.u64())),
            3 => Value::BoolValue(self.byte() & 1 == 1),
            4 => {
                let n = self.upto(40);
                Value::BytesValue(self.bytes(n))
            }
            5 => Value::ArrayValue(ArrayValue {
                values: (0..self.upto(4)).map(|_| self.value(depth + 1)).collect(),
            }),
            _ => Value::KvlistValue(KeyValueList {
                values: self.attributes(depth + 1),
            }),
        };
        AnyValue { value: Some(v) }
    }

    fn attributes(&mut self, depth: u32) -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
        (0..self.upto(6))
            .map(|_| opentelemetry_proto::tonic::common::v1::KeyValue {
                key: self.name(),
                value: (self.byte() != 0).then(|| self.value(depth)),
                ..Default::default()
            })
            .collect()
    }
}

fn built_request(c: &mut Choices) -> ExportTraceServiceRequest {
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
    let base = 1_700_000_000_000_000_000u64;
    let resource_spans = (0..c.upto(3) + 1)
        .map(|_| ResourceSpans {
            resource: Some(Resource {
                attributes: c.attributes(0),
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..c.upto(24))
                    .map(|_| {
                        let start = base.saturating_add(c.u64() >> c.upto(64));
                        let end = match c.byte() {
                            0 => start.saturating_sub(1),
                            b => start.saturating_add(u64::from(b) << c.upto(40)),
                        };
                        Span {
                            trace_id: c.id(16),
                            span_id: c.id(8),
                            parent_span_id: if c.byte() & 1 == 0 {
                                Vec::new()
                            } else {
                                c.id(8)
                            },
                            name: c.name(),
                            kind: i32::from(c.byte() % 7),
                            start_time_unix_nano: start,
                            end_time_unix_nano: end,
                            attributes: c.attributes(0),
                            events: (0..c.upto(3))
                                .map(|_| span::Event {
                                    time_unix_nano: start,
                                    name: c.name(),
                                    attributes: c.attributes(1),
                                    ..Default::default()
                                })
                                .collect(),
                            links: (0..c.upto(2))
                                .map(|_| span::Link {
                                    trace_id: c.id(16),
                                    span_id: c.id(8),
                                    ..Default::default()
                                })
                                .collect(),
                            status: (c.byte() & 1 == 1).then(|| Status {
                                code: i32::from(c.byte() % 4),
                                message: c.name(),
                            }),
                            ..Default::default()
                        }
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// An OTLP/HTTP JSON body (the first byte picks the signal): the admission bound, then the
/// decode with the OTLP JSON mapping. Invariant: the bound covers the body itself.
pub fn otlp_json(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    assert!(crate::otlp::size::json_upper_bound(body) >= body.len());
    match signal(first) {
        Signal::Traces => {
            if let Ok(req) = serde_json::from_slice::<ExportTraceServiceRequest>(body) {
                let mut rs = req.resource_spans;
                crate::receiver::validate::validate_spans(&mut rs, &Limits::default());
            }
        }
        Signal::Logs => {
            if let Ok(req) = serde_json::from_slice::<ExportLogsServiceRequest>(body) {
                let mut rl = req.resource_logs;
                crate::receiver::validate::validate_logs(&mut rl, &Limits::default());
            }
        }
        Signal::Metrics => {
            let _ = serde_json::from_slice::<ExportMetricsServiceRequest>(body);
        }
    }
}

/// A compressed OTLP/HTTP body (the first byte picks gzip, deflate, zstd or identity),
/// decompressed within a 1 MiB limit, then decoded as traces. Invariant: nothing over the
/// limit comes out.
pub fn compressed_body(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    const MAX: usize = 1 << 20;
    let encoding = ["gzip", "deflate", "zstd", "identity"][usize::from(first) % 4];
    let raw = bytes::Bytes::copy_from_slice(body);
    if let Ok(out) = crate::receiver::http::decompress(raw, encoding, MAX) {
        assert!(out.len() <= MAX || encoding == "identity");
        let _ = ExportTraceServiceRequest::decode(out);
    }
}

/// A W3C `tracestate` value: the `ot` sub-key parsed, its threshold decoded, and written
/// back. Invariant: what is written back parses, with the same threshold.
pub fn tracestate(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::sampling::head::Threshold::decode(text);
    let Ok(ot) = crate::sampling::head::parse_ot(text) else {
        return;
    };
    let written = crate::sampling::head::write_ot(text, &ot);
    let back = crate::sampling::head::parse_ot(&written);
    assert!(back.is_ok(), "{text:?} -> {written:?} does not parse");
}

/// The OTLP JSON file `sieve analyze` reads, then the critical paths of what it holds.
pub fn analyze_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(traces) = crate::cli::parse_traces_json(text) {
        let _ = crate::cli::critical_paths(&traces, 0.0);
        let _ = crate::cli::critical_paths(&traces, 0.05);
    }
}

/// Log lines (one per line) masked and clustered. Invariants: every line lands in a live
/// cluster whose template matches the line's tokens.
pub fn log_lines(data: &[u8]) {
    use crate::log_templates::cluster::{Clusterer, Params};
    let text = String::from_utf8_lossy(data);
    let params = Params {
        max_clusters: 64,
        ..Params::default()
    };
    let mut c = Clusterer::new(params, crate::log_templates::mask::Masker::default());
    for line in text.lines().take(256) {
        let id = c.add(line);
        let id = c.resolve(id);
        let tokens = c.mask(line);
        assert!(
            c.is_overflow(id) || c.matches(id, &tokens),
            "{line:?} is not matched by its cluster"
        );
    }
}

/// The YAML config with `${env:…}` expansion from a fixed environment.
pub fn config_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |name: &str| match name {
        "PORT" => Some("4317".to_string()),
        "TOKEN" => Some("s3cret".to_string()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    let _ = crate::config::Config::from_yaml_with_env(text, &env);
}

/// Arguments of the CLI and the query API: each line through every parser.
pub fn query_args(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.lines().take(64) {
        let _ = crate::cli::parse_duration(line);
        let _ = crate::cli::parse_time(line);
        let _ = crate::cli::parse_attr(line);
        let _ = crate::cli::parse_severity(line);
        let _ = crate::cli::analysis::parse_speedup(line);
        let _ = crate::otlp::parse_trace_id(line);
        let _ = crate::otlp::parse_severity(line);
        let _ = crate::config::byte_size::parse(line);
        let _ = crate::config::alerting::parse_rfc3339(line);
        let _ = crate::alerts::notify::Matcher::parse(line);
        let _ = crate::alerts::signal::Signal::parse(line);
    }
}

/// Values as the store reads them back from sled and from its files (the first byte picks
/// the decoder): none may panic on damaged bytes.
pub fn store_values(data: &[u8]) {
    let Some((&first, v)) = data.split_first() else {
        return;
    };
    match first % 9 {
        0 => {
            if let Some(p) = crate::store::vlog::Pointer::decode(v) {
                assert_eq!(crate::store::vlog::Pointer::decode(&p.encode()), Some(p));
            }
        }
        1 => {
            let _ = crate::store::keys::Posting::decode_list(v).count();
        }
        2 => {
            let _ = crate::store::keys::parse_span_index_key(v);
        }
        3 => {
            if let Ok(cell) = crate::series::Cell::decode(v) {
                let _ = crate::series::Cell::decode(&cell.encode());
            }
        }
        4 => {
            let _ = crate::series::parse_key(v);
        }
        5 => {
            let (key, value) = v.split_at(v.len().min(8));
            let _ = crate::stages::export::queue::EntryMeta::decode(key, value);
        }
        6 => {
            if let Some(b) = crate::store::run::Bloom::decode(v) {
                let _ = b.may_contain(b"a trace id");
            }
        }
        7 => {
            let _ = crate::stages::alerting::incidents::Incident::decode(v);
        }
        _ => {
            let _ = crate::stages::analysis::logs::ClusterRecord::decode(v);
        }
    }
}

/// A damaged file of the data directory (the first byte picks a value-log file, a
/// compressed segment or an index run), opened and read in full in a fresh directory. An
/// error is fine; a panic is not.
pub fn store_files(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let Some(dir) = ScratchDir::new() else {
        return;
    };
    let end = 3_600_000_000_000u64;
    let stem = crate::store::vlog::ValueLog::stem(Signal::Traces, 0, end);
    match first % 3 {
        0 => {
            if std::fs::write(dir.path().join(format!("{stem}.vlog")), body).is_err() {
                return;
            }
            if let Ok(log) = crate::store::vlog::ValueLog::open(dir.path().to_path_buf()) {
                let _ = log.scan(Signal::Traces, 0, end, 0, |_, _, _| Ok(()));
            }
        }
        1 => {
            // The range the segment covers, as its file name says, then the file.
            let (to, body) = body.split_at(body.len().min(8));
            let to = to.iter().fold(0u64, |v, b| v << 8 | u64::from(*b));
            let name = crate::store::zseg::file_name(&stem, 0, to);
            if std::fs::write(dir.path().join(name), body).is_err() {
                return;
            }
            if let Ok(log) = crate::store::vlog::ValueLog::open(dir.path().to_path_buf()) {
                let _ = log.scan(Signal::Traces, 0, end, 0, |_, _, _| Ok(()));
            }
        }
        _ => {
            let path = dir.path().join(crate::store::run::file_name(0));
            if std::fs::write(&path, body).is_err() {
                return;
            }
            if let Ok(run) = crate::store::run::Run::open(&path) {
                let run = std::sync::Arc::new(run);
                for entry in run.range_rev(&[], &[0xff; 64]).take(10_000) {
                    if entry.is_err() {
                        break;
                    }
                }
            }
        }
    }
}

/// A fresh directory under the system's temporary directory, removed on drop (the library
/// has no `tempfile` dependency outside tests).
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn new() -> Option<ScratchDir> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("sieve-fuzz-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).ok()?;
        Some(ScratchDir(path))
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

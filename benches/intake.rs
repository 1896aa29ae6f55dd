//! The write path of one export request of realistic spans (`sieve::synth`), at 100 and 512
//! spans (real SDK batches are at most 512), stage by stage, against bare protobuf decoding of
//! the same bytes:
//!
//! - `decode`: prost decode only (the baseline the write path is measured against);
//! - `+validate`: plus per-span validation;
//! - `+analyse`: plus the analysis stage's intake of every span (RED cells, service-graph
//!   pairing, trace assembly; critical paths run when traces complete, in the same thread
//!   when the stage falls behind);
//! - `+prepare`: plus the index (posting lists, catalog) over the received bytes;
//! - `+apply`: plus the value-log append and the memtable inserts (runs are written by a
//!   background thread when the memtable fills);
//! - `+flush`: plus the fsync of a durable acknowledgement (one request per flush, so without
//!   the grouping that concurrent requests get).
//!
//! Every iteration gives the request fresh trace ids, as real traffic has.
//!
//! `cargo bench --bench intake`

use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use sieve::config::{Analysis, Limits, Storage};
use sieve::receiver::validate::validate_spans;
use sieve::store::Store;
use sieve::store::keys::StateTree;

/// The allocator of the `sieve` binary, so the numbers are the gateway's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

static FRESH: AtomicU64 = AtomicU64::new(1);

/// Decodes the request and gives its traces new ids (the first 8 bytes of each id).
fn decode_fresh(bytes: &[u8]) -> ExportTraceServiceRequest {
    let mut req = ExportTraceServiceRequest::decode(bytes).expect("decode");
    let n = FRESH.fetch_add(1, Ordering::Relaxed).to_be_bytes();
    for rs in &mut req.resource_spans {
        for ss in &mut rs.scope_spans {
            for s in &mut ss.spans {
                if s.trace_id.len() == 16 {
                    s.trace_id[..8].copy_from_slice(&n);
                }
            }
        }
    }
    req
}

fn bench(c: &mut Criterion) {
    let mut rng = rand::rng();
    let limits = Limits::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&Storage {
        path: dir.path().join("data"),
        ..Storage::default()
    })
    .expect("store");
    let analyzer = sieve::stages::analysis::Analyzer::open(
        &Analysis::default(),
        store.state_tree(StateTree::Analysis).expect("tree"),
        store.state_tree(StateTree::LogClusters).expect("tree"),
    )
    .expect("analyzer");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");

    for spans in [100usize, 512] {
        let bytes =
            sieve::synth::trace_request(&mut rng, spans, sieve::store::now_ns()).encode_to_vec();
        let mut g = c.benchmark_group(format!("intake_{spans}_spans"));
        g.throughput(Throughput::Elements(spans as u64));
        g.bench_function("decoded-size estimate (admission)", |b| {
            b.iter(|| {
                sieve::otlp::size::decoded_size(sieve::otlp::Signal::Traces, &bytes)
                    .expect("estimate")
            })
        });
        g.bench_function("decode", |b| {
            b.iter(|| ExportTraceServiceRequest::decode(bytes.as_slice()).expect("decode"))
        });
        g.bench_function("+validate", |b| {
            b.iter(|| {
                let mut req = decode_fresh(&bytes);
                validate_spans(&mut req.resource_spans, &limits)
            })
        });
        // Each stage runs every stage before it, then its own.
        let analysed = || {
            let mut req = decode_fresh(&bytes);
            validate_spans(&mut req.resource_spans, &limits);
            analyzer.observe(&req.resource_spans);
            req
        };
        let prepared = || {
            store
                .prepare_spans_received(analysed().resource_spans, Some(&bytes))
                .expect("prepare")
        };
        let applied = || store.apply(prepared()).expect("apply");
        g.bench_function("+analyse", |b| b.iter(analysed));
        g.bench_function("+prepare", |b| b.iter(prepared));
        g.bench_function("+apply", |b| b.iter(applied));
        g.sample_size(20);
        g.bench_function("+flush", |b| {
            b.iter(|| {
                applied();
                runtime.block_on(store.flush()).expect("flush")
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

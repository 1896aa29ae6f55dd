//! The write path of one export request of 500 realistic spans (`sieve::synth`), stage by
//! stage, against bare protobuf decoding of the same bytes:
//!
//! - `decode`: prost decode only (the baseline the write path is measured against);
//! - `decode+validate`: plus per-span validation;
//! - `decode+validate+prepare`: plus grouping into trace chunks, encoding them, postings;
//! - `decode+validate+prepare+apply`: plus the value-log append and the sled batch;
//! - `...+flush`: plus the fsyncs of a durable acknowledgement (one request per flush, so
//!   without the grouping that concurrent requests get).
//!
//! `cargo bench --bench intake`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use sieve::config::{Limits, Storage};
use sieve::receiver::validate::validate_spans;
use sieve::store::Store;

const SPANS: usize = 500;

/// The allocator of the `sieve` binary, so the numbers are the gateway's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let mut rng = rand::rng();
    let bytes =
        sieve::synth::trace_request(&mut rng, SPANS, sieve::store::now_ns()).encode_to_vec();
    let limits = Limits::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&Storage {
        path: dir.path().join("data"),
        ..Storage::default()
    })
    .expect("store");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");

    let mut g = c.benchmark_group("intake_500_spans");
    g.throughput(Throughput::Elements(SPANS as u64));
    g.bench_function("decode", |b| {
        b.iter(|| ExportTraceServiceRequest::decode(bytes.as_slice()).expect("decode"))
    });
    g.bench_function("decode+validate", |b| {
        b.iter(|| {
            let mut req = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("decode");
            validate_spans(&mut req.resource_spans, &limits)
        })
    });
    g.bench_function("decode+validate+prepare", |b| {
        b.iter_batched(
            || (),
            |_| {
                let mut req = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("decode");
                validate_spans(&mut req.resource_spans, &limits);
                store.prepare_spans(req.resource_spans).expect("prepare")
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("decode+validate+prepare+apply", |b| {
        b.iter(|| {
            let mut req = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("decode");
            validate_spans(&mut req.resource_spans, &limits);
            let w = store.prepare_spans(req.resource_spans).expect("prepare");
            store.apply(w).expect("apply")
        })
    });
    g.sample_size(20);
    g.bench_function("decode+validate+prepare+apply+flush", |b| {
        b.iter(|| {
            let mut req = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("decode");
            validate_spans(&mut req.resource_spans, &limits);
            let w = store.prepare_spans(req.resource_spans).expect("prepare");
            store.apply(w).expect("apply");
            runtime.block_on(store.flush()).expect("flush")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

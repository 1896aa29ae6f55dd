//! The analysis stage's cost per trace and its memory per tracked operation.
//!
//! - `analysis/trace_11_spans`: one demo-shaped trace (11 spans, 5 services, 4 client/server
//!   pairs) through [`Analyzer::observe`] and [`Analyzer::tick`]: RED cells, service-graph
//!   pairing, assembly, critical path and the bottleneck fold: the whole per-trace cost.
//! - `analysis/fold_50_spans`: the bottleneck fold alone of a 50-span trace.
//! - Before the benchmarks, the live heap held for 10,000 distinct operations (one trace
//!   each) is measured with a counting allocator and printed, before and after the
//!   checkpoint moves the cells to sled, with the logical bytes they take there.
//!
//! `cargo bench --bench analysis`

use std::sync::atomic::Ordering;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use sieve::config::Analysis;
use sieve::otlp::string_kv;
use sieve::stages::analysis::Analyzer;
use sieve::traces::bottleneck::fold;
use sieve::traces::critical_path::{Kind, SpanInput, critical_path};

#[path = "support/counting.rs"]
mod counting;
use counting::LIVE;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

const MS: u64 = 1_000_000;
const T0: u64 = 1_795_000_000_000_000_000;

fn rs(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![string_kv("service.name", service)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn span(t: u64, id: u8, parent: Option<u8>, name: &str, kind: i32, start: u64, end: u64) -> Span {
    let mut trace_id = vec![0u8; 16];
    trace_id[..8].copy_from_slice(&t.to_be_bytes());
    Span {
        trace_id,
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: name.into(),
        kind,
        start_time_unix_nano: T0 + start * MS,
        end_time_unix_nano: T0 + end * MS,
        ..Default::default()
    }
}

/// The demo's shape: frontend → auth, then catalog (db, → inventory) ∥ pricing.
fn demo_trace(t: u64) -> Vec<ResourceSpans> {
    vec![
        rs(
            "frontend",
            vec![
                span(t, 1, None, "GET /product/{id}", 2, 0, 40),
                span(t, 2, Some(1), "POST /verify", 3, 0, 4),
                span(t, 3, Some(1), "GET /item", 3, 4, 25),
                span(t, 4, Some(1), "GET /price", 3, 4, 13),
            ],
        ),
        rs("auth", vec![span(t, 5, Some(2), "POST /verify", 2, 0, 4)]),
        rs(
            "catalog",
            vec![
                span(t, 6, Some(3), "GET /item", 2, 4, 25),
                span(t, 7, Some(6), "SELECT products", 3, 4, 17),
                span(t, 8, Some(6), "GET /stock", 3, 17, 24),
            ],
        ),
        rs(
            "inventory",
            vec![span(t, 9, Some(8), "GET /stock", 2, 17, 24)],
        ),
        rs(
            "pricing",
            vec![
                span(t, 10, Some(4), "GET /price", 2, 4, 13),
                span(t, 11, Some(10), "compute discount", 1, 5, 12),
            ],
        ),
    ]
}

fn analyzer(dir: &std::path::Path) -> (sled::Db, std::sync::Arc<Analyzer>) {
    let db = sled::open(dir).expect("sled");
    let tree = |t: sieve::store::keys::StateTree| db.open_tree(t.name()).expect("tree");
    let a = Analyzer::open(
        &Analysis::default(),
        tree(sieve::store::keys::StateTree::Analysis),
        tree(sieve::store::keys::StateTree::LogClusters),
    )
    .expect("analyzer");
    (db, a)
}

fn memory_per_10k_operations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_db, a) = analyzer(dir.path());
    let reqs: Vec<Vec<ResourceSpans>> = (0..10_000u64)
        .map(|i| {
            vec![rs(
                &format!("svc{}", i % 50),
                vec![span(i + 1, 1, None, &format!("GET /op/{i}"), 2, 0, 10)],
            )]
        })
        .collect();
    let before = LIVE.load(Ordering::Relaxed);
    for r in &reqs {
        a.observe(r);
    }
    a.tick(true);
    let pending = LIVE.load(Ordering::Relaxed) - before;
    let s = a.snapshot();
    a.checkpoint().expect("checkpoint");
    // What the analyzer itself still holds (sled's page cache grew too; it stays with the db).
    let with_analyzer = LIVE.load(Ordering::Relaxed);
    drop(a);
    let kept = with_analyzer - LIVE.load(Ordering::Relaxed);
    println!(
        "memory for 10,000 operations ({} series, {} operations, {} call paths): {:.1} MiB live with their cells in memory, {:.1} MiB kept by the analyzer after the checkpoint (key sets, names, decided-trace cache)",
        s.series,
        s.operations,
        s.call_paths,
        pending as f64 / 1048576.0,
        kept as f64 / 1048576.0
    );
}

fn bench(c: &mut Criterion) {
    memory_per_10k_operations();
    let mut g = c.benchmark_group("analysis");
    let dir = tempfile::tempdir().expect("tempdir");
    let (_db, a) = analyzer(dir.path());
    let mut t = 0u64;
    g.throughput(Throughput::Elements(1));
    g.bench_function("trace_11_spans", |b| {
        b.iter_batched(
            || {
                t += 1;
                demo_trace(t)
            },
            |req| {
                a.observe(&req);
                a.tick(true);
            },
            BatchSize::SmallInput,
        )
    });
    // A 50-span fan-out tree: the fold alone.
    let spans: Vec<SpanInput> = (0..50u64)
        .map(|i| SpanInput {
            span_id: (i + 1).to_be_bytes(),
            parent_id: (i > 0).then(|| ((i - 1) / 4 + 1).to_be_bytes()),
            start: i * 1000,
            end: 1_000_000 - i * 1000,
            kind: Kind::Other,
        })
        .collect();
    let names: Vec<(String, String)> = (0..50)
        .map(|i| (format!("svc{}", i % 5), format!("op{i}")))
        .collect();
    let cp = critical_path(&spans, 0.0);
    g.bench_function("fold_50_spans", |b| b.iter(|| fold(&spans, &names, &cp)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Critical path throughput on synthetic traces of 50 and 2,000 spans (a fan-out tree with
//! sequential and parallel children, as real request trees are), in spans per second on one
//! core.
//!
//! `cargo bench --bench critical_path`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sieve::traces::critical_path::{Kind, SpanInput, critical_path};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A tree of `n` spans: span i's parent is (i − 1) / 4; children start in sequence with
/// some overlap, so the walk has real choices to make.
fn trace(n: usize) -> Vec<SpanInput> {
    let mut spans: Vec<SpanInput> = Vec::with_capacity(n);
    let mut next_start = vec![0u64; n];
    for i in 0..n {
        let (parent, start) = if i == 0 {
            (None, 0)
        } else {
            let p = (i - 1) / 4;
            let s = next_start[p];
            (Some(p), s)
        };
        let len = 1_000_000 / (1 + (i as u64 % 7)) + 10_000 * (i as u64 % 13);
        if let Some(p) = parent {
            next_start[p] = start + len * 3 / 4;
        }
        next_start[i] = start + 1_000;
        spans.push(SpanInput {
            span_id: ((i as u64) + 1).to_be_bytes(),
            parent_id: parent.map(|p| ((p as u64) + 1).to_be_bytes()),
            start,
            end: start + len * 8,
            kind: Kind::Other,
        });
    }
    spans
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("critical_path");
    for n in [50usize, 2_000] {
        let t = trace(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{n}_spans"), |b| b.iter(|| critical_path(&t, 0.0)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Head sampling decisions per second on one core: the bare decision functions for one
//! trace id (hash_seed; proportional with and without a tracestate to parse and rewrite),
//! and a whole 500-span request through a `probabilistic_sampler` (filtering and tracestate
//! rewriting included).
//!
//! `cargo bench --bench sampling`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sieve::config::{ProbabilisticSampler, SamplerMode};
use sieve::sampling::head::{self, Consistent};
use sieve::stages::intake::sampling::HeadSampler;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn sampler(mode: SamplerMode) -> HeadSampler {
    HeadSampler::new(
        "bench",
        &ProbabilisticSampler {
            sampling_percentage: 25.0,
            mode: Some(mode),
            hash_seed: Some(7),
            sampling_precision: 4,
            fail_closed: true,
            logs: Default::default(),
        },
    )
}

fn bench(c: &mut Criterion) {
    let ids: Vec<[u8; 16]> = (0..1024u64)
        .map(|i| {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
            id[8..].copy_from_slice(
                &(i ^ 0xdead_beef)
                    .wrapping_mul(0xbf58_476d_1ce4_e5b9)
                    .to_be_bytes(),
            );
            id
        })
        .collect();

    let mut g = c.benchmark_group("head_decision");
    g.throughput(Throughput::Elements(ids.len() as u64));
    g.bench_function("hash_seed", |b| {
        let bound = head::hash_seed_bound(25.0);
        b.iter(|| {
            ids.iter()
                .filter(|id| head::hash_seed_bucket(7, &id[..]) < bound)
                .count()
        })
    });
    g.bench_function("proportional_no_tracestate", |b| {
        b.iter(|| {
            ids.iter()
                .filter(|id| {
                    head::decide_consistent(Consistent::Proportional, 0.25, 4, &id[..], "")
                        .is_ok_and(|d| d.keep)
                })
                .count()
        })
    });
    g.bench_function("proportional_tracestate", |b| {
        b.iter(|| {
            ids.iter()
                .filter(|id| {
                    head::decide_consistent(
                        Consistent::Proportional,
                        0.25,
                        4,
                        &id[..],
                        "vendor=x,ot=th:8;rv:9b8233f7e3a151,other=y",
                    )
                    .is_ok_and(|d| d.keep)
                })
                .count()
        })
    });
    g.finish();

    let req = sieve::synth::trace_request(&mut rand::rng(), 500, sieve::store::now_ns());
    let mut g = c.benchmark_group("head_request_500_spans");
    g.throughput(Throughput::Elements(500));
    for (name, mode) in [
        ("hash_seed", SamplerMode::HashSeed),
        ("proportional", SamplerMode::Proportional),
    ] {
        let s = sampler(mode);
        g.bench_function(name, |b| {
            b.iter_batched(
                || req.resource_spans.clone(),
                |mut rs| s.sample_spans(&mut rs),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! The alerting stage's pure parts: detector steps over 10,000 series, and correlating 500
//! firing alerts into incidents.
//!
//! - `alerting/detect_10k_series`: one evaluation of 10,000 series (one EWMA chart, one
//!   two-sided CUSUM and one lifecycle step each, past their warm-up), per iteration.
//! - `alerting/correlate_500`: 500 firing alerts on 50 services of a layered call graph, with
//!   60-point signal series, into incidents with suppression and root-cause ranking.
//!
//! `cargo bench --bench alerting`

use std::collections::HashMap;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sieve::analysis::alert::{Lifecycle, Timing};
use sieve::analysis::correlate::{FiringAlert, Params, Topology, correlate};
use sieve::analysis::detect::{Cusum, Detector, Ewma};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("alerting");
    const SERIES: usize = 10_000;
    let mut ewma: Vec<Ewma> = (0..SERIES).map(|_| Ewma::new(0.2, 3.0, 10)).collect();
    let mut cusum: Vec<Cusum> = (0..SERIES).map(|_| Cusum::new(0.5, 5.0, 10)).collect();
    let mut life: Vec<Lifecycle> = vec![Lifecycle::default(); SERIES];
    let timing = Timing::default();
    let mut t = 0.0f64;
    // Past the warm-up.
    for _ in 0..20 {
        t += 10.0;
        for i in 0..SERIES {
            let x = 100.0 + (i % 7) as f64 + (t / 10.0) % 3.0;
            ewma[i].observe(t, x);
            cusum[i].observe(t, x);
        }
    }
    g.throughput(Throughput::Elements(SERIES as u64));
    g.bench_function("detect_10k_series", |b| {
        b.iter(|| {
            t += 10.0;
            let mut firing = 0;
            for i in 0..SERIES {
                let x = 100.0 + (i % 7) as f64 + (t / 10.0) % 3.0;
                let a = ewma[i].observe(t, x).anomalous | cusum[i].observe(t, x).anomalous;
                life[i].step((t * 1e9) as u64, a, &timing);
                firing += usize::from(a);
            }
            firing
        })
    });

    let mut topo = Topology::default();
    for s in 0..50 {
        // Five layers of ten services; each calls two of the next layer.
        if s < 40 {
            topo.add(&format!("svc{s}"), &format!("svc{}", s + 10));
            topo.add(
                &format!("svc{s}"),
                &format!("svc{}", (s + 1) % 10 + 10 * (s / 10 + 1)),
            );
        }
    }
    let alerts: Vec<FiringAlert> = (0..500u64)
        .map(|i| FiringAlert {
            id: i,
            service: format!("svc{}", i % 50),
            started: (i % 97) * 30_000_000_000,
            priority: (i % 5) as f64,
            series: (0..60)
                .map(|k| ((k as f64) * (0.1 + (i % 13) as f64 * 0.01)).sin() + (i % 3) as f64)
                .collect(),
        })
        .collect();
    g.throughput(Throughput::Elements(alerts.len() as u64));
    g.sample_size(20);
    g.bench_function("correlate_500", |b| {
        b.iter(|| correlate(&alerts, &topo, &HashMap::new(), &Params::default()).len())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

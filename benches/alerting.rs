//! The alerting stage's pure parts: detector steps over 10,000 series, and correlating 500
//! firing alerts into incidents.
//!
//! - `alerting/rules_10k_series`: one evaluation of the default latency rule (EWMA chart and
//!   lifecycle) over 10,000 label groups past their warm-up, per iteration.
//! - `alerting/correlate_500`: 500 firing alerts on 50 services of a layered call graph, with
//!   60-point signal series, into incidents with suppression and root-cause ranking.
//!
//! `cargo bench --bench alerting`

use std::collections::HashMap;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::collections::BTreeMap;

use sieve::alerts::alert::Labels;
use sieve::alerts::correlate::{FiringAlert, Params, Topology, correlate};
use sieve::config::alerting::Alerting;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("alerting");
    const SERIES: usize = 10_000;
    // The default LatencyAnomaly rule (EWMA) over 10,000 (service, operation) groups.
    let cfg = Alerting::default();
    let rule = cfg
        .rules
        .iter()
        .position(|r| r.name == "LatencyAnomaly")
        .expect("default rule");
    let mut rs = cfg.rule_set();
    let groups: Vec<Labels> = (0..SERIES)
        .map(|i| {
            [
                ("service".to_string(), format!("svc{}", i % 100)),
                ("operation".to_string(), format!("op{i}")),
            ]
            .into()
        })
        .collect();
    let values = |t: u64| -> BTreeMap<Labels, f64> {
        groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                (
                    g.clone(),
                    0.1 + (i % 7) as f64 * 0.01 + (t % 3) as f64 * 0.001,
                )
            })
            .collect()
    };
    let mut t = 0u64;
    // Past the warm-up.
    for _ in 0..40 {
        t += 1;
        rs.evaluate(rule, t * 10_000_000_000, &values(t));
    }
    let batch = values(t);
    g.throughput(Throughput::Elements(SERIES as u64));
    g.bench_function("rules_10k_series", |b| {
        b.iter(|| {
            t += 1;
            rs.evaluate(rule, t * 10_000_000_000, &batch).len()
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
            series: (0..60u64)
                .map(|k| {
                    (
                        k,
                        ((k as f64) * (0.1 + (i % 13) as f64 * 0.01)).sin() + (i % 3) as f64,
                    )
                })
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

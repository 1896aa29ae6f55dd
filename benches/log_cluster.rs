//! The log clusterer's hot path and its memory.
//!
//! - `log_cluster/loghub_fresh`: the 32,000 messages of the 16 loghub-2k systems into a new
//!   clusterer per iteration (learning included), in lines per second on one core.
//! - `log_cluster/loghub_warm`: the same lines into a clusterer that has seen them once:
//!   the steady state of a gateway, where nearly every signature is known.
//! - Before them, the live heap of 10,000 clusters is printed (counting allocator).
//!
//! The data is read from `$SIEVE_LOGHUB_DIR` or `../shared/data/loghub-2k`; without it the
//! bench uses synthetic lines from a few templates and says so.
//!
//! `cargo bench --bench log_cluster`

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sieve::log_templates::{Clusterer, Masker, Params};

#[path = "support/counting.rs"]
mod counting;
use counting::LIVE;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

fn lines() -> Vec<String> {
    let dir = std::env::var_os("SIEVE_LOGHUB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data/loghub-2k"));
    let mut out = Vec::new();
    for s in sieve::cli::logs::SYSTEMS {
        let path = dir.join(s).join(format!("{s}_2k.log_structured.csv"));
        let Ok(mut r) = csv::Reader::from_path(&path) else {
            break;
        };
        let Some(col) = r
            .headers()
            .ok()
            .and_then(|h| h.iter().position(|c| c == "Content"))
        else {
            break;
        };
        for rec in r.records().flatten() {
            out.push(rec.get(col).unwrap_or("").to_string());
        }
    }
    if out.len() < 32_000 {
        println!("loghub-2k not found: synthetic lines");
        out = (0..32_000u32)
            .map(|i| match i % 4 {
                0 => format!("session opened for user u{} by (uid={})", i % 97, i),
                1 => format!(
                    "Received block blk_{i} of size {} from 10.0.{}.{}",
                    i * 7,
                    i % 255,
                    i % 13
                ),
                2 => format!(
                    "connection from 10.1.{}.{} port {} closed after {} ms",
                    i % 200,
                    i % 7,
                    i,
                    i % 1000
                ),
                _ => format!("job {i} finished with state ok in {} s", i % 60),
            })
            .collect();
    }
    out
}

fn memory_per_10k_clusters() {
    let before = LIVE.load(Ordering::Relaxed);
    let params = Params {
        max_clusters: 10_000,
        ..Params::default()
    };
    let mut c = Clusterer::new(params, Masker::default());
    for i in 0..10_000u32 {
        // Distinct words in every position: 10,000 templates that never merge.
        let w = |k: u32| {
            let mut s = String::new();
            let mut n = i * 7 + k;
            for _ in 0..4 {
                s.push((b'a' + (n % 26) as u8) as char);
                n /= 26;
            }
            s
        };
        c.add(&format!(
            "{} {} module {} state {} value {}",
            w(0),
            w(1),
            w(2),
            w(3),
            i
        ));
    }
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "memory for {} clusters: {:.1} MiB live ({:.0} bytes per cluster, 8-token templates)",
        c.live(),
        bytes as f64 / 1048576.0,
        bytes as f64 / c.live() as f64
    );
}

fn bench(cr: &mut Criterion) {
    memory_per_10k_clusters();
    let lines = lines();
    let mut g = cr.benchmark_group("log_cluster");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.sample_size(20);
    g.bench_function("loghub_fresh", |b| {
        b.iter(|| {
            let mut c = Clusterer::new(Params::default(), Masker::default());
            for l in &lines {
                c.add(l);
            }
            c.live()
        })
    });
    let mut warm = Clusterer::new(Params::default(), Masker::default());
    for l in &lines {
        warm.add(l);
    }
    g.bench_function("loghub_warm", |b| {
        b.iter(|| {
            let mut n = 0;
            for l in &lines {
                n += warm.add(l);
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

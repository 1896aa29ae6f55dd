//! Query latency against a filled gateway: GetTrace of traces found in the store, and
//! FindTraces by service + operation + minimum duration (limit 20), one call at a time over
//! one connection. Prints p50/p99/max of each and what the store holds (`GetStats`).
//!
//! ```sh
//! cargo run --release -- &                      # a gateway with data (the loadgen fills it)
//! cargo run --release --example query_latency -- --addr http://127.0.0.1:4320 --calls 500
//! ```

use std::time::{Duration, Instant};

use clap::Parser;
use rand::{Rng, SeedableRng};
use sieve::proto::query_service_client::QueryServiceClient;
use sieve::proto::{
    FindTracesRequest, GetOperationsRequest, GetServicesRequest, GetStatsRequest, GetTraceRequest,
};

#[derive(Parser)]
struct Args {
    /// The query API.
    #[arg(long, default_value = "http://127.0.0.1:4320")]
    addr: String,
    /// Calls of each kind.
    #[arg(long, default_value_t = 500)]
    calls: usize,
    /// FindTraces' minimum duration, milliseconds.
    #[arg(long, default_value_t = 10)]
    min_duration_ms: u64,
}

fn percentiles(mut v: Vec<Duration>) -> String {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    format!(
        "p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} calls)",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3,
        v.len()
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut q = QueryServiceClient::connect(args.addr.clone()).await?;
    q = q.max_decoding_message_size(64 << 20);
    let stats = q.get_stats(GetStatsRequest {}).await?.into_inner();
    println!(
        "store: {} spans accepted, {} bytes on disk",
        stats.spans.map(|s| s.accepted).unwrap_or(0),
        stats.disk_bytes
    );
    let services = q
        .get_services(GetServicesRequest {})
        .await?
        .into_inner()
        .services;
    let mut pairs = Vec::new();
    for s in &services {
        let ops = q
            .get_operations(GetOperationsRequest {
                service_name: s.clone(),
            })
            .await?
            .into_inner()
            .operations;
        pairs.extend(ops.into_iter().map(|o| (s.clone(), o.name)));
    }
    anyhow::ensure!(!pairs.is_empty(), "the store holds no operations");
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let (mut find, mut ids) = (Vec::new(), Vec::new());
    for _ in 0..args.calls {
        let (service, op) = &pairs[rng.random_range(0..pairs.len())];
        let t = Instant::now();
        let r = q
            .find_traces(FindTracesRequest {
                service_name: service.clone(),
                operation_name: op.clone(),
                duration_min_nanos: args.min_duration_ms * 1_000_000,
                limit: 20,
                ..Default::default()
            })
            .await?
            .into_inner();
        find.push(t.elapsed());
        ids.extend(r.traces.into_iter().map(|t| t.trace_id));
    }
    anyhow::ensure!(!ids.is_empty(), "FindTraces found nothing");
    let mut get = Vec::new();
    for _ in 0..args.calls {
        let id = ids[rng.random_range(0..ids.len())].clone();
        let t = Instant::now();
        q.get_trace(GetTraceRequest { trace_id: id }).await?;
        get.push(t.elapsed());
    }
    println!(
        "FindTraces (service + operation + min duration, limit 20): {}",
        percentiles(find)
    );
    println!("GetTrace: {}", percentiles(get));
    Ok(())
}

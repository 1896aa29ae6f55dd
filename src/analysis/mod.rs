//! Pure analysis over telemetry: no I/O, no tokio. Each module documents its algorithm and
//! invariants and is tested against hand-computed vectors and proptest.
//!
//! - [`critical_path`]: the critical path of one trace (jaeger-ui's walk, CRISP's tolerance).
//! - [`histogram`]: mergeable log-linear duration histograms (percentiles, downsampling).
//! - [`service_graph`]: edges between services from CLIENT/SERVER and PRODUCER/CONSUMER pairs.
//! - [`red`]: calls, errors and duration histograms per (service, operation, kind, status) in
//!   time buckets, downsampled by merging.
//!
//! Not wired into the pipeline yet except the critical path (GetCriticalPath and `sieve analyze`).

pub mod critical_path;
pub mod histogram;
pub mod red;
pub mod service_graph;

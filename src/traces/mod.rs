//! What traces compute, as pure functions: no I/O, no clock, no tokio. Each module documents
//! its algorithm and invariants and is tested against hand-computed vectors, a naive oracle
//! and proptest. The analysis stage ([`crate::stages::analysis`]) feeds them every span.
//!
//! - [`critical_path`]: the critical path of one trace (jaeger-ui's walk, CRISP's tolerance).
//! - [`bottleneck`]: folding critical paths into per-operation and per-call-path
//!   contributions, ranking against a baseline, what-if projection.
//! - [`service_graph`]: edges between services from CLIENT/SERVER and PRODUCER/CONSUMER pairs.

pub mod bottleneck;
pub mod critical_path;
pub mod service_graph;

//! sieve: a telemetry gateway in the OpenTelemetry Collector's mould.
//!
//! Instrumented services send OTLP over gRPC; sieve validates each item, writes what it accepts
//! durably to sled before it answers, forwards it to other backends through persistent
//! queues, and serves queries over its own gRPC API. It samples traces, analyses every span
//! and log record before sampling (critical paths, bottlenecks, RED metrics, service graph, log
//! templates), turns those signals into alerts and incidents, and notifies Alertmanager.
//!
//! # Layout
//!
//! Modules follow the data flow (see the README's diagram):
//!
//! - [`config`]: the YAML configuration, its defaults, `${env:NAME}` expansion, validation.
//! - [`receiver`]: OTLP/gRPC TraceService, LogsService, MetricsService: decode, per-item
//!   validation, the answer with `partial_success`.
//! - [`analyzer`]: the analysis stage: every span before sampling into RED metrics, the service
//!   graph and (once its trace is complete) critical-path bottleneck aggregates, and every log
//!   record into a template cluster, as time series in sled. The algorithms are the pure
//!   modules of [`analysis`].
//! - [`alerting`]: the alerting engine: rules evaluated at the event-time watermark over the
//!   analysis series, incidents, notifications.
//! - [`intake`]: the stage sequence every receiver shares (admit, analyse, sample, enqueue,
//!   write, commit), the samplers applied to requests and the durable tail-sampling buffer,
//!   the in-flight byte budget (backpressure) and group-committed flushes (acknowledged means
//!   on disk).
//! - [`sampling`]: the sampling decisions, pure: head (consistent, from the trace id),
//!   adaptive rates, tail-sampling policies.
//! - [`export`]: exporters (`otlp`, `otlphttp`, `debug`, `file`) with persistent queues,
//!   batching, retry and a circuit breaker each.
//! - [`store`]: time partitions (value-log files, an LSM index of memtable and sorted runs),
//!   key layout, reads, retention; the sled database the stages keep their state in.
//! - [`query`]: the query gRPC service (`proto/sieve/v1/query.proto`), and the own-telemetry
//!   endpoint (`/metrics`, `/health/*`, in `query::metrics`).
//! - [`server`]: wiring and the one shutdown sequence.
//! - [`telemetry`]: counters and named self-telemetry events; logging set-up.
//! - [`otlp`]: small helpers over the OTLP types.
//! - [`cli`]: what the `sieve query` commands print.
//! - [`synth`]: synthetic OTLP traffic for the loadgen and benchmarks.

pub mod alerting;
pub mod analysis;
pub mod analyzer;
pub mod cli;
pub mod config;
pub mod export;
pub mod intake;
pub mod otlp;
pub mod query;
pub mod receiver;
pub mod sampling;
pub mod server;
pub mod store;
pub mod synth;
pub mod telemetry;

/// Generated code of `proto/sieve/v1/query.proto` (messages, client, server).
pub mod proto {
    tonic::include_proto!("sieve.v1");
}

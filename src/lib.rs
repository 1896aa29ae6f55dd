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
//! Folders follow the data flow (see the README's diagram), and imports run one way: the
//! faces (the binary in `src/bin/sieve`, [`cli`], [`receiver`], [`query`], [`server`]) use the
//! [`stages`], which use the pure modules and the [`store`]. `tests/layout.rs` checks it.
//!
//! Faces:
//! - [`receiver`]: OTLP/gRPC TraceService, LogsService, MetricsService: decode, per-item
//!   validation, the answer with `partial_success`.
//! - [`query`]: the query gRPC service (`proto/sieve/v1/query.proto`), and the own-telemetry
//!   endpoint (`/metrics`, `/health/*`, in `query::metrics`).
//! - [`cli`]: what the `sieve query` commands print.
//! - [`server`]: open, bind, run: the wiring and the one shutdown sequence.
//!
//! Stages ([`stages`]): tasks with state, sled trees and channels, each a [`stages::Stage`]
//! that the server starts the same way and stops with one token.
//! - [`stages::intake`]: the stage sequence every receiver shares (admit, analyse, sample,
//!   enqueue, write, commit), backpressure, group-committed flushes, the tail-sampling buffer.
//! - [`stages::analysis`]: every span and log record before sampling into series in sled.
//! - [`stages::alerting`]: rules at the event-time watermark, incidents, notifications.
//! - [`stages::export`]: exporters with persistent queues, batching, retry, circuit breakers.
//! - [`stages::retention`]: the sweeper (expired partitions, the size bound, idle memtables).
//!
//! Pure modules (no I/O, no clock, no tokio), named for what they compute:
//! - [`traces`]: critical paths, bottlenecks and what-if, the service graph.
//! - [`series`]: the mergeable cells of every analysis series (RED histograms among them).
//! - [`log_templates`]: log template clustering (masking, clusters, merges).
//! - [`alerts`]: signals, detectors, rule evaluation, alert lifecycle, correlation into
//!   incidents, Alertmanager's notification logic.
//! - [`sampling`]: head (consistent, from the trace id), adaptive rates, tail policies.
//! - [`otlp`]: small helpers over the OTLP types.
//!
//! Under everything:
//! - [`store`]: time partitions (value-log files, an LSM index of memtable and sorted runs),
//!   key layout, reads, retention; the sled database the stages keep their state in.
//! - [`config`]: the YAML configuration, its defaults, `${env:NAME}` expansion, validation.
//! - [`telemetry`]: named self-telemetry events and counters; logging set-up.
//! - [`synth`]: synthetic OTLP traffic for the loadgen and benchmarks.

pub mod alerts;
pub mod cli;
pub mod config;
pub mod fuzzing;
pub mod log_templates;
pub mod otlp;
pub mod query;
pub mod receiver;
pub mod sampling;
pub mod series;
pub mod server;
pub mod stages;
pub mod store;
pub mod synth;
pub mod telemetry;
pub mod traces;

/// Generated code of `proto/sieve/v1/query.proto` (messages, client, server).
pub mod proto {
    tonic::include_proto!("sieve.v1");
}

//! The stages: tasks with state (sled trees, channels, memory bounded by config) that run
//! between the faces (receivers, the query service) and the pure modules and the store.
//! Each is started by [`crate::server::start`] and stopped by its one shutdown sequence.
//!
//! - [`intake`]: the stage sequence every receiver shares (admit, analyse, sample, enqueue,
//!   write, commit), the request samplers, the durable tail-sampling buffer, the in-flight
//!   byte budget (backpressure) and group-committed flushes (acknowledged means on disk).
//! - [`analysis`]: every span and log record before sampling into RED metrics, the service
//!   graph, critical-path bottlenecks and log templates, as time series in sled.
//! - [`alerting`]: the alerting engine: rules at the event-time watermark over the analysis
//!   series, incidents, notifications to Alertmanager and webhooks.
//! - [`export`]: exporters (`otlp`, `otlphttp`, `debug`, `file`) with a persistent queue,
//!   batching, retry and a circuit breaker each.
//! - [`retention`]: the sweeper: expired partitions, the size bound, idle memtables.

pub mod alerting;
pub mod analysis;
pub mod export;
pub mod intake;
pub mod retention;

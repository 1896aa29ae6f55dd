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

use std::future::Future;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The one way a stage is started: it runs as one task until `stop` is cancelled, then
/// finishes what it owes (a last flush, a checkpoint, a drain within its deadline) and
/// returns. [`crate::server::start`] spawns every stage through [`Stage::spawn`] and decides
/// the order in which their tokens are cancelled.
pub trait Stage: Send + Sized + 'static {
    /// Runs until `stop` is cancelled, and a little after (see the trait docs).
    fn run(self, stop: CancellationToken) -> impl Future<Output = ()> + Send + 'static;

    /// Spawns [`Stage::run`] into `tasks`.
    fn spawn(self, tasks: &mut JoinSet<()>, stop: CancellationToken) {
        tasks.spawn(self.run(stop));
    }
}

pub mod alerting;
pub mod analysis;
pub mod export;
pub mod intake;
pub mod retention;

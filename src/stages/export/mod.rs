//! Forwarding: every accepted item goes to each exporter its pipeline names, through a
//! persistent queue per exporter, and survives crashes and downstream outages on the way.
//!
//! - [`queue`]: the queues in the store; an item enters them in the same durable write as
//!   intake (the receiver enqueues, then commits; one flush covers both).
//! - [`wire`]: batching by concatenating encoded requests and splitting them at item
//!   boundaries, without decoding, so every field reaches the downstream byte for byte.
//! - [`retry`]: the backoff formula and the circuit breaker.
//! - [`sink`]: the exporter types (`otlp`, `otlphttp`, `debug`, `file`) and how each
//!   classifies a downstream's answer.
//! - [`worker`]: one task per exporter turning its queue into deliveries (the bulkhead: a
//!   dead backend fills its own queue and nothing else).
//!
//! [`Exporters`] is what the rest of the gateway sees: `check_room` and `enqueue` for the
//! receiver, `run` for the server, `stats` for GetStats.

pub mod queue;
pub mod retry;
pub mod sink;
pub mod wire;
pub mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::otlp::Signal;
use crate::store::{Store, StoreError};
use crate::telemetry::events;

pub use queue::{Queue, Queues};
pub use worker::Exporter;

/// Errors of setting up the exporters.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("exporter {name}: {source}")]
    Setup {
        name: String,
        source: sink::SinkError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub use crate::telemetry::ExporterCounters as Counters;

/// The configured exporters of a gateway.
pub struct Exporters {
    queues: Option<Arc<Queues>>,
    exporters: Vec<Arc<Exporter>>,
    /// Per signal, the exporters its pipeline names (indexes into `exporters`).
    by_signal: [Vec<usize>; 3],
    /// Queues of the same, ready to enqueue into.
    queues_by_signal: [Vec<Arc<Queue>>; 3],
}

fn slot(s: Signal) -> usize {
    match s {
        Signal::Traces => 0,
        Signal::Logs => 1,
        Signal::Metrics => 2,
    }
}

/// A queue is full under the refuse policy.
#[derive(Debug, thiserror::Error)]
#[error("exporter {exporter}'s queue is full ({bytes} bytes queued); retry later")]
pub struct QueueFull {
    pub exporter: String,
    pub bytes: u64,
}

impl Exporters {
    /// None: a gateway that forwards nothing.
    pub fn none() -> Exporters {
        Exporters {
            queues: None,
            exporters: Vec::new(),
            by_signal: Default::default(),
            queues_by_signal: Default::default(),
        }
    }

    /// Builds every exporter a pipeline names, with its queue as it stands on disk.
    pub fn open(config: &Config, store: &Store) -> Result<Exporters, ExportError> {
        let mut used: Vec<(&String, Vec<Signal>)> = Vec::new();
        for (signal_name, pipeline) in &config.service.pipelines {
            let Some(signal) = Signal::ALL.into_iter().find(|s| s.as_str() == signal_name) else {
                continue;
            };
            for name in &pipeline.exporters {
                match used.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, signals)) => signals.push(signal),
                    None => used.push((name, vec![signal])),
                }
            }
        }
        for name in config.exporters.keys() {
            if !used.iter().any(|(n, _)| *n == name) {
                tracing::warn!(exporter = %name, "exporter is defined but no pipeline names it; not started");
            }
        }
        let queues = Queues::open(store.clone())?;
        for (name, entries) in queues.on_disk()? {
            if entries > 0 && !used.iter().any(|(n, _)| **n == name) {
                tracing::warn!(exporter = %name, entries, "a queue on disk belongs to an exporter no pipeline names; it is kept until one does");
            }
        }
        let mut out = Exporters {
            queues: Some(queues.clone()),
            ..Exporters::none()
        };
        for (name, signals) in used {
            let Some(cfg) = config.exporters.get(name) else {
                // validate() has checked that pipelines name defined exporters.
                continue;
            };
            let d = cfg.delivery();
            let sink = sink::Sink::new(name, cfg).map_err(|source| ExportError::Setup {
                name: name.clone(),
                source,
            })?;
            let queue = queues.queue(
                name,
                d.sending_queue.queue_size_mib.saturating_mul(1024 * 1024),
                d.sending_queue.when_full,
            )?;
            let i = out.exporters.len();
            for s in &signals {
                out.by_signal[slot(*s)].push(i);
                out.queues_by_signal[slot(*s)].push(queue.clone());
            }
            out.exporters.push(Arc::new(Exporter {
                name: name.clone(),
                signals,
                queue,
                sink,
                breaker: retry::Breaker::new(d.circuit_breaker.clone()),
                batch: d.batch.clone(),
                retry: d.retry_on_failure.clone(),
                num_consumers: d.sending_queue.num_consumers,
                drain_timeout: d.sending_queue.drain_timeout,
                counters: Counters::default(),
                unremoved: Default::default(),
            }));
        }
        Ok(out)
    }

    /// Does any exporter take this signal?
    pub fn wants(&self, signal: Signal) -> bool {
        !self.by_signal[slot(signal)].is_empty()
    }

    /// Refuse-policy check before a request is taken in: fails when one of the signal's
    /// queues is full.
    pub fn check_room(&self, signal: Signal) -> Result<(), QueueFull> {
        match self.queues_by_signal[slot(signal)]
            .iter()
            .find(|q| q.is_full())
        {
            Some(q) => Err(QueueFull {
                exporter: q.name.clone(),
                bytes: q.bytes(),
            }),
            None => Ok(()),
        }
    }

    /// Enters an encoded export request into the queue of every exporter of `signal`. Not
    /// durable until the store's next flush (the receiver's commit waits for it).
    pub fn enqueue(&self, signal: Signal, body: &[u8], items: u64) -> Result<(), StoreError> {
        let queues = &self.queues_by_signal[slot(signal)];
        let Some(shared) = &self.queues else {
            return Ok(());
        };
        let dropped = shared.enqueue(signal, body, items, queues)?;
        for (i, d) in self.by_signal[slot(signal)].iter().zip(dropped) {
            if d.entries > 0 {
                let e = &self.exporters[*i];
                events::ExportQueueDropped {
                    exporter: &e.name,
                    entries: d.entries,
                    items: d.items,
                    counters: &e.counters,
                }
                .emit();
            }
        }
        Ok(())
    }

    /// Wakes the exporters of `signal` (after the enqueued request is durable).
    pub fn notify(&self, signal: Signal) {
        for q in &self.queues_by_signal[slot(signal)] {
            q.notify.notify_one();
        }
    }

    /// Runs every exporter and the queue housekeeping until `drain` is cancelled and each
    /// exporter has drained (or hit its drain deadline).
    pub async fn run(&self, drain: CancellationToken) {
        let Some(queues) = self.queues.clone() else {
            return;
        };
        let mut tasks = tokio::task::JoinSet::new();
        for e in &self.exporters {
            tasks.spawn(e.clone().run(drain.clone()));
        }
        let housekeeping = {
            let drain = drain.clone();
            let exporters = self.exporters.clone();
            let queues = queues.clone();
            tokio::spawn(async move {
                let mut acks_seen = 0u64;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = drain.cancelled() => return,
                    }
                    // Removals after an OK are durable within a second, so a crash resends
                    // at most that much.
                    let acks: u64 = exporters
                        .iter()
                        .map(|e| e.counters.acks.load(Ordering::Relaxed))
                        .sum();
                    if acks != acks_seen {
                        acks_seen = acks;
                        if let Err(e) = queues.flush().await {
                            events::ExportQueueFailed {
                                exporter: "(all)",
                                error: &e,
                            }
                            .emit();
                        }
                    }
                    if let Err(e) = queues.collect_garbage().await {
                        events::ExportQueueFailed {
                            exporter: "(all)",
                            error: &e,
                        }
                        .emit();
                    }
                }
            })
        };
        while tasks.join_next().await.is_some() {}
        let _ = housekeeping.await;
        if let Err(e) = queues.collect_garbage().await {
            events::ExportQueueFailed {
                exporter: "(all)",
                error: &e,
            }
            .emit();
        }
    }

    /// Per exporter, its figures now (GetStats and `/metrics` show them).
    pub fn snapshot(&self) -> Vec<ExporterSnapshot> {
        self.exporters
            .iter()
            .map(|e| {
                let c = &e.counters;
                let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
                ExporterSnapshot {
                    name: e.name.clone(),
                    breaker: e.breaker.state().as_str(),
                    queue_entries: e.queue.len() as u64,
                    queue_items: e.queue.items(),
                    queue_bytes: e.queue.bytes(),
                    sent_items: l(&c.sent_items),
                    sent_requests: l(&c.sent_requests),
                    failed_items: l(&c.failed_items),
                    rejected_items: l(&c.rejected_items),
                    dropped_items: l(&c.dropped_items),
                    lost_items: l(&c.lost_items),
                    retries: l(&c.retries),
                }
            })
            .collect()
    }
}

/// One exporter's figures at one moment: its queue, its breaker and what it did with the
/// items it took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExporterSnapshot {
    pub name: String,
    /// `closed`, `open` or `half-open`.
    pub breaker: &'static str,
    pub queue_entries: u64,
    pub queue_items: u64,
    pub queue_bytes: u64,
    pub sent_items: u64,
    pub sent_requests: u64,
    pub failed_items: u64,
    pub rejected_items: u64,
    pub dropped_items: u64,
    pub lost_items: u64,
    pub retries: u64,
}

/// Every exporter as one stage: `stop` starts the drain ([`Exporters::run`]).
impl crate::stages::Stage for Arc<Exporters> {
    async fn run(self, stop: CancellationToken) {
        Exporters::run(&self, stop).await
    }
}

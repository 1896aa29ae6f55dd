//! Intake: what happens to a request between the receiver that decoded it and its OK.
//! [`pipeline`] owns the stage sequence (admit, analyse, sample, enqueue, write, commit) that
//! every receiver shares; this file owns its last, durable step.
//!
//! [`Intake`] is a cheap handle (mini-redis `Db` style) over:
//! - a **byte budget** (`intake.max_inflight_mib`): a request holds a [`Reservation`] of its
//!   encoded size from before it is written until its flush completes. When the budget is
//!   spent, [`Intake::try_reserve`] fails with [`IntakeError::Full`] and the receiver answers
//!   UNAVAILABLE with RetryInfo — backpressure instead of unbounded queues.
//! - a **group-commit flusher**: a request applies its batches to sled itself (in parallel
//!   with other requests), then takes a ticket and waits until a flush that *started after*
//!   its ticket completes. One background task runs the flushes back to back; every request
//!   that took a ticket while a flush was running is covered by the next one, so N concurrent
//!   requests share one fsync and durability costs latency, not throughput.
//!
//! With `storage.sync: false`, [`Intake::commit`] returns once the batches are applied (sled
//! flushes on its own timer), which is only there to measure what durability costs.

pub mod memory;
pub mod pipeline;
pub mod sampling;
pub mod tail_buffer;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

use tokio_util::sync::CancellationToken;

use crate::store::{Store, StoreError, Write};
use crate::telemetry::events;

/// Errors a receiver branches on.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The in-flight budget is spent: refuse with a retryable status.
    #[error("intake is full ({inflight_bytes} bytes in flight); retry after {retry_delay:?}")]
    Full {
        inflight_bytes: usize,
        retry_delay: Duration,
    },
    /// The gateway is shutting down: the flusher is gone.
    #[error("intake is shutting down")]
    Stopped,
    /// Writing or flushing failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A flush failed; the data may not be on disk. Every request the flush covered gets
    /// the same error, hence the `Arc`.
    #[error("flush failed: {0}")]
    Flush(#[source] Arc<StoreError>),
}

/// Held by a request from admission until its data is durable; returns its bytes to the
/// budget on drop.
#[derive(Debug)]
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
}

/// What the flusher last finished: every ticket up to `upto` is covered.
#[derive(Debug, Clone, Default)]
struct FlushOutcome {
    upto: u64,
    error: Option<Arc<StoreError>>,
    /// The flusher has exited: tickets past `upto` will never be covered.
    stopped: bool,
}

/// A cheap, cloneable handle.
#[derive(Clone)]
pub struct Intake {
    shared: Arc<Shared>,
}

struct Shared {
    store: Store,
    /// The in-flight byte budget; one permit per byte.
    budget: Arc<Semaphore>,
    budget_total: usize,
    retry_delay: Duration,
    sync: bool,
    /// Tickets handed out so far.
    requested: AtomicU64,
    /// Wakes the flusher when a ticket is taken (a permit is stored if it is busy, so no
    /// wake-up is lost).
    wake: Notify,
    /// The flusher publishes each completed flush here; waiters watch it.
    done: watch::Sender<FlushOutcome>,
    /// How long each group-committed flush took (nanoseconds), for `/metrics`.
    flush_time: std::sync::Mutex<crate::series::histogram::Histogram>,
}

impl Intake {
    /// A new intake over `store`. Nothing flushes until [`Intake::run_flusher`] runs.
    pub fn new(
        store: Store,
        max_inflight_bytes: usize,
        retry_delay: Duration,
        sync: bool,
    ) -> Intake {
        let budget_total = max_inflight_bytes.clamp(1, Semaphore::MAX_PERMITS);
        Intake {
            shared: Arc::new(Shared {
                store,
                budget: Arc::new(Semaphore::new(budget_total)),
                budget_total,
                retry_delay,
                sync,
                requested: AtomicU64::new(0),
                wake: Notify::new(),
                done: watch::Sender::new(FlushOutcome::default()),
                flush_time: std::sync::Mutex::new(Default::default()),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Bytes of the budget held by requests in flight now.
    pub fn budget_in_use(&self) -> usize {
        self.shared.budget_total - self.shared.budget.available_permits()
    }

    /// Durations of the group-committed flushes so far (nanoseconds).
    pub fn flush_times(&self) -> crate::series::histogram::Histogram {
        self.shared
            .flush_time
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The whole in-flight budget, in bytes.
    pub fn budget_total(&self) -> usize {
        self.shared.budget_total
    }

    /// The delay receivers put in RetryInfo when refusing.
    pub fn retry_delay(&self) -> Duration {
        self.shared.retry_delay
    }

    /// Reserves `bytes` of the in-flight budget, or fails at once with [`IntakeError::Full`].
    /// A request larger than the whole budget reserves the whole budget, so it is admitted
    /// when intake is idle rather than never.
    pub fn try_reserve(&self, bytes: usize) -> Result<Reservation, IntakeError> {
        let n = bytes
            .clamp(1, self.shared.budget_total)
            .min(u32::MAX as usize) as u32;
        match self.shared.budget.clone().try_acquire_many_owned(n) {
            Ok(permit) => Ok(Reservation { _permit: permit }),
            Err(_) => Err(IntakeError::Full {
                inflight_bytes: self.shared.budget_total - self.shared.budget.available_permits(),
                retry_delay: self.shared.retry_delay,
            }),
        }
    }

    /// Applies a prepared write and returns once it is durable (or applied, without sync).
    /// Returns how many items were already past retention and so not written.
    pub async fn commit(&self, write: Write) -> Result<u64, IntakeError> {
        let expired = self.shared.store.apply(write).inspect_err(|e| {
            events::IntakeWriteFailed { error: e }.emit();
        })?;
        if self.shared.sync {
            self.durable().await?;
        }
        Ok(expired)
    }

    /// Waits for a flush that started after this call.
    async fn durable(&self) -> Result<(), IntakeError> {
        let mut rx = self.shared.done.subscribe();
        let ticket = self.shared.requested.fetch_add(1, Ordering::SeqCst) + 1;
        self.shared.wake.notify_one();
        loop {
            {
                let outcome = rx.borrow_and_update();
                if outcome.upto >= ticket {
                    return match &outcome.error {
                        None => Ok(()),
                        Some(e) => Err(IntakeError::Flush(e.clone())),
                    };
                }
                if outcome.stopped {
                    return Err(IntakeError::Stopped);
                }
            }
            rx.changed().await.map_err(|_| IntakeError::Stopped)?;
        }
    }

    /// The group-commit loop. Runs until `shutdown` completes, then makes one last flush so
    /// everything applied before is durable.
    pub async fn run_flusher(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut flushed_upto = 0u64;
        loop {
            let stopping = tokio::select! {
                _ = self.shared.wake.notified() => false,
                _ = &mut shutdown => true,
            };
            // Every ticket taken before this load belongs to a write applied before it, so the
            // flush below covers it.
            let target = self.shared.requested.load(Ordering::SeqCst);
            if target > flushed_upto || stopping {
                let began = std::time::Instant::now();
                let result = self.shared.store.flush().await;
                let took = u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX);
                self.shared
                    .flush_time
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .record(took);
                if let Err(e) = &result {
                    events::IntakeWriteFailed { error: e }.emit();
                }
                flushed_upto = target;
                self.shared.done.send_replace(FlushOutcome {
                    upto: target,
                    error: result.err().map(Arc::new),
                    stopped: stopping,
                });
            }
            if stopping {
                return;
            }
        }
    }
}

/// The group-commit flusher as a stage ([`Intake::run_flusher`]).
impl crate::stages::Stage for Intake {
    fn run(
        self,
        stop: CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.run_flusher(stop.cancelled_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    #[test]
    fn budget_refuses_when_spent_and_recovers() {
        let mut cfg = config::Storage::default();
        let (_dir, store) = crate::store::temp_store(&mut cfg);
        let intake = Intake::new(store, 1000, Duration::from_millis(250), true);
        let a = intake.try_reserve(600).unwrap();
        match intake.try_reserve(600) {
            Err(IntakeError::Full {
                retry_delay,
                inflight_bytes,
            }) => {
                assert_eq!(retry_delay, Duration::from_millis(250));
                assert_eq!(inflight_bytes, 600);
            }
            other => panic!("expected Full, got {other:?}"),
        }
        drop(a);
        // Larger than the whole budget: admitted when idle.
        let big = intake.try_reserve(5000).unwrap();
        assert!(intake.try_reserve(1).is_err());
        drop(big);
        assert!(intake.try_reserve(1).is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_commits_share_flushes_and_all_complete() {
        let mut cfg = config::Storage::default();
        let (_dir, store) = crate::store::temp_store(&mut cfg);
        let intake = Intake::new(store, 1 << 20, Duration::from_secs(1), true);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let flusher = tokio::spawn(intake.clone().run_flusher(async {
            let _ = stop_rx.await;
        }));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let intake = intake.clone();
            tasks.push(tokio::spawn(async move {
                intake.commit(Write::default()).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let _ = stop_tx.send(());
        flusher.await.unwrap();
        // After the flusher is gone, a commit fails instead of hanging.
        assert!(matches!(
            intake.commit(Write::default()).await,
            Err(IntakeError::Stopped)
        ));
    }
}

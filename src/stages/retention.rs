//! The retention sweeper: on a timer, drops expired partitions ([`Store::sweep_expired`]),
//! enforces `storage.max_disk_size` ([`Store::enforce_disk_size`]) and writes out the
//! memtables of partitions idle for [`IDLE_PARTITION`] ([`Store::seal_idle`]), which also
//! retries merges and compactions a crash left undone. Each pass runs on a blocking thread; a
//! failed pass is an event and the next tick tries again.

use std::future::Future;
use std::time::Duration;

use crate::store::Store;
use crate::store::retention::IDLE_PARTITION;
use crate::telemetry::events;

/// The sweeper: every `interval` (the first tick at once).
pub struct Sweeper {
    pub store: Store,
    pub interval: Duration,
}

impl crate::stages::Stage for Sweeper {
    async fn run(self, stop: tokio_util::sync::CancellationToken) {
        run(self.store, self.interval, stop.cancelled_owned()).await
    }
}

/// Sweeps every `interval` (the first tick at once) until `shutdown` completes.
async fn run(store: Store, interval: Duration, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tick.tick() => {
                let store = store.clone();
                let swept = tokio::task::spawn_blocking(move || {
                    let swept = store
                        .sweep_expired()
                        .and_then(|n| Ok(n + store.enforce_disk_size()?));
                    if let Err(e) = store.seal_idle(IDLE_PARTITION) {
                        events::StoreRunWriteFailed { error: &e }.emit();
                    }
                    swept
                })
                .await;
                match swept {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => events::StoreSweepFailed { error: &e }.emit(),
                    Err(e) => events::StoreSweepFailed { error: &e }.emit(),
                }
            }
        }
    }
}

//! The retention sweeper: drops partition trees whose data is older than `storage.retention`.
//!
//! Time is data time: a partition holds data whose own timestamps fall in [start, end), so it
//! expires when `end <= now - retention`. Dropping a tree whole is one sled operation and lets
//! sled reuse the space, unlike deleting key by key. Retention is therefore exact to one
//! partition width. The catalog forgets nothing; queries hide services and operations whose
//! newest data is past the horizon.

use std::future::Future;
use std::time::Duration;

use super::{Signal, Store, StoreError, partition_name};
use crate::telemetry::events;

impl Store {
    /// Drops every expired partition; returns how many.
    pub fn sweep_expired(&self) -> Result<usize, StoreError> {
        let horizon = self.retention_horizon();
        let expired: Vec<(Signal, u64, u64)> = {
            let parts = self
                .inner()
                .partitions
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            parts
                .iter()
                .filter(|(_, p)| p.end <= horizon)
                .map(|((signal, start), p)| (*signal, *start, p.end))
                .collect()
        };
        for (signal, start, end) in &expired {
            // No write is between looking up a tree and applying to it while this is held; a
            // write after it re-creates the partition, and the next sweep drops it again.
            let _exclusive = self
                .inner()
                .sweep_lock
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            self.inner()
                .partitions
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .remove(&(*signal, *start));
            self.inner()
                .db
                .drop_tree(partition_name(*signal, *start, *end))?;
            self.inner().vlog.remove(*signal, *start, *end)?;
            events::StorePartitionExpired {
                signal: *signal,
                start: *start,
                end: *end,
            }
            .emit();
        }
        Ok(expired.len())
    }

    /// Runs [`Store::sweep_expired`] every `interval` until `shutdown` completes.
    pub async fn run_sweeper(self, interval: Duration, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tick.tick() => {
                    let store = self.clone();
                    match tokio::task::spawn_blocking(move || store.sweep_expired()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => events::StoreSweepFailed { error: &e }.emit(),
                        Err(e) => events::StoreSweepFailed { error: &e }.emit(),
                    }
                }
            }
        }
    }
}

//! Retention: dropping partitions whose data is older than `storage.retention`, and the
//! oldest partitions while the data directory is over `storage.max_disk_size`. The sweeper
//! stage ([`crate::stages::retention`]) calls it on a timer.
//!
//! Time is data time: a partition holds data whose own timestamps fall in [start, end), so it
//! expires when `end <= now - retention`. Dropping a partition deletes its value-log file and
//! its run directory, which gives the space back to the file system at once. Retention is therefore exact to one
//! partition width. The catalog forgets nothing; queries hide services and operations whose
//! newest data is past the horizon.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Signal, Store, StoreError, partition_dir_name};
use crate::telemetry::events;

/// A partition not written to for this long has its memtable written out as a run.
pub const IDLE_PARTITION: Duration = Duration::from_secs(60);

impl Store {
    /// Drops every expired partition; returns how many were dropped.
    ///
    /// Under the exclusive lock it only raises `swept_upto` and unlinks the expired
    /// partitions from the map: after that no writer holds their handles (writers hold the
    /// lock shared while they use them) and none can get them again (writers skip partitions
    /// at or before `swept_upto`). Dropping the trees and deleting the files then happens
    /// without the lock. Readers hold no lock; one that meets a dropped tree skips it. A
    /// partition whose drop fails stays on a retry list for the next sweep.
    pub fn sweep_expired(&self) -> Result<usize, StoreError> {
        let exclusive = self
            .inner()
            .sweep_lock
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let horizon = self.live_horizon();
        self.inner().swept_upto.fetch_max(horizon, Ordering::SeqCst);
        let mut to_drop: Vec<(Signal, u64, u64)> = {
            let mut parts = self
                .inner()
                .partitions
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let expired: Vec<(Signal, u64, u64)> = parts
                .iter()
                .filter(|(_, p)| p.end <= horizon)
                .map(|((signal, start), p)| (*signal, *start, p.end))
                .collect();
            for (signal, start, _) in &expired {
                parts.remove(&(*signal, *start));
            }
            expired
        };
        drop(exclusive);
        to_drop.append(&mut self.lock_pending_drops());
        let mut dropped = 0;
        let mut first_error = None;
        for (signal, start, end) in to_drop {
            let began = std::time::Instant::now();
            // The value log first: a partition is found at open by its value log, and runs
            // without one are removed then.
            let dir = self
                .inner()
                .runs_dir
                .join(partition_dir_name(signal, start, end));
            let result = self.inner().vlog.remove(signal, start, end).and_then(|_| {
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(StoreError::Io {
                        what: "remove run directory",
                        path: dir.display().to_string(),
                        source: e,
                    }),
                }
            });
            match result {
                Ok(()) => {
                    dropped += 1;
                    events::StorePartitionExpired {
                        signal,
                        start,
                        end,
                        took: began.elapsed(),
                    }
                    .emit();
                }
                Err(e) => {
                    self.lock_pending_drops().push((signal, start, end));
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(dropped),
        }
    }

    /// Enforces `storage.max_disk_size`: while the data directory is over it, drops the
    /// partitions holding the oldest data. It does that by raising the sweep horizon to the
    /// oldest partition's end and sweeping, so a size drop is an early expiry: data that
    /// arrives later for that time is expired on arrival, as after a retention sweep, and
    /// no writer can bring a dropped partition back. The newest partition of each signal is
    /// never dropped (intake keeps working; a warning says the bound cannot be kept).
    /// Returns how many partitions were dropped.
    pub fn enforce_disk_size(&self) -> Result<usize, StoreError> {
        let Some(max) = self.inner().max_disk_size else {
            return Ok(0);
        };
        let mut dropped = 0;
        loop {
            let usage = self.size_on_disk();
            if usage <= max {
                return Ok(dropped);
            }
            let (oldest_end, newest_start) = {
                let parts = self
                    .inner()
                    .partitions
                    .read()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let oldest = parts.values().map(|p| p.end).min();
                let newest = Signal::ALL
                    .iter()
                    .filter_map(|s| {
                        parts
                            .range((*s, 0)..=(*s, u64::MAX))
                            .next_back()
                            .map(|((_, start), _)| *start)
                    })
                    .min();
                (oldest, newest)
            };
            let (Some(end), Some(limit)) = (oldest_end, newest_start) else {
                events::StoreOverDiskSize {
                    disk_bytes: usage,
                    max_disk_bytes: max,
                }
                .emit();
                return Ok(dropped);
            };
            if end > limit {
                events::StoreOverDiskSize {
                    disk_bytes: usage,
                    max_disk_bytes: max,
                }
                .emit();
                return Ok(dropped);
            }
            let going: Vec<(Signal, u64, u64)> = self
                .inner()
                .partitions
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .iter()
                .filter(|(_, p)| p.end <= end)
                .map(|((signal, start), p)| (*signal, *start, p.end))
                .collect();
            self.inner().swept_upto.fetch_max(end, Ordering::SeqCst);
            let n = self.sweep_expired()?;
            for (signal, start, end) in going {
                events::StorePartitionDroppedForSize {
                    signal,
                    start,
                    end,
                    disk_bytes: usage,
                    max_disk_bytes: max,
                }
                .emit();
            }
            self.inner()
                .dropped_for_size
                .fetch_add(n as u64, Ordering::Relaxed);
            dropped += n;
            if n == 0 {
                return Ok(dropped);
            }
        }
    }

    fn lock_pending_drops(&self) -> std::sync::MutexGuard<'_, Vec<(Signal, u64, u64)>> {
        self.inner()
            .pending_drops
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use crate::config;
    use crate::store::{LogQuery, TraceQuery, now_ns, temp_store};

    fn spans(tid: [u8; 16], start: u64) -> Vec<ResourceSpans> {
        vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: tid.to_vec(),
                    span_id: vec![1; 8],
                    name: "op".into(),
                    start_time_unix_nano: start,
                    end_time_unix_nano: start + 1,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }]
    }

    /// A smoke test of the locking: writers (half of them into the partition that is just
    /// expiring), lock-free readers and the sweeper race over one-second partitions for
    /// 3.5 s; no operation may fail, and expired partitions are dropped. The races it guards against
    /// have narrow windows, so a pass is evidence, not proof; the design argument is on
    /// `Inner::sweep_lock`.
    #[test]
    fn sweeping_never_breaks_concurrent_reads_and_writes() {
        let mut cfg = config::Storage {
            retention: std::time::Duration::from_secs(1),
            partition: std::time::Duration::from_secs(1),
            ..config::Storage::default()
        };
        let (_dir, store) = temp_store(&mut cfg);
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            let (store, stop) = (store.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let mut tid = [7u8; 16];
                    tid[..8].copy_from_slice(&n.to_be_bytes());
                    // Every other write lands in the partition that is just expiring.
                    let t = now_ns()
                        - if n.is_multiple_of(2) {
                            1_000_000_000
                        } else {
                            0
                        };
                    let w = store.prepare_spans(spans(tid, t)).expect("prepare");
                    store.apply(w).expect("apply during sweeps");
                }
            }));
        }
        {
            let (store, stop) = (store.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let q = TraceQuery {
                    service: crate::otlp::UNKNOWN_SERVICE.into(),
                    limit: 50,
                    search_depth: 1000,
                    ..Default::default()
                };
                let lq = LogQuery {
                    limit: 10,
                    ..Default::default()
                };
                while !stop.load(Ordering::SeqCst) {
                    store.find_traces(&q).expect("find during sweeps");
                    store.search_logs(&lq).expect("logs during sweeps");
                    store.get_trace(&[7u8; 16]).expect("get during sweeps");
                }
            }));
        }
        let began = std::time::Instant::now();
        let mut dropped = 0;
        while began.elapsed() < std::time::Duration::from_millis(3500) {
            dropped += store.sweep_expired().expect("sweep");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        stop.store(true, Ordering::SeqCst);
        for t in threads {
            t.join().expect("no thread panicked");
        }
        assert!(dropped >= 1, "a partition expired and was dropped");
    }

    /// Four hourly partitions of about 2 MB each; a bound of 60% of what they take drops the
    /// oldest ones first, never the newest, and data for the dropped time is expired on
    /// arrival afterwards.
    #[test]
    fn max_disk_size_drops_the_oldest_partitions() {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
        let hour = 3_600_000_000_000u64;
        let mut cfg = config::Storage {
            compression: config::StorageCompression::None,
            ..config::Storage::default()
        };
        let (dir, store) = temp_store(&mut cfg);
        let now = now_ns();
        let tid = |h: u64, i: u64| {
            let mut t = [0u8; 16];
            t[..8].copy_from_slice(&h.to_be_bytes());
            t[8..].copy_from_slice(&i.to_be_bytes());
            t
        };
        for h in 0..4u64 {
            let at = now - (3 - h) * hour;
            for i in 0..400u64 {
                let mut rs = spans(tid(h, i), at);
                // An attribute that does not compress: about 5 KB of pseudo-random hex.
                let mut x = h * 1_000_003 + i;
                let noise: String = (0..5000)
                    .map(|_| {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        char::from(b"0123456789abcdef"[(x >> 60) as usize])
                    })
                    .collect();
                rs[0].scope_spans[0].spans[0].attributes.push(KeyValue {
                    key: "noise".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(noise)),
                    }),
                    ..Default::default()
                });
                store.apply(store.prepare_spans(rs).unwrap()).unwrap();
            }
        }
        store.inner().vlog.sync().unwrap();
        let usage = store.size_on_disk();
        assert!(usage > 8_000_000, "{usage}");
        drop(store);

        let mut cfg = config::Storage {
            max_disk_size: Some(usage * 6 / 10),
            ..cfg
        };
        cfg.path = dir.path().join("db");
        let store = crate::store::Store::open(&cfg).unwrap();
        let dropped = store.enforce_disk_size().unwrap();
        assert!((1..=3).contains(&dropped), "{dropped}");
        assert!(store.size_on_disk() <= usage * 6 / 10);
        assert_eq!(store.background_stats().dropped_for_size, dropped as u64);
        // The oldest hour is gone, the newest is whole.
        assert!(store.get_trace(&tid(0, 7)).unwrap().is_none());
        assert!(store.get_trace(&tid(3, 7)).unwrap().is_some());
        // Late data for the dropped hour is expired on arrival, not written back.
        let late = store
            .prepare_spans(spans(tid(0, 999), now - 3 * hour))
            .unwrap();
        assert_eq!(store.apply(late).unwrap(), 1);

        // A bound nothing can meet keeps the newest partition and goes on taking writes.
        drop(store);
        cfg.max_disk_size = Some(1);
        let store = crate::store::Store::open(&cfg).unwrap();
        store.enforce_disk_size().unwrap();
        assert!(store.get_trace(&tid(3, 7)).unwrap().is_some());
        let w = store.prepare_spans(spans(tid(3, 1000), now)).unwrap();
        assert_eq!(store.apply(w).unwrap(), 0);
    }
}

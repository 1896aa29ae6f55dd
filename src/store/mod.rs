//! The store: what is on disk, in which file, under which key.
//!
//! [`Store`] is a cheap handle (an `Arc`) over the data directory. It owns:
//! - **time partitions**: data is written into one partition per signal per
//!   `storage.partition` of *data* time (span start, log record time, metric point time). A
//!   partition is a value-log file ([`vlog`], `values/<signal>-<start>-<end>.vlog`: bodies and
//!   the index frame of every request) and an index ([`table`]: a memtable plus sorted runs
//!   in `runs/<signal>-<start>-<end>/`, see [`run`]). The ack path does no sled operation
//!   for the data. Once a run covers part of the value log, that part is rewritten as
//!   compressed segments beside it ([`zseg`]) and freed. Retention deletes a partition's
//!   files and runs whole once its end is older than `storage.retention`, or oldest first
//!   while the directory is over `storage.max_disk_size` ([`retention`]).
//! - **the catalog**: services, operations and indexed attribute values, kept in memory and
//!   mirrored in the sled tree `catalog` so a restart knows them (written only when something
//!   is new).
//! - the sled database the other stages keep their state in (analysis series, alerts, queues,
//!   the tail buffer), and the queue log of the exporters' bodies.
//!
//! The key layout of the index is in [`keys`]. Writes are prepared off-line into a
//! [`Write`] (per touched partition: bodies and index entries, see [`write`]), applied, and
//! made durable by [`Store::flush`], which `intake` groups across requests. Reads are in
//! [`read`].
//!
//! Store format 2. A data directory of format 1 (a sled tree per partition) is refused at open
//! with [`StoreError::OldFormat`].
//!
//! What it does not own: deciding when to flush (intake), validation (receiver), query
//! argument checking (query).

mod catalog;
pub mod keys;
pub mod read;
pub mod retention;
pub mod run;
pub(crate) mod table;
pub mod vlog;
pub mod write;
pub mod zseg;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) use catalog::Catalog;
pub use catalog::{MAX_OPERATIONS_PER_SERVICE, MAX_SERVICES};
use catalog::{attribute_index_since, load_catalog};
pub use read::{LogQuery, TraceQuery, TraceSummary};
pub use write::Write;

use crate::config;
use crate::telemetry::events;

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (I/O, or a corrupt database).
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value could not be decoded: the database holds something sieve did not write.
    #[error("stored {what} is corrupt: {reason}")]
    Corrupt { what: &'static str, reason: String },
    /// The store was written with another `storage.partition` than the one configured.
    #[error(
        "the store's partitions are {found_secs}s wide but storage.partition is {configured_secs}s; set it back, or move the data directory away to start afresh"
    )]
    PartitionWidthChanged {
        found_secs: u64,
        configured_secs: u64,
    },
    /// The data directory was written by an older sieve whose store layout this one does not
    /// read.
    #[error(
        "the data directory {path} holds data in an older store format (sled trees per partition); this sieve keeps partitions as value-log files and index runs. Move the directory away (or delete it) to start afresh"
    )]
    OldFormat { path: String },
    /// A value log file operation failed.
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
}

pub use crate::otlp::Signal;

/// The tree-name prefix of a signal's partitions (and, without the slash, of its value-log
/// files).
pub(crate) fn tree_prefix(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "spans/",
        Signal::Logs => "logs/",
        Signal::Metrics => "metrics/",
    }
}

/// One open partition: its index (memtable and runs); its bodies are in the value log.
#[derive(Clone)]
pub(crate) struct Partition {
    /// Exclusive end of the data time this partition holds.
    pub end: u64,
    pub table: Arc<table::Table>,
}

/// A cheap, cloneable handle to the store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub db: sled::Db,
    /// Chunk bodies; sled holds pointers into it.
    pub vlog: vlog::ValueLog,
    /// Bodies of the exporters' queue entries (`stages::export::queue` owns its layout). Synced with
    /// the rest by [`Store::flush`], so an acknowledged request is on disk in every queue too.
    pub queue_log: vlog::ValueLog,
    pub catalog_tree: sled::Tree,
    /// Width of a partition in nanoseconds.
    pub partition_ns: u64,
    pub retention: Duration,
    pub attribute_index: config::AttributeIndex,
    /// Where partitions keep their index runs (`runs/<signal>-<start>-<end>/`).
    pub runs_dir: std::path::PathBuf,
    /// The data directory (for its size on disk).
    pub path: std::path::PathBuf,
    /// `storage.memtable_mib` in bytes.
    pub memtable_bytes: usize,
    /// `storage.compression` is zstd: sealed ranges of the value log are compacted.
    pub compress: bool,
    /// `storage.max_disk_size`.
    pub max_disk_size: Option<u64>,
    /// Partitions dropped because the directory was over `max_disk_size`, since start.
    pub dropped_for_size: AtomicU64,
    /// Data time from which the attribute index is complete under the current bounds: 0 for
    /// a store that always had them, the time of the change when they were changed (values
    /// may then have been skipped before). Earlier time ranges are searched by scanning.
    pub attribute_index_since: u64,
    /// Open partitions by (signal, start). A std lock: it guards a map lookup or insert and is
    /// never held across an await or a sled write.
    pub partitions: RwLock<BTreeMap<(Signal, u64), Partition>>,
    /// A std lock for the same reason: one short critical section per request.
    pub catalog: Mutex<Catalog>,
    /// Writers hold it shared while they look up partitions and apply to them (about a
    /// millisecond). The sweeper holds it exclusively only to unlink expired partitions from
    /// `partitions`; once it lets go no writer holds their handles or can get them again, so
    /// it drops trees and files without the lock. Readers do not take it (a long query must
    /// not hold up a sweep, which would hold up intake behind it): a reader meeting a tree
    /// dropped under it treats the partition as gone, which it is. A std lock: never held
    /// across an await.
    pub sweep_lock: RwLock<()>,
    /// The newest horizon a sweep has used. Data in partitions ending at or before it is
    /// never written (it is expired on arrival), even if the wall clock steps back.
    pub swept_upto: AtomicU64,
    /// Expired partitions whose drop failed; the next sweep retries them.
    pub pending_drops: Mutex<Vec<(Signal, u64, u64)>>,
    /// Seal threads not yet joined. Each holds a [`Store`], and with it sled's lock on the
    /// directory: [`Store::close`] joins them so the directory can be opened again at once.
    pub background: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

/// How long [`Store::open`] waits for a lock on the directory held by a store just closed.
pub const LOCK_WAIT: Duration = Duration::from_secs(2);

impl Store {
    /// Opens (or creates) the database at `cfg.path` and loads the catalog and the partition
    /// list.
    ///
    /// sled 0.34 releases its lock on the directory from its flusher thread, which it does not
    /// join when the last handle drops (sled issues #1234, #1289): a store closed a moment ago
    /// in this process may still hold it. The open waits up to [`LOCK_WAIT`] for that; a
    /// directory another process keeps open is an error after the wait.
    pub fn open(cfg: &config::Storage) -> Result<Store, StoreError> {
        let sled_config = sled::Config::new()
            .path(&cfg.path)
            .cache_capacity(cfg.cache_capacity_mib.saturating_mul(1024 * 1024))
            .flush_every_ms(if cfg.sync {
                // Flushes are driven by intake; a background flush as well costs throughput.
                None
            } else {
                Some(cfg.flush_every.as_millis().max(1) as u64)
            });
        let began = std::time::Instant::now();
        let db = loop {
            match sled_config.open() {
                // sled words it as an `Other` error naming the `WouldBlock` it got.
                Err(sled::Error::Io(e))
                    if e.to_string().starts_with("could not acquire lock")
                        && e.to_string().contains("WouldBlock")
                        && began.elapsed() < LOCK_WAIT =>
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => break other?,
            }
        };
        let vlog = vlog::ValueLog::open(cfg.path.join("values"))?;
        let queue_log = vlog::ValueLog::open(cfg.path.join("queue"))?;
        Store::from_db(db, vlog, queue_log, cfg)
    }

    fn from_db(
        db: sled::Db,
        vlog: vlog::ValueLog,
        queue_log: vlog::ValueLog,
        cfg: &config::Storage,
    ) -> Result<Store, StoreError> {
        // Store format 1 kept a sled tree per partition; this one keeps none.
        if db.tree_names().iter().any(|n| {
            Signal::ALL
                .iter()
                .any(|s| n.starts_with(tree_prefix(*s).as_bytes()))
        }) {
            return Err(StoreError::OldFormat {
                path: cfg.path.display().to_string(),
            });
        }
        let catalog_tree = db.open_tree(keys::StateTree::Catalog.name())?;
        let partition_ns = (cfg.partition.as_nanos().min(u64::MAX as u128) as u64).max(1);
        let found = vlog.list()?;
        if let Some((_, start, end)) = found
            .iter()
            .find(|(_, start, end)| end.saturating_sub(*start) != partition_ns)
        {
            return Err(StoreError::PartitionWidthChanged {
                found_secs: end.saturating_sub(*start) / 1_000_000_000,
                configured_secs: partition_ns / 1_000_000_000,
            });
        }
        let runs_dir = cfg.path.join("runs");
        std::fs::create_dir_all(&runs_dir).map_err(|e| StoreError::Io {
            what: "create run directory",
            path: runs_dir.display().to_string(),
            source: e,
        })?;
        remove_orphan_run_dirs(&runs_dir, &found)?;
        let memtable_bytes = (cfg.memtable_mib as usize).saturating_mul(1024 * 1024);
        let mut partitions = BTreeMap::new();
        for (signal, start, end) in found {
            let t = table::Table::open(
                &vlog,
                signal,
                start,
                end,
                runs_dir.join(partition_dir_name(signal, start, end)),
                memtable_bytes,
            )?;
            t.seal(&vlog)?;
            partitions.insert(
                (signal, start),
                Partition {
                    end,
                    table: Arc::new(t),
                },
            );
        }
        let catalog = load_catalog(&catalog_tree)?;
        let attribute_index_since = attribute_index_since(&catalog_tree, &cfg.attribute_index)?;
        let store = Store {
            inner: Arc::new(Inner {
                db,
                vlog,
                queue_log,
                catalog_tree,
                partition_ns,
                retention: cfg.retention,
                attribute_index: cfg.attribute_index.clone(),
                runs_dir,
                path: cfg.path.clone(),
                memtable_bytes,
                compress: cfg.compression == config::StorageCompression::Zstd,
                max_disk_size: cfg.max_disk_size,
                dropped_for_size: AtomicU64::new(0),
                attribute_index_since,
                partitions: RwLock::new(partitions),
                catalog: Mutex::new(catalog),
                sweep_lock: RwLock::new(()),
                swept_upto: AtomicU64::new(0),
                pending_drops: Mutex::new(Vec::new()),
                background: Mutex::new(Vec::new()),
            }),
        };
        // Upkeep a crash or an older version left undone (merges, compaction) is not done
        // here, so the gateway is ready without waiting for it: the sweeper's first tick,
        // at start, does it (`seal_idle`).
        Ok(store)
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Shared hold on the partition handles for a writer (see `Inner::sweep_lock`).
    pub(crate) fn hold_partitions(&self) -> RwLockReadGuard<'_, ()> {
        self.inner
            .sweep_lock
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Data time before which everything is expired: the retention horizon, or the last
    /// sweep's if that is newer.
    pub(crate) fn live_horizon(&self) -> u64 {
        self.retention_horizon()
            .max(self.inner.swept_upto.load(Ordering::SeqCst))
    }

    /// Applies a prepared write. Not durable until [`Store::flush`] returns. Parts whose
    /// partition is already past retention are not written (a replay of data older than the
    /// retention is expired on arrival); returns how many items that left out.
    ///
    /// No sled operation happens here (see `table`): each part is one append to its
    /// partition's value log and some memtable inserts. A memtable that fills is written out
    /// as a run on a background thread.
    pub fn apply(&self, write: Write) -> Result<u64, StoreError> {
        let _held = self.hold_partitions();
        let horizon = self.live_horizon();
        let mut expired = 0u64;
        for part in write.parts {
            // Every partition is `partition_ns` wide (a store with another width is refused
            // at open), so its end follows from its start.
            if part.start.saturating_add(self.inner.partition_ns) <= horizon {
                expired += part.items;
                continue;
            }
            let p = self.partition(part.signal, part.start)?;
            if p.table.apply(&self.inner.vlog, part.entries, part.chunks)? {
                self.seal_in_background(p.table);
            }
        }
        if let Some(batch) = write.catalog {
            self.inner.catalog_tree.apply_batch(batch)?;
        }
        Ok(expired)
    }

    /// Writes a table's frozen memtables out as runs on a thread of their own, so the request
    /// that filled the memtable does not wait for it. A failure leaves them in memory for the
    /// next [`Store::seal_idle`] to retry.
    fn seal_in_background(&self, table: Arc<table::Table>) {
        let store = self.clone();
        let spawned = std::thread::Builder::new()
            .name("sieve-seal".into())
            .spawn(move || match table.seal(&store.inner.vlog) {
                Ok(_) => maintain(&table, &store.inner.vlog, store.inner.compress),
                Err(e) => events::StoreRunWriteFailed { error: &e }.emit(),
            });
        match spawned {
            Ok(handle) => {
                let mut threads = self
                    .inner
                    .background
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                threads.retain(|t| !t.is_finished());
                threads.push(handle);
            }
            Err(e) => events::StoreRunWriteFailed { error: &e }.emit(),
        }
    }

    /// Waits for the seal threads still running, then [`Store::flush`]es. The gateway calls
    /// it last, once nothing writes any more: after it, dropping the last handle releases the
    /// directory, so a restart in the same process can open it straight away.
    pub async fn close(&self) -> Result<(), StoreError> {
        let threads = std::mem::take(
            &mut *self
                .inner
                .background
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        if !threads.is_empty() {
            let _ = tokio::task::spawn_blocking(move || {
                for t in threads {
                    // A seal that panicked has left its memtables in memory; the flush below
                    // still makes the value log and sled durable.
                    let _ = t.join();
                }
            })
            .await;
        }
        self.flush().await
    }

    /// Freezes the memtables of partitions not written to for `idle`, and writes every
    /// frozen memtable out as a run (retrying failed ones). The sweeper calls it.
    pub fn seal_idle(&self, idle: Duration) -> Result<usize, StoreError> {
        let since = now_ns().saturating_sub(idle.as_nanos().min(u64::MAX as u128) as u64);
        let tables: Vec<Arc<table::Table>> = {
            let parts = self
                .inner
                .partitions
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            parts.values().map(|p| p.table.clone()).collect()
        };
        let mut written = 0;
        for t in tables {
            t.freeze_if_idle(&self.inner.vlog, since)?;
            written += t.seal(&self.inner.vlog)?;
            // Also retries upkeep that failed after its seal.
            maintain(&t, &self.inner.vlog, self.inner.compress);
        }
        Ok(written)
    }

    /// Makes everything applied so far durable: the value log files first, then sled's log,
    /// so a durable pointer never points at bytes that are not.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            store.inner.vlog.sync()?;
            store.inner.queue_log.sync()
        })
        .await
        .map_err(|e| StoreError::Corrupt {
            what: "flush task",
            reason: e.to_string(),
        })??;
        self.inner.db.flush_async().await?;
        Ok(())
    }

    /// Reads a chunk body through its pointer (the last 12 bytes of a chunk's sled value).
    pub(crate) fn read_chunk(
        &self,
        signal: Signal,
        start: u64,
        part: &Partition,
        sled_value: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let ptr = sled_value
            .len()
            .checked_sub(vlog::Pointer::LEN)
            .and_then(|at| vlog::Pointer::decode(&sled_value[at..]))
            .ok_or_else(|| StoreError::Corrupt {
                what: "chunk pointer",
                reason: format!("{} bytes", sled_value.len()),
            })?;
        self.inner.vlog.read(signal, start, part.end, ptr)
    }

    /// A stage's state tree (see [`keys::StateTree`]).
    pub fn state_tree(&self, tree: keys::StateTree) -> Result<sled::Tree, StoreError> {
        Ok(self.inner.db.open_tree(tree.name())?)
    }

    /// Every export queue on disk (configured or not): exporter name and tree.
    pub fn export_queue_trees(&self) -> Result<Vec<(String, sled::Tree)>, StoreError> {
        let mut out = Vec::new();
        for name in self.inner.db.tree_names() {
            if let Some(exporter) = keys::StateTree::export_queue_of(&name) {
                out.push((exporter, self.inner.db.open_tree(&name)?));
            }
        }
        Ok(out)
    }

    /// Makes every state tree's changes durable (sled's flush).
    pub async fn flush_state(&self) -> Result<(), StoreError> {
        self.inner.db.flush_async().await?;
        Ok(())
    }

    /// The value log of the export queues' bodies.
    pub(crate) fn queue_log(&self) -> &vlog::ValueLog {
        &self.inner.queue_log
    }

    /// Bytes the data directory occupies on disk, as `du` counts them (allocated blocks of
    /// every file under it: sled, value logs, index runs, queues).
    pub fn size_on_disk(&self) -> u64 {
        disk_usage(&self.inner.path)
    }

    /// Compaction and size-bound counters since start: (compactions, raw bytes, compressed
    /// bytes, microseconds, partitions dropped for size).
    pub fn background_stats(&self) -> BackgroundStats {
        let c = &self.inner.vlog.compaction;
        BackgroundStats {
            compactions: c.segments.load(Ordering::Relaxed),
            compacted_raw_bytes: c.raw_bytes.load(Ordering::Relaxed),
            compacted_bytes: c.compressed_bytes.load(Ordering::Relaxed),
            compaction_micros: c.micros.load(Ordering::Relaxed),
            dropped_for_size: self.inner.dropped_for_size.load(Ordering::Relaxed),
        }
    }

    /// `storage.max_disk_size`, if set.
    pub fn max_disk_size(&self) -> Option<u64> {
        self.inner.max_disk_size
    }

    /// A unique, increasing sequence number (sled persists its counter).
    pub(crate) fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(self.inner.db.generate_id()?)
    }

    /// The start of the partition holding data time `t`.
    pub(crate) fn partition_start(&self, t: u64) -> u64 {
        t - t % self.inner.partition_ns
    }

    /// A partition, opened (and created) on first use.
    fn partition(&self, signal: Signal, start: u64) -> Result<Partition, StoreError> {
        if let Ok(parts) = self.inner.partitions.read()
            && let Some(p) = parts.get(&(signal, start))
        {
            return Ok(p.clone());
        }
        let mut parts = self
            .inner
            .partitions
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(p) = parts.get(&(signal, start)) {
            return Ok(p.clone());
        }
        let end = start.saturating_add(self.inner.partition_ns);
        let table = table::Table::open(
            &self.inner.vlog,
            signal,
            start,
            end,
            self.inner
                .runs_dir
                .join(partition_dir_name(signal, start, end)),
            self.inner.memtable_bytes,
        )?;
        let p = Partition {
            end,
            table: Arc::new(table),
        };
        parts.insert((signal, start), p.clone());
        Ok(p)
    }

    /// The live partitions of a signal, newest first, overlapping [min, max] of data time.
    pub(crate) fn partitions_newest_first(
        &self,
        signal: Signal,
        min: u64,
        max: u64,
    ) -> Vec<(u64, Partition)> {
        let min = min.max(self.live_horizon());
        let parts = self
            .inner
            .partitions
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        parts
            .range((signal, 0)..=(signal, u64::MAX))
            .filter(|((_, start), p)| p.end > min && *start <= max)
            .map(|((_, start), p)| (*start, p.clone()))
            .rev()
            .collect()
    }

    /// The oldest data time still kept: data older than this is expired.
    pub fn retention_horizon(&self) -> u64 {
        now_ns().saturating_sub(self.inner.retention.as_nanos().min(u64::MAX as u128) as u64)
    }
}

/// `spans-<start>-<end>`, zero-padded so names sort by time: a partition's run directory.
pub(crate) fn partition_dir_name(signal: Signal, start: u64, end: u64) -> String {
    format!(
        "{}-{start:020}-{end:020}",
        tree_prefix(signal).trim_end_matches('/')
    )
}

/// Removes run directories whose partition has no value log (a crash between deleting the
/// value log and the runs of an expired partition).
fn remove_orphan_run_dirs(
    runs_dir: &std::path::Path,
    found: &[(Signal, u64, u64)],
) -> Result<(), StoreError> {
    let keep: HashSet<String> = found
        .iter()
        .map(|(s, a, b)| partition_dir_name(*s, *a, *b))
        .collect();
    let entries = std::fs::read_dir(runs_dir).map_err(|e| StoreError::Io {
        what: "list run directory",
        path: runs_dir.display().to_string(),
        source: e,
    })?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !keep.contains(&name) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

/// A table's background upkeep after a seal: merges its runs (see `Table::merge_runs`),
/// and with `compress`, compacts what its runs cover (see [`zseg`]). A failure is logged and
/// the next seal or sweep tick tries again (nothing is removed before its replacement is
/// durable).
fn maintain(table: &table::Table, vlog: &vlog::ValueLog, compress: bool) {
    if compress {
        let began = std::time::Instant::now();
        match table.compact(vlog) {
            Ok(Some(w)) => events::StoreCompacted {
                signal: table.signal,
                start: table.start,
                raw_bytes: w.raw_bytes,
                compressed_bytes: w.file_bytes,
                took: began.elapsed(),
            }
            .emit(),
            Ok(None) => {}
            Err(e) => events::StoreCompactionFailed { error: &e }.emit(),
        }
    }
    match table.merge_runs() {
        Ok(0) => {}
        Ok(merges) => events::StoreRunsMerged {
            signal: table.signal,
            start: table.start,
            merges,
        }
        .emit(),
        Err(e) => events::StoreRunMergeFailed { error: &e }.emit(),
    }
}

/// The store's background work since start ([`Store::background_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackgroundStats {
    /// Value-log ranges rewritten as compressed segments.
    pub compactions: u64,
    /// Raw bytes those ranges held, and bytes of the segments written for them.
    pub compacted_raw_bytes: u64,
    pub compacted_bytes: u64,
    /// Time spent compressing, microseconds.
    pub compaction_micros: u64,
    /// Partitions dropped because the data directory was over `storage.max_disk_size`.
    pub dropped_for_size: u64,
}

/// Allocated bytes of every file under `path` (what `du` reports).
pub fn disk_usage(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            }
            total += meta.blocks() * 512;
        }
    }
    total
}

/// Wall-clock time in unix nanoseconds.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(u64::MAX as u128) as u64)
        .unwrap_or(0)
}

/// Opens a store for unit tests in a fresh temporary directory.
#[cfg(test)]
pub(crate) fn temp_store(cfg: &mut config::Storage) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    cfg.path = dir.path().join("db");
    let store = Store::open(cfg).expect("open store");
    (dir, store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// The catalog's bounded value index against a flat oracle keyed by (service, key):
        /// the same values end up indexed, and each call answers as the oracle does.
        #[test]
        fn catalog_value_index_matches_a_flat_oracle(
            calls in prop::collection::vec((0u8..3, 0u8..3, 0u8..4), 0..200),
            max_keys in 1usize..6,
            max_values in 1usize..4,
        ) {
            let mut cat = Catalog::default();
            let mut oracle: HashMap<(String, String), HashSet<String>> = HashMap::new();
            for (s, k, v) in calls {
                let (s, k, v) = (format!("s{s}"), format!("k{k}"), format!("v{v}"));
                let pair = (s.clone(), k.clone());
                let n_keys = oracle.len();
                let expected = match oracle.get_mut(&pair) {
                    Some(values) if values.contains(&v) => Some(false),
                    Some(values) if values.len() < max_values => {
                        values.insert(v.clone());
                        Some(true)
                    }
                    Some(_) => None,
                    None if n_keys < max_keys => {
                        oracle.insert(pair, std::iter::once(v.clone()).collect());
                        Some(true)
                    }
                    None => None,
                };
                prop_assert_eq!(cat.index_value(&s, &k, &v, max_keys, max_values), expected);
                prop_assert_eq!(cat.is_indexed(&s, &k, &v), expected.is_some());
            }
            prop_assert_eq!(cat.indexed_keys, oracle.len());
        }
    }

    #[test]
    fn catalog_operations_count_each_name_and_kind_once() {
        let mut cat = Catalog::default();
        assert!(cat.set_operation("web", "GET /", 2, 10));
        assert!(!cat.set_operation("web", "GET /", 2, 20));
        assert!(cat.set_operation("web", "GET /", 3, 5));
        assert!(cat.set_operation("db", "GET /", 2, 1));
        assert_eq!(cat.operation("web", "GET /", 2), Some(20));
        assert_eq!(cat.operation("web", "GET /", 3), Some(5));
        assert_eq!(cat.operation("web", "POST /", 2), None);
        assert_eq!(cat.operations_per_service["web"], 2);
        assert_eq!(cat.operations_per_service["db"], 1);
    }

    /// Reopening a store with another partition width is refused with a message that says
    /// what to do; the same width reopens, and run directories without a value log (a crash
    /// in the middle of dropping an expired partition) are removed.
    #[test]
    fn partition_width_is_fixed_per_store_and_orphans_are_removed() {
        let mut cfg = config::Storage::default();
        let (dir, store) = temp_store(&mut cfg);
        let w = store
            .prepare_metrics(vec![Default::default()])
            .expect("prepare");
        store.apply(w).expect("apply");
        drop(store);
        let orphan = cfg.path.join("runs").join(partition_dir_name(
            Signal::Logs,
            3_600_000_000_000,
            7_200_000_000_000,
        ));
        std::fs::create_dir_all(&orphan).unwrap();

        let narrow = config::Storage {
            partition: Duration::from_secs(10),
            ..cfg.clone()
        };
        let e = Store::open(&narrow).err().expect("refused").to_string();
        assert!(e.contains("3600s wide but storage.partition is 10s"), "{e}");

        let store = Store::open(&cfg).expect("same width reopens");
        assert!(!orphan.exists());
        drop(store);
        drop(dir);
    }

    /// A store closed a moment ago reopens at once, time after time (sled lets go of the
    /// directory lock from a thread it does not join); one still open elsewhere is refused
    /// after the wait, with sled's message naming the lock.
    #[test]
    fn a_closed_store_reopens_at_once_and_an_open_one_is_refused() {
        let mut cfg = config::Storage {
            sync: false, // the configuration with sled's flusher thread
            ..config::Storage::default()
        };
        let (_dir, store) = temp_store(&mut cfg);
        let began = std::time::Instant::now();
        let e = Store::open(&cfg).err().expect("held").to_string();
        assert!(e.contains("could not acquire lock"), "{e}");
        assert!(began.elapsed() >= LOCK_WAIT, "{:?}", began.elapsed());
        drop(store);
        for round in 0..20u64 {
            let store = Store::open(&cfg).unwrap_or_else(|e| panic!("reopen {round}: {e}"));
            let w = store
                .prepare_metrics(vec![Default::default()])
                .expect("prepare");
            store.apply(w).expect("apply");
            drop(store);
        }
    }

    /// A data directory of the previous store format (a sled tree per partition) is refused
    /// with a message saying what to do, not read as empty or half understood.
    #[test]
    fn old_store_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config::Storage {
            path: dir.path().join("db"),
            ..config::Storage::default()
        };
        {
            let db = sled::open(&cfg.path).unwrap();
            db.open_tree("spans/00000000000000000000-00000000003600000000")
                .unwrap()
                .insert(b"c", b"x")
                .unwrap();
            db.flush().unwrap();
        }
        let mut e = None;
        for _ in 0..100 {
            match Store::open(&cfg) {
                Err(StoreError::Sled(x)) if x.to_string().contains("lock") => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                other => {
                    e = other.err();
                    break;
                }
            }
        }
        let e = e.expect("refused").to_string();
        assert!(
            e.contains("older store format") && e.contains("Move the directory away"),
            "{e}"
        );
    }
}

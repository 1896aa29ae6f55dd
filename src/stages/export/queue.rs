//! The exporters' persistent queues.
//!
//! Layout: one sled tree per exporter, `queue/<exporter name>`, keyed by a sequence number
//! (u64 big-endian, increasing across all queues), whose value is an [`EntryMeta`]: the
//! signal, the item count and a pointer into the queue value log (`<data>/queue/`, files
//! `<signal>-<segment>-<segment+1>.vlog`). A request's body is appended to the log once and
//! referenced from every queue it enters.
//!
//! Durability: the receiver enqueues before it commits its store write, and intake's flush
//! syncs the queue log and sled together, so an acknowledged request is on disk in every
//! queue (`Store::flush`). Removing an entry after the downstream's OK is not flushed at once:
//! a crash may resend it (at-least-once), never lose it.
//!
//! Segments: appends go to the active segment of their signal; past [`SEGMENT_BYTES`] a new
//! one starts. A segment's file is deleted once no entry points into it and it is not active,
//! after a sled flush has made those removals durable ([`Queues::collect_garbage`]); reference
//! counts live in memory and are rebuilt from the trees at start-up, when unreferenced files
//! are deleted too.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::config::WhenFull;
use crate::otlp::Signal;
use crate::store::vlog::Pointer;
use crate::store::{Store, StoreError};

/// Size at which a new segment file starts.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// What a queue entry's sled value holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMeta {
    pub key: u64,
    pub signal: Signal,
    pub items: u64,
    pub segment: u64,
    pub ptr: Pointer,
}

impl EntryMeta {
    const LEN: usize = 1 + 8 + 8 + Pointer::LEN;

    fn encode(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0] = match self.signal {
            Signal::Traces => 0,
            Signal::Logs => 1,
            Signal::Metrics => 2,
        };
        b[1..9].copy_from_slice(&self.items.to_be_bytes());
        b[9..17].copy_from_slice(&self.segment.to_be_bytes());
        b[17..].copy_from_slice(&self.ptr.encode());
        b
    }

    pub(crate) fn decode(key: &[u8], v: &[u8]) -> Option<EntryMeta> {
        let signal = match v.first()? {
            0 => Signal::Traces,
            1 => Signal::Logs,
            2 => Signal::Metrics,
            _ => return None,
        };
        if v.len() != Self::LEN {
            return None;
        }
        Some(EntryMeta {
            key: u64::from_be_bytes(key.try_into().ok()?),
            signal,
            items: u64::from_be_bytes(v[1..9].try_into().ok()?),
            segment: u64::from_be_bytes(v[9..17].try_into().ok()?),
            ptr: Pointer::decode(&v[17..])?,
        })
    }

    /// Bytes of the body it points at.
    pub fn bytes(&self) -> u64 {
        u64::from(self.ptr.len)
    }
}

/// What [`Queue::take`] got: the batch, and entries whose body was unreadable (removed).
pub type Taken = (Vec<Entry>, Vec<(EntryMeta, StoreError)>);

/// A queued request with its body.
#[derive(Debug, Clone)]
pub struct Entry {
    pub meta: EntryMeta,
    pub body: Bytes,
}

/// The queue log and the bookkeeping all queues share.
pub struct Queues {
    store: Store,
    /// The segment new bodies of each signal go to.
    active: [AtomicU64; 3],
    /// Entries pointing into each (signal, segment). A std lock: map updates only.
    refs: Mutex<HashMap<(Signal, u64), u64>>,
    /// The next sequence number.
    seq: AtomicU64,
    /// Held while a key is drawn and inserted, so keys become visible in order: an exporter
    /// that has read up to key k never later meets a key below k (it would sit behind the
    /// exporter's cursor until a restart). A std lock: held for sled inserts only.
    insert: Mutex<()>,
}

fn signal_index(s: Signal) -> usize {
    match s {
        Signal::Traces => 0,
        Signal::Logs => 1,
        Signal::Metrics => 2,
    }
}

/// One exporter's queue.
pub struct Queue {
    pub name: String,
    tree: sled::Tree,
    shared: Arc<Queues>,
    limit_bytes: u64,
    when_full: WhenFull,
    bytes: AtomicU64,
    items: AtomicU64,
    /// Keys below this have been taken by the exporter (being sent, or done); drop-oldest
    /// leaves them alone.
    taken_below: AtomicU64,
    /// Wakes the exporter when an entry arrives (a stored permit if it is busy).
    pub notify: Notify,
    /// Held by `take` over its scan and by drop-oldest. A std lock, never held across an
    /// await.
    scan: Mutex<()>,
}

/// What one enqueue did to one queue.
#[derive(Debug, Default, Clone, Copy)]
pub struct Dropped {
    pub entries: u64,
    pub items: u64,
}

impl Queues {
    /// Opens the queue log's bookkeeping: counts references from every `queue/*` tree and
    /// deletes segment files nothing points into.
    pub fn open(store: Store) -> Result<Arc<Queues>, StoreError> {
        let mut refs: HashMap<(Signal, u64), u64> = HashMap::new();
        let mut max_key = 0u64;
        let mut max_segment = 0u64;
        for (_, tree) in store.export_queue_trees()? {
            for item in tree.iter() {
                let (k, v) = item?;
                if let Some(m) = EntryMeta::decode(&k, &v) {
                    *refs.entry((m.signal, m.segment)).or_default() += 1;
                    max_key = max_key.max(m.key);
                    max_segment = max_segment.max(m.segment);
                }
            }
        }
        store
            .queue_log()
            .remove_orphans(|signal, seg, _| refs.contains_key(&(signal, seg)))?;
        let first = max_segment + 1;
        Ok(Arc::new(Queues {
            store,
            active: [
                AtomicU64::new(first),
                AtomicU64::new(first),
                AtomicU64::new(first),
            ],
            refs: Mutex::new(refs),
            seq: AtomicU64::new(max_key + 1),
            insert: Mutex::new(()),
        }))
    }

    fn refs(&self) -> std::sync::MutexGuard<'_, HashMap<(Signal, u64), u64>> {
        self.refs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The queue of exporter `name`, with what it already holds.
    pub fn queue(
        self: &Arc<Self>,
        name: &str,
        limit_bytes: u64,
        when_full: WhenFull,
    ) -> Result<Arc<Queue>, StoreError> {
        let tree = self
            .store
            .state_tree(crate::store::keys::StateTree::ExportQueue(name))?;
        let (mut bytes, mut items) = (0u64, 0u64);
        for item in tree.iter() {
            let (k, v) = item?;
            if let Some(m) = EntryMeta::decode(&k, &v) {
                bytes += m.bytes();
                items += m.items;
            }
        }
        Ok(Arc::new(Queue {
            name: name.to_string(),
            tree,
            shared: self.clone(),
            limit_bytes,
            when_full,
            bytes: AtomicU64::new(bytes),
            items: AtomicU64::new(items),
            taken_below: AtomicU64::new(0),
            notify: Notify::new(),
            scan: Mutex::new(()),
        }))
    }

    /// Names of queues on disk (exporters with entries, configured or not) and their entries.
    pub fn on_disk(&self) -> Result<Vec<(String, usize)>, StoreError> {
        Ok(self
            .store
            .export_queue_trees()?
            .into_iter()
            .map(|(name, tree)| (name, tree.len()))
            .collect())
    }

    /// Appends `body` to the queue log once and enters it into every queue in `queues`. Not
    /// durable until the store's next flush. Returns, per queue, what drop-oldest removed.
    pub fn enqueue(
        &self,
        signal: Signal,
        body: &[u8],
        items: u64,
        queues: &[Arc<Queue>],
    ) -> Result<Vec<Dropped>, StoreError> {
        if queues.is_empty() {
            return Ok(Vec::new());
        }
        let n = queues.len() as u64;
        // Reserve the references before appending, so a collection running meanwhile never
        // deletes the segment under the append.
        let segment = {
            let mut refs = self.refs();
            let seg = self.active[signal_index(signal)].load(Ordering::SeqCst);
            *refs.entry((signal, seg)).or_default() += n;
            seg
        };
        let log = self.store.queue_log();
        let ptr = match log.append(signal, segment, segment + 1, &[body]) {
            Ok(p) => p[0],
            Err(e) => {
                self.release(signal, segment, n);
                return Err(e);
            }
        };
        if ptr.offset + u64::from(ptr.len) >= SEGMENT_BYTES {
            let _ = self.active[signal_index(signal)].compare_exchange(
                segment,
                segment + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
        {
            let _in_order = self.insert.lock().unwrap_or_else(|p| p.into_inner());
            let meta = EntryMeta {
                key: self.seq.fetch_add(1, Ordering::SeqCst),
                signal,
                items,
                segment,
                ptr,
            };
            let value = meta.encode();
            for (i, q) in queues.iter().enumerate() {
                // Count first: once the entry is visible, a concurrent removal subtracts it.
                q.bytes.fetch_add(meta.bytes(), Ordering::SeqCst);
                q.items.fetch_add(items, Ordering::SeqCst);
                if let Err(e) = q.tree.insert(meta.key.to_be_bytes(), &value[..]) {
                    q.bytes.fetch_sub(meta.bytes(), Ordering::SeqCst);
                    q.items.fetch_sub(items, Ordering::SeqCst);
                    self.release(signal, segment, n - i as u64);
                    return Err(e.into());
                }
            }
        }
        let mut dropped = Vec::with_capacity(queues.len());
        for q in queues {
            dropped.push(if q.when_full == WhenFull::DropOldest {
                q.drop_oldest()?
            } else {
                Dropped::default()
            });
        }
        Ok(dropped)
    }

    fn release(&self, signal: Signal, segment: u64, n: u64) {
        let mut refs = self.refs();
        if let Some(r) = refs.get_mut(&(signal, segment)) {
            *r = r.saturating_sub(n);
        }
    }

    /// Makes removals durable (sled's flush; bodies are never rewritten).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.store.flush_state().await?;
        Ok(())
    }

    /// Deletes segment files nothing points into any more, after a flush makes the removals
    /// of their entries durable. Returns how many files went.
    pub async fn collect_garbage(&self) -> Result<usize, StoreError> {
        let candidates: Vec<(Signal, u64)> = {
            let refs = self.refs();
            refs.iter()
                .filter(|((signal, seg), n)| {
                    **n == 0 && *seg != self.active[signal_index(*signal)].load(Ordering::SeqCst)
                })
                .map(|(k, _)| *k)
                .collect()
        };
        if candidates.is_empty() {
            return Ok(0);
        }
        self.store.flush_state().await?;
        let mut removed = 0;
        for (signal, seg) in candidates {
            // Only inactive segments are candidates and they gain no references, so zero
            // stays zero.
            self.refs().remove(&(signal, seg));
            self.store.queue_log().remove(signal, seg, seg + 1)?;
            removed += 1;
        }
        Ok(removed)
    }
}

impl Queue {
    /// Bytes of bodies queued.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    /// Items queued.
    pub fn items(&self) -> u64 {
        self.items.load(Ordering::SeqCst)
    }

    /// Entries queued.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Under the refuse policy: is there room for more?
    pub fn is_full(&self) -> bool {
        self.when_full == WhenFull::Refuse && self.bytes() >= self.limit_bytes
    }

    /// Entries from key `from` on, metadata only, until `max_items` items or `max_bytes`
    /// bytes are covered: what a batch taken now would hold (items, bytes, signal change).
    pub fn peek(&self, from: u64, max_items: u64, max_bytes: u64) -> (u64, u64, usize) {
        let (mut items, mut bytes, mut n) = (0u64, 0u64, 0usize);
        let mut signal = None;
        for (k, v) in self.tree.range(from.to_be_bytes()..).flatten() {
            let Some(m) = EntryMeta::decode(&k, &v) else {
                continue;
            };
            if *signal.get_or_insert(m.signal) != m.signal {
                // A batch holds one signal: what is there is all a batch can get.
                return (u64::MAX, bytes, n);
            }
            items += m.items;
            bytes += m.bytes();
            n += 1;
            if items >= max_items || bytes >= max_bytes {
                break;
            }
        }
        (items, bytes, n)
    }

    /// Takes a batch: entries from key `from` on, of one signal, until `max_items` items or
    /// `max_bytes` bytes (at least one entry). Entries whose body cannot be read are removed
    /// and returned separately (they are lost, and the caller says so).
    pub fn take(&self, from: u64, max_items: u64, max_bytes: u64) -> Result<Taken, StoreError> {
        // Drop-oldest must not remove what this scan is reading (it would be counted dropped
        // and sent, or its segment collected under the read).
        let _scan = self.scan.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        let mut lost = Vec::new();
        let (mut items, mut bytes) = (0u64, 0u64);
        for kv in self.tree.range(from.to_be_bytes()..) {
            let (k, v) = kv?;
            let Some(m) = EntryMeta::decode(&k, &v) else {
                // Not written by this version: drop the key so it cannot block the queue.
                self.tree.remove(&k)?;
                continue;
            };
            if let Some(first) = out.first().map(|e: &Entry| e.meta.signal)
                && first != m.signal
            {
                break;
            }
            if !out.is_empty() && (items + m.items > max_items || bytes + m.bytes() > max_bytes) {
                break;
            }
            match self
                .shared
                .store
                .queue_log()
                .read(m.signal, m.segment, m.segment + 1, m.ptr)
            {
                Ok(body) => {
                    items += m.items;
                    bytes += m.bytes();
                    out.push(Entry {
                        meta: m,
                        body: Bytes::from(body),
                    });
                }
                Err(e) => lost.push((m, e)),
            }
            if items >= max_items || bytes >= max_bytes {
                break;
            }
        }
        // Remove the unreadable ones only now: if this fails nothing was counted, and the
        // next take meets them again.
        let lost_metas: Vec<EntryMeta> = lost.iter().map(|(m, _)| *m).collect();
        self.remove(&lost_metas)?;
        if let Some(last) = out
            .last()
            .map(|e| e.meta.key)
            .into_iter()
            .chain(lost_metas.last().map(|m| m.key))
            .max()
        {
            self.taken_below.fetch_max(last + 1, Ordering::SeqCst);
        }
        Ok((out, lost))
    }

    /// Removes entries (delivered, or given up) and returns how many entries and items were
    /// still there: removing one that is already gone (dropped meanwhile) is not an error.
    pub fn remove(&self, metas: &[EntryMeta]) -> Result<Dropped, StoreError> {
        let mut removed = Dropped::default();
        for m in metas {
            if self.tree.remove(m.key.to_be_bytes())?.is_some() {
                self.bytes.fetch_sub(m.bytes(), Ordering::SeqCst);
                self.items.fetch_sub(m.items, Ordering::SeqCst);
                self.shared.release(m.signal, m.segment, 1);
                removed.entries += 1;
                removed.items += m.items;
            }
        }
        Ok(removed)
    }

    /// Drop-oldest: while over the limit, removes the oldest entries not yet taken. Counts
    /// only what it removed itself.
    fn drop_oldest(&self) -> Result<Dropped, StoreError> {
        let _scan = self.scan.lock().unwrap_or_else(|p| p.into_inner());
        let mut d = Dropped::default();
        while self.bytes() > self.limit_bytes {
            let from = self.taken_below.load(Ordering::SeqCst);
            let Some((k, v)) = self.tree.range(from.to_be_bytes()..).next().transpose()? else {
                break;
            };
            let Some(m) = EntryMeta::decode(&k, &v) else {
                self.tree.remove(&k)?;
                continue;
            };
            let r = self.remove(&[m])?;
            d.entries += r.entries;
            d.items += r.items;
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    #[test]
    fn entries_survive_reopen_and_segments_are_collected() {
        let mut cfg = config::Storage::default();
        let (_dir, store) = crate::store::temp_store(&mut cfg);
        let queues = Queues::open(store.clone()).unwrap();
        let a = queues.queue("otlp/a", 1 << 30, WhenFull::Refuse).unwrap();
        let b = queues.queue("file", 1 << 30, WhenFull::Refuse).unwrap();
        queues
            .enqueue(Signal::Traces, b"one", 1, &[a.clone(), b.clone()])
            .unwrap();
        queues
            .enqueue(Signal::Logs, b"two!", 2, std::slice::from_ref(&a))
            .unwrap();
        assert_eq!((a.len(), a.items(), a.bytes()), (2, 3, 7));
        assert_eq!((b.len(), b.items(), b.bytes()), (1, 1, 3));
        // A batch holds one signal.
        let (batch, lost) = a.take(0, 100, 1 << 20).unwrap();
        assert!(lost.is_empty());
        assert_eq!(batch.len(), 1);
        assert_eq!(&batch[0].body[..], b"one");
        a.remove(&[batch[0].meta]).unwrap();
        drop((a, b, queues));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(store.flush()).unwrap();

        // Reopened: what was not removed is still there, counts rebuilt.
        let queues = Queues::open(store.clone()).unwrap();
        let a = queues.queue("otlp/a", 1 << 30, WhenFull::Refuse).unwrap();
        let b = queues.queue("file", 1 << 30, WhenFull::Refuse).unwrap();
        assert_eq!((a.len(), a.items()), (1, 2));
        let (batch, _) = b.take(0, 100, 1 << 20).unwrap();
        assert_eq!(&batch[0].body[..], b"one");
        // New entries get new keys and a new segment.
        queues
            .enqueue(Signal::Traces, b"three", 1, std::slice::from_ref(&b))
            .unwrap();
        let (batch2, _) = b.take(batch[0].meta.key + 1, 100, 1 << 20).unwrap();
        assert!(batch2[0].meta.key > batch[0].meta.key);
        assert!(batch2[0].meta.segment > batch[0].meta.segment);
        // Once nothing points into the old traces segment it is deleted.
        b.remove(&[batch[0].meta]).unwrap();
        let removed = rt.block_on(queues.collect_garbage()).unwrap();
        assert_eq!(removed, 1);
        let files: Vec<_> = std::fs::read_dir(cfg.path.join("queue"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(files.len(), 2, "{files:?}");
        assert_eq!(queues.on_disk().unwrap().len(), 2);
    }

    /// Concurrent enqueues while a reader moves a cursor: every entry is read once (keys
    /// become visible in order, so none lands behind the cursor).
    #[test]
    fn a_cursor_reader_misses_nothing_under_concurrent_enqueues() {
        let mut cfg = config::Storage::default();
        let (_dir, store) = crate::store::temp_store(&mut cfg);
        let queues = Queues::open(store).unwrap();
        let q = queues.queue("otlp", 1 << 40, WhenFull::Refuse).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        let read = std::thread::scope(|s| {
            for _ in 0..4 {
                let (queues, q) = (&queues, &q);
                s.spawn(move || {
                    for _ in 0..500 {
                        queues
                            .enqueue(Signal::Traces, b"x", 1, std::slice::from_ref(q))
                            .unwrap();
                    }
                });
            }
            let reader = s.spawn(|| {
                let (mut cursor, mut read) = (0u64, 0usize);
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let (batch, _) = q.take(cursor, 7, 1 << 20).unwrap();
                    if let Some(last) = batch.last() {
                        cursor = last.meta.key + 1;
                    }
                    read += batch.len();
                    if finished && batch.is_empty() {
                        return read;
                    }
                }
            });
            // The scope joins the writers first only at its end; wait for them by count.
            while q.len() < 2000 {
                std::thread::yield_now();
            }
            done.store(true, Ordering::SeqCst);
            reader.join().unwrap()
        });
        assert_eq!(read, 2000);
    }

    #[test]
    fn drop_oldest_keeps_the_newest_and_counts() {
        let mut cfg = config::Storage::default();
        let (_dir, store) = crate::store::temp_store(&mut cfg);
        let queues = Queues::open(store).unwrap();
        let q = queues.queue("debug", 10, WhenFull::DropOldest).unwrap();
        let mut dropped = Dropped::default();
        for i in 0..5u8 {
            let d = queues
                .enqueue(Signal::Logs, &[i; 4], 1, std::slice::from_ref(&q))
                .unwrap();
            dropped.entries += d[0].entries;
        }
        assert_eq!(dropped.entries, 3);
        assert!(!q.is_full(), "drop-oldest never refuses");
        let (batch, _) = q.take(0, 100, 1 << 20).unwrap();
        let firsts: Vec<u8> = batch.iter().map(|e| e.body[0]).collect();
        assert_eq!(firsts, vec![3, 4]);
    }

    #[test]
    fn refuse_policy_reports_full_and_unreadable_bodies_are_lost_not_stuck() {
        let mut cfg = config::Storage::default();
        let (_dir, store) = crate::store::temp_store(&mut cfg);
        let queues = Queues::open(store).unwrap();
        let q = queues.queue("otlp", 8, WhenFull::Refuse).unwrap();
        queues
            .enqueue(Signal::Traces, &[1; 8], 1, std::slice::from_ref(&q))
            .unwrap();
        assert!(q.is_full());
        // Break the body on disk: the entry is reported lost and removed.
        let file = std::fs::read_dir(cfg.path.join("queue"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::write(&file, b"garbage garbage garbage").unwrap();
        let (batch, lost) = q.take(0, 10, 1 << 20).unwrap();
        assert!(batch.is_empty());
        assert_eq!(lost.len(), 1);
        assert!(q.is_empty());
        assert!(!q.is_full());
    }
}

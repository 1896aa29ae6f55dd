//! One partition's index: a memtable plus sorted runs, recovered from the value log.
//!
//! The ack path does no sled work. A request's part for a partition is appended to the
//! partition's value-log file as its chunk bodies followed by one [`vlog::FRAME`] record
//! holding its index entries (keys from [`super::keys`]; a chunk's entry names its body by
//! position in the append), and the same entries go into the memtable, an in-memory
//! `BTreeMap`. That is a handful of memcpys and map inserts per request, whatever the number
//! of traces, postings and attributes in it, and the group commit's fsync of the value log
//! makes it durable.
//!
//! When the memtable passes `storage.memtable_mib` it is frozen (still readable) and written
//! out in the background as a [`Run`] covering the value log up to the end of its last
//! frame; then it is let go. A restart opens the runs and replays the frames after the
//! newest run's `covered` offset into a new memtable, so nothing acknowledged is lost and
//! start-up reads at most about one memtable's worth of the value log per partition.
//! After each seal, runs are merged eight at a time into the next level
//! ([`Table::merge_runs`]), so a search meets a few runs per partition.
//!
//! Invariants:
//! - a partition's file is appended under `append`, so it is written in order and a crash
//!   can only tear its tail (which [`vlog::ValueLog::scan`] cuts off);
//! - a freeze happens under `append` too, so `covered` splits the frames exactly: each frame
//!   is in exactly one of the frozen memtable or the new one;
//! - runs are written one at a time in freeze order (`seal`), after a value-log sync, so a
//!   durable run never points at bytes that are not, and the newest run's `covered` is the
//!   replay point;
//! - keys are unique (each ends with a sequence number), so a read merges the sources with
//!   nothing to overwrite.

use std::collections::{BinaryHeap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::run::{Entry, Run, RunRevIter};
use super::vlog::{self, Pointer, ValueLog, io};
use super::{Signal, StoreError, keys};

/// Memory charged per memtable entry beyond its key and value (its slot in `Mem::idx`, and
/// in `Mem::by_trace` for chunk keys).
const ENTRY_OVERHEAD: usize = 16;

/// A memtable: entries appended to one arena in arrival order (a request's inserts are a few
/// memcpys, with no comparisons and no allocation per entry), plus a hash index from bloom
/// key (trace id) to entries, for GetTrace. A range scan reads the whole arena; that is a
/// linear pass over at most `memtable_mib` and costs less than keeping it sorted on every
/// insert did. The sort happens once, when the frozen memtable is written out as a run.
#[derive(Default)]
struct Mem {
    data: Vec<u8>,
    /// (offset in `data`, key length, value length) per entry, in arrival order.
    idx: Vec<(u32, u32, u32)>,
    /// Bloom key → entries holding it.
    by_trace: crate::otlp::FastMap<[u8; 17], Vec<u32>>,
}

impl Mem {
    fn push(&mut self, signal: Signal, k: &[u8], v: &[u8]) {
        let at = self.data.len() as u32;
        self.data.extend_from_slice(k);
        self.data.extend_from_slice(v);
        let i = self.idx.len() as u32;
        self.idx.push((at, k.len() as u32, v.len() as u32));
        if let Some(b) = bloom_key(signal, k).and_then(|b| <[u8; 17]>::try_from(b).ok()) {
            self.by_trace.entry(b).or_default().push(i);
        }
    }

    fn entry(&self, i: u32) -> (&[u8], &[u8]) {
        let (at, k, v) = self.idx[i as usize];
        let (at, k, v) = (at as usize, k as usize, v as usize);
        (&self.data[at..at + k], &self.data[at + k..at + k + v])
    }

    fn is_empty(&self) -> bool {
        self.idx.is_empty()
    }

    /// Entries with `lo <= key <= hi`, highest key first.
    fn range_rev(&self, bloom: Option<&[u8]>, lo: &[u8], hi: &[u8]) -> Vec<Entry> {
        let in_range = |i: &u32| {
            let (k, _) = self.entry(*i);
            k >= lo && k <= hi
        };
        let hits: Vec<u32> = match bloom.and_then(|b| <[u8; 17]>::try_from(b).ok()) {
            Some(b) => self
                .by_trace
                .get(&b)
                .map(|v| v.iter().copied().filter(in_range).collect())
                .unwrap_or_default(),
            None => (0..self.idx.len() as u32).filter(in_range).collect(),
        };
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = hits
            .into_iter()
            .map(|i| {
                let (k, v) = self.entry(i);
                (k.to_vec(), v.to_vec())
            })
            .collect();
        out.sort_unstable_by(|a, b| b.0.cmp(&a.0));
        out
    }

    /// Entry positions in key order.
    fn sorted(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.idx.len() as u32).collect();
        order.sort_unstable_by(|a, b| self.entry(*a).0.cmp(self.entry(*b).0));
        order
    }
}

/// A body that goes to the value log, and the keys that map to `meta ++ pointer` to it (a
/// request's body is pointed at by the chunk key of every trace in it).
pub(crate) struct Chunk {
    /// (key, meta): meta is stored in front of the pointer (a log chunk's header, a posting
    /// list's earliest start); at most [`MAX_META`] bytes.
    pub keys: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// Runs of one level merged at once (see [`Table::merge_runs`]).
pub(crate) const MERGE_FANOUT: usize = 8;
/// Runs are not merged past this size (a merge streams its output, so this bounds the work
/// of one merge, not its memory). With the default 4 MiB memtable that makes one level of
/// merges (runs of about 8 MB): each entry is rewritten once. Measured with the neutral
/// loadgen, two levels (a 64 MiB bound) cost about 5% of intake for a trace search only a few
/// milliseconds faster than one level gives.
pub(crate) const MERGE_MAX_BYTES: u64 = 16 << 20;

/// Longest `meta` of a chunk key.
pub(crate) const MAX_META: usize = 52;

struct Frozen {
    mem: Mem,
    /// Value-log offset just past this memtable's last frame.
    covered: u64,
}

struct State {
    mem: Mem,
    mem_bytes: usize,
    /// Frozen memtables waiting for their run, oldest first.
    frozen: VecDeque<Arc<Frozen>>,
    /// Written runs, oldest first.
    runs: Vec<Arc<Run>>,
}

/// The index of one partition (see the module doc).
pub(crate) struct Table {
    pub signal: Signal,
    pub start: u64,
    pub end: u64,
    /// The partition's run directory.
    dir: PathBuf,
    mem_limit: usize,
    /// Held while a request's records are appended and entered into the memtable, and while
    /// the memtable is frozen (see the invariants). A std lock: held for a memcpy and some
    /// map inserts, never across an await.
    append: Mutex<()>,
    /// A std lock: readers copy a range out or clone run handles, writers insert; both short.
    state: RwLock<State>,
    /// One run written at a time, in freeze order.
    seal: Mutex<()>,
    /// Wall time of the last write (unix ns), to seal partitions nobody writes to any more.
    last_write: AtomicU64,
}

/// The key prefix a run's bloom filter answers for: a span chunk's trace id (GetTrace), a
/// log's trace-id index entry (logs of a trace).
pub(crate) fn bloom_key(signal: Signal, key: &[u8]) -> Option<&[u8]> {
    let tag = match signal {
        Signal::Traces => keys::CHUNK,
        Signal::Logs => keys::TRACE,
        Signal::Metrics => return None,
    };
    if key.first() == Some(&tag) {
        key.get(..17)
    } else {
        None
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Encodes a frame: `n u32 | (klen u16 | vlen u32 | body u32 | key | value)*`, where `body`
/// is the position of the chunk body in the same append (`u32::MAX`: none).
fn encode_frame(entries: &[Entry], chunks: &[Chunk]) -> Vec<u8> {
    let size: usize = entries
        .iter()
        .map(|(k, v)| k.len() + v.len() + 10)
        .chain(
            chunks
                .iter()
                .flat_map(|c| &c.keys)
                .map(|(k, m)| k.len() + m.len() + 10),
        )
        .sum();
    let n = entries.len() + chunks.iter().map(|c| c.keys.len()).sum::<usize>();
    let mut out = Vec::with_capacity(4 + size);
    out.extend_from_slice(&(n as u32).to_be_bytes());
    let mut put = |k: &[u8], v: &[u8], body: u32| {
        out.extend_from_slice(&(k.len().min(u16::MAX as usize) as u16).to_be_bytes());
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(&body.to_be_bytes());
        out.extend_from_slice(&k[..k.len().min(u16::MAX as usize)]);
        out.extend_from_slice(v);
    };
    for (i, c) in chunks.iter().enumerate() {
        for (k, m) in &c.keys {
            put(k, m, i as u32);
        }
    }
    for (k, v) in entries {
        put(k, v, u32::MAX);
    }
    out
}

/// Decodes a frame into (key, value) entries, resolving body positions with `bodies` (the
/// pointers of the body records before it since the previous frame). Positions count from
/// the end of `bodies`: the append's own bodies are the last ones before its frame (every
/// chunk has a key, so the highest position names the append's last body), and anything
/// before them is the remains of an append a crash cut short. A malformed frame yields what
/// it holds up to the damage.
fn decode_frame(frame: &[u8], bodies: &[Pointer]) -> Vec<Entry> {
    let mut parsed: Vec<(&[u8], &[u8], u32)> = Vec::new();
    if let Some(n) = frame.get(..4) {
        let n = u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize;
        let mut rest = &frame[4..];
        for _ in 0..n {
            let Some(h) = rest.get(..10) else { break };
            let klen = u16::from_be_bytes([h[0], h[1]]) as usize;
            let vlen = u32::from_be_bytes([h[2], h[3], h[4], h[5]]) as usize;
            let body = u32::from_be_bytes([h[6], h[7], h[8], h[9]]);
            let Some(kv) = rest.get(10..10 + klen + vlen) else {
                break;
            };
            let (k, v) = kv.split_at(klen);
            parsed.push((k, v, body));
            rest = &rest[10 + klen + vlen..];
        }
    }
    let own = parsed
        .iter()
        .filter(|(_, _, b)| *b != u32::MAX)
        .map(|(_, _, b)| *b as usize + 1)
        .max()
        .unwrap_or(0);
    let bodies = &bodies[bodies.len().saturating_sub(own)..];
    let mut out = Vec::with_capacity(parsed.len());
    for (k, v, body) in parsed {
        let value: Vec<u8> = if body == u32::MAX {
            v.to_vec()
        } else {
            let Some(p) = bodies.get(body as usize) else {
                continue;
            };
            let mut val = Vec::with_capacity(v.len() + Pointer::LEN);
            val.extend_from_slice(v);
            val.extend_from_slice(&p.encode());
            val
        };
        out.push((k.to_vec(), value));
    }
    out
}

impl State {
    fn insert(&mut self, signal: Signal, k: &[u8], v: &[u8]) {
        self.mem_bytes += k.len() + v.len() + ENTRY_OVERHEAD;
        self.mem.push(signal, k, v);
    }

    fn freeze(&mut self, covered: u64) {
        let mem = std::mem::take(&mut self.mem);
        self.mem_bytes = 0;
        self.frozen.push_back(Arc::new(Frozen { mem, covered }));
    }
}

impl Table {
    /// Opens a partition's index: its runs, then the frames after the newest run replayed
    /// from the value log. A run that cannot be read (damaged on disk) is set aside as
    /// `.corrupt`, with every later one, and their frames are replayed instead: the value log
    /// holds everything a run does.
    pub fn open(
        vlog: &ValueLog,
        signal: Signal,
        start: u64,
        end: u64,
        dir: PathBuf,
        mem_limit: usize,
    ) -> Result<Table, StoreError> {
        std::fs::create_dir_all(&dir).map_err(|e| io("create run directory", &dir, e))?;
        let mut names: Vec<(u64, u32, u64, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| io("list run directory", &dir, e))? {
            let path = entry.map_err(|e| io("list run directory", &dir, e))?.path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("tmp") => {
                    let _ = std::fs::remove_file(&path);
                }
                Some("run") => {
                    if let Some((c, level, from)) = path
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .and_then(super::run::parse_stem)
                    {
                        names.push((c, level, from, path));
                    }
                }
                _ => {}
            }
        }
        // A merge that a crash interrupted after its output was in place but before its
        // inputs were deleted: the inputs are the lower-level runs inside its range.
        let merged: Vec<(u64, u32, u64)> = names
            .iter()
            .filter(|(_, level, _, _)| *level > 0)
            .map(|(c, level, from, _)| (*c, *level, *from))
            .collect();
        names.retain(|(c, level, _, path)| {
            let input = merged
                .iter()
                .any(|(mc, ml, mf)| level < ml && c > mf && c <= mc);
            if input {
                let _ = std::fs::remove_file(path);
            }
            !input
        });
        names.sort();
        let mut runs = Vec::new();
        let mut bad = false;
        for (_, _, _, path) in &names {
            if !bad {
                match Run::open(path) {
                    Ok(r) => {
                        runs.push(Arc::new(r));
                        continue;
                    }
                    Err(e) => {
                        crate::telemetry::events::StoreRunUnreadable { error: &e }.emit();
                        bad = true;
                    }
                }
            }
            let _ = std::fs::rename(path, path.with_extension("corrupt"));
        }
        let covered = runs.last().map(|r| r.covered).unwrap_or(0);
        let table = Table {
            signal,
            start,
            end,
            dir,
            mem_limit,
            append: Mutex::new(()),
            state: RwLock::new(State {
                mem: Mem::default(),
                mem_bytes: 0,
                frozen: VecDeque::new(),
                runs,
            }),
            seal: Mutex::new(()),
            last_write: AtomicU64::new(super::now_ns()),
        };
        {
            let mut st = table.write_state();
            let mut bodies: Vec<Pointer> = Vec::new();
            let mut last_frame_end = covered;
            let got = vlog.scan(signal, start, end, covered, |ptr, kind, bytes| {
                match kind {
                    vlog::BODY => bodies.push(ptr),
                    vlog::FRAME => {
                        for (k, v) in decode_frame(bytes, &bodies) {
                            st.insert(signal, &k, &v);
                        }
                        bodies.clear();
                        last_frame_end = vlog::record_end(ptr);
                        if st.mem_bytes >= mem_limit {
                            st.freeze(last_frame_end);
                        }
                    }
                    _ => {}
                }
                Ok(())
            })?;
            if got > last_frame_end {
                // Whole bodies with no frame after them: an append a crash cut short (its
                // frame is its last record, so it was never acknowledged). Cut them off, or
                // the next append would follow them and its frame be read against them.
                vlog.cut(signal, start, end, last_frame_end)?;
                crate::telemetry::events::StoreUnframedTailCut {
                    signal,
                    start,
                    bytes: got - last_frame_end,
                }
                .emit();
            }
        }
        Ok(table)
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a request's part (chunk bodies, then its frame) and enters its entries into the
    /// memtable. Returns true when that froze the memtable: the caller then runs [`Table::seal`]
    /// off the request's path.
    pub fn apply(
        &self,
        vlog: &ValueLog,
        entries: Vec<Entry>,
        chunks: Vec<Chunk>,
    ) -> Result<bool, StoreError> {
        if entries.is_empty() && chunks.is_empty() {
            return Ok(false);
        }
        let frame = encode_frame(&entries, &chunks);
        let mut records: Vec<(u8, &[u8])> = chunks
            .iter()
            .map(|c| (vlog::BODY, c.body.as_slice()))
            .collect();
        records.push((vlog::FRAME, &frame));
        let _in_order = lock(&self.append);
        let ptrs = vlog.append_records(self.signal, self.start, self.end, &records)?;
        let frame_end = ptrs.last().map(|p| vlog::record_end(*p)).unwrap_or(0);
        drop(records);
        let mut st = self.write_state();
        for (c, p) in chunks.iter().zip(&ptrs) {
            for (k, meta) in &c.keys {
                let mut v = [0u8; MAX_META + Pointer::LEN];
                let n = meta.len().min(MAX_META);
                v[..n].copy_from_slice(&meta[..n]);
                v[n..n + Pointer::LEN].copy_from_slice(&p.encode());
                st.insert(self.signal, k, &v[..n + Pointer::LEN]);
            }
        }
        for (k, v) in &entries {
            st.insert(self.signal, k, v);
        }
        self.last_write.store(super::now_ns(), Ordering::Relaxed);
        if st.mem_bytes >= self.mem_limit {
            st.freeze(frame_end);
            return Ok(true);
        }
        Ok(false)
    }

    /// Freezes a non-empty memtable that has not been written to since `idle_since` (unix
    /// ns), so a partition nobody writes to any more does not hold memory; true if it did.
    pub fn freeze_if_idle(&self, vlog: &ValueLog, idle_since: u64) -> Result<bool, StoreError> {
        if self.last_write.load(Ordering::Relaxed) > idle_since {
            return Ok(false);
        }
        let _in_order = lock(&self.append);
        let covered = vlog.len(self.signal, self.start, self.end)?;
        let mut st = self.write_state();
        if st.mem.is_empty() {
            return Ok(false);
        }
        st.freeze(covered);
        Ok(true)
    }

    /// Writes every frozen memtable out as a run, oldest first; returns how many.
    pub fn seal(&self, vlog: &ValueLog) -> Result<usize, StoreError> {
        let _one_at_a_time = lock(&self.seal);
        let mut n = 0;
        loop {
            let Some(f) = self.read_state().frozen.front().cloned() else {
                return Ok(n);
            };
            // The run's pointers must not be durable before the bytes they point at.
            vlog.sync()?;
            let order = f.mem.sorted();
            let run = Run::write(
                &self.dir,
                f.covered,
                order.iter().map(|i| f.mem.entry(*i)),
                |k| bloom_key(self.signal, k),
            )?;
            let mut st = self.write_state();
            st.runs.push(Arc::new(run));
            st.frozen.pop_front();
            n += 1;
        }
    }

    /// Compresses the partition's value log up to what its newest run covers (see
    /// [`super::zseg`]); `None` when there was nothing new. Serialised with [`Table::seal`],
    /// so one partition never has two compactions at once.
    pub fn compact(&self, vlog: &ValueLog) -> Result<Option<super::zseg::Written>, StoreError> {
        let _one_at_a_time = lock(&self.seal);
        let covered = self
            .read_state()
            .runs
            .last()
            .map(|r| r.covered)
            .unwrap_or(0);
        vlog.compress(self.signal, self.start, self.end, covered)
    }

    /// Merges runs so a read meets few of them: whenever [`MERGE_FANOUT`] consecutive runs
    /// have the same level (and together at most [`MERGE_MAX_BYTES`]), they become one run
    /// of the next level, oldest group first; the inputs are deleted once the merged run is
    /// durable and in the list. A size-tiered LSM: each entry is rewritten about
    /// log8(runs) times. Serialised with [`Table::seal`]. Returns how many merges it did.
    pub fn merge_runs(&self) -> Result<usize, StoreError> {
        let _one_at_a_time = lock(&self.seal);
        let mut merges = 0;
        loop {
            let runs = self.read_state().runs.clone();
            let window = (0..runs.len().saturating_sub(MERGE_FANOUT - 1)).find(|&i| {
                let group = &runs[i..i + MERGE_FANOUT];
                group.iter().all(|r| r.level == group[0].level)
                    && group.iter().map(|r| r.file_bytes).sum::<u64>() <= MERGE_MAX_BYTES
            });
            let Some(i) = window else {
                return Ok(merges);
            };
            let inputs = &runs[i..i + MERGE_FANOUT];
            let from = if i == 0 { 0 } else { runs[i - 1].covered };
            let merged = Arc::new(Run::merge(
                &self.dir,
                inputs,
                from,
                inputs[0].level + 1,
                |k| bloom_key(self.signal, k),
            )?);
            {
                let mut st = self.write_state();
                // Nothing else changes the run list under the seal lock but new runs at its
                // end, so the inputs are still at i.
                st.runs.splice(i..i + MERGE_FANOUT, [merged]);
            }
            for r in inputs {
                let _ = std::fs::remove_file(r.path());
            }
            merges += 1;
        }
    }

    /// Entries with `lo <= key <= hi`, highest key first, merged over the memtable, the
    /// frozen memtables and the runs. A range inside one bloom key (one trace id) skips the
    /// runs whose filter rules it out.
    pub fn range_rev(&self, lo: &[u8], hi: &[u8]) -> MergeRev {
        let mut sources = Vec::new();
        if lo > hi {
            return MergeRev::new(sources);
        }
        let bloom = bloom_key(self.signal, lo).filter(|b| hi.starts_with(b));
        let st = self.read_state();
        sources.push(Source::Mem(st.mem.range_rev(bloom, lo, hi).into_iter()));
        for f in &st.frozen {
            sources.push(Source::Mem(f.mem.range_rev(bloom, lo, hi).into_iter()));
        }
        for r in st.runs.iter().rev() {
            if bloom.is_none_or(|b| r.may_contain(b)) {
                sources.push(Source::Run(r.range_rev(lo, hi)));
            }
        }
        MergeRev::new(sources)
    }

    /// The value of one key.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.range_rev(key, key)
            .next()
            .transpose()
            .map(|kv| kv.map(|(_, v)| v))
    }
}

enum Source {
    Mem(std::vec::IntoIter<Entry>),
    Run(RunRevIter),
}

impl Source {
    fn next(&mut self) -> Option<Result<Entry, StoreError>> {
        match self {
            Source::Mem(it) => it.next().map(Ok),
            Source::Run(it) => it.next(),
        }
    }
}

/// A k-way merge of descending sources into one descending stream (see [`Table::range_rev`]).
pub(crate) struct MergeRev {
    sources: Vec<Source>,
    heap: BinaryHeap<(Vec<u8>, usize, Vec<u8>)>,
    started: bool,
    error: Option<StoreError>,
}

impl MergeRev {
    fn new(sources: Vec<Source>) -> MergeRev {
        MergeRev {
            sources,
            heap: BinaryHeap::new(),
            started: false,
            error: None,
        }
    }

    fn pull(&mut self, i: usize) {
        match self.sources[i].next() {
            Some(Ok((k, v))) => self.heap.push((k, i, v)),
            Some(Err(e)) => {
                self.error.get_or_insert(e);
            }
            None => {}
        }
    }
}

impl Iterator for MergeRev {
    type Item = Result<Entry, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.started {
            self.started = true;
            for i in 0..self.sources.len() {
                self.pull(i);
            }
        }
        if let Some(e) = self.error.take() {
            return Some(Err(e));
        }
        let (k, i, v) = self.heap.pop()?;
        self.pull(i);
        Some(Ok((k, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Path;

    fn open(dir: &Path, vlog: &ValueLog, limit: usize) -> Table {
        Table::open(vlog, Signal::Traces, 0, 10, dir.join("runs"), limit).unwrap()
    }

    fn key(i: u32) -> Vec<u8> {
        let mut k = vec![keys::SERVICE];
        k.extend_from_slice(&i.to_be_bytes());
        k
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Whatever the memtable bound (so whatever the split into runs, frozen memtables and
        /// the live memtable), and across a reopen that replays the value log, a range scan
        /// returns what a naive sorted list of every applied entry does, and chunk bodies read
        /// back through their pointers.
        #[test]
        fn table_agrees_with_naive_map(
            requests in proptest::collection::vec(proptest::collection::vec(0u32..500, 1..20), 1..40),
            limit in 200usize..5000,
            lo in 0u32..500,
            hi in 0u32..500,
            seal_at in 0usize..40,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let vlog = ValueLog::open(dir.path().join("values")).unwrap();
            let table = open(dir.path(), &vlog, limit);
            let mut naive: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = Default::default();
            let mut seq = 0u32;
            for (r, ids) in requests.iter().enumerate() {
                let mut entries = Vec::new();
                for id in ids {
                    seq += 1;
                    // Unique keys, as the store's keys are.
                    let mut k = key(*id);
                    k.extend_from_slice(&seq.to_be_bytes());
                    entries.push((k, id.to_be_bytes().to_vec()));
                }
                let mut ck = vec![keys::CHUNK];
                ck.extend_from_slice(&[r as u8; 16]);
                ck.extend_from_slice(&(r as u64).to_be_bytes());
                let chunk = Chunk { keys: vec![(ck.clone(), vec![7])], body: vec![r as u8; r + 1] };
                for (k, v) in &entries {
                    naive.insert(k.clone(), v.clone());
                }
                naive.insert(ck, vec![7]);
                if table.apply(&vlog, entries, vec![chunk]).unwrap() && r != seal_at {
                    table.seal(&vlog).unwrap();
                    table.merge_runs().unwrap();
                }
            }
            let check = |table: &Table| -> Result<(), TestCaseError> {
                let (lo, hi) = (key(lo), key(hi));
                let got: Vec<(Vec<u8>, Vec<u8>)> = table.range_rev(&lo, &hi).map(|r| r.unwrap()).collect();
                let want: Vec<(Vec<u8>, Vec<u8>)> = naive
                    .iter()
                    .rev()
                    .filter(|(k, _)| k.as_slice() >= lo.as_slice() && k.as_slice() <= hi.as_slice())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                prop_assert_eq!(got, want);
                for r in 0..requests.len() {
                    let mut p = vec![keys::CHUNK];
                    p.extend_from_slice(&[r as u8; 16]);
                    let mut hi = p.clone();
                    hi.extend_from_slice(&[0xff; 8]);
                    let hits: Vec<_> = table.range_rev(&p, &hi).map(|r| r.unwrap()).collect();
                    prop_assert_eq!(hits.len(), 1);
                    let v = &hits[0].1;
                    prop_assert_eq!(v[0], 7);
                    let ptr = Pointer::decode(&v[1..]).unwrap();
                    prop_assert_eq!(vlog_read(&vlog, ptr), vec![r as u8; r + 1]);
                }
                Ok(())
            };
            check(&table)?;
            vlog.sync().unwrap();
            drop(table);
            let vlog = ValueLog::open(dir.path().join("values")).unwrap();
            let table = open(dir.path(), &vlog, limit);
            table.seal(&vlog).unwrap();
            check(&table)?;
        }
    }

    fn chunk_key(r: usize, c: usize) -> Vec<u8> {
        let mut k = vec![keys::CHUNK];
        k.extend_from_slice(&[r as u8; 16]);
        k.extend_from_slice(&(c as u64).to_be_bytes());
        k
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Crashes that cut an append short, anywhere in a sequence of requests: the append
        /// may have left whole chunk bodies with no frame after them (a kill between two
        /// records of one write), and maybe half a record. After each such crash the table
        /// is reopened and the requests go on. At the end, and after one more reopen, every
        /// completed request's chunks read back their own bodies, and nothing of a torn
        /// append is in the index. (A restart that kept the frameless bodies made the next
        /// request's frame point at them.)
        #[test]
        fn torn_appends_across_restarts(
            chunks in proptest::collection::vec(1usize..4, 1..30),
            crashes in proptest::collection::btree_map(0usize..30, (0usize..4, any::<bool>()), 0..6),
            limit in 200usize..4000,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let values = dir.path().join("values");
            let mut vlog = ValueLog::open(values.clone()).unwrap();
            let mut table = open(dir.path(), &vlog, limit);
            let body = |r: usize, c: usize| vec![r as u8, c as u8, 0xab, (r * 7 + c) as u8];
            for (r, &n) in chunks.iter().enumerate() {
                let cs: Vec<Chunk> = (0..n)
                    .map(|c| Chunk { keys: vec![(chunk_key(r, c), vec![9])], body: body(r, c) })
                    .collect();
                if table.apply(&vlog, vec![], cs).unwrap() {
                    table.seal(&vlog).unwrap();
                    table.merge_runs().unwrap();
                }
                if let Some(&(orphans, half)) = crashes.get(&r) {
                    // The crash: memory is gone; the torn append's records are on disk.
                    drop(table);
                    drop(vlog);
                    let torn = ValueLog::open(values.clone()).unwrap();
                    let junk: Vec<Vec<u8>> = (0..orphans).map(|i| vec![0xee; 3 + i]).collect();
                    let refs: Vec<&[u8]> = junk.iter().map(Vec::as_slice).collect();
                    if !refs.is_empty() {
                        torn.append(Signal::Traces, 0, 10, &refs).unwrap();
                    }
                    drop(torn);
                    if half {
                        let file = std::fs::read_dir(&values)
                            .unwrap()
                            .map(|e| e.unwrap().path())
                            .find(|p| p.extension().is_some_and(|e| e == "vlog"))
                            .unwrap();
                        let mut f = std::fs::OpenOptions::new().append(true).open(file).unwrap();
                        std::io::Write::write_all(&mut f, &[0, 0, 0, 50, 1, 2, 3, 4, 2, 9]).unwrap();
                    }
                    vlog = ValueLog::open(values.clone()).unwrap();
                    table = open(dir.path(), &vlog, limit);
                    table.seal(&vlog).unwrap();
                }
            }
            let check = |table: &Table, vlog: &ValueLog| -> Result<(), TestCaseError> {
                for (r, &n) in chunks.iter().enumerate() {
                    for c in 0..n {
                        let k = chunk_key(r, c);
                        let hits: Vec<_> = table.range_rev(&k, &k).map(|e| e.unwrap()).collect();
                        prop_assert_eq!(hits.len(), 1, "request {} chunk {}", r, c);
                        let ptr = Pointer::decode(&hits[0].1[1..]).unwrap();
                        prop_assert_eq!(vlog_read(vlog, ptr), body(r, c), "request {} chunk {}", r, c);
                    }
                }
                let all = table.range_rev(&[keys::CHUNK], &[keys::CHUNK, 0xff]).count();
                prop_assert_eq!(all, chunks.iter().sum::<usize>());
                Ok(())
            };
            check(&table, &vlog)?;
            drop(table);
            drop(vlog);
            let vlog = ValueLog::open(values).unwrap();
            let table = open(dir.path(), &vlog, limit);
            check(&table, &vlog)?;
        }
    }

    /// Runs merge eight at a time into the next level, and a read over them gives what it
    /// gave before. A crash after a merged run was in place but before its inputs were
    /// deleted leaves both: the open deletes the inputs, so nothing is read twice.
    #[test]
    fn runs_merge_by_level_and_a_half_finished_merge_is_resolved_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let vlog = ValueLog::open(dir.path().join("values")).unwrap();
        let table = open(dir.path(), &vlog, 1);
        let mut want = Vec::new();
        for i in 0..70u32 {
            let mut k = key(i);
            k.push(0);
            want.push(k.clone());
            assert!(table.apply(&vlog, vec![(k, vec![1])], vec![]).unwrap());
            table.seal(&vlog).unwrap();
            table.merge_runs().unwrap();
        }
        want.reverse();
        let levels = |t: &Table| {
            t.read_state()
                .runs
                .iter()
                .map(|r| r.level)
                .collect::<Vec<_>>()
        };
        // 70 memtable runs: one level-2 run of 64, then six level-0 runs.
        assert_eq!(levels(&table), vec![2, 0, 0, 0, 0, 0, 0]);
        let all = |t: &Table| -> Vec<Vec<u8>> {
            t.range_rev(&[keys::SERVICE], &[keys::SERVICE, 0xff])
                .map(|r| r.unwrap().0)
                .collect()
        };
        assert_eq!(all(&table), want);
        // Two more runs make eight level-0 runs: merge them by hand, as a merge that a
        // crash stopped before it deleted its inputs would leave them.
        for i in 70..72u32 {
            let mut k = key(i);
            k.push(0);
            want.insert(0, k.clone());
            table.apply(&vlog, vec![(k, vec![1])], vec![]).unwrap();
            table.seal(&vlog).unwrap();
        }
        let runs = table.read_state().runs.clone();
        assert_eq!(runs.len(), 9);
        Run::merge(&table.dir, &runs[1..], runs[0].covered, 1, |k| {
            bloom_key(Signal::Traces, k)
        })
        .unwrap();
        drop(table);
        let files = || std::fs::read_dir(dir.path().join("runs")).unwrap().count();
        assert_eq!(files(), 10);
        let table = open(dir.path(), &vlog, 1 << 20);
        assert_eq!(levels(&table), vec![2, 1]);
        assert_eq!(files(), 2);
        assert_eq!(all(&table), want, "every entry once");
    }

    fn vlog_read(vlog: &ValueLog, p: Pointer) -> Vec<u8> {
        vlog.read(Signal::Traces, 0, 10, p).unwrap()
    }

    /// A torn tail (a crash in the middle of an append) is cut off at reopen and the frames
    /// before it are all there; a damaged run is set aside and its frames replayed.
    #[test]
    fn torn_tail_and_damaged_run_recover() {
        let dir = tempfile::tempdir().unwrap();
        let vlog = ValueLog::open(dir.path().join("values")).unwrap();
        let table = open(dir.path(), &vlog, 1);
        for i in 0..3u32 {
            let mut k = key(i);
            k.push(0);
            if table.apply(&vlog, vec![(k, vec![1])], vec![]).unwrap() {
                table.seal(&vlog).unwrap();
            }
        }
        // Every frame froze its memtable: three runs on disk.
        drop(table);
        let runs: Vec<PathBuf> = std::fs::read_dir(dir.path().join("runs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(runs.len(), 3);
        let file = dir.path().join("values").join(
            std::fs::read_dir(dir.path().join("values"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .file_name(),
        );
        let len = std::fs::metadata(&file).unwrap().len();
        // Tear: a half-written record at the end.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        std::io::Write::write_all(&mut f, &[0, 0, 0, 50, 1, 2, 3, 4, 2, 9, 9]).unwrap();
        drop(f);
        // Damage the first run.
        let mut sorted = runs.clone();
        sorted.sort();
        std::fs::write(&sorted[0], b"garbage").unwrap();
        let vlog = ValueLog::open(dir.path().join("values")).unwrap();
        let table = open(dir.path(), &vlog, 1 << 20);
        let all: Vec<_> = table
            .range_rev(&[keys::SERVICE], &[keys::SERVICE, 0xff])
            .map(|r| r.unwrap().0)
            .collect();
        assert_eq!(all.len(), 3, "every frame recovered");
        assert_eq!(
            std::fs::metadata(&file).unwrap().len(),
            len,
            "torn tail cut"
        );
        assert!(sorted[0].with_extension("corrupt").exists());
    }

    #[test]
    fn frames_round_trip_and_survive_truncation() {
        let chunks = vec![Chunk {
            keys: vec![(b"ck".to_vec(), b"m".to_vec())],
            body: b"body".to_vec(),
        }];
        let entries = vec![(b"k1".to_vec(), b"v1".to_vec()), (b"k2".to_vec(), vec![])];
        let f = encode_frame(&entries, &chunks);
        let p = Pointer { offset: 5, len: 4 };
        let d = decode_frame(&f, &[p]);
        assert_eq!(d.len(), 3);
        assert_eq!(&*d[0].0, b"ck");
        assert_eq!(&d[0].1[..1], b"m");
        assert_eq!(Pointer::decode(&d[0].1[1..]), Some(p));
        assert_eq!((&*d[1].0, &*d[1].1), (&b"k1"[..], &b"v1"[..]));
        // A missing body drops only that entry; a cut frame yields what it holds.
        assert_eq!(decode_frame(&f, &[]).len(), 2);
        assert!(decode_frame(&f[..f.len() - 3], &[p]).len() < 3);
        assert!(decode_frame(&[1], &[]).is_empty());
    }
}

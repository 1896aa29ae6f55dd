//! The value log: chunk bodies (encoded OTLP) live in append-only files, one per partition,
//! and sled holds only small keys and 12-byte pointers to them.
//!
//! Why: sled keeps values inside its B-tree leaves and rewrites a leaf on every change, so
//! kilobyte-sized chunks made each insert copy and re-log whole leaves (measured with the
//! loadgen: 36,320 spans/s, and a 733 MB database for 546,500 spans sent as 112 MB of OTLP). Keeping large values out
//! of the tree is what WiscKey and Badger (Jaeger's local store) do; appending to a file is a
//! memcpy into the page cache, and retention deletes the file with its partition.
//!
//! File `values/<signal>-<start>-<end>.vlog` holds records `len u32 | crc32 u32 | kind u8 |
//! bytes` (big-endian; the crc covers kind and bytes). A [`Pointer`] is the record's offset
//! and the length of its bytes. Kinds: [`BODY`] (a chunk body or queue entry) and [`FRAME`]
//! (the index entries of one request, see `table`: they let a restart rebuild the in-memory
//! index from the file). Writers reserve a range under a short lock and write it with
//! `pwrite` outside the lock; a partition's writers are serialized by its table, so its file
//! is written in order and a crash can only tear its tail, which [`ValueLog::scan`] cuts
//! off. Durability: [`ValueLog::sync`] fsyncs every file written since the
//! last sync, and the directory when a file was created; intake calls it before sled's
//! flush, so a pointer is never durable before its bytes. A file is marked written only
//! after its bytes are in it, so a sync that runs between a writer's reservation and its
//! write cannot clear the mark for bytes it did not cover. A failed fsync is sticky: the
//! kernel may have dropped the pages it could not write, so every later sync fails too and
//! intake stops acknowledging (after PostgreSQL's fsync lesson). The crc catches a record
//! torn by a power loss; such a record reads as corrupt.
//!
//! Compaction ([`ValueLog::compress`], see [`zseg`]) rewrites a range the index covers as
//! zstd blocks in a segment file beside it and punches the range out of this file; offsets
//! stay the same, and [`ValueLog::read`] and [`ValueLog::scan`] look in the segments first.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::zseg::{self, ZSeg};
use super::{Signal, StoreError};

mod compressed;
use compressed::scan_compressed;

/// Where a record sits in its partition's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pointer {
    pub offset: u64,
    pub len: u32,
}

impl Pointer {
    pub const LEN: usize = 12;

    pub fn encode(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..8].copy_from_slice(&self.offset.to_be_bytes());
        b[8..].copy_from_slice(&self.len.to_be_bytes());
        b
    }

    pub fn decode(v: &[u8]) -> Option<Pointer> {
        Some(Pointer {
            offset: u64::from_be_bytes(v.get(..8)?.try_into().ok()?),
            len: u32::from_be_bytes(v.get(8..12)?.try_into().ok()?),
        })
    }
}

/// Record header: len u32, crc32 u32, kind u8.
const HEADER: usize = 9;
/// A chunk body or a queue entry.
pub const BODY: u8 = 1;
/// The index entries of one request (see `table`).
pub const FRAME: u8 = 2;

/// The offset just past a record.
pub fn record_end(p: Pointer) -> u64 {
    p.offset + HEADER as u64 + u64::from(p.len)
}

struct Segment {
    file: Arc<File>,
    /// Bytes reserved so far (the next record's offset).
    len: u64,
    /// Written since the last sync.
    dirty: bool,
}

/// The value log of one database.
pub struct ValueLog {
    dir: PathBuf,
    /// Open files by (signal, partition start). A std lock: held to look up a file or reserve
    /// a range, never during I/O.
    segments: Mutex<HashMap<(Signal, u64), Segment>>,
    /// A file was created since the last sync: the directory entry needs an fsync too.
    dir_dirty: AtomicBool,
    /// An fsync failed once; no later sync may claim durability.
    failed: AtomicBool,
    /// Held for a whole sync: a sync that finds a file clean because another sync took it
    /// must not return before that one's fsync is done.
    syncing: Mutex<()>,
    /// Compressed segments per partition, in offset order (see [`zseg`]).
    compressed: Mutex<Segments>,
    /// The last few decompressed blocks, newest last: (segment id, block) → bytes.
    cache: Mutex<BlockCache>,
    next_zseg: AtomicU64,
    /// Hole punching is not supported here (warned once).
    no_punch: AtomicBool,
    /// What compaction has done since start.
    pub compaction: CompactionStats,
}

/// Compressed segments per partition (signal, start), in offset order.
type Segments = HashMap<(Signal, u64), Vec<Arc<ZSeg>>>;

/// Decompressed blocks by (segment id, block), least recently used first.
type BlockCache = std::collections::VecDeque<((u64, usize), Arc<Vec<u8>>)>;

/// Counters of the compaction pass (reported by `query stats`).
#[derive(Debug, Default)]
pub struct CompactionStats {
    /// Ranges rewritten.
    pub segments: AtomicU64,
    /// Raw value-log bytes they held.
    pub raw_bytes: AtomicU64,
    /// Bytes of the compressed segments written.
    pub compressed_bytes: AtomicU64,
    /// Time spent reading, compressing and writing, in microseconds.
    pub micros: AtomicU64,
}

/// Decompressed blocks kept for reads (128 KiB each).
const CACHED_BLOCKS: usize = 16;

/// A file operation's error, naming the operation and the path (the store's files share it).
pub(crate) fn io(what: &'static str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io {
        what,
        path: path.display().to_string(),
        source: e,
    }
}

impl ValueLog {
    /// Opens the directory: deletes unfinished compressed segments (`.zseg.tmp`), opens the
    /// finished ones and punches their ranges out of the raw files again (a crash may have
    /// come between a segment's rename and the punch).
    pub fn open(dir: PathBuf) -> Result<ValueLog, StoreError> {
        std::fs::create_dir_all(&dir).map_err(|e| io("create value log directory", &dir, e))?;
        let log = ValueLog {
            dir,
            segments: Mutex::new(HashMap::new()),
            // The directory itself may be new.
            dir_dirty: AtomicBool::new(true),
            failed: AtomicBool::new(false),
            syncing: Mutex::new(()),
            compressed: Mutex::new(HashMap::new()),
            cache: Mutex::new(std::collections::VecDeque::new()),
            next_zseg: AtomicU64::new(1),
            no_punch: AtomicBool::new(false),
            compaction: CompactionStats::default(),
        };
        log.open_compressed()?;
        Ok(log)
    }

    /// A partition's file name without its extension (`spans-<start>-<end>`).
    pub(crate) fn stem(signal: Signal, start: u64, end: u64) -> String {
        let prefix = super::tree_prefix(signal).trim_end_matches('/');
        format!("{prefix}-{start:020}-{end:020}")
    }

    fn path(&self, signal: Signal, start: u64, end: u64) -> PathBuf {
        self.dir
            .join(format!("{}.vlog", Self::stem(signal, start, end)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Signal, u64), Segment>> {
        self.segments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends `values` to the partition's file as consecutive [`BODY`] records; returns their
    /// pointers.
    pub fn append(
        &self,
        signal: Signal,
        start: u64,
        end: u64,
        values: &[&[u8]],
    ) -> Result<Vec<Pointer>, StoreError> {
        let records: Vec<(u8, &[u8])> = values.iter().map(|v| (BODY, *v)).collect();
        self.append_records(signal, start, end, &records)
    }

    /// Appends records of the given kinds in one write; returns their pointers.
    pub fn append_records(
        &self,
        signal: Signal,
        start: u64,
        end: u64,
        records: &[(u8, &[u8])],
    ) -> Result<Vec<Pointer>, StoreError> {
        let total: usize = records.iter().map(|(_, v)| v.len() + HEADER).sum();
        let mut buf = Vec::with_capacity(total);
        let mut pointers = Vec::with_capacity(records.len());
        let mut rel = 0u64;
        for (kind, v) in records {
            let len = u32::try_from(v.len()).map_err(|_| StoreError::Corrupt {
                what: "value",
                reason: format!("{} bytes is over the 4 GiB record limit", v.len()),
            })?;
            let mut crc = crc32fast::Hasher::new();
            crc.update(&[*kind]);
            crc.update(v);
            buf.extend_from_slice(&len.to_be_bytes());
            buf.extend_from_slice(&crc.finalize().to_be_bytes());
            buf.push(*kind);
            buf.extend_from_slice(v);
            pointers.push(Pointer { offset: rel, len });
            rel += (v.len() + HEADER) as u64;
        }
        let path = self.path(signal, start, end);
        let (file, base) = {
            let mut segs = self.lock();
            let seg = self.segment(&mut segs, signal, start, &path)?;
            let base = seg.len;
            seg.len += buf.len() as u64;
            (seg.file.clone(), base)
        };
        if let Err(e) = file.write_all_at(&buf, base) {
            // The request fails, and its range must not stay behind as a gap: a restart cuts
            // the file at its first bad record, which would take every later (acknowledged)
            // record with it. A partition's writers are serialized by its table, so nothing
            // was reserved after this range: give it back and cut what was written of it.
            let mut segs = self.lock();
            if let Some(seg) = segs.get_mut(&(signal, start))
                && seg.len == base + buf.len() as u64
            {
                seg.len = base;
                let _ = seg.file.set_len(base);
            }
            return Err(io("write value log", &path, e));
        }
        // Only now are there bytes for a sync to cover.
        if let Some(seg) = self.lock().get_mut(&(signal, start)) {
            seg.dirty = true;
        }
        for p in &mut pointers {
            p.offset += base;
        }
        Ok(pointers)
    }

    /// The open segment of a partition, opened (and created) on first use.
    fn segment<'a>(
        &self,
        segs: &'a mut HashMap<(Signal, u64), Segment>,
        signal: Signal,
        start: u64,
        path: &Path,
    ) -> Result<&'a mut Segment, StoreError> {
        Ok(match segs.entry((signal, start)) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let file = OpenOptions::new()
                    .create(true)
                    .read(true)
                    .write(true)
                    .truncate(false)
                    .open(path)
                    .map_err(|e| io("open value log", path, e))?;
                let len = file
                    .metadata()
                    .map_err(|e| io("stat value log", path, e))?
                    .len();
                if len == 0 {
                    self.dir_dirty.store(true, Ordering::SeqCst);
                }
                v.insert(Segment {
                    file: Arc::new(file),
                    len,
                    dirty: false,
                })
            }
        })
    }

    /// Bytes in a partition's file (0 when it has none).
    pub fn len(&self, signal: Signal, start: u64, end: u64) -> Result<u64, StoreError> {
        let path = self.path(signal, start, end);
        let mut segs = self.lock();
        Ok(self.segment(&mut segs, signal, start, &path)?.len)
    }

    /// Reads the records of a partition's file from offset `from` in order, calling `each`
    /// with (pointer, kind, bytes): out of its compressed segments where they cover the
    /// range, then the raw file. In the raw file's tail, the first record that is short or
    /// fails its checksum is a tail torn by a crash (the file is written in order, so nothing
    /// after it was acknowledged): the file is cut there. Returns the end of the last good
    /// record.
    pub fn scan(
        &self,
        signal: Signal,
        start: u64,
        end: u64,
        from: u64,
        mut each: impl FnMut(Pointer, u8, &[u8]) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let zsegs: Vec<Arc<ZSeg>> = lock(&self.compressed)
            .get(&(signal, start))
            .cloned()
            .unwrap_or_default();
        let mut at = from;
        for z in zsegs.iter().filter(|z| z.to > from) {
            if z.from > at {
                // A gap between segments (one set aside as unreadable): the raw file.
                let got = self.scan_raw(signal, start, end, at, Some(z.from), &mut each)?;
                if got != z.from {
                    return Err(StoreError::Corrupt {
                        what: "value log",
                        reason: format!(
                            "{}: records between {at} and {} are unreadable",
                            self.path(signal, start, end).display(),
                            z.from
                        ),
                    });
                }
            }
            at = scan_compressed(z, at.max(z.from), &mut each)?;
        }
        self.scan_raw(signal, start, end, at, None, &mut each)
    }

    /// [`ValueLog::scan`] over the raw file from `from`, up to `limit` (then a bad record is
    /// not cut off but ends the scan) or to the end of the file.
    fn scan_raw(
        &self,
        signal: Signal,
        start: u64,
        end: u64,
        from: u64,
        limit: Option<u64>,
        each: &mut impl FnMut(Pointer, u8, &[u8]) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        use std::io::{BufReader, Read, Seek, SeekFrom};
        let path = self.path(signal, start, end);
        // The lock only to find the file: a scan may read megabytes.
        let (file, seg_len) = {
            let mut segs = self.lock();
            let seg = self.segment(&mut segs, signal, start, &path)?;
            (seg.file.clone(), seg.len)
        };
        let file_len = limit.unwrap_or(seg_len).min(seg_len);
        let mut reader = BufReader::with_capacity(1 << 20, &*file);
        reader
            .seek(SeekFrom::Start(from))
            .map_err(|e| io("read value log", &path, e))?;
        let mut at = from;
        let mut body = Vec::new();
        while at + HEADER as u64 <= file_len {
            let mut h = [0u8; HEADER];
            if reader.read_exact(&mut h).is_err() {
                break;
            }
            let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
            let crc = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
            let kind = h[8];
            if at + HEADER as u64 + u64::from(len) > file_len {
                break;
            }
            body.resize(len as usize, 0);
            if reader.read_exact(&mut body).is_err() {
                break;
            }
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&[kind]);
            hasher.update(&body);
            if hasher.finalize() != crc {
                break;
            }
            each(Pointer { offset: at, len }, kind, &body)?;
            at += HEADER as u64 + u64::from(len);
        }
        if limit.is_none() && at < file_len {
            self.cut(signal, start, end, at)?;
        }
        Ok(at)
    }

    /// Cuts a partition's file at `at` (a record boundary past every compressed segment),
    /// dropping the records after it; the next append goes there.
    pub fn cut(&self, signal: Signal, start: u64, end: u64, at: u64) -> Result<(), StoreError> {
        let path = self.path(signal, start, end);
        if at < self.compressed_upto(signal, start) {
            return Err(StoreError::Corrupt {
                what: "value log",
                reason: format!(
                    "{}: a cut at {at} would fall inside a compressed segment",
                    path.display()
                ),
            });
        }
        let mut segs = self.lock();
        let seg = self.segment(&mut segs, signal, start, &path)?;
        seg.file
            .set_len(at)
            .map_err(|e| io("cut value log", &path, e))?;
        seg.len = at;
        seg.dirty = true;
        Ok(())
    }

    /// Reads one record, checking its length and checksum: from its compressed segment if
    /// it has one, else from the raw file.
    pub fn read(
        &self,
        signal: Signal,
        start: u64,
        end: u64,
        p: Pointer,
    ) -> Result<Vec<u8>, StoreError> {
        if let Some(z) = self.segment_of(signal, start, p.offset) {
            return self.read_compressed(&z, p);
        }
        match self.read_raw(signal, start, end, p) {
            // A compaction may have punched the range out between the lookup and the read;
            // its segment was registered before the punch.
            Err(e) => match self.segment_of(signal, start, p.offset) {
                Some(z) => self.read_compressed(&z, p),
                None => Err(e),
            },
            ok => ok,
        }
    }

    fn read_raw(
        &self,
        signal: Signal,
        start: u64,
        end: u64,
        p: Pointer,
    ) -> Result<Vec<u8>, StoreError> {
        let path = self.path(signal, start, end);
        let file = {
            let segs = self.lock();
            segs.get(&(signal, start)).map(|s| s.file.clone())
        };
        let file = match file {
            Some(f) => f,
            None => Arc::new(File::open(&path).map_err(|e| io("open value log", &path, e))?),
        };
        let mut buf = vec![0u8; p.len as usize + HEADER];
        file.read_exact_at(&mut buf, p.offset)
            .map_err(|e| io("read value log", &path, e))?;
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let crc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&buf[8..HEADER]);
        let body = buf.split_off(HEADER);
        hasher.update(&body);
        if len != p.len || hasher.finalize() != crc {
            return Err(StoreError::Corrupt {
                what: "value log record",
                reason: format!(
                    "{} at offset {}: length or checksum mismatch",
                    path.display(),
                    p.offset
                ),
            });
        }
        Ok(body)
    }

    /// fsyncs every file written since the last sync, and the directory if a file was
    /// created. After one failure every call fails.
    pub fn sync(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.syncing.lock().unwrap_or_else(|p| p.into_inner());
        if self.failed.load(Ordering::SeqCst) {
            return Err(StoreError::Io {
                what: "sync value log (an earlier fsync failed; restart sieve)",
                path: self.dir.display().to_string(),
                source: std::io::Error::other("earlier fsync failure"),
            });
        }
        let dirty: Vec<Arc<File>> = {
            let mut segs = self.lock();
            segs.values_mut()
                .filter(|s| s.dirty)
                .map(|s| {
                    s.dirty = false;
                    s.file.clone()
                })
                .collect()
        };
        let mut result = dirty.iter().try_for_each(|f| f.sync_data());
        if result.is_ok() && self.dir_dirty.swap(false, Ordering::SeqCst) {
            result = File::open(&self.dir).and_then(|d| d.sync_all());
            if result.is_err() {
                self.dir_dirty.store(true, Ordering::SeqCst);
            }
        }
        result.map_err(|e| {
            self.failed.store(true, Ordering::SeqCst);
            io("sync value log", &self.dir, e)
        })
    }

    /// The partitions that have a file here: (signal, start, end).
    pub fn list(&self) -> Result<Vec<(Signal, u64, u64)>, StoreError> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| io("list value log directory", &self.dir, e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io("list value log directory", &self.dir, e))?;
            if let Some(p) = entry.file_name().to_str().and_then(parse_file_name) {
                out.push(p);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Deletes the files for which `keep(signal, start, end)` is false and returns how many
    /// (at start-up, the export queues' segments that no queue entry points into any more).
    pub fn remove_orphans(
        &self,
        keep: impl Fn(Signal, u64, u64) -> bool,
    ) -> Result<usize, StoreError> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| io("list value log directory", &self.dir, e))?;
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(|e| io("list value log directory", &self.dir, e))?;
            let parsed = entry.file_name().to_str().and_then(parse_file_name);
            if let Some((signal, start, end)) = parsed
                && !keep(signal, start, end)
            {
                self.remove(signal, start, end)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Deletes a partition's file and its compressed segments (retention).
    pub fn remove(&self, signal: Signal, start: u64, end: u64) -> Result<(), StoreError> {
        self.lock().remove(&(signal, start));
        let zsegs = lock(&self.compressed)
            .remove(&(signal, start))
            .unwrap_or_default();
        for z in zsegs {
            remove_file(z.path())?;
        }
        remove_file(&self.path(signal, start, end))
    }
}

fn remove_file(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("remove value log", path, e)),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The record at `at` of `buf`: (len, kind, bytes), if whole and its checksum holds.
fn parse_record(buf: &[u8], at: usize) -> Option<(u32, u8, &[u8])> {
    let h = buf.get(at..at + HEADER)?;
    let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    let crc = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    let kind = h[8];
    let body = buf.get(at + HEADER..at + HEADER + len as usize)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[kind]);
    hasher.update(body);
    (hasher.finalize() == crc).then_some((len, kind, body))
}

/// (signal, start, end) of a value log file name.
fn parse_file_name(name: &str) -> Option<(Signal, u64, u64)> {
    parse_stem(name.strip_suffix(".vlog")?)
}

/// (signal, start, end) of a value log file's name without its extension.
fn parse_stem(stem: &str) -> Option<(Signal, u64, u64)> {
    Signal::ALL.into_iter().find_map(|signal| {
        let prefix = super::tree_prefix(signal).trim_end_matches('/');
        let rest = stem.strip_prefix(prefix)?.strip_prefix('-')?;
        let (a, b) = rest.split_once('-')?;
        Some((signal, a.parse::<u64>().ok()?, b.parse::<u64>().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_read_and_detect_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let log = ValueLog::open(dir.path().join("values")).unwrap();
        let ps = log
            .append(Signal::Traces, 0, 10, &[b"hello", b"", b"world!"])
            .unwrap();
        let more = log.append(Signal::Traces, 0, 10, &[b"again"]).unwrap();
        assert_eq!(log.read(Signal::Traces, 0, 10, ps[0]).unwrap(), b"hello");
        assert_eq!(log.read(Signal::Traces, 0, 10, ps[1]).unwrap(), b"");
        assert_eq!(log.read(Signal::Traces, 0, 10, ps[2]).unwrap(), b"world!");
        assert_eq!(log.read(Signal::Traces, 0, 10, more[0]).unwrap(), b"again");
        log.sync().unwrap();
        // A reopened log continues at the end of the file.
        let log = ValueLog::open(dir.path().join("values")).unwrap();
        let p = log.append(Signal::Traces, 0, 10, &[b"after"]).unwrap()[0];
        assert!(p.offset > more[0].offset);
        assert_eq!(log.read(Signal::Traces, 0, 10, more[0]).unwrap(), b"again");
        // A wrong pointer reads as corrupt, not as other data.
        let bad = Pointer {
            offset: ps[0].offset,
            len: 4,
        };
        assert!(matches!(
            log.read(Signal::Traces, 0, 10, bad),
            Err(StoreError::Corrupt { .. })
        ));
        // Past the end: an I/O error, no panic.
        let past = Pointer {
            offset: 1 << 30,
            len: 4,
        };
        assert!(log.read(Signal::Traces, 0, 10, past).is_err());
        log.remove(Signal::Traces, 0, 10).unwrap();
        assert!(log.read(Signal::Traces, 0, 10, ps[0]).is_err());
        // Orphans: files without a partition are removed, others kept.
        log.append(Signal::Logs, 0, 10, &[b"a"]).unwrap();
        log.append(Signal::Metrics, 10, 20, &[b"b"]).unwrap();
        std::fs::write(dir.path().join("values").join("unrelated.txt"), b"x").unwrap();
        assert_eq!(log.remove_orphans(|s, _, _| s == Signal::Logs).unwrap(), 1);
        assert!(
            log.read(Signal::Logs, 0, 10, Pointer { offset: 0, len: 1 })
                .is_ok()
        );
        assert!(dir.path().join("values").join("unrelated.txt").exists());
    }

    fn allocated(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).unwrap().blocks() * 512
    }

    /// Records of varied sizes and kinds, as a partition's file holds them.
    fn fill(log: &ValueLog, n: usize) -> Vec<(Pointer, Vec<u8>)> {
        let mut out = Vec::new();
        for i in 0..n {
            let body: Vec<u8> = format!("request {i} ")
                .bytes()
                .cycle()
                .take(100 + (i * 7919) % 5000)
                .collect();
            let kind = if i % 5 == 4 { FRAME } else { BODY };
            let p = log
                .append_records(Signal::Traces, 0, 10, &[(kind, &body)])
                .unwrap()[0];
            out.push((p, body));
        }
        out
    }

    #[test]
    fn compressed_ranges_read_scan_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let vdir = dir.path().join("values");
        let log = ValueLog::open(vdir.clone()).unwrap();
        let recs = fill(&log, 600);
        log.sync().unwrap();
        let raw_path = log.path(Signal::Traces, 0, 10);
        let before = allocated(&raw_path);
        // Compress the first two thirds, in two passes, at record boundaries.
        let cut1 = recs[200].0.offset;
        let cut2 = recs[400].0.offset;
        let w1 = log.compress(Signal::Traces, 0, 10, cut1).unwrap().unwrap();
        assert_eq!(w1.raw_bytes, cut1);
        assert!(log.compress(Signal::Traces, 0, 10, cut1).unwrap().is_none());
        log.compress(Signal::Traces, 0, 10, cut2).unwrap().unwrap();
        assert_eq!(log.compressed_upto(Signal::Traces, 0), cut2);
        assert!(
            allocated(&raw_path) < before / 2,
            "the compressed range is punched out: {} of {before} bytes left",
            allocated(&raw_path)
        );
        let check = |log: &ValueLog| {
            for (p, body) in &recs {
                assert_eq!(&log.read(Signal::Traces, 0, 10, *p).unwrap(), body);
            }
            // A scan from inside a segment sees the same records as were written.
            let mut seen = Vec::new();
            let end = log
                .scan(Signal::Traces, 0, 10, recs[150].0.offset, |p, kind, b| {
                    seen.push((p, kind, b.to_vec()));
                    Ok(())
                })
                .unwrap();
            // (Later checks see one more record, appended after a restart.)
            assert!(end >= record_end(recs[599].0));
            assert!(seen.len() == 450 || seen.len() == 451, "{}", seen.len());
            for (i, ((p, kind, b), (q, body))) in seen.iter().zip(&recs[150..]).enumerate() {
                assert_eq!((p, b), (q, body));
                let written = if (150 + i) % 5 == 4 { FRAME } else { BODY };
                assert_eq!(*kind, written);
            }
            // A pointer into a segment with the wrong length is corrupt, not other data.
            let bad = Pointer {
                offset: recs[10].0.offset,
                len: recs[10].0.len + 1,
            };
            assert!(matches!(
                log.read(Signal::Traces, 0, 10, bad),
                Err(StoreError::Corrupt { .. })
            ));
        };
        check(&log);
        drop(log);
        // A crash mid-compaction leaves a .tmp: the next open removes it and the raw range is
        // still there to be compacted again.
        let tmp = vdir.join(format!(
            "{}.zseg.tmp",
            zseg::file_name(
                &ValueLog::stem(Signal::Traces, 0, 10),
                cut2,
                recs[500].0.offset
            )
        ));
        std::fs::write(&tmp, b"half a segment").unwrap();
        let log = ValueLog::open(vdir.clone()).unwrap();
        assert!(!tmp.exists());
        assert_eq!(log.compressed_upto(Signal::Traces, 0), cut2);
        check(&log);
        // More appends after a restart land after the segments and read back raw.
        let more = log
            .append(Signal::Traces, 0, 10, &[b"after restart"])
            .unwrap()[0];
        assert_eq!(
            log.read(Signal::Traces, 0, 10, more).unwrap(),
            b"after restart"
        );
        // A crash between a segment's rename and its punch: the raw range is whole and the
        // segment is preferred; the open punches it.
        drop(log);
        let log = ValueLog::open(vdir.clone()).unwrap();
        check(&log);
        // Retention removes the segments with the file.
        log.remove(Signal::Traces, 0, 10).unwrap();
        assert_eq!(std::fs::read_dir(&vdir).unwrap().count(), 0);
    }

    #[test]
    fn a_damaged_range_is_not_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let log = ValueLog::open(dir.path().join("values")).unwrap();
        let recs = fill(&log, 50);
        log.sync().unwrap();
        let path = log.path(Signal::Traces, 0, 10);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"X", recs[20].0.offset + 20).unwrap();
        let to = recs[40].0.offset;
        assert!(matches!(
            log.compress(Signal::Traces, 0, 10, to),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(log.compressed_upto(Signal::Traces, 0), 0);
        // The records before the damage still read.
        assert_eq!(
            log.read(Signal::Traces, 0, 10, recs[5].0).unwrap(),
            recs[5].1
        );
    }

    #[test]
    fn pointer_round_trip() {
        let p = Pointer {
            offset: 1 << 40,
            len: 77,
        };
        assert_eq!(Pointer::decode(&p.encode()), Some(p));
        assert_eq!(Pointer::decode(&[1, 2]), None);
    }
}

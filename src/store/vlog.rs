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

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::{Signal, StoreError};

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
}

/// A file operation's error, naming the operation and the path (the store's files share it).
pub(crate) fn io(what: &'static str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io {
        what,
        path: path.display().to_string(),
        source: e,
    }
}

impl ValueLog {
    pub fn open(dir: PathBuf) -> Result<ValueLog, StoreError> {
        std::fs::create_dir_all(&dir).map_err(|e| io("create value log directory", &dir, e))?;
        Ok(ValueLog {
            dir,
            segments: Mutex::new(HashMap::new()),
            // The directory itself may be new.
            dir_dirty: AtomicBool::new(true),
            failed: AtomicBool::new(false),
            syncing: Mutex::new(()),
        })
    }

    fn path(&self, signal: Signal, start: u64, end: u64) -> PathBuf {
        let prefix = super::tree_prefix(signal).trim_end_matches('/');
        self.dir
            .join(format!("{prefix}-{start:020}-{end:020}.vlog"))
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
        file.write_all_at(&buf, base)
            .map_err(|e| io("write value log", &path, e))?;
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
    /// with (pointer, kind, bytes). The first record that is short or fails its checksum is
    /// a tail torn by a crash (the file is written in order, so nothing after it was
    /// acknowledged): the file is cut there. Returns the end of the last good record.
    pub fn scan(
        &self,
        signal: Signal,
        start: u64,
        end: u64,
        from: u64,
        mut each: impl FnMut(Pointer, u8, &[u8]) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        use std::io::{BufReader, Read, Seek, SeekFrom};
        let path = self.path(signal, start, end);
        let mut segs = self.lock();
        let seg = self.segment(&mut segs, signal, start, &path)?;
        let file_len = seg.len;
        let mut reader = BufReader::with_capacity(1 << 20, &*seg.file);
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
        if at < file_len {
            seg.file
                .set_len(at)
                .map_err(|e| io("cut the torn tail of value log", &path, e))?;
            seg.len = at;
            seg.dirty = true;
        }
        Ok(at)
    }

    /// Reads one record, checking its length and checksum.
    pub fn read(
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

    /// Deletes a partition's file (retention).
    pub fn remove(&self, signal: Signal, start: u64, end: u64) -> Result<(), StoreError> {
        self.lock().remove(&(signal, start));
        let path = self.path(signal, start, end);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove value log", &path, e)),
        }
    }
}

/// (signal, start, end) of a value log file name.
fn parse_file_name(name: &str) -> Option<(Signal, u64, u64)> {
    let stem = name.strip_suffix(".vlog")?;
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

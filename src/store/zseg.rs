//! Compressed segments: a range of a partition's value log rewritten as zstd blocks once the
//! index covers it, after which the raw range is punched out of the value-log file.
//!
//! Why: the value log is written raw because the ack path must not spend CPU on compression
//! while a client waits; request bodies, posting lists and frames of SDK-shaped traces then
//! take about twice the OTLP wire size. Once a run covers a range, nothing appends inside it
//! any more, so a background pass (`Store::compact`) reads it, compresses it in blocks and
//! frees the raw bytes. Measured on the neutral loadgen's traces: 128 KiB blocks at zstd level
//! 1 are 5.1× smaller than raw (64 KiB: 4.6×, where level 3 is 3.4% smaller still; measured
//! with the `zstd` command over a 200 MB slice of a value log).
//!
//! **Logical offsets do not change.** A segment holds the exact bytes of the range
//! `[from, to)`, records and headers included, so every [`super::vlog::Pointer`] in the
//! runs stays valid and nothing in the index is rewritten: a read whose offset falls in a
//! segment finds its block by binary search over the block table, decompresses it (a small
//! cache keeps the last few) and slices the record out. Blocks end at record boundaries, so
//! a record is always in one block.
//!
//! File `values/<signal>-<start>-<end>.<from>-<to>.zseg`:
//!
//! ```text
//! block*   zstd(raw value-log bytes)                         ~128 KiB raw each
//! table    (at u64 | raw_len u32 | offset u64 | len u32 | crc32(compressed) u32)*
//! footer   magic "SVZSEG01" | from u64 | to u64 | blocks u32 | table_offset u64 |
//!          crc32(table) u32                                                   (40 bytes)
//! ```
//!
//! Crash safety: a segment is written to `<name>.tmp`, fsynced, renamed and the directory
//! fsynced; only then is the range punched out of the raw file (`fallocate(PUNCH_HOLE)`,
//! which keeps the file's length and so every later offset). A crash before the rename
//! leaves a `.tmp` that the next open deletes and the raw range intact (the next compaction
//! does it again); a crash after it leaves a complete segment, which reads prefer, and the
//! open punches the range again. On a file system without hole punching the raw bytes stay
//! (nothing is lost; the space is not given back) and a warning says so once.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::StoreError;
use super::vlog::io;

const MAGIC: &[u8; 8] = b"SVZSEG01";
const FOOTER: usize = 40;
const TABLE_ENTRY: usize = 28;
/// Raw bytes per block before compression (a block ends at the first record boundary past it).
pub const BLOCK_BYTES: usize = 128 * 1024;
/// zstd level: level 3 was only 3.4% smaller on the loadgen's traces; level 1 is zstd's fastest.
const LEVEL: i32 = 1;

fn corrupt(path: &Path, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: "compressed segment",
        reason: format!("{}: {reason}", path.display()),
    }
}

/// One block: the raw range it holds and where its compressed bytes are.
#[derive(Debug, Clone, Copy)]
struct Block {
    at: u64,
    raw_len: u32,
    offset: u64,
    len: u32,
    crc: u32,
}

/// An open compressed segment.
pub struct ZSeg {
    /// Unique per process, for the block cache.
    pub id: u64,
    pub from: u64,
    pub to: u64,
    path: PathBuf,
    file: File,
    blocks: Vec<Block>,
    /// Bytes of the file (for the compaction figures).
    pub file_len: u64,
}

/// What one compaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub raw_bytes: u64,
    pub file_bytes: u64,
    pub blocks: u32,
}

/// The file name of the segment holding `[from, to)` of the value-log file `stem`.
pub fn file_name(stem: &str, from: u64, to: u64) -> String {
    format!("{stem}.{from:020}-{to:020}.zseg")
}

/// (stem, from, to) of a segment's file name.
pub fn parse_file_name(name: &str) -> Option<(&str, u64, u64)> {
    let rest = name.strip_suffix(".zseg")?;
    let (stem, range) = rest.rsplit_once('.')?;
    let (a, b) = range.split_once('-')?;
    let (from, to) = (a.parse::<u64>().ok()?, b.parse::<u64>().ok()?);
    (from < to).then_some((stem, from, to))
}

/// Writes a segment block by block, so memory holds one block, not the range: create the
/// `.tmp`, [`Writer::push`] raw blocks in order (each ending at a record boundary), then
/// [`Writer::finish`] fsyncs and renames it. Dropped unfinished, it deletes the `.tmp`.
pub struct Writer {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<std::io::BufWriter<File>>,
    compressor: zstd::bulk::Compressor<'static>,
    from: u64,
    next: u64,
    written: u64,
    table: Vec<u8>,
    blocks: u32,
}

impl Writer {
    /// Starts the segment that will hold the value log from logical offset `from`.
    pub fn create(path: &Path, from: u64) -> Result<Writer, StoreError> {
        let tmp = path.with_extension("zseg.tmp");
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| io("create compressed segment", &tmp, e))?;
        Ok(Writer {
            path: path.to_path_buf(),
            tmp,
            out: Some(std::io::BufWriter::with_capacity(256 * 1024, file)),
            compressor: zstd::bulk::Compressor::new(LEVEL)
                .map_err(|e| io("start zstd", path, e))?,
            from,
            next: from,
            written: 0,
            table: Vec::new(),
            blocks: 0,
        })
    }

    /// Compresses and appends the next block of raw value-log bytes.
    pub fn push(&mut self, raw: &[u8]) -> Result<(), StoreError> {
        if raw.is_empty() {
            return Ok(());
        }
        let z = self
            .compressor
            .compress(raw)
            .map_err(|e| io("compress segment block", &self.path, e))?;
        self.table.extend_from_slice(&self.next.to_be_bytes());
        self.table
            .extend_from_slice(&(raw.len() as u32).to_be_bytes());
        self.table.extend_from_slice(&self.written.to_be_bytes());
        self.table
            .extend_from_slice(&(z.len() as u32).to_be_bytes());
        self.table
            .extend_from_slice(&crc32fast::hash(&z).to_be_bytes());
        self.write(&z)?;
        self.next += raw.len() as u64;
        self.written += z.len() as u64;
        self.blocks += 1;
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        match self.out.as_mut() {
            Some(out) => out
                .write_all(bytes)
                .map_err(|e| io("write compressed segment", &self.tmp, e)),
            None => Ok(()),
        }
    }

    /// Writes the block table and footer, fsyncs the file and renames it into place (the
    /// caller fsyncs the directory).
    pub fn finish(mut self) -> Result<Written, StoreError> {
        let table_crc = crc32fast::hash(&self.table);
        let mut tail = std::mem::take(&mut self.table);
        tail.extend_from_slice(MAGIC);
        tail.extend_from_slice(&self.from.to_be_bytes());
        tail.extend_from_slice(&self.next.to_be_bytes());
        tail.extend_from_slice(&self.blocks.to_be_bytes());
        tail.extend_from_slice(&self.written.to_be_bytes());
        tail.extend_from_slice(&table_crc.to_be_bytes());
        self.write(&tail)?;
        let out = self.out.take();
        if let Some(out) = out {
            let file = out
                .into_inner()
                .map_err(|e| io("write compressed segment", &self.tmp, e.into_error()))?;
            file.sync_all()
                .map_err(|e| io("sync compressed segment", &self.tmp, e))?;
        }
        std::fs::rename(&self.tmp, &self.path)
            .map_err(|e| io("rename compressed segment", &self.path, e))?;
        Ok(Written {
            raw_bytes: self.next - self.from,
            file_bytes: self.written + tail.len() as u64,
            blocks: self.blocks,
        })
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `raw` (the value-log bytes of `[from, from + raw.len())`, with record boundaries
/// at the offsets `cuts`, relative to `from`) as one segment, in blocks of at least
/// [`BLOCK_BYTES`] that end at a boundary.
#[cfg(test)]
fn write(path: &Path, from: u64, raw: &[u8], cuts: &[usize]) -> Result<Written, StoreError> {
    let mut w = Writer::create(path, from)?;
    let mut begin = 0usize;
    for &cut in cuts {
        if cut > begin && cut - begin >= BLOCK_BYTES {
            w.push(&raw[begin..cut])?;
            begin = cut;
        }
    }
    w.push(&raw[begin..])?;
    w.finish()
}

impl ZSeg {
    /// Opens a segment, checking its footer and block table.
    pub fn open(path: &Path, id: u64) -> Result<ZSeg, StoreError> {
        let file = File::open(path).map_err(|e| io("open compressed segment", path, e))?;
        let file_len = file
            .metadata()
            .map_err(|e| io("stat compressed segment", path, e))?
            .len();
        if file_len < FOOTER as u64 {
            return Err(corrupt(path, "shorter than its footer"));
        }
        let mut footer = [0u8; FOOTER];
        file.read_exact_at(&mut footer, file_len - FOOTER as u64)
            .map_err(|e| io("read compressed segment", path, e))?;
        if &footer[..8] != MAGIC {
            return Err(corrupt(path, "bad magic"));
        }
        let u64_at =
            |b: &[u8], at: usize| u64::from_be_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]));
        let u32_at =
            |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap_or([0; 4]));
        let from = u64_at(&footer, 8);
        let to = u64_at(&footer, 16);
        let n = u32_at(&footer, 24) as usize;
        let table_offset = u64_at(&footer, 28);
        let table_crc = u32_at(&footer, 36);
        let table_len = (n * TABLE_ENTRY) as u64;
        if table_offset.checked_add(table_len) != Some(file_len - FOOTER as u64) || from >= to {
            return Err(corrupt(path, "footer does not match the file"));
        }
        let mut table = vec![0u8; table_len as usize];
        file.read_exact_at(&mut table, table_offset)
            .map_err(|e| io("read compressed segment", path, e))?;
        if crc32fast::hash(&table) != table_crc {
            return Err(corrupt(path, "block table checksum mismatch"));
        }
        let mut blocks = Vec::with_capacity(n);
        let mut next = from;
        for e in table.chunks_exact(TABLE_ENTRY) {
            let b = Block {
                at: u64_at(e, 0),
                raw_len: u32_at(e, 8),
                offset: u64_at(e, 12),
                len: u32_at(e, 20),
                crc: u32_at(e, 24),
            };
            if b.at != next || b.offset + u64::from(b.len) > table_offset {
                return Err(corrupt(path, "block table out of order"));
            }
            next = b.at + u64::from(b.raw_len);
            blocks.push(b);
        }
        if next != to {
            return Err(corrupt(path, "blocks do not cover the range"));
        }
        Ok(ZSeg {
            id,
            from,
            to,
            path: path.to_path_buf(),
            file,
            blocks,
            file_len,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn contains(&self, offset: u64) -> bool {
        offset >= self.from && offset < self.to
    }

    /// The index of the block holding logical `offset` (which must be in the segment).
    pub fn block_of(&self, offset: u64) -> usize {
        self.blocks
            .partition_point(|b| b.at <= offset)
            .saturating_sub(1)
    }

    pub fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// The logical offset where block `i` begins.
    pub fn block_start(&self, i: usize) -> u64 {
        self.blocks.get(i).map(|b| b.at).unwrap_or(self.to)
    }

    /// Reads and decompresses block `i`.
    pub fn read_block(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        let b = self
            .blocks
            .get(i)
            .ok_or_else(|| corrupt(&self.path, format!("no block {i}")))?;
        let mut z = vec![0u8; b.len as usize];
        self.file
            .read_exact_at(&mut z, b.offset)
            .map_err(|e| io("read compressed segment", &self.path, e))?;
        if crc32fast::hash(&z) != b.crc {
            return Err(corrupt(
                &self.path,
                format!("block at {} fails its checksum", b.at),
            ));
        }
        let raw = decompress(&z, b.raw_len as usize)
            .map_err(|e| corrupt(&self.path, format!("block at {}: {e}", b.at)))?;
        if raw.len() != b.raw_len as usize {
            return Err(corrupt(
                &self.path,
                format!("block at {} decompresses to the wrong length", b.at),
            ));
        }
        Ok(raw)
    }
}

/// Decompresses a zstd frame of at most `capacity` bytes with this thread's reused context.
/// (`zstd::bulk::decompress` creates a context per call; on a trace search over hundreds of
/// run blocks that creation was 18% of the CPU, measured with `perf`.)
pub(crate) fn decompress(frame: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static CONTEXT: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    CONTEXT.with(|cell| {
        let mut slot = cell.borrow_mut();
        let context = match slot.as_mut() {
            Some(c) => c,
            None => slot.insert(zstd::bulk::Decompressor::new()?),
        };
        context.decompress(frame, capacity)
    })
}

/// Frees `[from, to)` of `file` while keeping its length (and so every later offset).
/// Returns false where the file system cannot punch holes.
pub fn punch_hole(file: &File, path: &Path, from: u64, to: u64) -> Result<bool, StoreError> {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(len)) = (
        libc::off_t::try_from(from),
        libc::off_t::try_from(to.saturating_sub(from)),
    ) else {
        return Ok(false);
    };
    // SAFETY: fallocate on an open descriptor we own, with in-range arguments; it touches
    // no memory of ours.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off,
            len,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => Ok(false),
        _ => Err(io("punch compacted range out of value log", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let n = file_name("spans-1-2", 5, 900);
        assert_eq!(parse_file_name(&n), Some(("spans-1-2", 5, 900)));
        assert_eq!(parse_file_name("spans-1-2.vlog"), None);
        assert_eq!(parse_file_name("spans-1-2.9-3.zseg"), None);
    }

    #[test]
    fn blocks_cover_the_range_and_damage_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let raw: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
        // Record boundaries every 1000 bytes.
        let cuts: Vec<usize> = (1..400).map(|i| i * 1000).collect();
        let path = dir.path().join(file_name("spans-0-1", 7000, 407_000));
        let w = write(&path, 7000, &raw, &cuts).unwrap();
        assert_eq!(w.raw_bytes, 400_000);
        assert!(w.blocks >= 3, "{w:?}");
        assert!(w.file_bytes < w.raw_bytes / 4, "{w:?}");
        let z = ZSeg::open(&path, 1).unwrap();
        assert_eq!((z.from, z.to), (7000, 407_000));
        let mut rebuilt = Vec::new();
        for i in 0..z.blocks() {
            assert_eq!(z.block_start(i), 7000 + rebuilt.len() as u64);
            // Every block starts at a record boundary.
            assert_eq!((z.block_start(i) - 7000) % 1000, 0);
            rebuilt.extend(z.read_block(i).unwrap());
        }
        assert_eq!(rebuilt, raw);
        assert_eq!(z.block_of(7000), 0);
        assert_eq!(z.block_of(406_999), z.blocks() - 1);
        let i = z.block_of(200_000);
        assert!(z.block_start(i) <= 200_000 && z.block_start(i + 1) > 200_000);
        // A flipped byte in a block reads as corrupt; a cut file does not open.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let z = ZSeg::open(&path, 2).unwrap();
        assert!(matches!(z.read_block(0), Err(StoreError::Corrupt { .. })));
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(ZSeg::open(&path, 3).is_err());
    }
}

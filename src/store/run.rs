//! Sorted runs: the immutable, compressed index files of a partition (an SSTable each).
//!
//! A partition's index entries (chunk keys, posting-list keys, log index keys; layout in
//! [`super::keys`]) collect in memory (see `table`) and, once the memtable passes its bound,
//! are written out here in key order, and the memtable is let go. A run never changes
//! after it is written; a partition is a memtable plus a list of runs, as in an LSM tree.
//! Keys are unique across runs (every key ends with a sequence number), so reading a range
//! is a k-way merge with nothing to overwrite or delete.
//!
//! File `runs/<signal>-<start>-<end>/<covered>.run` (a memtable's run, level 0), or
//! `<covered>.<level>.<from>.run` for a run merged from the consecutive runs covering
//! `(from, covered]` (see `Table::merge_runs`: eight runs of one level make one of the
//! next, so a read visits a few runs, not one per memtable ever written):
//!
//! ```text
//! block*   zstd( (klen u16 | vlen u32 | key | value)* )     ~16 KiB of entries each
//! bloom    k u32 | words u32 | u64*                          over `bloom_key`s
//! index    (klen u16 | first key | offset u64 | len u32 | raw_len u32 | crc32 u32)*
//! footer   magic "SVRUN001" | covered u64 | entries u64 | index_offset u64 | index_len u32 |
//!          bloom_offset u64 | bloom_len u32 | crc32(bloom ++ index) u32       (52 bytes)
//! ```
//!
//! `covered` is the value-log offset up to which the partition's request frames are in this
//! run or an earlier one: a restart rebuilds the memtable from the frames after the newest
//! run's `covered`. A run is written to `<name>.tmp`, fsynced and renamed, so a crash leaves
//! either the whole run or a `.tmp` that the next open deletes. A merge's inputs are deleted
//! only after its output is in place; if a crash comes between, the next open deletes the
//! lower-level runs inside a merged run's range.
//!
//! In memory per run: the block index (first key per block) and the bloom filter (10 bits
//! per bloom key, 7 probes: about 1% false positives). A point lookup by trace id reads one
//! block at most when the filter says yes; a range scan reads the blocks it overlaps, newest
//! (highest key) first, one at a time.

use std::collections::BinaryHeap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::StoreError;
use super::vlog::io;

/// One index entry: (key, value).
pub type Entry = (Vec<u8>, Vec<u8>);

const MAGIC: &[u8; 8] = b"SVRUN001";
const FOOTER: usize = 52;
/// Raw bytes of entries per block before it is compressed.
const BLOCK_BYTES: usize = 16 * 1024;
const BLOOM_BITS_PER_KEY: usize = 10;
const BLOOM_PROBES: u32 = 7;

fn corrupt(path: &Path, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: "index run",
        reason: format!("{}: {reason}", path.display()),
    }
}

/// A bloom filter over key prefixes. The hash is fixed (FNV-1a, then a 64-bit mix for the
/// second probe stride), so a filter written by one process reads the same in the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bloom {
    words: Vec<u64>,
    probes: u32,
}

fn hash_pair(key: &[u8]) -> (u64, u64) {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64 finaliser for the stride.
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (h, (z ^ (z >> 31)) | 1)
}

impl Bloom {
    /// A filter sized for `keys` keys (at least one word).
    pub fn with_capacity(keys: usize) -> Bloom {
        let bits = (keys * BLOOM_BITS_PER_KEY).max(64);
        Bloom {
            words: vec![0; bits.div_ceil(64)],
            probes: BLOOM_PROBES,
        }
    }

    fn bits(&self) -> u64 {
        self.words.len() as u64 * 64
    }

    pub fn insert(&mut self, key: &[u8]) {
        let (mut h, stride) = hash_pair(key);
        let n = self.bits();
        for _ in 0..self.probes {
            let bit = h % n;
            self.words[(bit / 64) as usize] |= 1 << (bit % 64);
            h = h.wrapping_add(stride);
        }
    }

    /// False only if `key` was never inserted.
    pub fn may_contain(&self, key: &[u8]) -> bool {
        if self.words.is_empty() {
            return true;
        }
        let (mut h, stride) = hash_pair(key);
        let n = self.bits();
        (0..self.probes).all(|_| {
            let bit = h % n;
            h = h.wrapping_add(stride);
            self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0
        })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.probes.to_be_bytes());
        out.extend_from_slice(&(self.words.len() as u32).to_be_bytes());
        for w in &self.words {
            out.extend_from_slice(&w.to_be_bytes());
        }
    }

    pub(crate) fn decode(v: &[u8]) -> Option<Bloom> {
        let probes = u32::from_be_bytes(v.get(..4)?.try_into().ok()?);
        let n = u32::from_be_bytes(v.get(4..8)?.try_into().ok()?) as usize;
        let body = v.get(8..8 + n.checked_mul(8)?)?;
        let words = body
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        (probes > 0 && probes <= 32).then_some(Bloom { words, probes })
    }
}

/// Where one block sits in the file, and its first key.
#[derive(Debug, Clone)]
struct BlockMeta {
    first: Box<[u8]>,
    offset: u64,
    len: u32,
    raw_len: u32,
    crc: u32,
}

/// An open run: its block index and bloom filter in memory, the blocks on disk.
pub struct Run {
    path: PathBuf,
    file: File,
    blocks: Vec<BlockMeta>,
    bloom: Bloom,
    /// Value-log offset covered by this run and the ones before it.
    pub covered: u64,
    /// Entries in the run.
    pub entries: u64,
    /// Bytes of the file.
    pub file_bytes: u64,
    /// 0 for a memtable's run; a run merged from runs of level L is at L + 1.
    pub level: u32,
    /// For a merged run: the `covered` of the run before its first input (what it covers
    /// starts after it). 0 for level 0.
    pub from: u64,
}

/// File name of the run covering up to `covered` (a memtable's, level 0).
pub fn file_name(covered: u64) -> String {
    format!("{covered:020}.run")
}

/// File name of a run merged from the runs covering `(from, covered]`, at `level` (1 and up).
pub fn merged_file_name(covered: u64, level: u32, from: u64) -> String {
    format!("{covered:020}.{level}.{from:020}.run")
}

/// (covered, level, from) of a run's file stem: `<covered>` (level 0; `from` unknown, 0) or
/// `<covered>.<level>.<from>`.
pub fn parse_stem(stem: &str) -> Option<(u64, u32, u64)> {
    let mut parts = stem.split('.');
    let covered = parts.next()?.parse().ok()?;
    match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => Some((covered, 0, 0)),
        (Some(level), Some(from), None) => Some((covered, level.parse().ok()?, from.parse().ok()?)),
        _ => None,
    }
}

impl Run {
    /// Writes the entries (already in key order) as a run covering up to `covered`, and
    /// opens it. `bloom_key` picks the key prefix the filter answers for, if any.
    pub fn write<'a>(
        dir: &Path,
        covered: u64,
        entries: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])>,
        bloom_key: impl Fn(&[u8]) -> Option<&[u8]>,
    ) -> Result<Run, StoreError> {
        let n = entries.len();
        Run::write_to(
            &dir.join(file_name(covered)),
            covered,
            n,
            entries.map(Ok),
            bloom_key,
        )
    }

    /// Writes `entries` (in key order; about `count` of them, for the bloom filter's size)
    /// to `path` through `<path>.tmp`, streaming: memory holds one block, the bloom filter
    /// and the block index, not the run. An entry that is an error stops the write before
    /// anything is renamed into place.
    fn write_to<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        path: &Path,
        covered: u64,
        count: usize,
        entries: impl Iterator<Item = Result<(K, V), StoreError>>,
        bloom_key: impl Fn(&[u8]) -> Option<&[u8]>,
    ) -> Result<Run, StoreError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = path.with_extension("tmp");
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| io("create index run", &tmp, e))?;
        // Deletes the `.tmp` unless the rename below happened.
        struct Unfinished<'p>(&'p Path, bool);
        impl Drop for Unfinished<'_> {
            fn drop(&mut self) {
                if !self.1 {
                    let _ = std::fs::remove_file(self.0);
                }
            }
        }
        let mut guard = Unfinished(&tmp, false);
        let mut out = std::io::BufWriter::with_capacity(256 * 1024, file);
        let mut written = 0u64;
        let mut index = Vec::new();
        let mut bloom = Bloom::with_capacity(count);
        let mut raw = Vec::with_capacity(BLOCK_BYTES * 2);
        let mut first: Option<Vec<u8>> = None;
        let mut n = 0u64;
        // One context for the run's blocks (creating one per block showed in `perf`).
        let mut compressor = zstd::bulk::Compressor::new(1).map_err(|e| io("compress", dir, e))?;
        let mut cut = |raw: &mut Vec<u8>,
                       first: &mut Option<Vec<u8>>,
                       out: &mut std::io::BufWriter<File>,
                       written: &mut u64| {
            let Some(key) = first.take() else {
                return Ok(());
            };
            let compressed = compressor
                .compress(raw)
                .map_err(|e| io("compress", dir, e))?;
            index.extend_from_slice(&(key.len() as u16).to_be_bytes());
            index.extend_from_slice(&key);
            index.extend_from_slice(&written.to_be_bytes());
            index.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
            index.extend_from_slice(&(raw.len() as u32).to_be_bytes());
            index.extend_from_slice(&crc32fast::hash(&compressed).to_be_bytes());
            out.write_all(&compressed)
                .map_err(|e| io("write index run", &tmp, e))?;
            *written += compressed.len() as u64;
            raw.clear();
            Ok::<(), StoreError>(())
        };
        for entry in entries {
            let (k, v) = entry?;
            let (k, v) = (k.as_ref(), v.as_ref());
            let klen = u16::try_from(k.len()).map_err(|_| corrupt(path, "key over 64 KiB"))?;
            let vlen = u32::try_from(v.len()).map_err(|_| corrupt(path, "value over 4 GiB"))?;
            if first.is_none() {
                first = Some(k.to_vec());
            }
            raw.extend_from_slice(&klen.to_be_bytes());
            raw.extend_from_slice(&vlen.to_be_bytes());
            raw.extend_from_slice(k);
            raw.extend_from_slice(v);
            if let Some(b) = bloom_key(k) {
                bloom.insert(b);
            }
            n += 1;
            if raw.len() >= BLOCK_BYTES {
                cut(&mut raw, &mut first, &mut out, &mut written)?;
            }
        }
        cut(&mut raw, &mut first, &mut out, &mut written)?;
        let bloom_offset = written;
        let mut meta = Vec::new();
        bloom.encode(&mut meta);
        let bloom_len = meta.len() as u32;
        let index_offset = bloom_offset + u64::from(bloom_len);
        meta.extend_from_slice(&index);
        let mut tail = meta.clone();
        tail.extend_from_slice(MAGIC);
        tail.extend_from_slice(&covered.to_be_bytes());
        tail.extend_from_slice(&n.to_be_bytes());
        tail.extend_from_slice(&index_offset.to_be_bytes());
        tail.extend_from_slice(&(index.len() as u32).to_be_bytes());
        tail.extend_from_slice(&bloom_offset.to_be_bytes());
        tail.extend_from_slice(&bloom_len.to_be_bytes());
        tail.extend_from_slice(&crc32fast::hash(&meta).to_be_bytes());
        out.write_all(&tail)
            .map_err(|e| io("write index run", &tmp, e))?;
        let file = out
            .into_inner()
            .map_err(|e| io("write index run", &tmp, e.into_error()))?;
        file.sync_data()
            .map_err(|e| io("write index run", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| io("rename index run", path, e))?;
        guard.1 = true;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("sync index run directory", dir, e))?;
        Run::open(path)
    }

    /// Merges consecutive runs (oldest first) into one at `level`, written beside them: it
    /// covers what the newest covers, and `from` is the `covered` of the run before the
    /// first (see [`merged_file_name`]). Entries are streamed in key order (keys are unique
    /// across runs). The inputs are left for the caller to delete.
    pub fn merge(
        dir: &Path,
        inputs: &[Arc<Run>],
        from: u64,
        level: u32,
        bloom_key: impl Fn(&[u8]) -> Option<&[u8]>,
    ) -> Result<Run, StoreError> {
        let covered = inputs.iter().map(|r| r.covered).max().unwrap_or(from);
        let count: u64 = inputs.iter().map(|r| r.entries).sum();
        let path = dir.join(merged_file_name(covered, level, from));
        let mut streams: Vec<Forward> = inputs.iter().map(|r| Forward::new(r.clone())).collect();
        let mut heads: BinaryHeap<std::cmp::Reverse<(Vec<u8>, usize)>> = BinaryHeap::new();
        let mut values: Vec<Vec<u8>> = vec![Vec::new(); streams.len()];
        for (i, s) in streams.iter_mut().enumerate() {
            if let Some((k, v)) = s.next().transpose()? {
                values[i] = v;
                heads.push(std::cmp::Reverse((k, i)));
            }
        }
        // A block of an input that cannot be read ends the stream with its error, so the
        // write stops before the merged run is renamed into place (the inputs stay).
        let merged = std::iter::from_fn(|| {
            let std::cmp::Reverse((k, i)) = heads.pop()?;
            let v = std::mem::take(&mut values[i]);
            match streams[i].next().transpose() {
                Ok(Some((nk, nv))) => {
                    values[i] = nv;
                    heads.push(std::cmp::Reverse((nk, i)));
                }
                Ok(None) => {}
                Err(e) => {
                    heads.clear();
                    return Some(Err(e));
                }
            }
            Some(Ok((k, v)))
        });
        Run::write_to(&path, covered, count as usize, merged, bloom_key)
    }

    /// Opens a run: reads its footer, bloom filter and block index.
    pub fn open(path: &Path) -> Result<Run, StoreError> {
        let file = File::open(path).map_err(|e| io("open index run", path, e))?;
        let file_bytes = file
            .metadata()
            .map_err(|e| io("stat index run", path, e))?
            .len();
        if file_bytes < FOOTER as u64 {
            return Err(corrupt(path, "shorter than its footer"));
        }
        let mut f = [0u8; FOOTER];
        file.read_exact_at(&mut f, file_bytes - FOOTER as u64)
            .map_err(|e| io("read index run", path, e))?;
        if &f[..8] != MAGIC {
            return Err(corrupt(path, "not an index run (bad magic)"));
        }
        let u64_at = |i: usize| u64::from_be_bytes(f[i..i + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |i: usize| u32::from_be_bytes(f[i..i + 4].try_into().unwrap_or([0; 4]));
        let covered = u64_at(8);
        let entries = u64_at(16);
        let index_offset = u64_at(24);
        let index_len = u32_at(32) as u64;
        let bloom_offset = u64_at(36);
        let bloom_len = u32_at(44) as u64;
        let crc = u32_at(48);
        if bloom_offset + bloom_len != index_offset
            || index_offset + index_len != file_bytes - FOOTER as u64
        {
            return Err(corrupt(path, "footer offsets do not add up"));
        }
        let mut meta = vec![0u8; (bloom_len + index_len) as usize];
        file.read_exact_at(&mut meta, bloom_offset)
            .map_err(|e| io("read index run", path, e))?;
        if crc32fast::hash(&meta) != crc {
            return Err(corrupt(path, "block index checksum mismatch"));
        }
        let bloom = Bloom::decode(&meta[..bloom_len as usize])
            .ok_or_else(|| corrupt(path, "bad bloom filter"))?;
        let mut blocks = Vec::new();
        let mut rest = &meta[bloom_len as usize..];
        while !rest.is_empty() {
            let klen = u16::from_be_bytes(
                rest.get(..2)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| corrupt(path, "short block index"))?,
            ) as usize;
            let e = rest
                .get(2..2 + klen + 20)
                .ok_or_else(|| corrupt(path, "short block index"))?;
            let first: Box<[u8]> = e[..klen].into();
            let n = &e[klen..];
            blocks.push(BlockMeta {
                first,
                offset: u64::from_be_bytes(n[..8].try_into().unwrap_or([0; 8])),
                len: u32::from_be_bytes(n[8..12].try_into().unwrap_or([0; 4])),
                raw_len: u32::from_be_bytes(n[12..16].try_into().unwrap_or([0; 4])),
                crc: u32::from_be_bytes(n[16..20].try_into().unwrap_or([0; 4])),
            });
            rest = &rest[2 + klen + 20..];
        }
        let (level, from) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(parse_stem)
            .map(|(_, level, from)| (level, from))
            .unwrap_or((0, 0));
        Ok(Run {
            path: path.to_path_buf(),
            file,
            blocks,
            bloom,
            covered,
            entries,
            file_bytes,
            level,
            from,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// May the run hold a key starting with this bloom key?
    pub fn may_contain(&self, bloom_key: &[u8]) -> bool {
        self.bloom.may_contain(bloom_key)
    }

    /// The entries of block `i`, in key order.
    fn block(&self, i: usize) -> Result<Vec<Entry>, StoreError> {
        let b = &self.blocks[i];
        let mut comp = vec![0u8; b.len as usize];
        self.file
            .read_exact_at(&mut comp, b.offset)
            .map_err(|e| io("read index run", &self.path, e))?;
        if crc32fast::hash(&comp) != b.crc {
            return Err(corrupt(&self.path, format!("block {i} checksum mismatch")));
        }
        let raw = super::zseg::decompress(&comp, b.raw_len as usize)
            .map_err(|e| corrupt(&self.path, format!("block {i}: {e}")))?;
        let mut out = Vec::new();
        let mut rest = raw.as_slice();
        while rest.len() >= 6 {
            let klen = u16::from_be_bytes([rest[0], rest[1]]) as usize;
            let vlen = u32::from_be_bytes([rest[2], rest[3], rest[4], rest[5]]) as usize;
            let Some(kv) = rest.get(6..6 + klen + vlen) else {
                return Err(corrupt(&self.path, format!("block {i} is truncated")));
            };
            out.push((kv[..klen].to_vec(), kv[klen..].to_vec()));
            rest = &rest[6 + klen + vlen..];
        }
        Ok(out)
    }

    /// Entries with `lo <= key <= hi`, highest key first, read block by block.
    pub fn range_rev(self: &Arc<Self>, lo: &[u8], hi: &[u8]) -> RunRevIter {
        // Blocks whose first key is <= hi may hold keys in range.
        let n = self.blocks.partition_point(|b| &*b.first <= hi);
        RunRevIter {
            run: self.clone(),
            lo: lo.to_vec(),
            hi: hi.to_vec(),
            next_block: n,
            buf: Vec::new(),
            failed: false,
        }
    }
}

/// Every entry of a run in key order, block by block (for merging).
struct Forward {
    run: Arc<Run>,
    next_block: usize,
    buf: std::collections::VecDeque<Entry>,
}

impl Forward {
    fn new(run: Arc<Run>) -> Forward {
        Forward {
            run,
            next_block: 0,
            buf: std::collections::VecDeque::new(),
        }
    }
}

impl Iterator for Forward {
    type Item = Result<Entry, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.buf.pop_front() {
                return Some(Ok(e));
            }
            if self.next_block >= self.run.blocks.len() {
                return None;
            }
            let i = self.next_block;
            self.next_block += 1;
            match self.run.block(i) {
                Ok(entries) => self.buf = entries.into(),
                Err(e) => {
                    self.next_block = self.run.blocks.len();
                    return Some(Err(e));
                }
            }
        }
    }
}

/// A reverse range scan over one run (see [`Run::range_rev`]).
pub struct RunRevIter {
    run: Arc<Run>,
    lo: Vec<u8>,
    hi: Vec<u8>,
    /// Blocks below this index are still to read (0: none left).
    next_block: usize,
    /// Entries of the current block in range, in key order; popped from the end.
    buf: Vec<Entry>,
    failed: bool,
}

impl Iterator for RunRevIter {
    type Item = Result<Entry, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(kv) = self.buf.pop() {
                return Some(Ok(kv));
            }
            if self.failed || self.next_block == 0 {
                return None;
            }
            self.next_block -= 1;
            let i = self.next_block;
            if *self.run.blocks[i].first < *self.lo {
                // Every earlier block holds only smaller keys.
                self.next_block = 0;
            }
            match self.run.block(i) {
                Ok(entries) => {
                    let (lo, hi) = (&self.lo, &self.hi);
                    self.buf = entries
                        .into_iter()
                        .filter(|(k, _)| {
                            k.as_slice() >= lo.as_slice() && k.as_slice() <= hi.as_slice()
                        })
                        .collect();
                }
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bloom_17(k: &[u8]) -> Option<&[u8]> {
        k.get(..3)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// A reverse range scan over a written run returns exactly what a naive filter over
        /// the sorted entries does, for any range; the bloom filter never denies a key it
        /// holds.
        #[test]
        fn range_rev_agrees_with_naive_filter(
            keys in proptest::collection::btree_set(proptest::collection::vec(0u8..8, 1..6), 0..3000),
            lo in proptest::collection::vec(0u8..8, 0..4),
            hi in proptest::collection::vec(0u8..8, 0..4),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let entries: Vec<(Vec<u8>, Vec<u8>)> =
                keys.iter().map(|k| (k.clone(), vec![k.len() as u8; k.len() * 3])).collect();
            let run = Arc::new(
                Run::write(dir.path(), 77, entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())), bloom_17)
                    .unwrap(),
            );
            prop_assert_eq!(run.covered, 77);
            prop_assert_eq!(run.entries, entries.len() as u64);
            let got: Vec<(Vec<u8>, Vec<u8>)> = run.range_rev(&lo, &hi).map(|r| r.unwrap()).collect();
            let want: Vec<(Vec<u8>, Vec<u8>)> = entries
                .iter()
                .rev()
                .filter(|(k, _)| k.as_slice() >= lo.as_slice() && k.as_slice() <= hi.as_slice())
                .cloned()
                .collect();
            prop_assert_eq!(got, want);
            for (k, _) in &entries {
                if let Some(b) = bloom_17(k) {
                    prop_assert!(run.may_contain(b));
                }
            }
            // Reopened from disk: the same answers.
            let again = Arc::new(Run::open(&dir.path().join(file_name(77))).unwrap());
            prop_assert_eq!(again.range_rev(&[], &[0xff]).count(), entries.len());
        }
    }

    /// A run file with a flipped byte in a block or in its index reads as corrupt, never as
    /// other entries, and never panics.
    #[test]
    fn damaged_runs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let entries: Vec<(Vec<u8>, Vec<u8>)> = (0u32..5000)
            .map(|i| (i.to_be_bytes().to_vec(), b"value".to_vec()))
            .collect();
        let run = Run::write(
            dir.path(),
            1,
            entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
            |_| None,
        )
        .unwrap();
        let path = dir.path().join(file_name(1));
        let good = std::fs::read(&path).unwrap();
        drop(run);
        // A block byte: the scan reports the block corrupt.
        let mut bad = good.clone();
        bad[10] ^= 0xff;
        std::fs::write(&path, &bad).unwrap();
        let run = Arc::new(Run::open(&path).unwrap());
        assert!(run.range_rev(&[], &[0xff; 4]).any(|r| r.is_err()));
        // The block index: refused at open.
        let mut bad = good.clone();
        let at = bad.len() - FOOTER - 3;
        bad[at] ^= 0xff;
        std::fs::write(&path, &bad).unwrap();
        assert!(matches!(Run::open(&path), Err(StoreError::Corrupt { .. })));
        // Truncated: refused at open.
        std::fs::write(&path, &good[..good.len() / 2]).unwrap();
        assert!(Run::open(&path).is_err());
        std::fs::write(&path, b"short").unwrap();
        assert!(Run::open(&path).is_err());
    }

    /// A merge over an input with a damaged block fails without leaving a merged run (or
    /// its `.tmp`) behind: a merged run in place would make the next open delete the inputs.
    /// A merge of good inputs holds every entry once, in order.
    #[test]
    fn merges_stream_in_key_order_and_a_damaged_input_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut runs = Vec::new();
        for r in 0u32..3 {
            let entries: Vec<(Vec<u8>, Vec<u8>)> = (0u32..3000)
                .map(|i| ((i * 3 + r).to_be_bytes().to_vec(), vec![r as u8; 20]))
                .collect();
            runs.push(Arc::new(
                Run::write(
                    dir.path(),
                    u64::from(r) + 1,
                    entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
                    |_| None,
                )
                .unwrap(),
            ));
        }
        let merged = Arc::new(Run::merge(dir.path(), &runs, 0, 1, |_| None).unwrap());
        assert_eq!((merged.covered, merged.level, merged.from), (3, 1, 0));
        let keys: Vec<Vec<u8>> = merged
            .range_rev(&[], &[0xff; 4])
            .map(|e| e.unwrap().0)
            .collect();
        let want: Vec<Vec<u8>> = (0u32..9000)
            .rev()
            .map(|i| i.to_be_bytes().to_vec())
            .collect();
        assert_eq!(keys, want);
        std::fs::remove_file(merged.path()).unwrap();
        // Damage a block of the second input.
        let path = runs[1].path().to_path_buf();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let runs: Vec<Arc<Run>> = (1..=3)
            .map(|c| Arc::new(Run::open(&dir.path().join(file_name(c))).unwrap()))
            .collect();
        assert!(Run::merge(dir.path(), &runs, 0, 1, |_| None).is_err());
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec![file_name(1), file_name(2), file_name(3)]);
    }

    #[test]
    fn bloom_round_trip_and_false_positive_rate() {
        let mut b = Bloom::with_capacity(10_000);
        for i in 0u32..10_000 {
            b.insert(&i.to_be_bytes());
        }
        let mut enc = Vec::new();
        b.encode(&mut enc);
        let d = Bloom::decode(&enc).unwrap();
        assert_eq!(d, b);
        assert!((0u32..10_000).all(|i| d.may_contain(&i.to_be_bytes())));
        let fp = (10_000u32..110_000)
            .filter(|i| d.may_contain(&i.to_be_bytes()))
            .count();
        assert!(fp < 3_000, "{fp} false positives in 100000");
        assert!(Bloom::decode(&enc[..5]).is_none());
    }
}

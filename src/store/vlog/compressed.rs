//! The compressed side of the value log: segments found at open, compaction of a covered
//! range into a segment ([`ValueLog::compress`]) and the hole punched behind it, and reads
//! and scans that find a record inside a segment (file format in [`super::super::zseg`]).

use super::*;

impl ValueLog {
    pub(super) fn open_compressed(&self) -> Result<(), StoreError> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| io("list value log directory", &self.dir, e))?;
        let mut found: Vec<((Signal, u64, u64), PathBuf)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io("list value log directory", &self.dir, e))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.ends_with(".zseg.tmp") {
                let _ = std::fs::remove_file(&path);
                crate::telemetry::events::StoreCompactionUnfinished { path: &path }.emit();
                continue;
            }
            if let Some((stem, _, _)) = zseg::parse_file_name(&name)
                && let Some(part) = parse_stem(stem)
            {
                found.push((part, path));
            }
        }
        found.sort_by_key(|((signal, start, _), p)| (*signal, *start, p.clone()));
        for ((signal, start, end), path) in found {
            let id = self.next_zseg.fetch_add(1, Ordering::Relaxed);
            match ZSeg::open(&path, id) {
                Ok(z) => {
                    let z = Arc::new(z);
                    self.punch(signal, start, end, z.from, z.to)?;
                    let mut map = lock(&self.compressed);
                    let list = map.entry((signal, start)).or_default();
                    list.push(z);
                    list.sort_by_key(|z| z.from);
                }
                Err(e @ StoreError::Corrupt { .. }) => {
                    // Its raw range may still be in the value-log file (if the punch never
                    // happened); reads fall back to it.
                    crate::telemetry::events::StoreSegmentUnreadable { error: &e }.emit();
                    let _ = std::fs::rename(&path, path.with_extension("corrupt"));
                }
                // A segment that could not be read (out of file descriptors, an I/O error)
                // is not damaged, and its raw range is gone: refuse to start rather than
                // set it aside.
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Where compression has reached in a partition's file: the end of its last compressed
    /// segment (0 when it has none).
    pub fn compressed_upto(&self, signal: Signal, start: u64) -> u64 {
        lock(&self.compressed)
            .get(&(signal, start))
            .and_then(|l| l.last().map(|z| z.to))
            .unwrap_or(0)
    }

    /// Rewrites `[compressed_upto, to)` of a partition's file as a compressed segment and
    /// punches it out of the raw file (see [`zseg`]). `to` must be a record boundary that
    /// nothing appends before any more: the end of what an index run covers. Returns what
    /// it wrote, or `None` when there was nothing to do. Compactions of one partition must
    /// not run concurrently (the caller serialises them with the partition's seals).
    pub fn compress(
        &self,
        signal: Signal,
        start: u64,
        end: u64,
        to: u64,
    ) -> Result<Option<zseg::Written>, StoreError> {
        let from = self.compressed_upto(signal, start);
        if to <= from {
            return Ok(None);
        }
        let began = std::time::Instant::now();
        let zpath = self
            .dir
            .join(zseg::file_name(&Self::stem(signal, start, end), from, to));
        // Records are read in order and cut into blocks at record boundaries; each record's
        // checksum is checked, and a damaged one stops the compaction (the unfinished `.tmp`
        // is deleted and the raw range stays as it is).
        let mut writer = zseg::Writer::create(&zpath, from)?;
        let mut block: Vec<u8> = Vec::with_capacity(zseg::BLOCK_BYTES + 64 * 1024);
        let got = self.scan_raw(signal, start, end, from, Some(to), &mut |_, kind, body| {
            let mut crc = crc32fast::Hasher::new();
            crc.update(&[kind]);
            crc.update(body);
            block.extend_from_slice(&(body.len() as u32).to_be_bytes());
            block.extend_from_slice(&crc.finalize().to_be_bytes());
            block.push(kind);
            block.extend_from_slice(body);
            if block.len() >= zseg::BLOCK_BYTES {
                writer.push(&block)?;
                block.clear();
            }
            Ok(())
        })?;
        if got != to {
            return Err(StoreError::Corrupt {
                what: "value log",
                reason: format!(
                    "{}: the record at {got} is unreadable; not compacted",
                    self.path(signal, start, end).display()
                ),
            });
        }
        writer.push(&block)?;
        let written = writer.finish()?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("sync value log directory", &self.dir, e))?;
        let z = Arc::new(ZSeg::open(
            &zpath,
            self.next_zseg.fetch_add(1, Ordering::Relaxed),
        )?);
        // Registered before the punch, so a read that finds the raw bytes gone finds these.
        lock(&self.compressed)
            .entry((signal, start))
            .or_default()
            .push(z);
        self.punch(signal, start, end, from, to)?;
        let c = &self.compaction;
        c.segments.fetch_add(1, Ordering::Relaxed);
        c.raw_bytes.fetch_add(written.raw_bytes, Ordering::Relaxed);
        c.compressed_bytes
            .fetch_add(written.file_bytes, Ordering::Relaxed);
        c.micros
            .fetch_add(began.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(Some(written))
    }

    /// Punches `[from, to)` out of a partition's raw file (a no-op where unsupported, with
    /// one warning).
    fn punch(
        &self,
        signal: Signal,
        start: u64,
        end: u64,
        from: u64,
        to: u64,
    ) -> Result<(), StoreError> {
        if self.no_punch.load(Ordering::Relaxed) {
            return Ok(());
        }
        let path = self.path(signal, start, end);
        let file = {
            let mut segs = self.lock();
            self.segment(&mut segs, signal, start, &path)?.file.clone()
        };
        if !zseg::punch_hole(&file, &path, from, to)? {
            self.no_punch.store(true, Ordering::Relaxed);
            crate::telemetry::events::StoreHolePunchUnsupported { path: &path }.emit();
        }
        Ok(())
    }

    /// The compressed segment holding `offset`, if any.
    pub(super) fn segment_of(&self, signal: Signal, start: u64, offset: u64) -> Option<Arc<ZSeg>> {
        let map = lock(&self.compressed);
        let list = map.get(&(signal, start))?;
        let i = list.partition_point(|z| z.from <= offset).checked_sub(1)?;
        list.get(i).filter(|z| z.contains(offset)).cloned()
    }

    /// Block `i` of `z`, decompressed, through the cache.
    fn block(&self, z: &ZSeg, i: usize) -> Result<Arc<Vec<u8>>, StoreError> {
        {
            let mut cache = lock(&self.cache);
            if let Some(at) = cache.iter().position(|(k, _)| *k == (z.id, i)) {
                let hit = cache.remove(at).map(|(_, b)| b);
                if let Some(b) = hit {
                    cache.push_back(((z.id, i), b.clone()));
                    return Ok(b);
                }
            }
        }
        let b = Arc::new(z.read_block(i)?);
        let mut cache = lock(&self.cache);
        if cache.len() >= CACHED_BLOCKS {
            cache.pop_front();
        }
        cache.push_back(((z.id, i), b.clone()));
        Ok(b)
    }

    pub(super) fn read_compressed(&self, z: &ZSeg, p: Pointer) -> Result<Vec<u8>, StoreError> {
        let i = z.block_of(p.offset);
        let block = self.block(z, i)?;
        let at = (p.offset - z.block_start(i)) as usize;
        match parse_record(&block, at) {
            Some((len, _, body)) if len == p.len => Ok(body.to_vec()),
            _ => Err(StoreError::Corrupt {
                what: "value log record",
                reason: format!(
                    "{} at offset {}: length or checksum mismatch",
                    z.path().display(),
                    p.offset
                ),
            }),
        }
    }
}

/// Calls `each` for the records of `z` at or after `from` (a record boundary); returns the
/// segment's end.
pub(super) fn scan_compressed(
    z: &ZSeg,
    from: u64,
    each: &mut impl FnMut(Pointer, u8, &[u8]) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    for i in z.block_of(from)..z.blocks() {
        let block = z.read_block(i)?;
        let base = z.block_start(i);
        let mut at = 0usize;
        while at < block.len() {
            let (len, kind, body) =
                parse_record(&block, at).ok_or_else(|| StoreError::Corrupt {
                    what: "compressed segment",
                    reason: format!(
                        "{}: bad record at offset {}",
                        z.path().display(),
                        base + at as u64
                    ),
                })?;
            let offset = base + at as u64;
            if offset >= from {
                each(Pointer { offset, len }, kind, body)?;
            }
            at += HEADER + len as usize;
        }
    }
    Ok(z.to)
}

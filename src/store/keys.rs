//! Byte layout of every index key and value, and of the sled catalog. Pure functions, no I/O.
//!
//! Integers are big-endian so byte order is numeric order; strings are length-prefixed
//! (u16 big-endian, cut at 65535 bytes) so a prefix scan over `service` never matches
//! `service-2`. Index keys end with a fixed-length suffix (time, trace id, seq) that is read
//! back from the end of the key.
//!
//! Span partition index (`spans-<start>-<end>`, memtable and runs, see `table`):
//!
//! | key | value |
//! |---|---|
//! | `c` trace_id(16) seq(8) | pointer (value log) to OTLP `TracesData`: the request holding this trace's spans (as received) |
//! | `s` str(service) max_start(8) seq(8) | min_start(8), pointer to a [`Posting`] list |
//! | `o` str(service) str(operation) max_start(8) seq(8) | min_start(8), pointer to a [`Posting`] list |
//! | `a` str(service) str(key) str(value) max_start(8) seq(8) | min_start(8), pointer to a [`Posting`] list |
//!
//! An index entry is a *posting list*: one per (index key, request), listing every trace of
//! the request that has matching spans, with the earliest start and the shortest and longest
//! duration of those spans. Per request, not per trace or span, so the index grows by a few
//! entries per request whatever the number of traces in it. The key's `max_start` is the
//! newest start in the list, so a reverse scan visits lists newest first and a k-way merge
//! yields traces exactly newest first. The lists themselves live in the value log, so the
//! memtable and the runs hold only small keys and pointers.
//!
//! Log partition index (`logs-<start>-<end>`):
//!
//! | key | value |
//! |---|---|
//! | `c` time(8) seq(8) | [`LogChunkHeader`] then a pointer to OTLP `ResourceLogs` (one resource's records from one request) |
//! | `s` str(service) time(8) seq(8) | empty |
//! | `t` trace_id(16) time(8) seq(8) | empty |
//!
//! `time` is the newest record time in the chunk, so a reverse scan reads newest first.
//!
//! Metric partition index (`metrics-<start>-<end>`): `c` time(8) seq(8) → pointer to OTLP
//! `ResourceMetrics`. Pointers are 12 bytes (see `vlog`).
//!
//! Catalog tree (`catalog`), small and never partitioned:
//!
//! | key | value |
//! |---|---|
//! | `S` str(service) | last seen data time (8) |
//! | `O` str(service) str(operation) kind(1) | last seen data time (8) |
//! | `V` str(service) str(key) str(value) | empty: this attribute value is indexed |

/// The sled trees of the database, by what they hold. Every tree name is written here and
/// nowhere else; the stages get their trees from `Store::state_tree`, never the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateTree<'a> {
    /// Services, operations and indexed attribute values (the table above).
    Catalog,
    /// The analysis stage's series cells and checkpoints.
    Analysis,
    /// Log template clusters per service.
    LogClusters,
    /// Alert rule states.
    Alerts,
    /// Incidents.
    Incidents,
    /// The buffer of the `tail_sampling` processor of this name.
    TailBuffer(&'a str),
    /// The persistent queue of the exporter of this name.
    ExportQueue(&'a str),
}

/// The prefix of the export queues' tree names.
const EXPORT_QUEUE_PREFIX: &str = "queue/";

impl StateTree<'_> {
    /// The sled tree name.
    pub fn name(&self) -> String {
        match self {
            StateTree::Catalog => "catalog".into(),
            StateTree::Analysis => "analysis".into(),
            StateTree::LogClusters => "log_clusters".into(),
            StateTree::Alerts => "alerts".into(),
            StateTree::Incidents => "incidents".into(),
            StateTree::TailBuffer(name) => format!("tail/{name}"),
            StateTree::ExportQueue(name) => format!("{EXPORT_QUEUE_PREFIX}{name}"),
        }
    }

    /// The exporter whose queue a tree name is, if it is one.
    pub fn export_queue_of(tree_name: &[u8]) -> Option<String> {
        tree_name
            .strip_prefix(EXPORT_QUEUE_PREFIX.as_bytes())
            .map(|n| String::from_utf8_lossy(n).into_owned())
    }
}

/// Chunk records.
pub const CHUNK: u8 = b'c';
/// Service index (spans and logs).
pub const SERVICE: u8 = b's';
/// (service, operation) index of spans.
pub const OPERATION: u8 = b'o';
/// (service, attribute key, attribute value) index of spans.
pub const ATTRIBUTE: u8 = b'a';
/// trace id index of logs.
pub const TRACE: u8 = b't';

/// Catalog: a service.
pub const CAT_SERVICE: u8 = b'S';
/// Catalog: an operation of a service.
pub const CAT_OPERATION: u8 = b'O';
/// Catalog: an indexed attribute value.
pub const CAT_VALUE: u8 = b'V';

/// Length of the suffix of a span index key: max_start(8) seq(8).
pub const SPAN_SUFFIX: usize = 16;
/// Length of the suffix of a log index key: time(8) seq(8).
pub const LOG_SUFFIX: usize = 16;

/// Appends a length-prefixed string.
pub fn put_str(buf: &mut Vec<u8>, s: &[u8]) {
    let n = s.len().min(u16::MAX as usize);
    buf.extend_from_slice(&(n as u16).to_be_bytes());
    buf.extend_from_slice(&s[..n]);
}

/// A key prefix: tag followed by length-prefixed strings.
pub fn prefix(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len() + 2).sum::<usize>() + 32);
    k.push(tag);
    for p in parts {
        put_str(&mut k, p);
    }
    k
}

/// `c` trace_id seq.
pub fn span_chunk_key(trace_id: &[u8; 16], seq: u64) -> [u8; 25] {
    let mut k = [0u8; 25];
    k[0] = CHUNK;
    k[1..17].copy_from_slice(trace_id);
    k[17..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// A span index key: `prefix` then the list's newest start, then seq.
pub fn span_index_key(prefix: &[u8], max_start: u64, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + SPAN_SUFFIX);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&max_start.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Reads the newest start back from a span index key.
pub fn parse_span_index_key(key: &[u8]) -> Option<u64> {
    let suffix = key.get(key.len().checked_sub(SPAN_SUFFIX)?..)?;
    Some(u64::from_be_bytes(suffix[..8].try_into().ok()?))
}

/// One trace in a posting list: the start and duration ranges of its spans that the entry
/// stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posting {
    pub trace_id: [u8; 16],
    pub min_start: u64,
    pub max_start: u64,
    pub min_duration: u64,
    pub max_duration: u64,
}

/// Set in the header of a list in the compact layout (see [`Posting::encode_list`]).
const COMPACT: u64 = 1 << 63;

impl Posting {
    /// Bytes of a posting in the fixed layout of lists written before the compact one.
    pub const LEN: usize = 48;

    /// Encodes a list: a header of 8 bytes (the earliest start, with bit 63 set to mark this
    /// layout), then per posting the trace id and four LEB128 varints: `min_start` after the
    /// header's start, `max_start` after `min_start`, `min_duration`, and `max_duration` after
    /// `min_duration`. About 33 bytes a posting against the fixed layout's 48 (the trace id is
    /// most of it, and does not compress), and fewer bytes for compaction to compress. The
    /// earliest start is capped at 2^63 − 1 ns (the year 2262), which only lowers it.
    pub fn encode_list(list: &[Posting]) -> Vec<u8> {
        let mut v = Vec::with_capacity(8 + list.len() * 34);
        let min = list
            .iter()
            .map(|p| p.min_start)
            .min()
            .unwrap_or(0)
            .min(COMPACT - 1);
        v.extend_from_slice(&(min | COMPACT).to_be_bytes());
        for p in list {
            v.extend_from_slice(&p.trace_id);
            put_varint(&mut v, p.min_start - min);
            put_varint(&mut v, p.max_start.saturating_sub(p.min_start));
            put_varint(&mut v, p.min_duration);
            put_varint(&mut v, p.max_duration.saturating_sub(p.min_duration));
        }
        v
    }

    /// The earliest start of an encoded list (either layout).
    pub fn list_min_start(v: &[u8]) -> u64 {
        read_u64(v) & !COMPACT
    }

    /// Decodes a list of either layout; a truncated tail is ignored.
    pub fn decode_list(v: &[u8]) -> impl Iterator<Item = Posting> + '_ {
        let header = read_u64(v);
        let body = v.get(8..).unwrap_or_default();
        let compact = header & COMPACT != 0;
        let fixed = body
            .chunks_exact(Self::LEN)
            .take(if compact { 0 } else { usize::MAX })
            .map(|c| Posting {
                trace_id: c[..16].try_into().unwrap_or([0; 16]),
                min_start: read_u64(&c[16..24]),
                max_start: read_u64(&c[24..32]),
                min_duration: read_u64(&c[32..40]),
                max_duration: read_u64(&c[40..48]),
            });
        let mut rest = if compact { body } else { &[][..] };
        let base = header & !COMPACT;
        let compact = std::iter::from_fn(move || {
            let trace_id: [u8; 16] = rest.get(..16)?.try_into().ok()?;
            let mut at = &rest[16..];
            let d_start = take_varint(&mut at)?;
            let span = take_varint(&mut at)?;
            let min_duration = take_varint(&mut at)?;
            let d_duration = take_varint(&mut at)?;
            rest = at;
            let min_start = base.saturating_add(d_start);
            Some(Posting {
                trace_id,
                min_start,
                max_start: min_start.saturating_add(span),
                min_duration,
                max_duration: min_duration.saturating_add(d_duration),
            })
        });
        fixed.chain(compact)
    }

    /// Could one of this trace's spans start within [tmin, tmax] and last within [dmin, dmax]?
    /// (A necessary condition only: the trace itself is checked before it is returned.)
    pub fn may_match(&self, tmin: u64, tmax: u64, dmin: u64, dmax: u64) -> bool {
        self.max_start >= tmin
            && self.min_start <= tmax
            && self.max_duration >= dmin
            && self.min_duration <= dmax
    }
}

/// Appends `x` as an LEB128 varint (7 bits a byte, low first).
fn put_varint(v: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        v.push((x as u8) | 0x80);
        x >>= 7;
    }
    v.push(x as u8);
}

/// Reads an LEB128 varint from the front of `v`; None when it is cut short or over 10 bytes.
fn take_varint(v: &mut &[u8]) -> Option<u64> {
    let mut x = 0u64;
    for i in 0..10 {
        let b = *v.get(i)?;
        x |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *v = &v[i + 1..];
            return Some(x);
        }
    }
    None
}

/// `c` time seq: the primary key of a log or metric chunk.
pub fn time_chunk_key(time: u64, seq: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = CHUNK;
    k[1..9].copy_from_slice(&time.to_be_bytes());
    k[9..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// A log index key: `prefix` then time, seq.
pub fn log_index_key(prefix: &[u8], time: u64, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + LOG_SUFFIX);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&time.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The chunk key a log index key points at.
pub fn log_chunk_key_of_index(key: &[u8]) -> Option<[u8; 17]> {
    let suffix = key.get(key.len().checked_sub(LOG_SUFFIX)?..)?;
    let mut k = [0u8; 17];
    k[0] = CHUNK;
    k[1..].copy_from_slice(suffix);
    Some(k)
}

/// The time part of a `c` time seq chunk key.
pub fn time_of_chunk_key(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(1..9)?.try_into().ok()?))
}

/// The fixed header in front of a log chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogChunkHeader {
    pub min_time: u64,
    pub max_time: u64,
    /// Highest severity number among the chunk's records.
    pub max_severity: u8,
}

impl LogChunkHeader {
    pub const LEN: usize = 17;

    pub fn write(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.min_time.to_be_bytes());
        buf.extend_from_slice(&self.max_time.to_be_bytes());
        buf.push(self.max_severity);
    }

    pub fn read(v: &[u8]) -> Option<LogChunkHeader> {
        Some(LogChunkHeader {
            min_time: u64::from_be_bytes(v.get(..8)?.try_into().ok()?),
            max_time: u64::from_be_bytes(v.get(8..16)?.try_into().ok()?),
            max_severity: *v.get(16)?,
        })
    }
}

/// Reads length-prefixed strings back from a catalog key (after its tag).
pub fn read_strs(mut rest: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while rest.len() >= 2 {
        let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let Some(s) = rest.get(2..2 + n) else { break };
        out.push(s);
        rest = &rest[2 + n..];
    }
    out
}

/// A big-endian u64 from an 8-byte value (0 when malformed).
pub fn read_u64(v: &[u8]) -> u64 {
    v.get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn span_index_key_round_trip() {
        let p = prefix(OPERATION, &[b"svc", b"GET /"]);
        let k = span_index_key(&p, 42, 9);
        assert!(k.starts_with(&p));
        assert_eq!(parse_span_index_key(&k), Some(42));
        assert_eq!(parse_span_index_key(&k[..10]), None);
    }

    #[test]
    fn posting_lists_round_trip() {
        let list = vec![
            Posting {
                trace_id: [1; 16],
                min_start: 50,
                max_start: 70,
                min_duration: 1,
                max_duration: 9,
            },
            Posting {
                trace_id: [2; 16],
                min_start: 20,
                max_start: 20,
                min_duration: 3,
                max_duration: 3,
            },
        ];
        let v = Posting::encode_list(&list);
        assert_eq!(Posting::list_min_start(&v), 20);
        assert_eq!(Posting::decode_list(&v).collect::<Vec<_>>(), list);
        // A truncated value yields the whole postings only.
        assert_eq!(Posting::decode_list(&v[..v.len() - 1]).count(), 1);
        // Lists of the fixed layout (stores written before the compact one) still read.
        let mut old = 20u64.to_be_bytes().to_vec();
        for p in &list {
            old.extend_from_slice(&p.trace_id);
            for x in [p.min_start, p.max_start, p.min_duration, p.max_duration] {
                old.extend_from_slice(&x.to_be_bytes());
            }
        }
        assert_eq!(Posting::list_min_start(&old), 20);
        assert_eq!(Posting::decode_list(&old).collect::<Vec<_>>(), list);
        assert_eq!(Posting::decode_list(&old[..old.len() - 1]).count(), 1);
        // Compact: 8 + 2 × (16 + 4 one-byte varints).
        assert_eq!(v.len(), 8 + 2 * 20);
        assert!(list[0].may_match(60, 60, 5, 100));
        assert!(!list[0].may_match(71, 100, 0, 100));
        assert!(!list[1].may_match(0, 100, 4, 100));
    }

    #[test]
    fn prefixes_do_not_overlap_between_names() {
        let a = prefix(SERVICE, &[b"svc"]);
        let b = prefix(SERVICE, &[b"svc-2"]);
        assert!(!b.starts_with(&a));
    }

    #[test]
    fn log_keys() {
        let p = prefix(SERVICE, &[b"x"]);
        let k = log_index_key(&p, 5, 6);
        assert_eq!(log_chunk_key_of_index(&k), Some(time_chunk_key(5, 6)));
        assert_eq!(time_of_chunk_key(&time_chunk_key(5, 6)), Some(5));
        let h = LogChunkHeader {
            min_time: 1,
            max_time: 2,
            max_severity: 17,
        };
        let mut buf = Vec::new();
        h.write(&mut buf);
        assert_eq!(LogChunkHeader::read(&buf), Some(h));
        assert_eq!(LogChunkHeader::read(&buf[..5]), None);
    }

    proptest! {
        /// Big-endian time keys sort as their times do, so a reverse scan is newest first.
        #[test]
        fn time_order_is_byte_order(a in any::<u64>(), b in any::<u64>(), s in any::<u64>()) {
            let p = prefix(SERVICE, &[b"svc"]);
            let ka = span_index_key(&p, a, s);
            let kb = span_index_key(&p, b, s);
            prop_assert_eq!(a.cmp(&b), ka.cmp(&kb));
        }

        /// Any list round-trips through the compact layout (starts below 2^63, the ranges
        /// ordered as intake builds them), and every cut of it decodes to a prefix of it.
        #[test]
        fn posting_lists_round_trip_any(
            raw in proptest::collection::vec(
                (any::<[u8; 16]>(), 0u64..(1 << 63), any::<u32>(), any::<u64>(), any::<u64>()),
                0..20,
            ),
            cut in any::<prop::sample::Index>(),
        ) {
            let list: Vec<Posting> = raw
                .into_iter()
                .map(|(trace_id, start, span, d1, d2)| Posting {
                    trace_id,
                    min_start: start,
                    max_start: start.saturating_add(u64::from(span)).min((1 << 63) - 1),
                    min_duration: d1.min(d2),
                    max_duration: d1.max(d2),
                })
                .collect();
            let v = Posting::encode_list(&list);
            prop_assert_eq!(Posting::decode_list(&v).collect::<Vec<_>>(), list.clone());
            let min = list.iter().map(|p| p.min_start).min().unwrap_or(0);
            prop_assert_eq!(Posting::list_min_start(&v), min);
            let n = cut.index(v.len() + 1);
            let got: Vec<Posting> = Posting::decode_list(&v[..n]).collect();
            prop_assert!(got.len() <= list.len());
            prop_assert_eq!(&got[..], &list[..got.len()]);
        }

        #[test]
        fn strs_round_trip(parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..4)) {
            let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
            let k = prefix(CAT_VALUE, &refs);
            prop_assert_eq!(read_strs(&k[1..]), refs);
        }
    }
}

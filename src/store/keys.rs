//! Byte layout of every sled key and value sieve writes. Pure functions, no I/O.
//!
//! Integers are big-endian so byte order is numeric order; strings are length-prefixed
//! (u16 big-endian, cut at 65535 bytes) so a prefix scan over `service` never matches
//! `service-2`. Index keys end with a fixed-length suffix (time, trace id, seq) that is read
//! back from the end of the key.
//!
//! Span partition tree (`spans/<start>-<end>`):
//!
//! | key | value |
//! |---|---|
//! | `c` trace_id(16) seq(8) | chunk: OTLP `TracesData` with this trace's spans from one request |
//! | `s` str(service) start(8) trace_id(16) seq(8) | [`SpanIndexValue`] |
//! | `o` str(service) str(operation) start(8) trace_id(16) seq(8) | [`SpanIndexValue`] |
//! | `a` str(service) str(key) str(value) start(8) trace_id(16) seq(8) | [`SpanIndexValue`] |
//!
//! `start` is the earliest start of the chunk's spans the entry stands for; the value holds
//! their shortest and longest duration, so a duration filter skips a chunk without reading it.
//!
//! Log partition tree (`logs/<start>-<end>`):
//!
//! | key | value |
//! |---|---|
//! | `c` time(8) seq(8) | [`LogChunkHeader`] then OTLP `ResourceLogs` (one resource's records from one request) |
//! | `s` str(service) time(8) seq(8) | empty |
//! | `t` trace_id(16) time(8) seq(8) | empty |
//!
//! `time` is the newest record time in the chunk, so a reverse scan reads newest first.
//!
//! Metric partition tree (`metrics/<start>-<end>`): `c` time(8) seq(8) → OTLP `ResourceMetrics`.
//!
//! Catalog tree (`catalog`), small and never partitioned:
//!
//! | key | value |
//! |---|---|
//! | `S` str(service) | last seen data time (8) |
//! | `O` str(service) str(operation) kind(1) | last seen data time (8) |
//! | `V` str(service) str(key) str(value) | empty: this attribute value is indexed |

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

/// Length of the suffix of a span index key: start(8) trace_id(16) seq(8).
pub const SPAN_SUFFIX: usize = 32;
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

/// An index key: `prefix` then start, trace id, seq.
pub fn span_index_key(prefix: &[u8], start: u64, trace_id: &[u8; 16], seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + SPAN_SUFFIX);
    k.extend_from_slice(prefix);
    k.extend_from_slice(&start.to_be_bytes());
    k.extend_from_slice(trace_id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Reads (start, trace id) back from a span index key.
pub fn parse_span_index_key(key: &[u8]) -> Option<(u64, [u8; 16])> {
    let suffix = key.get(key.len().checked_sub(SPAN_SUFFIX)?..)?;
    let start = u64::from_be_bytes(suffix[..8].try_into().ok()?);
    let tid: [u8; 16] = suffix[8..24].try_into().ok()?;
    Some((start, tid))
}

/// Shortest and longest duration of the spans an index entry stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanIndexValue {
    pub min_duration: u64,
    pub max_duration: u64,
}

impl SpanIndexValue {
    pub fn encode(&self) -> [u8; 16] {
        let mut v = [0u8; 16];
        v[..8].copy_from_slice(&self.min_duration.to_be_bytes());
        v[8..].copy_from_slice(&self.max_duration.to_be_bytes());
        v
    }

    pub fn decode(v: &[u8]) -> Option<SpanIndexValue> {
        Some(SpanIndexValue {
            min_duration: u64::from_be_bytes(v.get(..8)?.try_into().ok()?),
            max_duration: u64::from_be_bytes(v.get(8..16)?.try_into().ok()?),
        })
    }

    /// Could a span of this entry have a duration within [min, max]?
    pub fn may_match(&self, min: u64, max: u64) -> bool {
        self.max_duration >= min && self.min_duration <= max
    }
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
        let tid = [7u8; 16];
        let p = prefix(OPERATION, &[b"svc", b"GET /"]);
        let k = span_index_key(&p, 42, &tid, 9);
        assert!(k.starts_with(&p));
        assert_eq!(parse_span_index_key(&k), Some((42, tid)));
        assert_eq!(parse_span_index_key(&k[..10]), None);
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
            let ka = span_index_key(&p, a, &[1; 16], s);
            let kb = span_index_key(&p, b, &[1; 16], s);
            prop_assert_eq!(a.cmp(&b), ka.cmp(&kb));
        }

        #[test]
        fn strs_round_trip(parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..4)) {
            let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
            let k = prefix(CAT_VALUE, &refs);
            prop_assert_eq!(read_strs(&k[1..]), refs);
        }
    }
}

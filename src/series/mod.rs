//! The analysis time series: mergeable [`Cell`]s keyed by (family, resolution, bucket start,
//! labels), and their byte encoding for sled.
//!
//! One cell type serves every family, each using the fields it needs:
//!
//! | family | labels | count | errors | time | e2e | hist | hist2 | exemplars |
//! |---|---|---|---|---|---|---|---|---|
//! | [`Family::Red`] (spanmetrics) | service, operation, kind, status | calls | errors | – | – | duration | – | – |
//! | [`Family::Operation`] (bottlenecks) | service, operation | traces with it on the path | – | its critical-path time | those traces' end-to-end time | its exclusive time per trace | – | slowest traces |
//! | [`Family::CallPath`] | call path | as Operation | | | | | | |
//! | [`Family::Trace`] (all traces) | – | traces | – | end-to-end time | – | end-to-end | – | slowest |
//! | [`Family::Edge`] (service graph) | client, server, request\|messaging | requests | failed | – | – | client latency | server latency | – |
//! | [`Family::Unpaired`] | service | client halves | server halves | – | – | – | – | – |
//! | [`Family::LogCluster`] | service, cluster id | log records | – | – | – | – | – | – |
//!
//! Merging adds the counters, merges the histograms (fixed boundaries, so the merge of two
//! buckets is exactly the histogram of their union) and keeps the [`MAX_EXEMPLARS`] largest
//! exemplars. Merging is associative and commutative, so it serves three purposes: folding
//! late data into an already written bucket (sled's merge operator), downsampling 10 s → 1 min
//! → 1 h (the same delta merged into each resolution's bucket), and reading a window (merging
//! its buckets).
//!
//! Key: `[family][resolution][bucket start, u64 big-endian][labels, each u16 BE length +
//! bytes]`, so one family and resolution is a contiguous range ordered by time.

pub mod histogram;

use std::collections::BTreeMap;

use prost::Message;

use self::histogram::{Histogram, MAX_BUCKET};

/// Exemplars kept per cell.
pub const MAX_EXEMPLARS: usize = 3;

/// Bucket widths of the resolutions, in nanoseconds: 10 s, 1 min, 1 h.
pub const STEPS: [u64; 3] = [10_000_000_000, 60_000_000_000, 3_600_000_000_000];

/// What a series measures; the first byte of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Family {
    Red = 1,
    Operation = 2,
    CallPath = 3,
    Trace = 4,
    Edge = 5,
    Unpaired = 6,
    LogCluster = 7,
}

impl Family {
    pub const ALL: [Family; 7] = [
        Family::Red,
        Family::Operation,
        Family::CallPath,
        Family::Trace,
        Family::Edge,
        Family::Unpaired,
        Family::LogCluster,
    ];

    fn from_byte(b: u8) -> Option<Family> {
        Family::ALL.into_iter().find(|f| *f as u8 == b)
    }
}

/// A trace that stands out in a cell: its id and the value it was ranked by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exemplar {
    pub trace_id: [u8; 16],
    pub value: u64,
}

/// One bucket's figures for one label set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cell {
    pub count: u64,
    pub errors: u64,
    pub time: u64,
    pub e2e: u64,
    pub hist: Histogram,
    pub hist2: Histogram,
    /// Largest value first, at most [`MAX_EXEMPLARS`], one per trace.
    pub exemplars: Vec<Exemplar>,
}

impl Cell {
    pub fn merge(&mut self, o: &Cell) {
        self.count = self.count.saturating_add(o.count);
        self.errors = self.errors.saturating_add(o.errors);
        self.time = self.time.saturating_add(o.time);
        self.e2e = self.e2e.saturating_add(o.e2e);
        self.hist.merge(&o.hist);
        self.hist2.merge(&o.hist2);
        for e in &o.exemplars {
            self.exemplar(*e);
        }
    }

    /// Offers an exemplar: kept when among the largest [`MAX_EXEMPLARS`] (a trace once).
    pub fn exemplar(&mut self, e: Exemplar) {
        if let Some(have) = self.exemplars.iter_mut().find(|x| x.trace_id == e.trace_id) {
            have.value = have.value.max(e.value);
        } else {
            self.exemplars.push(e);
        }
        self.exemplars
            .sort_by(|a, b| b.value.cmp(&a.value).then(a.trace_id.cmp(&b.trace_id)));
        self.exemplars.truncate(MAX_EXEMPLARS);
    }

    pub fn encode(&self) -> Vec<u8> {
        let (b1, c1) = self.hist.buckets().map(|(b, n)| (u32::from(b), n)).unzip();
        let (b2, c2) = self.hist2.buckets().map(|(b, n)| (u32::from(b), n)).unzip();
        CellPb {
            count: self.count,
            errors: self.errors,
            time: self.time,
            e2e: self.e2e,
            h1_buckets: b1,
            h1_counts: c1,
            h1_sum_lo: self.hist.sum() as u64,
            h1_sum_hi: (self.hist.sum() >> 64) as u64,
            h2_buckets: b2,
            h2_counts: c2,
            h2_sum_lo: self.hist2.sum() as u64,
            h2_sum_hi: (self.hist2.sum() >> 64) as u64,
            exemplar_ids: self.exemplars.iter().map(|e| e.trace_id.to_vec()).collect(),
            exemplar_values: self.exemplars.iter().map(|e| e.value).collect(),
        }
        .encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Cell, String> {
        let pb = CellPb::decode(bytes).map_err(|e| e.to_string())?;
        let hist = |b: Vec<u32>, c: Vec<u64>, lo: u64, hi: u64| {
            if b.len() != c.len() {
                return Err("histogram buckets and counts differ in length".to_string());
            }
            let parts = b
                .into_iter()
                .zip(c)
                .map(|(b, n)| match u16::try_from(b) {
                    Ok(b) if b <= MAX_BUCKET => Ok((b, n)),
                    _ => Err(format!("histogram bucket {b} out of range")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Histogram::from_parts(
                parts,
                (u128::from(hi) << 64) | u128::from(lo),
            ))
        };
        if pb.exemplar_ids.len() != pb.exemplar_values.len() {
            return Err("exemplar ids and values differ in length".into());
        }
        let mut exemplars = Vec::with_capacity(pb.exemplar_ids.len());
        for (id, value) in pb.exemplar_ids.iter().zip(&pb.exemplar_values) {
            let trace_id = <[u8; 16]>::try_from(id.as_slice())
                .map_err(|_| format!("exemplar trace id of {} bytes", id.len()))?;
            exemplars.push(Exemplar {
                trace_id,
                value: *value,
            });
        }
        Ok(Cell {
            count: pb.count,
            errors: pb.errors,
            time: pb.time,
            e2e: pb.e2e,
            hist: hist(pb.h1_buckets, pb.h1_counts, pb.h1_sum_lo, pb.h1_sum_hi)?,
            hist2: hist(pb.h2_buckets, pb.h2_counts, pb.h2_sum_lo, pb.h2_sum_hi)?,
            exemplars,
        })
    }
}

/// The stored form of a [`Cell`].
#[derive(Clone, PartialEq, prost::Message)]
struct CellPb {
    #[prost(uint64, tag = "1")]
    count: u64,
    #[prost(uint64, tag = "2")]
    errors: u64,
    #[prost(uint64, tag = "3")]
    time: u64,
    #[prost(uint64, tag = "4")]
    e2e: u64,
    #[prost(uint32, repeated, tag = "5")]
    h1_buckets: Vec<u32>,
    #[prost(uint64, repeated, tag = "6")]
    h1_counts: Vec<u64>,
    #[prost(uint64, tag = "7")]
    h1_sum_lo: u64,
    #[prost(uint64, tag = "8")]
    h1_sum_hi: u64,
    #[prost(uint32, repeated, tag = "9")]
    h2_buckets: Vec<u32>,
    #[prost(uint64, repeated, tag = "10")]
    h2_counts: Vec<u64>,
    #[prost(uint64, tag = "11")]
    h2_sum_lo: u64,
    #[prost(uint64, tag = "12")]
    h2_sum_hi: u64,
    #[prost(bytes = "vec", repeated, tag = "13")]
    exemplar_ids: Vec<Vec<u8>>,
    #[prost(uint64, repeated, tag = "14")]
    exemplar_values: Vec<u64>,
}

/// sled's merge operator for series trees: the stored cell merged with the delta. A stored
/// value that does not decode is replaced by the delta (and a delta that does not decode
/// leaves the stored value), so one damaged value cannot wedge a series.
pub fn merge_operator(_key: &[u8], old: Option<&[u8]>, delta: &[u8]) -> Option<Vec<u8>> {
    let Ok(mut cell) = Cell::decode(delta) else {
        return old.map(<[u8]>::to_vec);
    };
    if let Some(old) = old.and_then(|o| Cell::decode(o).ok()) {
        let mut merged = old;
        merged.merge(&cell);
        cell = merged;
    }
    Some(cell.encode())
}

/// Longest label kept in a key, in bytes (longer ones are cut at a char boundary). The
/// analysis stage bounds its names and call paths below this, so the cut is a guard only.
pub const MAX_LABEL: usize = 4096;

/// The key of a cell.
pub fn key(family: Family, res: usize, bucket: u64, labels: &[&str]) -> Vec<u8> {
    let mut k = prefix(family, res, bucket);
    for l in labels {
        let mut end = l.len().min(MAX_LABEL);
        while !l.is_char_boundary(end) {
            end -= 1;
        }
        k.extend_from_slice(&(end as u16).to_be_bytes());
        k.extend_from_slice(&l.as_bytes()[..end]);
    }
    k
}

/// The first bytes of every key of `family` at `res` from `bucket` on.
pub fn prefix(family: Family, res: usize, bucket: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(48);
    k.push(family as u8);
    k.push(res as u8);
    k.extend_from_slice(&bucket.to_be_bytes());
    k
}

/// A decoded key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub family: Family,
    pub res: usize,
    pub bucket: u64,
    pub labels: Vec<String>,
}

pub fn parse_key(k: &[u8]) -> Result<Key, String> {
    if k.len() < 10 {
        return Err(format!("series key of {} bytes", k.len()));
    }
    let family = Family::from_byte(k[0]).ok_or_else(|| format!("unknown family {}", k[0]))?;
    let res = usize::from(k[1]);
    if res >= STEPS.len() {
        return Err(format!("unknown resolution {res}"));
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&k[2..10]);
    let mut rest = &k[10..];
    let mut labels = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 2 {
            return Err("truncated label length".into());
        }
        let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let body = rest
            .get(2..2 + n)
            .ok_or_else(|| "truncated label".to_string())?;
        labels.push(String::from_utf8_lossy(body).into_owned());
        rest = &rest[2 + n..];
    }
    Ok(Key {
        family,
        res,
        bucket: u64::from_be_bytes(b),
        labels,
    })
}

/// Cells of one label set by bucket start, at one step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Series {
    pub step: u64,
    pub points: BTreeMap<u64, Cell>,
}

impl Series {
    pub fn new(step: u64) -> Series {
        Series {
            step: step.max(1),
            points: BTreeMap::new(),
        }
    }

    /// Adds a cell at time `t` (into the bucket `t` falls in).
    pub fn add(&mut self, t: u64, cell: &Cell) {
        self.points
            .entry(t - t % self.step)
            .or_default()
            .merge(cell);
    }

    /// The same data at a wider step (the oracle the stored resolutions are tested against).
    #[cfg(test)]
    pub fn downsample(&self, step: u64) -> Series {
        let mut out = Series::new(step);
        for (t, c) in &self.points {
            out.add(*t, c);
        }
        out
    }

    /// Everything in buckets starting within [from, to).
    pub fn window(&self, from: u64, to: u64) -> Cell {
        let mut out = Cell::default();
        for (_, c) in self.points.range(from..to) {
            out.merge(c);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn span_cell(duration: u64, error: bool) -> Cell {
        let mut c = Cell {
            count: 1,
            errors: u64::from(error),
            ..Cell::default()
        };
        c.hist.record(duration);
        c
    }

    #[test]
    fn red_series_buckets_and_downsamples() {
        let mut s = Series::new(STEPS[0]);
        for i in 0..120u64 {
            // one call per second for two minutes, every 10th an error, 1..120 ms
            s.add(
                i * 1_000_000_000,
                &span_cell((i + 1) * 1_000_000, i % 10 == 0),
            );
        }
        assert_eq!(s.points.len(), 12);
        assert_eq!(s.points[&0].count, 10);
        assert_eq!(s.points[&0].errors, 1);
        let minute = s.downsample(STEPS[1]);
        assert_eq!(minute.points.len(), 2);
        assert_eq!(minute.points[&0].count, 60);
        let all = s.window(0, u64::MAX);
        assert_eq!((all.count, all.errors), (120, 12));
        assert_eq!(minute.window(0, u64::MAX), all);
        let p50 = all.hist.quantile(0.5).unwrap() as f64 / 1e6;
        assert!((p50 - 60.0).abs() < 1.5, "{p50}");
    }

    #[test]
    fn exemplars_keep_the_largest_once_per_trace() {
        let mut c = Cell::default();
        for (id, v) in [(1u8, 5u64), (2, 9), (3, 1), (1, 7), (4, 8)] {
            c.exemplar(Exemplar {
                trace_id: [id; 16],
                value: v,
            });
        }
        let got: Vec<(u8, u64)> = c
            .exemplars
            .iter()
            .map(|e| (e.trace_id[0], e.value))
            .collect();
        assert_eq!(got, vec![(2, 9), (4, 8), (1, 7)]);
    }

    #[test]
    fn keys_round_trip_and_sort_by_time() {
        let k = key(Family::Red, 1, 42, &["cart", "GET /cart", "2", "0"]);
        let p = parse_key(&k).unwrap();
        assert_eq!(p.family, Family::Red);
        assert_eq!((p.res, p.bucket), (1, 42));
        assert_eq!(p.labels, vec!["cart", "GET /cart", "2", "0"]);
        assert!(key(Family::Red, 1, 41, &["zzz"]) < k);
        assert!(k < key(Family::Red, 1, 43, &["a"]));
        let long = "é".repeat(MAX_LABEL);
        let p = parse_key(&key(Family::Operation, 0, 0, &[&long])).unwrap();
        assert!(p.labels[0].len() <= MAX_LABEL && long.starts_with(&p.labels[0]));
        for bad in [
            &[][..],
            &[9, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, b'a'],
        ] {
            assert!(parse_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_merge_operator_survives_damage() {
        let a = span_cell(10, false);
        let b = span_cell(20, true);
        let merged = merge_operator(b"k", Some(&a.encode()), &b.encode()).unwrap();
        let mut want = a.clone();
        want.merge(&b);
        assert_eq!(Cell::decode(&merged).unwrap(), want);
        // A damaged stored value is replaced; a damaged delta leaves the stored value.
        let fixed = merge_operator(b"k", Some(b"\xff\xff"), &b.encode()).unwrap();
        assert_eq!(Cell::decode(&fixed).unwrap(), b);
        assert_eq!(
            merge_operator(b"k", Some(&a.encode()), b"\xff\xff"),
            Some(a.encode())
        );
        assert!(Cell::decode(b"\x2a\x01\x05").is_err()); // a bucket without its count
        // A bucket past the largest a u64 can fall in would overflow the bounds: refused.
        let mut bad = CellPb::decode(&b.encode()[..]).unwrap();
        bad.h1_buckets = vec![u32::from(MAX_BUCKET) + 1];
        bad.h1_counts = vec![1];
        assert!(Cell::decode(&bad.encode_to_vec()).is_err());
        bad.h1_buckets = vec![u32::from(MAX_BUCKET)];
        bad.h1_counts = vec![u64::MAX];
        let mut c = Cell::decode(&bad.encode_to_vec()).unwrap();
        assert!(c.hist.quantile(1.0).is_some());
        c.merge(&c.clone()); // saturates, no overflow
    }

    fn arb_cell() -> impl Strategy<Value = Cell> {
        (
            0u64..1000,
            0u64..1000,
            0u64..1 << 40,
            prop::collection::vec(1u64..1 << 40, 0..20),
            prop::collection::vec((0u8..8, 0u64..1000), 0..5),
        )
            .prop_map(|(count, errors, time, values, ex)| {
                let mut c = Cell {
                    count,
                    errors,
                    time,
                    e2e: time * 2,
                    ..Cell::default()
                };
                for v in values {
                    c.hist.record(v);
                    c.hist2.record(v / 2);
                }
                for (id, value) in ex {
                    c.exemplar(Exemplar {
                        trace_id: [id; 16],
                        value,
                    });
                }
                c
            })
    }

    proptest! {
        /// Encoding round-trips, and merging is commutative and associative (so the order in
        /// which sled applies deltas, and how buckets are grouped, does not matter).
        #[test]
        fn cells_encode_and_merge_like_a_monoid(a in arb_cell(), b in arb_cell(), c in arb_cell()) {
            prop_assert_eq!(Cell::decode(&a.encode()).unwrap(), a.clone());
            let mut ab = a.clone(); ab.merge(&b);
            let mut ba = b.clone(); ba.merge(&a);
            prop_assert_eq!(&ab, &ba);
            let mut ab_c = ab.clone(); ab_c.merge(&c);
            let mut bc = b.clone(); bc.merge(&c);
            let mut a_bc = a.clone(); a_bc.merge(&bc);
            prop_assert_eq!(ab_c, a_bc);
        }
    }
}

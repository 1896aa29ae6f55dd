//! A mergeable log-linear histogram of durations (nanoseconds), for RED metrics and
//! percentiles over any window.
//!
//! Bucket of `v`: values below 32 have their own bucket; above, the bucket is the position of
//! the highest set bit (the octave) and the next 5 bits below it (32 sub-buckets per octave).
//! So every bucket spans at most 1/32 of its lower bound, and a quantile read back as the
//! bucket's midpoint is within 1/64 (1.6%) of a value in that bucket. Buckets have fixed
//! boundaries, so histograms of different time buckets, services or instances merge by adding
//! counts, and downsampling 10 s → 1 min → 1 h is a merge. Storage covers only the range of
//! buckets that were hit, densely, so recording is an index (a
//! `BTreeMap`, then a binary search over sorted pairs, were 3-5% of intake CPU under load,
//! measured with `perf`; in isolation both cost 20-25 ns a record, the index 3.5).

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;

/// The largest bucket index (that of `u64::MAX`).
pub const MAX_BUCKET: u16 = ((64 - SUB_BITS) as u16 + 1) * SUB as u16 - 1;

/// The bucket index of a value.
pub fn bucket(v: u64) -> u16 {
    if v < SUB {
        return v as u16;
    }
    let octave = 63 - v.leading_zeros(); // ≥ SUB_BITS
    let shift = octave - SUB_BITS;
    let sub = (v >> shift) & (SUB - 1);
    ((octave - SUB_BITS + 1) as u64 * SUB + sub) as u16
}

/// The [low, high] values of a bucket.
pub fn bounds(b: u16) -> (u64, u64) {
    let b = u64::from(b);
    if b < SUB {
        return (b, b);
    }
    let octave = (b / SUB) as u32 + SUB_BITS - 1;
    let sub = b % SUB;
    let shift = octave - SUB_BITS;
    let low = (1u64 << octave) | (sub << shift);
    let high = low.saturating_add((1u64 << shift) - 1);
    (low, high)
}

/// Counts per bucket.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Counts of buckets `lo`, `lo + 1`, …: dense over the range that was hit, so recording is
    /// an index (a latency distribution hits most buckets of its few octaves, and a dense
    /// slot costs 8 bytes where a sparse (bucket, count) pair cost 16).
    counts: Vec<u64>,
    lo: u16,
    count: u64,
    sum: u128,
}

/// Equal when the non-empty buckets, the count and the sum are (however wide the range).
impl PartialEq for Histogram {
    fn eq(&self, other: &Histogram) -> bool {
        self.count == other.count && self.sum == other.sum && self.buckets().eq(other.buckets())
    }
}

impl Eq for Histogram {}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        self.add(bucket(v), 1);
        self.count += 1;
        self.sum += u128::from(v);
    }

    /// Adds `n` to bucket `b`'s count, widening the range to hold it.
    fn add(&mut self, b: u16, n: u64) {
        if let Some(c) = b
            .checked_sub(self.lo)
            .and_then(|i| self.counts.get_mut(usize::from(i)))
        {
            *c = c.saturating_add(n);
            return;
        }
        if self.counts.is_empty() {
            self.lo = b;
            self.counts.push(n);
        } else if b < self.lo {
            let grow = usize::from(self.lo - b);
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.lo = b;
            self.counts[0] = n;
        } else {
            let i = usize::from(b - self.lo);
            self.counts.resize(i + 1, 0);
            self.counts[i] = n;
        }
    }

    pub fn merge(&mut self, other: &Histogram) {
        if self.counts.is_empty() {
            self.counts.clone_from(&other.counts);
            self.lo = other.lo;
        } else {
            for (b, n) in other.buckets() {
                self.add(b, n);
            }
        }
        self.count = self.count.saturating_add(other.count);
        self.sum = self.sum.saturating_add(other.sum);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Values recorded in buckets whose upper bound is at most `v` (exact for values below
    /// 32, within a bucket's width above).
    pub fn count_le(&self, v: u64) -> u64 {
        self.buckets()
            .take_while(|(b, _)| bounds(*b).1 <= v)
            .map(|(_, n)| n)
            .sum()
    }

    /// The sum of the recorded values.
    pub fn sum(&self) -> u128 {
        self.sum
    }

    /// The non-empty buckets, by index, with their counts.
    pub fn buckets(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        let lo = self.lo;
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(move |(i, n)| (lo + i as u16, *n))
    }

    /// Rebuilds a histogram from [`Histogram::buckets`] and [`Histogram::sum`] (the count is
    /// their total).
    pub fn from_parts(buckets: impl IntoIterator<Item = (u16, u64)>, sum: u128) -> Histogram {
        let mut h = Histogram {
            sum,
            ..Histogram::default()
        };
        for (b, n) in buckets {
            if n > 0 {
                h.add(b.min(MAX_BUCKET), n);
                h.count = h.count.saturating_add(n);
            }
        }
        h
    }

    /// Mean of the recorded values (exact).
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    /// The value at quantile `q` (0..=1): the midpoint of the bucket holding the rank
    /// `ceil(q·count)` value. None when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, n) in self.buckets() {
            seen += n;
            if seen >= rank {
                let (lo, hi) = bounds(b);
                return Some(lo + (hi - lo) / 2);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_partition_the_range() {
        // Every value lies in its bucket's bounds, and bounds are contiguous.
        for v in (0..5000u64).chain([1 << 20, (1 << 40) + 12345, u64::MAX]) {
            let (lo, hi) = bounds(bucket(v));
            assert!(lo <= v && v <= hi, "{v} not in {lo}..={hi}");
        }
        for b in 0..MAX_BUCKET {
            assert_eq!(bounds(b).1 + 1, bounds(b + 1).0, "gap after bucket {b}");
        }
        assert_eq!(bucket(u64::MAX), MAX_BUCKET);
        assert_eq!(bounds(MAX_BUCKET).1, u64::MAX);
    }

    #[test]
    fn quantiles_by_hand() {
        let mut h = Histogram::default();
        for v in 1..=100u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5).unwrap() as f64;
        assert!((p50 - 50_000.0).abs() / 50_000.0 < 0.02, "{p50}");
        let p99 = h.quantile(0.99).unwrap() as f64;
        assert!((p99 - 99_000.0).abs() / 99_000.0 < 0.02, "{p99}");
        assert_eq!(h.mean(), Some(50_500.0));
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    proptest! {
        /// Against the exact quantile of the sorted values: within 1/64 relative, and merging
        /// two halves equals recording all.
        #[test]
        fn quantiles_match_the_oracle(mut values in prop::collection::vec(1u64..10_000_000_000, 1..500), q in 0.0f64..=1.0) {
            let mut all = Histogram::default();
            let (mut a, mut b) = (Histogram::default(), Histogram::default());
            for (i, v) in values.iter().enumerate() {
                all.record(*v);
                if i % 2 == 0 { a.record(*v) } else { b.record(*v) }
            }
            a.merge(&b);
            prop_assert_eq!(&a, &all);
            values.sort_unstable();
            let rank = ((q * values.len() as f64).ceil() as usize).max(1);
            let exact = values[rank - 1] as f64;
            let est = all.quantile(q).unwrap() as f64;
            prop_assert!((est - exact).abs() <= exact / 64.0 + 1.0, "q {} exact {} est {}", q, exact, est);
        }
    }
}

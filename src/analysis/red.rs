//! RED span metrics, after the Collector's spanmetrics connector: per (service, operation,
//! span kind, status code), calls, errors and a duration histogram, in time buckets of the
//! spans' own start times, with coarser resolutions made by merging.
//!
//! A [`Series`] keeps buckets of one width (`step`) keyed by bucket start; observing a span
//! adds to the bucket its start falls in. [`Series::downsample`] folds buckets into a wider
//! step (10 s → 1 min → 1 h): calls and errors add, histograms merge (their boundaries are
//! fixed), so percentiles of a coarse bucket are those of all its spans. [`Series::window`]
//! merges the buckets of a time range into one figure. Bounded by [`Red::max_keys`]: spans of
//! keys past it are counted under an overflow key, never dropped silently.

use std::collections::BTreeMap;

use super::histogram::Histogram;

/// What a span is counted under.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub service: String,
    pub operation: String,
    pub kind: i32,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub status: i32,
}

impl Key {
    /// The key overflowing spans share.
    pub fn overflow() -> Key {
        Key {
            service: "*".into(),
            operation: "*".into(),
            kind: 0,
            status: 0,
        }
    }
}

/// One bucket's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Point {
    pub calls: u64,
    pub errors: u64,
    pub duration: Histogram,
}

impl Point {
    pub fn merge(&mut self, o: &Point) {
        self.calls += o.calls;
        self.errors += o.errors;
        self.duration.merge(&o.duration);
    }
}

/// Buckets of one width, by start time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Series {
    pub step: u64,
    pub points: BTreeMap<u64, Point>,
}

impl Series {
    pub fn new(step: u64) -> Series {
        Series {
            step: step.max(1),
            points: BTreeMap::new(),
        }
    }

    pub fn observe(&mut self, start: u64, duration: u64, error: bool) {
        let b = start - start % self.step;
        let p = self.points.entry(b).or_default();
        p.calls += 1;
        p.errors += u64::from(error);
        p.duration.record(duration);
    }

    /// The same data at a wider step (a multiple of this one).
    pub fn downsample(&self, step: u64) -> Series {
        let mut out = Series::new(step);
        for (t, p) in &self.points {
            out.points.entry(t - t % out.step).or_default().merge(p);
        }
        out
    }

    /// Everything in buckets starting within [from, to).
    pub fn window(&self, from: u64, to: u64) -> Point {
        let mut out = Point::default();
        for (_, p) in self.points.range(from..to) {
            out.merge(p);
        }
        out
    }

    /// Drops buckets starting before `horizon` (retention per resolution).
    pub fn expire(&mut self, horizon: u64) {
        self.points = self.points.split_off(&horizon);
    }
}

/// Series per key, bounded.
#[derive(Debug, Clone)]
pub struct Red {
    pub step: u64,
    pub max_keys: usize,
    pub series: BTreeMap<Key, Series>,
}

impl Red {
    pub fn new(step: u64, max_keys: usize) -> Red {
        Red {
            step,
            max_keys: max_keys.max(1),
            series: BTreeMap::new(),
        }
    }

    /// Counts one span.
    pub fn observe(&mut self, key: Key, start: u64, duration: u64) {
        let error = key.status == 2;
        let key = if self.series.contains_key(&key) || self.series.len() < self.max_keys {
            key
        } else {
            Key::overflow()
        };
        let step = self.step;
        self.series
            .entry(key)
            .or_insert_with(|| Series::new(step))
            .observe(start, duration, error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(op: &str, status: i32) -> Key {
        Key {
            service: "cart".into(),
            operation: op.into(),
            kind: 2,
            status,
        }
    }

    #[test]
    fn counts_buckets_and_downsamples() {
        let s10 = 10_000_000_000u64; // 10 s
        let mut red = Red::new(s10, 100);
        for i in 0..120u64 {
            // one call per second for two minutes, every 10th an error, 1..120 ms
            let status = if i % 10 == 0 { 2 } else { 1 };
            red.observe(
                key("GET /cart", status),
                i * 1_000_000_000,
                (i + 1) * 1_000_000,
            );
        }
        let ok = &red.series[&key("GET /cart", 1)];
        let err = &red.series[&key("GET /cart", 2)];
        assert_eq!(ok.points.len(), 12);
        assert_eq!(ok.points[&0].calls, 9);
        assert_eq!(err.points[&0].calls, 1);
        assert_eq!(err.points[&0].errors, 1);
        // 10 s → 1 min: two buckets, the same totals and the same merged histogram.
        let minute = ok.downsample(6 * s10);
        assert_eq!(minute.points.len(), 2);
        assert_eq!(minute.points[&0].calls, 54);
        let all = ok.window(0, u64::MAX);
        assert_eq!(all.calls, 108);
        assert_eq!(minute.window(0, u64::MAX), all);
        // The p50 of the ok calls (durations 2..120 ms without every 10th) is about 60 ms.
        let p50 = all.duration.quantile(0.5).unwrap() as f64 / 1e6;
        assert!((p50 - 61.0).abs() < 2.0, "{p50}");
        // Retention drops old buckets.
        let mut ok = ok.clone();
        ok.expire(6 * s10);
        assert_eq!(ok.points.len(), 6);
    }

    #[test]
    fn keys_are_bounded_by_an_overflow_key() {
        let mut red = Red::new(1, 2);
        for op in ["a", "b", "c", "d"] {
            red.observe(key(op, 0), 0, 1);
        }
        assert_eq!(red.series.len(), 3);
        assert_eq!(red.series[&Key::overflow()].points[&0].calls, 2);
    }
}

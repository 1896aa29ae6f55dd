//! The signals alert rules watch, computed from the analysis series' cells over a window.
//!
//! | signal | from | value |
//! |---|---|---|
//! | `span.error_rate` | RED cells | errors / calls (None without calls) |
//! | `span.latency_p95`, `span.latency_p99` | RED cells | the quantile of the merged duration histogram, in seconds |
//! | `span.calls` | RED cells | calls per second of the window |
//! | `apdex` | RED cells | Apdex with target `apdex_target` (satisfied ≤ T, tolerating ≤ 4T) |
//! | `slo.burn_rate` | RED cells | error-budget burn rate against `objective`: bad / total / (1 − objective), bad = errors, or calls slower than `latency_threshold` when set |
//! | `slo.burn_multiwindow` | RED cells | the SRE workbook's multi-window rules as one number, [`super::detect::burn_level`] of the burn rates over 1 h, 5 min, 6 h and 30 min (the rule's window is not used): above 1 when 1 h and 5 min both burn over 14.4×, or 6 h and 30 min over 6× |
//! | `log.cluster_rate` | log-cluster cells | records per second |
//! | `log.new_cluster` | log clusters | 1 when the cluster was first seen within the window, else 0 |
//! | `bottleneck.share_change` | operation cells | share of end-to-end time now minus in the baseline, in points |
//!
//! Cells of one group (the rule's `group_by` labels) are merged before the value is taken,
//! so a service's error rate is over all its operations.

use super::detect::{apdex_of, burn_rate};
use crate::series::Cell;

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    SpanErrorRate,
    SpanLatencyP95,
    SpanLatencyP99,
    SpanCalls,
    Apdex,
    SloBurnRate,
    SloBurnMultiWindow,
    LogClusterRate,
    LogNewCluster,
    BottleneckShareChange,
}

impl Signal {
    pub const ALL: [Signal; 10] = [
        Signal::SpanErrorRate,
        Signal::SpanLatencyP95,
        Signal::SpanLatencyP99,
        Signal::SpanCalls,
        Signal::Apdex,
        Signal::SloBurnRate,
        Signal::SloBurnMultiWindow,
        Signal::LogClusterRate,
        Signal::LogNewCluster,
        Signal::BottleneckShareChange,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::SpanErrorRate => "span.error_rate",
            Signal::SpanLatencyP95 => "span.latency_p95",
            Signal::SpanLatencyP99 => "span.latency_p99",
            Signal::SpanCalls => "span.calls",
            Signal::Apdex => "apdex",
            Signal::SloBurnRate => "slo.burn_rate",
            Signal::SloBurnMultiWindow => "slo.burn_multiwindow",
            Signal::LogClusterRate => "log.cluster_rate",
            Signal::LogNewCluster => "log.new_cluster",
            Signal::BottleneckShareChange => "bottleneck.share_change",
        }
    }

    pub fn parse(s: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Labels a rule on this signal may group by.
    pub fn labels(self) -> &'static [&'static str] {
        match self {
            Signal::LogClusterRate | Signal::LogNewCluster => &["service", "cluster"],
            _ => &["service", "operation"],
        }
    }
}

/// Settings some signals need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignalParams {
    /// Apdex target T, nanoseconds.
    pub apdex_target: u64,
    /// SLO objective (0.999).
    pub objective: f64,
    /// For a latency SLO: calls slower than this are bad (nanoseconds).
    pub latency_threshold: Option<u64>,
}

impl Default for SignalParams {
    fn default() -> Self {
        SignalParams {
            apdex_target: 500_000_000,
            objective: 0.999,
            latency_threshold: None,
        }
    }
}

/// The value of a span signal over merged RED cells of a window of `seconds`.
pub fn span_value(signal: Signal, c: &Cell, seconds: f64, p: &SignalParams) -> Option<f64> {
    match signal {
        Signal::SpanErrorRate => (c.count > 0).then(|| c.errors as f64 / c.count as f64),
        Signal::SpanLatencyP95 => c.hist.quantile(0.95).map(|v| v as f64 / 1e9),
        Signal::SpanLatencyP99 => c.hist.quantile(0.99).map(|v| v as f64 / 1e9),
        Signal::SpanCalls => (seconds > 0.0).then(|| c.count as f64 / seconds),
        Signal::Apdex => apdex_of(&c.hist, p.apdex_target),
        Signal::SloBurnRate => {
            let bad = match p.latency_threshold {
                Some(t) => c.count - c.hist.count_le(t).min(c.count),
                None => c.errors,
            };
            burn_rate(bad, c.count, p.objective)
        }
        _ => None,
    }
}

/// Records per second of a log cluster with `count` records over a window of `seconds`.
pub fn log_rate(count: u64, seconds: f64) -> Option<f64> {
    (seconds > 0.0).then(|| count as f64 / seconds)
}

/// 1 when `first_seen` falls in `[from, to)`, else 0.
pub fn new_cluster(first_seen: u64, (from, to): (u64, u64)) -> f64 {
    f64::from(u8::from(first_seen >= from && first_seen < to))
}

/// Change of an operation's share of end-to-end time, in points: `op/total` now minus in the
/// baseline (a missing baseline share counts as 0).
pub fn share_change(op: &Cell, total: &Cell, base_op: &Cell, base_total: &Cell) -> Option<f64> {
    let share = |o: &Cell, t: &Cell| (t.time > 0).then(|| o.time as f64 / t.time as f64);
    let now = share(op, total)?;
    Some((now - share(base_op, base_total).unwrap_or(0.0)) * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red(durations_ms: &[u64], errors: u64) -> Cell {
        let mut c = Cell {
            count: durations_ms.len() as u64,
            errors,
            ..Cell::default()
        };
        for d in durations_ms {
            c.hist.record(d * 1_000_000);
        }
        c
    }

    #[test]
    fn span_signals_by_hand() {
        let p = SignalParams {
            apdex_target: 100_000_000,
            ..SignalParams::default()
        };
        // 10 calls over 10 s: 2 errors; 6 under 100 ms, 2 under 400 ms, 2 slower.
        let c = red(&[10, 20, 30, 40, 50, 60, 150, 300, 900, 1000], 2);
        let v = |s| span_value(s, &c, 10.0, &p).unwrap();
        assert_eq!(v(Signal::SpanErrorRate), 0.2);
        assert_eq!(v(Signal::SpanCalls), 1.0);
        assert_eq!(v(Signal::Apdex), (6.0 + 1.0) / 10.0);
        let p95 = v(Signal::SpanLatencyP95);
        assert!((p95 - 1.0).abs() < 1.0 / 64.0 + 1e-9, "{p95}");
        // 20% errors against 99.9%: burn 200×.
        assert!((v(Signal::SloBurnRate) - 200.0).abs() < 1e-9);
        // A latency SLO at 500 ms: 2 bad of 10 against 90% → burn 2.
        let lat = SignalParams {
            objective: 0.9,
            latency_threshold: Some(500_000_000),
            ..p
        };
        assert!((span_value(Signal::SloBurnRate, &c, 10.0, &lat).unwrap() - 2.0).abs() < 1e-9);
        // Nothing to say without calls.
        let empty = Cell::default();
        for s in [
            Signal::SpanErrorRate,
            Signal::SpanLatencyP95,
            Signal::Apdex,
            Signal::SloBurnRate,
        ] {
            assert_eq!(span_value(s, &empty, 10.0, &p), None, "{s:?}");
        }
    }

    #[test]
    fn log_and_bottleneck_signals() {
        let c = Cell {
            count: 30,
            ..Cell::default()
        };
        assert_eq!(log_rate(c.count, 60.0), Some(0.5));
        assert_eq!(new_cluster(5, (0, 10)), 1.0);
        assert_eq!(new_cluster(10, (0, 10)), 0.0);
        let cell = |time| Cell {
            time,
            ..Cell::default()
        };
        assert_eq!(
            share_change(&cell(60), &cell(100), &cell(20), &cell(100)),
            Some(40.0)
        );
        assert_eq!(
            share_change(&cell(60), &cell(100), &Cell::default(), &Cell::default()),
            Some(60.0)
        );
        assert_eq!(
            share_change(&cell(1), &Cell::default(), &cell(1), &cell(1)),
            None
        );
        for s in Signal::ALL {
            assert_eq!(Signal::parse(s.as_str()), Some(s));
        }
        assert_eq!(Signal::parse("span.errors"), None);
    }
}

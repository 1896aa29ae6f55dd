//! Rule signals read from the analysis series: for each rule and evaluation time, the
//! signal's value per label group over the rule's window (RED cells read once per step and
//! shared by the rules that need them, log-cluster counts, burn rates).

use super::*;

impl Engine {
    /// Rule `i`'s signal per label group over `[t − window, t)`.
    pub fn values(
        &self,
        analyzer: &Analyzer,
        i: usize,
        t: u64,
    ) -> Result<BTreeMap<Labels, f64>, AlertingError> {
        self.values_reading(analyzer, i, t, &mut RedReads::new())
    }

    /// [`Engine::values`], with the RED reads of this evaluation time shared in `reds`.
    pub(super) fn values_reading(
        &self,
        analyzer: &Analyzer,
        i: usize,
        t: u64,
        reds: &mut RedReads,
    ) -> Result<BTreeMap<Labels, f64>, AlertingError> {
        let r = &self.cfg.rules[i];
        let sig = r.signal;
        let w = (r.window.as_nanos() as u64).max(STEPS[0]);
        let range = (t.saturating_sub(w), t);
        let secs = w as f64 / 1e9;
        let group = |service: &str, other: (&str, &str)| -> Labels {
            let mut l = Labels::new();
            for g in &r.group_by {
                if g == "service" {
                    l.insert(g.clone(), service.to_string());
                } else if g == other.0 {
                    l.insert(g.clone(), other.1.to_string());
                }
            }
            l
        };
        let mut out = BTreeMap::new();
        match sig {
            Signal::SpanErrorRate
            | Signal::SpanLatencyP95
            | Signal::SpanLatencyP99
            | Signal::SpanCalls
            | Signal::Apdex
            | Signal::SloBurnRate => {
                let p = params(r);
                for (g, c) in red_groups(analyzer, reds, 0, range, &group)? {
                    if let Some(v) = signal::span_value(sig, &c, secs, &p) {
                        out.insert(g, v);
                    }
                }
            }
            Signal::SloBurnMultiWindow => {
                // Burn rates over the four windows ending at t (6 h read by the minute).
                let p = params(r);
                let mut burns: BTreeMap<Labels, [f64; 4]> = BTreeMap::new();
                let minute = 60_000_000_000;
                for (k, (mins, res)) in [(60, 0), (5, 0), (360, 1), (30, 0)].into_iter().enumerate()
                {
                    let w = mins * minute;
                    let range = (t.saturating_sub(w), t);
                    for (g, c) in red_groups(analyzer, reds, res, range, &group)? {
                        if let Some(b) =
                            signal::span_value(Signal::SloBurnRate, &c, w as f64 / 1e9, &p)
                        {
                            burns.entry(g).or_default()[k] = b;
                        }
                    }
                }
                for (g, [h1, m5, h6, m30]) in burns {
                    let level =
                        crate::alerts::detect::burn_level(crate::alerts::detect::BurnWindows {
                            h1,
                            m5,
                            h6,
                            m30,
                        });
                    out.insert(g, level);
                }
            }
            Signal::LogClusterRate | Signal::LogNewCluster => {
                let min = r
                    .min_log_severity
                    .as_deref()
                    .and_then(crate::otlp::parse_severity)
                    .unwrap_or(0);
                if sig == Signal::LogNewCluster {
                    let Some(logs) = analyzer.log_clusters() else {
                        return Ok(out);
                    };
                    for c in logs.live_records().filter(|c| c.max_severity >= min) {
                        let v = signal::new_cluster(c.first_seen, range);
                        if v > 0.0 {
                            out.insert(group(&c.service, ("cluster", &c.id.to_string())), v);
                        }
                    }
                } else {
                    // Series carry the id a record got; a cluster merged since counts under
                    // the live cluster it joined.
                    let read = analyzer.read(Family::LogCluster, 0, range, &|_| true)?;
                    let Some(logs) = analyzer.log_clusters() else {
                        return Ok(out);
                    };
                    let mut counts: BTreeMap<Labels, u64> = BTreeMap::new();
                    for (l, c) in read.cells {
                        let Some(live) = l
                            .get(1)
                            .and_then(|x| x.parse::<u64>().ok())
                            .and_then(|id| logs.get(id))
                        else {
                            continue;
                        };
                        // A cluster younger than the window has a partial rate, still
                        // ramping up: judged from its first full window on, so that a
                        // detector does not learn the ramp as its baseline.
                        if live.max_severity >= min && live.first_seen <= range.0 {
                            *counts
                                .entry(group(&live.service, ("cluster", &live.id.to_string())))
                                .or_default() += c.count;
                        }
                    }
                    for (g, n) in counts {
                        if let Some(v) = signal::log_rate(n, secs) {
                            out.insert(g, v);
                        }
                    }
                }
            }
            Signal::BottleneckShareChange => {
                let base = (range.0.saturating_sub(w), range.0);
                let ops = analyzer.read(Family::Operation, 0, range, &|_| true)?.cells;
                let base_ops = analyzer.read(Family::Operation, 0, base, &|_| true)?.cells;
                let total = analyzer
                    .read(Family::Trace, 0, range, &|_| true)?
                    .cells
                    .remove(&Vec::new())
                    .unwrap_or_default();
                let base_total = analyzer
                    .read(Family::Trace, 0, base, &|_| true)?
                    .cells
                    .remove(&Vec::new())
                    .unwrap_or_default();
                for (l, c) in &ops {
                    let b = base_ops.get(l).cloned().unwrap_or_default();
                    if let Some(v) = signal::share_change(c, &total, &b, &base_total) {
                        let (svc, op) = (
                            l.first().cloned().unwrap_or_default(),
                            l.get(1).cloned().unwrap_or_default(),
                        );
                        out.insert(group(&svc, ("operation", &op)), v);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// RED cells read in one evaluation step, by (resolution, from, to).
pub(super) type RedReads = HashMap<(usize, u64, u64), HashMap<Vec<String>, Cell>>;

/// RED cells over `range` at resolution `res` (read once per step through `reads`), merged
/// per label group (`group(service, ("operation", op))`).
fn red_groups(
    analyzer: &Analyzer,
    reads: &mut RedReads,
    res: usize,
    range: (u64, u64),
    group: &dyn Fn(&str, (&str, &str)) -> Labels,
) -> Result<BTreeMap<Labels, Cell>, AlertingError> {
    let cells = match reads.entry((res, range.0, range.1)) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(analyzer.read(Family::Red, res, range, &|_| true)?.cells)
        }
    };
    let mut merged: BTreeMap<Labels, Cell> = BTreeMap::new();
    for (l, c) in cells.iter() {
        let (svc, op) = (
            l.first().map(String::as_str).unwrap_or_default(),
            l.get(1).map(String::as_str).unwrap_or_default(),
        );
        merged
            .entry(group(svc, ("operation", op)))
            .or_default()
            .merge(c);
    }
    Ok(merged)
}

fn params(r: &Rule) -> SignalParams {
    SignalParams {
        apdex_target: r.apdex_target.as_nanos() as u64,
        objective: r.objective,
        latency_threshold: r.latency_threshold.map(|d| d.as_nanos() as u64),
    }
}

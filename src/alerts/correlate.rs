//! Correlating firing alerts into incidents, suppressing the redundant ones, and ranking
//! root-cause candidates with their evidence.
//!
//! **Grouping.** Two alerts are *related* when they started within `window` of each other
//! and either concern the same service, or services adjacent in the service graph (one calls
//! the other), or services found together on the critical paths of recent traces (one waits,
//! through its call chain, on the other: the frontend on inventory behind catalog), or their
//! signal series around their onsets correlate (Pearson r ≥ `tau`). Incidents are the
//! connected components of that relation, built in start order; an alert joins an incident
//! only while it starts within `max_span` of the incident's first alert, so a long outage
//! does not swallow the next day's unrelated trouble.
//!
//! **Root cause.** Each service with an alert in the incident is a candidate, scored in
//! [0, 1] as `0.35·depth + 0.30·earliness + 0.20·critical-path growth + 0.15·logs`:
//! - depth: 1 for a failing service that calls no other failing service (the deepest failing
//!   dependency), else 1/(1 + the number of failing services it calls, directly or not);
//! - earliness: 1 for the services whose anomaly started first, falling linearly with the
//!   start time to 0 for the last (alerts firing in the same evaluation tie);
//! - critical-path growth: its growth of share of end-to-end time against the baseline, in
//!   points, over [`GROWTH_SCALE`] (at most 1; 0 when it did not grow);
//! - logs: new or surging error-level log clusters in it, 0.5 each, at most 1.
//!
//! Every term that contributes is given as evidence in words.
//!
//! **Suppression.** Within an incident an alert is suppressed when an alert that outranks it
//! correlates with it (r ≥ `tau`): it stays visible, marked with the alert that suppresses
//! it, and is not notified. An alert outranks another when its service ranks higher as
//! root cause, or, on the same service, when its priority is strictly higher. So the
//! symptoms upstream of a failing dependency (the frontend's errors when inventory fails)
//! are suppressed by the cause's alert, whatever their rules' priorities: ranking by
//! priority alone would keep the frontend's critical alert and hide the cause.

use std::collections::{BTreeMap, HashMap, HashSet};

/// Growth of critical-path share (points) that earns the whole growth term. Relative to
/// the largest growth among candidates instead, a 0.2-point wobble would count as much as a
/// 30-point shift when nothing else moved.
pub const GROWTH_SCALE: f64 = 20.0;

/// Growth under this many points is not evidence.
const GROWTH_NOISE: f64 = 1.0;

/// A firing alert as correlation sees it.
#[derive(Debug, Clone)]
pub struct FiringAlert {
    /// Its fingerprint.
    pub id: u64,
    pub service: String,
    /// When it started firing (event time, ns).
    pub started: u64,
    pub priority: f64,
    /// Its signal's values around its onset: (evaluation time, value), in time order.
    /// Two alerts are correlated over the times both have.
    pub series: Vec<(u64, f64)>,
}

/// Correlation settings.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub window: u64,
    pub max_span: u64,
    pub tau: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            window: 10 * 60 * 1_000_000_000,
            max_span: 4 * 3600 * 1_000_000_000,
            tau: 0.8,
        }
    }
}

/// What is known of a service beyond its alerts.
#[derive(Debug, Clone, Default)]
pub struct ServiceEvidence {
    /// Growth of its critical-path share against the baseline (percentage points, may be
    /// negative).
    pub critical_path_growth: f64,
    /// New or surging error-level log clusters.
    pub error_log_clusters: u32,
    /// When its first alert of the trouble fired, if known beyond the alerts given (one
    /// that has resolved since, such as a new error log cluster's).
    pub first_anomaly: Option<u64>,
}

/// A root-cause candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub service: String,
    pub score: f64,
    pub evidence: Vec<String>,
}

/// One incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// Indices into the alerts given, in start order.
    pub alerts: Vec<usize>,
    pub started: u64,
    /// (suppressed alert, the alert suppressing it), indices.
    pub suppressed: Vec<(usize, usize)>,
    /// Best first.
    pub root_causes: Vec<Candidate>,
}

/// Pearson correlation of two equally long series; 0 when shorter than 3 points or flat.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    if n < 3 {
        return 0.0;
    }
    let (a, b) = (&a[a.len() - n..], &b[b.len() - n..]);
    pearson_of(|| a.iter().copied().zip(b.iter().copied()))
}

/// Pearson correlation of the pairs `pairs()` yields (two passes, nothing allocated); 0 for
/// fewer than 3 pairs or a flat side.
fn pearson_of<I: Iterator<Item = (f64, f64)>>(pairs: impl Fn() -> I) -> f64 {
    let (mut n, mut sa, mut sb) = (0usize, 0.0, 0.0);
    for (x, y) in pairs() {
        n += 1;
        sa += x;
        sb += y;
    }
    if n < 3 {
        return 0.0;
    }
    let (ma, mb) = (sa / n as f64, sb / n as f64);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in pairs() {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa == 0.0 || sbb == 0.0 {
        0.0
    } else {
        sab / (saa.sqrt() * sbb.sqrt())
    }
}

/// The values of two timed series (both in time order) at the times both have.
struct Common<'a> {
    a: &'a [(u64, f64)],
    b: &'a [(u64, f64)],
    i: usize,
    j: usize,
}

impl Iterator for Common<'_> {
    type Item = (f64, f64);

    fn next(&mut self) -> Option<(f64, f64)> {
        while self.i < self.a.len() && self.j < self.b.len() {
            let ((ta, x), (tb, y)) = (self.a[self.i], self.b[self.j]);
            match ta.cmp(&tb) {
                std::cmp::Ordering::Less => self.i += 1,
                std::cmp::Ordering::Greater => self.j += 1,
                std::cmp::Ordering::Equal => {
                    self.i += 1;
                    self.j += 1;
                    return Some((x, y));
                }
            }
        }
        None
    }
}

/// Pearson correlation of two timed series over the times both have, as [`pearson`] of those
/// values (nothing allocated: it runs for every pair of alerts).
pub fn pearson_timed(a: &[(u64, f64)], b: &[(u64, f64)]) -> f64 {
    pearson_of(|| Common { a, b, i: 0, j: 0 })
}

/// Service graph adjacency (caller → callees), and the services found together on critical
/// paths.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    pub calls: HashMap<String, HashSet<String>>,
    /// Unordered pairs (smaller name first) on one critical call path.
    pub critical: HashSet<(String, String)>,
}

impl Topology {
    pub fn add(&mut self, client: &str, server: &str) {
        self.calls
            .entry(client.to_string())
            .or_default()
            .insert(server.to_string());
    }

    /// Notes the services of one critical call path (from its root down).
    pub fn add_critical_path<'a>(&mut self, services: impl IntoIterator<Item = &'a str>) {
        let mut seen: Vec<&str> = services.into_iter().collect();
        seen.sort_unstable();
        seen.dedup();
        for (i, a) in seen.iter().enumerate() {
            for b in &seen[i + 1..] {
                self.critical.insert((a.to_string(), b.to_string()));
            }
        }
    }

    /// Whether `a` and `b` were on one critical call path.
    pub fn on_critical_path_together(&self, a: &str, b: &str) -> bool {
        let (x, y) = if a <= b { (a, b) } else { (b, a) };
        self.critical.contains(&(x.to_string(), y.to_string()))
    }

    pub fn adjacent(&self, a: &str, b: &str) -> bool {
        self.calls.get(a).is_some_and(|c| c.contains(b))
            || self.calls.get(b).is_some_and(|c| c.contains(a))
    }

    /// Services in `among` that `s` reaches through calls (not itself).
    fn downstream(&self, s: &str, among: &HashSet<&str>) -> usize {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut todo = vec![s];
        while let Some(x) = todo.pop() {
            for y in self.calls.get(x).into_iter().flatten() {
                if y != s && seen.insert(y) {
                    todo.push(y);
                }
            }
        }
        seen.iter().filter(|x| among.contains(*x)).count()
    }
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Groups `alerts` into incidents with suppression and root-cause ranking, with the same
/// evidence for every group.
pub fn correlate(
    alerts: &[FiringAlert],
    topology: &Topology,
    evidence: &HashMap<String, ServiceEvidence>,
    p: &Params,
) -> Vec<Incident> {
    correlate_with(alerts, topology, p, &mut |_, _| evidence.clone())
}

/// Evidence for one group: its alerts and its start.
pub type EvidenceFn<'a> = dyn FnMut(&[&FiringAlert], u64) -> HashMap<String, ServiceEvidence> + 'a;

/// As [`correlate`], each group's evidence from `evidence(its alerts, its start)`.
pub fn correlate_with(
    alerts: &[FiringAlert],
    topology: &Topology,
    p: &Params,
    evidence: &mut EvidenceFn<'_>,
) -> Vec<Incident> {
    let mut order: Vec<usize> = (0..alerts.len()).collect();
    order.sort_by_key(|&i| (alerts[i].started, alerts[i].id));
    let related = |a: &FiringAlert, b: &FiringAlert| {
        a.started.abs_diff(b.started) <= p.window
            && (a.service == b.service
                || topology.adjacent(&a.service, &b.service)
                || topology.on_critical_path_together(&a.service, &b.service)
                || pearson_timed(&a.series, &b.series) >= p.tau)
    };
    // Union-find over start order; a component's start is its first alert's.
    let mut parent: Vec<usize> = (0..alerts.len()).collect();
    let mut start: Vec<u64> = alerts.iter().map(|a| a.started).collect();
    for (pos, &i) in order.iter().enumerate() {
        for &j in &order[..pos] {
            let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
            if ri == rj || !related(&alerts[i], &alerts[j]) {
                continue;
            }
            let merged_start = start[ri].min(start[rj]);
            let latest = alerts[i].started.max(alerts[j].started);
            if latest.saturating_sub(merged_start) > p.max_span {
                continue;
            }
            parent[ri] = rj;
            start[rj] = merged_start;
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &i in &order {
        let r = find(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    let mut incidents: Vec<Incident> = Vec::with_capacity(groups.len());
    for members in groups.into_values() {
        let started = members
            .iter()
            .map(|&i| alerts[i].started)
            .min()
            .unwrap_or(0);
        let of: Vec<&FiringAlert> = members.iter().map(|&i| &alerts[i]).collect();
        let ev = evidence(&of, started);
        let root_causes = rank(alerts, &members, topology, &ev);
        let suppressed = suppress(alerts, &members, &root_causes, p.tau);
        incidents.push(Incident {
            started,
            root_causes,
            alerts: members,
            suppressed,
        });
    }
    incidents.sort_by_key(|i| i.started);
    incidents
}

/// (suppressed, by): an alert correlated with one that outranks it (its service ranks
/// higher as root cause, or the same service and a strictly higher priority); `by` is the
/// highest-ranked such alert.
fn suppress(
    alerts: &[FiringAlert],
    members: &[usize],
    ranking: &[Candidate],
    tau: f64,
) -> Vec<(usize, usize)> {
    let place: HashMap<&str, usize> = ranking
        .iter()
        .enumerate()
        .map(|(k, c)| (c.service.as_str(), k))
        .collect();
    let pos = |i: usize| {
        place
            .get(alerts[i].service.as_str())
            .copied()
            .unwrap_or(usize::MAX)
    };
    // Greater is better.
    let rank = |i: usize| (std::cmp::Reverse(pos(i)), alerts[i].priority);
    let outranks = |b: usize, a: usize| {
        let (rb, ra) = (rank(b), rank(a));
        rb.0 > ra.0 || (rb.0 == ra.0 && rb.1 > ra.1)
    };
    let mut out = Vec::new();
    for &a in members {
        let by = members
            .iter()
            .copied()
            .filter(|&b| {
                outranks(b, a) && pearson_timed(&alerts[a].series, &alerts[b].series) >= tau
            })
            .max_by(|&x, &y| {
                let (rx, ry) = (rank(x), rank(y));
                rx.0.cmp(&ry.0).then(rx.1.total_cmp(&ry.1))
            });
        if let Some(b) = by {
            out.push((a, b));
        }
    }
    out
}

fn rank(
    alerts: &[FiringAlert],
    members: &[usize],
    topology: &Topology,
    evidence: &HashMap<String, ServiceEvidence>,
) -> Vec<Candidate> {
    // Earliest start per service.
    let mut first: BTreeMap<&str, u64> = BTreeMap::new();
    for &i in members {
        let s = alerts[i].service.as_str();
        let known = evidence
            .get(s)
            .and_then(|e| e.first_anomaly)
            .unwrap_or(u64::MAX);
        let e = first.entry(s).or_insert(known);
        *e = (*e).min(alerts[i].started);
    }
    let failing: HashSet<&str> = first.keys().copied().collect();
    let mut by_start: Vec<(&str, u64)> = first.iter().map(|(s, t)| (*s, *t)).collect();
    by_start.sort_by_key(|(s, t)| (*t, *s));
    let (t_first, t_last) = (
        by_start.first().map_or(0, |x| x.1),
        by_start.last().map_or(0, |x| x.1),
    );
    let first_count = by_start.iter().filter(|x| x.1 == t_first).count();
    let mut out: Vec<Candidate> = by_start
        .iter()
        .map(|(s, started)| {
            let mut why = Vec::new();
            let below = topology.downstream(s, &failing);
            let depth = 1.0 / (1.0 + below as f64);
            if below == 0 {
                why.push("deepest failing dependency: calls no other failing service".into());
            } else {
                why.push(format!("calls {below} other failing services"));
            }
            let early = if t_last == t_first {
                1.0
            } else {
                1.0 - (started - t_first) as f64 / (t_last - t_first) as f64
            };
            if *started == t_first && first_count < by_start.len() {
                why.push(if first_count == 1 {
                    "its anomaly started first".into()
                } else {
                    format!("its anomaly started first, with {} others", first_count - 1)
                });
            }
            let ev = evidence.get(*s).cloned().unwrap_or_default();
            let growth = if ev.critical_path_growth >= GROWTH_NOISE {
                (ev.critical_path_growth / GROWTH_SCALE).min(1.0)
            } else {
                0.0
            };
            if growth > 0.0 {
                why.push(format!(
                    "its critical-path share grew by {:.1} points",
                    ev.critical_path_growth
                ));
            }
            let logs = (f64::from(ev.error_log_clusters) * 0.5).min(1.0);
            if ev.error_log_clusters > 0 {
                why.push(format!(
                    "{} new or surging error log clusters",
                    ev.error_log_clusters
                ));
            }
            Candidate {
                service: s.to_string(),
                score: 0.35 * depth + 0.30 * early + 0.20 * growth + 0.15 * logs,
                evidence: why,
            }
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.service.cmp(&b.service)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000_000_000;

    fn alert(
        id: u64,
        service: &str,
        started_min: u64,
        priority: f64,
        series: &[f64],
    ) -> FiringAlert {
        FiringAlert {
            id,
            service: service.into(),
            started: started_min * MIN,
            priority,
            series: timed(series),
        }
    }

    /// Values at evaluation times 0, 1, 2…
    fn timed(xs: &[f64]) -> Vec<(u64, f64)> {
        (0u64..).zip(xs.iter().copied()).collect()
    }

    fn shop() -> Topology {
        let mut t = Topology::default();
        t.add("frontend", "cart");
        t.add("cart", "db");
        t.add("frontend", "search");
        t
    }

    #[test]
    fn timed_series_align_on_common_times() {
        // Times 2..5 in common: (3, 4, 5, 6) against (2, 4, 6, 8): r = 1.
        let a = [(0, 9.0), (2, 3.0), (3, 4.0), (4, 5.0), (5, 6.0)];
        let b = [(2, 2.0), (3, 4.0), (4, 6.0), (5, 8.0), (7, -5.0)];
        assert!((pearson_timed(&a, &b) - 1.0).abs() < 1e-12);
        // Aligned by position instead, the outliers would make it anything but 1.
        let (x, y): (Vec<f64>, Vec<f64>) = a.iter().zip(&b).map(|(p, q)| (p.1, q.1)).unzip();
        assert!(pearson(&x, &y) < 0.5);
        assert_eq!(pearson_timed(&a, &[(1, 1.0), (9, 2.0)]), 0.0);
        // Same times: the same as by position.
        let (x, y) = ([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]);
        assert!((pearson_timed(&timed(&x), &timed(&y)) - pearson(&x, &y)).abs() < 1e-15);
    }

    #[test]
    fn pearson_by_hand() {
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]) - 1.0).abs() < 1e-12);
        assert!((pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        // x = 1..4, y = 1, 3, 2, 4: r = 4/5.
        assert!((pearson(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]) - 0.8).abs() < 1e-12);
        assert_eq!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), 0.0);
        assert_eq!(pearson(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
    }

    #[test]
    fn a_slow_database_is_one_incident_with_the_root_cause_first() {
        let up = [1.0, 1.0, 2.0, 5.0, 9.0];
        let alerts = vec![
            alert(1, "frontend", 12, 3.0, &up),
            alert(2, "db", 10, 2.0, &up),
            alert(3, "cart", 11, 1.0, &[1.0, 1.1, 2.1, 4.8, 9.3]),
            // Unrelated: another service, not adjacent, uncorrelated, an hour later.
            alert(4, "search", 70, 1.0, &[5.0, 1.0, 5.0, 1.0, 5.0]),
        ];
        let mut ev = HashMap::new();
        ev.insert(
            "db".to_string(),
            ServiceEvidence {
                critical_path_growth: 40.0,
                error_log_clusters: 1,
                first_anomaly: None,
            },
        );
        let inc = correlate(&alerts, &shop(), &ev, &Params::default());
        assert_eq!(inc.len(), 2);
        assert_eq!(inc[0].alerts, vec![1, 2, 0]);
        assert_eq!(inc[0].started, 10 * MIN);
        assert_eq!(inc[1].alerts, vec![3]);
        let rc = &inc[0].root_causes;
        assert_eq!(rc[0].service, "db");
        // depth 1, earliest 1, growth 1, one log cluster 0.5.
        assert!(
            (rc[0].score - (0.35 + 0.30 + 0.20 + 0.075)).abs() < 1e-12,
            "{rc:?}"
        );
        assert!(
            rc[0]
                .evidence
                .iter()
                .any(|e| e.contains("deepest failing dependency"))
        );
        assert!(rc[0].evidence.iter().any(|e| e.contains("started first")));
        // frontend calls two failing services (cart and, through it, db).
        let fe = rc.iter().find(|c| c.service == "frontend").unwrap();
        assert!((fe.score - (0.35 / 3.0)).abs() < 1e-12, "{fe:?}");
        // db, the root cause, suppresses its correlated symptoms, although frontend's alert
        // has the higher priority.
        assert_eq!(inc[0].suppressed, vec![(2, 1), (0, 1)]);
    }

    #[test]
    fn the_cause_suppresses_its_symptoms_in_a_tie() {
        // A slow inventory: its alerts and its callers' fire in the same evaluation.
        let mut t = Topology::default();
        t.add("frontend", "catalog");
        t.add("catalog", "inventory");
        let step = [1.0, 1.0, 1.0, 5.0, 5.0];
        let alerts = vec![
            alert(1, "catalog", 10, 0.75, &step),
            alert(2, "frontend", 10, 0.75, &step),
            alert(3, "inventory", 10, 0.55, &step),
            alert(4, "inventory", 10, 0.75, &step),
            // Uncorrelated with the rest: grouped (frontend calls catalog), not suppressed.
            alert(5, "frontend", 10, 0.75, &[5.0, 1.0, 5.0, 1.0, 5.0]),
        ];
        let inc = correlate(&alerts, &t, &HashMap::new(), &Params::default());
        assert_eq!(inc.len(), 1);
        let rc = &inc[0].root_causes;
        let scores: Vec<(&str, f64)> = rc.iter().map(|c| (c.service.as_str(), c.score)).collect();
        // All tie on earliness (1.0); depth decides: 1, 1/2, 1/3.
        let want = [
            ("inventory", 0.35 + 0.30),
            ("catalog", 0.35 / 2.0 + 0.30),
            ("frontend", 0.35 / 3.0 + 0.30),
        ];
        for ((s, x), (ws, wx)) in scores.iter().zip(want) {
            assert!(*s == ws && (x - wx).abs() < 1e-12, "{scores:?}");
        }
        // Nobody "started first" when all started together.
        assert!(
            rc.iter()
                .all(|c| c.evidence.iter().all(|e| !e.contains("first")))
        );
        // Inventory's higher-priority alert suppresses inventory's other one and the
        // correlated symptoms upstream.
        assert_eq!(inc[0].suppressed, vec![(0, 3), (1, 3), (2, 3)]);
        // One minute apart, the earliest says so.
        let mut later = alerts.clone();
        later[0].started += MIN;
        later[1].started += MIN;
        later[4].started += MIN;
        let inc = correlate(&later, &t, &HashMap::new(), &Params::default());
        let inv = &inc[0].root_causes[0];
        assert_eq!(inv.service, "inventory");
        assert!(
            inv.evidence
                .iter()
                .any(|e| e == "its anomaly started first"),
            "{inv:?}"
        );
    }

    #[test]
    fn known_first_alerts_and_growth_scale() {
        let mut t = Topology::default();
        t.add("frontend", "inventory");
        let step = [1.0, 1.0, 5.0, 5.0];
        let alerts = vec![
            alert(1, "frontend", 12, 0.75, &step),
            alert(2, "inventory", 12, 0.75, &step),
        ];
        let mut ev = HashMap::new();
        // inventory's first alert (a new error log cluster) fired at 10 and has resolved.
        ev.insert(
            "inventory".to_string(),
            ServiceEvidence {
                first_anomaly: Some(10 * MIN),
                critical_path_growth: 0.5,
                ..ServiceEvidence::default()
            },
        );
        // frontend's share grew 10 points: half the growth term.
        ev.insert(
            "frontend".to_string(),
            ServiceEvidence {
                critical_path_growth: 10.0,
                ..ServiceEvidence::default()
            },
        );
        let inc = correlate(&alerts, &t, &ev, &Params::default());
        let rc = &inc[0].root_causes;
        assert_eq!(rc[0].service, "inventory");
        // depth 1 + earliest 1; 0.5 points is noise, not evidence.
        assert!((rc[0].score - 0.65).abs() < 1e-12, "{rc:?}");
        assert!(
            rc[0]
                .evidence
                .iter()
                .any(|e| e == "its anomaly started first")
        );
        assert!(rc[0].evidence.iter().all(|e| !e.contains("critical-path")));
        // frontend: depth 1/2, earliness 0, growth 10/20.
        assert!(
            (rc[1].score - (0.35 / 2.0 + 0.20 * 0.5)).abs() < 1e-12,
            "{rc:?}"
        );
        assert!(
            rc[1]
                .evidence
                .iter()
                .any(|e| e.contains("grew by 10.0 points"))
        );
    }

    #[test]
    fn windows_and_spans_bound_incidents() {
        let flat = [1.0, 2.0, 1.0, 2.0];
        // Same service but 20 minutes apart: not within the 10-minute window.
        let alerts = vec![
            alert(1, "cart", 0, 1.0, &flat),
            alert(2, "cart", 20, 1.0, &flat),
        ];
        assert_eq!(
            correlate(&alerts, &shop(), &HashMap::new(), &Params::default()).len(),
            2
        );
        // A chain of related alerts every 9 minutes stops at the 30-minute span.
        let chain: Vec<FiringAlert> = (0..6)
            .map(|i| alert(i, "cart", i * 9, 1.0, &flat))
            .collect();
        let p = Params {
            max_span: 30 * MIN,
            ..Params::default()
        };
        let inc = correlate(&chain, &shop(), &HashMap::new(), &p);
        assert_eq!(
            inc.iter().map(|i| i.alerts.len()).collect::<Vec<_>>(),
            vec![4, 2]
        );
        // Services on one critical call path are related, adjacent or not.
        let flat2 = [2.0, 1.0, 2.0, 1.0];
        let alerts = vec![
            alert(1, "search", 0, 1.0, &flat),
            alert(2, "db", 1, 1.0, &flat2),
        ];
        assert_eq!(
            correlate(&alerts, &shop(), &HashMap::new(), &Params::default()).len(),
            2
        );
        let mut t = shop();
        t.add_critical_path(["frontend", "search", "frontend", "db"]);
        assert!(t.on_critical_path_together("db", "search"));
        assert!(t.on_critical_path_together("search", "db"));
        assert!(!t.on_critical_path_together("cart", "db"));
        assert_eq!(
            correlate(&alerts, &t, &HashMap::new(), &Params::default()).len(),
            1
        );
        // Unrelated services correlate by their series.
        let alerts = vec![
            alert(1, "search", 0, 1.0, &[1.0, 2.0, 3.0, 4.0]),
            alert(2, "db", 1, 1.0, &[2.0, 4.1, 6.0, 8.2]),
        ];
        assert_eq!(
            correlate(&alerts, &shop(), &HashMap::new(), &Params::default()).len(),
            1
        );
    }
}

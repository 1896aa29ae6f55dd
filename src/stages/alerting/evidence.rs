//! Correlation inputs: the topology (service-graph edges and critical call paths of the
//! last hour) and each incident group's evidence (critical-path shift, new or surging
//! error-level log clusters) around its onset.

use super::*;

impl Engine {
    /// Correlates the firing alerts at `t` into incidents: topology from the service graph
    /// and the critical call paths of the last hour; each group's evidence (first alerts,
    /// critical-path shift, new or surging error-level log clusters) around its own onset.
    pub(super) fn correlate(&mut self, analyzer: &Analyzer, t: u64) -> Result<(), AlertingError> {
        let firing: Vec<FiringAlert> = self
            .rules
            .alerts
            .values()
            .filter(|a| a.life.state == State::Firing)
            .map(|a| FiringAlert {
                id: a.fingerprint,
                service: a.labels.get("service").cloned().unwrap_or_default(),
                started: a.life.fired_at.unwrap_or(t),
                priority: a.priority,
                series: a.correlation_series(),
            })
            .collect();
        // The service graph changes slowly: read again once evaluation has moved on by
        // [`TOPOLOGY_REFRESH`] of event time (or back, after a restart).
        let stale = self
            .topology
            .as_ref()
            .is_none_or(|(at, _)| t < *at || t - at >= TOPOLOGY_REFRESH);
        if stale {
            self.topology = Some((t, read_topology(analyzer, t)));
        }
        let Some((_, topology)) = &self.topology else {
            return Ok(());
        };
        let c = &self.cfg.correlation;
        let params = crate::alerts::correlate::Params {
            window: c.window.as_nanos() as u64,
            max_span: c.max_span.as_nanos() as u64,
            tau: c.tau,
        };
        let rules = (&self.rules, self.cfg.rules.as_slice());
        let shares = &mut self.shares;
        let mut evidence =
            |members: &[&FiringAlert], start: u64, open: Option<&incidents::Incident>| {
                let group = Group {
                    members,
                    start,
                    open,
                };
                group_evidence(analyzer, rules, shares, t, params.window, group)
            };
        self.incidents
            .update(t, &firing, topology, &mut evidence, &params);
        Ok(())
    }
}

/// The service graph's edges and the services on each critical call path, over the hour
/// before `t`.
fn read_topology(analyzer: &Analyzer, t: u64) -> Topology {
    let mut topo = Topology::default();
    let hour = 3_600_000_000_000;
    let range = (t.saturating_sub(hour), t.max(1));
    for (l, _) in analyzer
        .read(Family::Edge, 0, range, &|_| true)
        .map(|r| r.cells)
        .unwrap_or_default()
    {
        if let (Some(c), Some(s)) = (l.first(), l.get(1)) {
            topo.add(c, s);
        }
    }
    for (l, _) in analyzer
        .read(Family::CallPath, 0, range, &|_| true)
        .map(|r| r.cells)
        .unwrap_or_default()
    {
        if let Some(path) = l.first() {
            topo.add_critical_path(
                crate::traces::bottleneck::call_path_steps(path).map(|(svc, _)| svc),
            );
        }
    }
    topo
}

/// A group's evidence, gathered around its onset: the start of the open incident it
/// continues, else its own first alert. So an incident's ranking does not drift as it ages,
/// and an unrelated incident opening later gets its own.
/// - first alerts: each service's first alert in that incident, resolved ones included;
/// - critical-path share per service from half a correlation window before the onset to
///   half a window after (or now), against the hour before;
/// - error-level log clusters that appeared from a window before the onset on, or that
///   surge now (a firing log-rate alert names them).
fn group_evidence(
    analyzer: &Analyzer,
    (rules, rule_cfgs): (&RuleSet, &[crate::config::alerting::Rule]),
    shares: &mut Shares,
    t: u64,
    window: u64,
    Group {
        members,
        start,
        open,
    }: Group<'_>,
) -> HashMap<String, ServiceEvidence> {
    let mut evidence: HashMap<String, ServiceEvidence> = HashMap::new();
    let anchor = open.map_or(start, |i| i.started.min(start));
    for fp in open.iter().flat_map(|i| i.alerts.iter()) {
        if let Some(a) = rules.get(*fp)
            && let (Some(svc), Some(at)) = (a.labels.get("service"), a.life.fired_at)
        {
            let e = evidence.entry(svc.clone()).or_default();
            e.first_anomaly = Some(e.first_anomaly.map_or(at, |x| x.min(at)));
        }
    }
    let from = anchor.saturating_sub(window / 2);
    let to = t.min(anchor.saturating_add(window / 2)).max(from + 1);
    let hour = 3_600_000_000_000;
    match (
        cached_shares(analyzer, shares, (from, to)),
        cached_shares(analyzer, shares, (from.saturating_sub(hour), from)),
    ) {
        (Ok(now), Ok(base)) if !now.is_empty() && !base.is_empty() => {
            for (svc, share) in now {
                evidence
                    .entry(svc.clone())
                    .or_default()
                    .critical_path_growth =
                    (share - base.get(&svc).copied().unwrap_or(0.0)) * 100.0;
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "critical-path evidence unreadable");
        }
        _ => {}
    }
    if let Some(logs) = analyzer.log_clusters() {
        let services: std::collections::HashSet<&str> =
            members.iter().map(|a| a.service.as_str()).collect();
        let mut counted: std::collections::HashSet<u64> = std::collections::HashSet::new();
        for c in logs.live_records() {
            if c.max_severity >= 17
                && c.first_seen + window >= anchor
                && c.first_seen <= t
                && services.contains(c.service.as_str())
            {
                counted.insert(c.id);
            }
        }
        for a in rules.alerts.values() {
            let surging = a.life.state == State::Firing
                && rule_cfgs.get(a.rule).map(|r| r.signal) == Some(Signal::LogClusterRate);
            if let Some(c) = a
                .labels
                .get("cluster")
                .and_then(|id| id.parse::<u64>().ok())
                .and_then(|id| logs.get(id))
                && surging
                && c.max_severity >= 17
            {
                counted.insert(c.id);
            }
        }
        for id in counted {
            if let Some(c) = logs.get(id) {
                evidence
                    .entry(c.service.clone())
                    .or_default()
                    .error_log_clusters += 1;
            }
        }
    }
    evidence
}

/// A correlated group as evidence sees it: its alerts, its start, the open incident it
/// continues.
struct Group<'a> {
    members: &'a [&'a FiringAlert],
    start: u64,
    open: Option<&'a incidents::Incident>,
}

/// [`critical_path_shares`] through `shares`.
fn cached_shares(
    analyzer: &Analyzer,
    shares: &mut Shares,
    range: (u64, u64),
) -> Result<HashMap<String, f64>, AlertingError> {
    if let Some(s) = shares.get(&range) {
        return Ok(s.clone());
    }
    let s = critical_path_shares(analyzer, range)?;
    shares.insert(range, s.clone());
    Ok(s)
}

/// Each service's share of the end-to-end time of the traces analysed in `range`, from the
/// critical-path aggregates; empty without traces.
fn critical_path_shares(
    analyzer: &Analyzer,
    range: (u64, u64),
) -> Result<HashMap<String, f64>, AlertingError> {
    let total = analyzer
        .read(Family::Trace, 0, range, &|_| true)?
        .cells
        .remove(&Vec::new())
        .unwrap_or_default()
        .time;
    let mut out: HashMap<String, f64> = HashMap::new();
    if total == 0 {
        return Ok(out);
    }
    for (l, c) in analyzer.read(Family::Operation, 0, range, &|_| true)?.cells {
        if let Some(svc) = l.into_iter().next() {
            *out.entry(svc).or_default() += c.time as f64 / total as f64;
        }
    }
    Ok(out)
}

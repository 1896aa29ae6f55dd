//! Incidents: after each evaluation round the firing alerts are correlated
//! ([`crate::analysis::correlate`]) and the groups matched to the open incidents (by shared
//! alerts). An incident opens with its first group, gathers every alert that joins it,
//! records the suppressed ones and its root-cause ranking, and resolves when none of its alerts
//! fires any more; MTTR is resolved − detected (event time).

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::analysis::correlate::{self, Candidate, FiringAlert, ServiceEvidence, Topology};

/// Resolved incidents kept for queries.
pub const KEEP_RESOLVED: usize = 1000;

/// One incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub id: u64,
    /// The first alert's start.
    pub started: u64,
    /// When sieve opened it (the evaluation time).
    pub detected_at: u64,
    pub resolved_at: Option<u64>,
    /// Fingerprints of every alert that was part of it.
    pub alerts: BTreeSet<u64>,
    /// (suppressed, by) fingerprints, from the latest round.
    pub suppressed: Vec<(u64, u64)>,
    pub root_causes: Vec<Candidate>,
}

impl Incident {
    /// Time to resolve, once resolved.
    pub fn mttr(&self) -> Option<u64> {
        self.resolved_at.map(|r| r.saturating_sub(self.detected_at))
    }
}

/// Open and recently resolved incidents.
#[derive(Debug, Default)]
pub struct Incidents {
    pub open: Vec<Incident>,
    pub resolved: VecDeque<Incident>,
    next_id: u64,
}

impl Incidents {
    /// Correlates the `firing` alerts at evaluation time `t` and updates the incidents.
    pub fn update(
        &mut self,
        t: u64,
        firing: &[FiringAlert],
        topology: &Topology,
        evidence: &HashMap<String, ServiceEvidence>,
        params: &correlate::Params,
    ) {
        let groups = correlate::correlate(firing, topology, evidence, params);
        let mut touched: BTreeSet<u64> = BTreeSet::new();
        for g in groups {
            let fps: BTreeSet<u64> = g.alerts.iter().map(|&i| firing[i].id).collect();
            let suppressed: Vec<(u64, u64)> = g
                .suppressed
                .iter()
                .map(|&(a, b)| (firing[a].id, firing[b].id))
                .collect();
            let at = self
                .open
                .iter()
                .position(|inc| !inc.alerts.is_disjoint(&fps));
            let inc = match at {
                Some(i) => &mut self.open[i],
                None => {
                    self.next_id += 1;
                    self.open.push(Incident {
                        id: self.next_id,
                        started: g.started,
                        detected_at: t,
                        resolved_at: None,
                        alerts: BTreeSet::new(),
                        suppressed: Vec::new(),
                        root_causes: Vec::new(),
                    });
                    let last = self.open.len() - 1;
                    &mut self.open[last]
                }
            };
            inc.started = inc.started.min(g.started);
            inc.alerts.extend(fps.iter().copied());
            inc.suppressed = suppressed;
            inc.root_causes = g.root_causes;
            touched.insert(inc.id);
        }
        let (still, done): (Vec<Incident>, Vec<Incident>) = std::mem::take(&mut self.open)
            .into_iter()
            .partition(|inc| touched.contains(&inc.id));
        self.open = still;
        for mut inc in done {
            inc.resolved_at = Some(t);
            self.resolved.push_front(inc);
        }
        self.resolved.truncate(KEEP_RESOLVED);
    }

    /// An incident by id.
    pub fn get(&self, id: u64) -> Option<&Incident> {
        self.open
            .iter()
            .chain(self.resolved.iter())
            .find(|i| i.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000_000_000;

    fn alert(id: u64, service: &str, started: u64, priority: f64) -> FiringAlert {
        FiringAlert {
            id,
            service: service.into(),
            started: started * MIN,
            priority,
            series: vec![1.0, 2.0, 3.0, 5.0],
        }
    }

    #[test]
    fn incidents_open_grow_and_resolve_with_mttr() {
        let mut topo = Topology::default();
        topo.add("frontend", "db");
        let p = correlate::Params::default();
        let ev = HashMap::new();
        let mut inc = Incidents::default();
        inc.update(10 * MIN, &[alert(1, "db", 10, 1.0)], &topo, &ev, &p);
        assert_eq!(inc.open.len(), 1);
        let id = inc.open[0].id;
        // A related alert joins the same incident; a higher-priority one suppresses db's.
        inc.update(
            12 * MIN,
            &[alert(1, "db", 10, 1.0), alert(2, "frontend", 12, 2.0)],
            &topo,
            &ev,
            &p,
        );
        assert_eq!(inc.open.len(), 1);
        assert_eq!(inc.open[0].alerts, [1, 2].into());
        assert_eq!(inc.open[0].suppressed, vec![(1, 2)]);
        assert_eq!(inc.open[0].root_causes[0].service, "db");
        // db resolves; frontend still fires: still open.
        inc.update(20 * MIN, &[alert(2, "frontend", 12, 2.0)], &topo, &ev, &p);
        assert_eq!(inc.open.len(), 1);
        assert_eq!(inc.open[0].id, id);
        // Nothing fires: resolved, MTTR from detection.
        inc.update(25 * MIN, &[], &topo, &ev, &p);
        assert!(inc.open.is_empty());
        let done = inc.get(id).unwrap();
        assert_eq!(done.mttr(), Some(15 * MIN));
        // A later alert opens a new incident.
        inc.update(90 * MIN, &[alert(3, "db", 90, 1.0)], &topo, &ev, &p);
        assert_ne!(inc.open[0].id, id);
    }
}

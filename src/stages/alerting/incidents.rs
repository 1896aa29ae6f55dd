//! Incidents: after each evaluation step the firing alerts are correlated
//! ([`crate::alerts::correlate`]) and the groups matched to the open incidents. A group
//! joins an open incident when they share an alert, or when one of its services is one of
//! the incident's or adjacent to one in the service graph and it started within the
//! correlation window of the incident's last firing alert (and within `max_span` of its
//! start). An incident opens with its first group, gathers every alert that joins it, keeps
//! each alert's last suppression and the latest root-cause ranking over the most services,
//! and goes quiet when none of its alerts
//! fires. After `resolve_after` of quiet it resolves, as of when it went quiet; an alert that
//! joins it before then continues it, so a cause whose first alert (a new error log cluster)
//! stops before its error-rate alert fires stays one incident. MTTR is resolved − detected,
//! in event time.
//!
//! Incidents are kept in the sled tree `incidents` (one record per id, written when they
//! change), so a restart keeps open and resolved incidents and their ids.

use std::collections::{BTreeSet, HashMap, VecDeque};

use prost::Message;

use crate::alerts::correlate::{self, Candidate, FiringAlert, ServiceEvidence, Topology};

/// Evidence for one group: its alerts, its start, and the open incident it continues.
pub type GroupEvidenceFn<'a> =
    dyn FnMut(&[&FiringAlert], u64, Option<&Incident>) -> HashMap<String, ServiceEvidence> + 'a;

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
    /// Since when none of its alerts fires (while open).
    pub quiet_since: Option<u64>,
    /// Fingerprints of every alert that was part of it.
    pub alerts: BTreeSet<u64>,
    /// The services of those alerts.
    pub services: BTreeSet<String>,
    /// (suppressed, by) fingerprints: each alert's suppression as of the last step it
    /// fired, so an alert that resolved while suppressed stays listed as suppressed.
    pub suppressed: Vec<(u64, u64)>,
    pub root_causes: Vec<Candidate>,
}

impl Incident {
    /// Time to resolve, once resolved.
    pub fn mttr(&self) -> Option<u64> {
        self.resolved_at.map(|r| r.saturating_sub(self.detected_at))
    }
}

/// An incident as stored in the tree `incidents`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IncidentRecord {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub started: u64,
    #[prost(uint64, tag = "3")]
    pub detected_at: u64,
    #[prost(uint64, optional, tag = "4")]
    pub resolved_at: Option<u64>,
    #[prost(uint64, optional, tag = "5")]
    pub quiet_since: Option<u64>,
    #[prost(uint64, repeated, tag = "6")]
    pub alerts: Vec<u64>,
    #[prost(string, repeated, tag = "7")]
    pub services: Vec<String>,
    /// (suppressed, by) pairs, flattened.
    #[prost(uint64, repeated, tag = "8")]
    pub suppressed: Vec<u64>,
    #[prost(message, repeated, tag = "9")]
    pub root_causes: Vec<CandidateRecord>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CandidateRecord {
    #[prost(string, tag = "1")]
    pub service: String,
    #[prost(double, tag = "2")]
    pub score: f64,
    #[prost(string, repeated, tag = "3")]
    pub evidence: Vec<String>,
}

impl Incident {
    /// Its stored form.
    pub fn encode(&self) -> Vec<u8> {
        IncidentRecord {
            id: self.id,
            started: self.started,
            detected_at: self.detected_at,
            resolved_at: self.resolved_at,
            quiet_since: self.quiet_since,
            alerts: self.alerts.iter().copied().collect(),
            services: self.services.iter().cloned().collect(),
            suppressed: self.suppressed.iter().flat_map(|&(a, b)| [a, b]).collect(),
            root_causes: self
                .root_causes
                .iter()
                .map(|c| CandidateRecord {
                    service: c.service.clone(),
                    score: c.score,
                    evidence: c.evidence.clone(),
                })
                .collect(),
        }
        .encode_to_vec()
    }

    /// Back from its stored form.
    pub fn decode(bytes: &[u8]) -> Result<Incident, prost::DecodeError> {
        let r = IncidentRecord::decode(bytes)?;
        Ok(Incident {
            id: r.id,
            started: r.started,
            detected_at: r.detected_at,
            resolved_at: r.resolved_at,
            quiet_since: r.quiet_since,
            alerts: r.alerts.into_iter().collect(),
            services: r.services.into_iter().collect(),
            suppressed: r.suppressed.chunks_exact(2).map(|p| (p[0], p[1])).collect(),
            root_causes: r
                .root_causes
                .into_iter()
                .map(|c| Candidate {
                    service: c.service,
                    score: c.score,
                    evidence: c.evidence,
                })
                .collect(),
        })
    }
}

/// Open and recently resolved incidents.
#[derive(Debug, Default)]
pub struct Incidents {
    pub open: Vec<Incident>,
    /// Newest first, at most [`KEEP_RESOLVED`].
    pub resolved: VecDeque<Incident>,
    next_id: u64,
    /// Quiet time after which an open incident resolves (ns).
    pub resolve_after: u64,
    /// Ids changed since [`Incidents::take_changes`], and ids dropped from memory.
    changed: BTreeSet<u64>,
    dropped: Vec<u64>,
}

impl Incidents {
    pub fn new(resolve_after: u64) -> Incidents {
        Incidents {
            resolve_after,
            ..Incidents::default()
        }
    }

    /// Puts back a stored incident (at start).
    pub fn restore(&mut self, inc: Incident) {
        self.next_id = self.next_id.max(inc.id);
        if inc.resolved_at.is_some() {
            self.resolved.push_back(inc);
        } else {
            self.open.push(inc);
        }
    }

    /// After every [`Incidents::restore`]: resolved ones newest first, the oldest past
    /// [`KEEP_RESOLVED`] dropped.
    pub fn restored(&mut self) {
        self.resolved
            .make_contiguous()
            .sort_by_key(|i| std::cmp::Reverse(i.id));
        self.open.sort_by_key(|i| i.id);
        self.truncate();
    }

    fn truncate(&mut self) {
        while self.resolved.len() > KEEP_RESOLVED {
            if let Some(old) = self.resolved.pop_back() {
                self.dropped.push(old.id);
            }
        }
    }

    /// (incidents changed since the last call, ids to forget).
    pub fn take_changes(&mut self) -> (Vec<&Incident>, Vec<u64>) {
        let changed = std::mem::take(&mut self.changed);
        let dropped = std::mem::take(&mut self.dropped);
        let out = self
            .open
            .iter()
            .chain(self.resolved.iter())
            .filter(|i| changed.contains(&i.id))
            .collect();
        (out, dropped)
    }

    /// Correlates the `firing` alerts at evaluation time `t` and updates the incidents; each
    /// group's evidence comes from `evidence`.
    pub fn update(
        &mut self,
        t: u64,
        firing: &[FiringAlert],
        topology: &Topology,
        evidence: &mut GroupEvidenceFn<'_>,
        params: &correlate::Params,
    ) {
        let open = &self.open;
        let groups = correlate::correlate_with(firing, topology, params, &mut |members, start| {
            let continues = open
                .iter()
                .find(|i| members.iter().any(|a| i.alerts.contains(&a.id)));
            evidence(members, start, continues)
        });
        let mut touched: BTreeSet<u64> = BTreeSet::new();
        for g in groups {
            let fps: BTreeSet<u64> = g.alerts.iter().map(|&i| firing[i].id).collect();
            let services: BTreeSet<String> = g
                .alerts
                .iter()
                .map(|&i| firing[i].service.clone())
                .collect();
            let suppressed: Vec<(u64, u64)> = g
                .suppressed
                .iter()
                .map(|&(a, b)| (firing[a].id, firing[b].id))
                .collect();
            let near = |inc: &Incident| {
                let last = inc.quiet_since.unwrap_or(t);
                g.started <= last.saturating_add(params.window)
                    && g.started.saturating_sub(inc.started) <= params.max_span
                    && services.iter().any(|s| {
                        inc.services
                            .iter()
                            .any(|o| o == s || topology.adjacent(o, s))
                    })
            };
            // Every open incident sharing an alert with the group; a group that bridges
            // several merges them into the oldest (the others are forgotten).
            let mut sharing: Vec<usize> = (0..self.open.len())
                .filter(|&i| !self.open[i].alerts.is_disjoint(&fps))
                .collect();
            if sharing.len() > 1 {
                let keep = sharing[0];
                for &other in sharing[1..].iter().rev() {
                    let o = self.open.remove(other);
                    let k = &mut self.open[keep];
                    k.started = k.started.min(o.started);
                    k.detected_at = k.detected_at.min(o.detected_at);
                    k.alerts.extend(o.alerts);
                    k.services.extend(o.services);
                    k.suppressed.extend(o.suppressed);
                    k.suppressed.sort_unstable();
                    k.suppressed.dedup_by_key(|p| p.0);
                    self.changed.insert(k.id);
                    self.changed.remove(&o.id);
                    touched.remove(&o.id);
                    self.dropped.push(o.id);
                }
                sharing.truncate(1);
            }
            let at = sharing
                .first()
                .copied()
                .or_else(|| self.open.iter().position(near));
            let inc = match at {
                Some(i) => &mut self.open[i],
                None => {
                    self.next_id += 1;
                    self.open.push(Incident {
                        id: self.next_id,
                        started: g.started,
                        detected_at: t,
                        resolved_at: None,
                        quiet_since: None,
                        alerts: BTreeSet::new(),
                        services: BTreeSet::new(),
                        suppressed: Vec::new(),
                        root_causes: Vec::new(),
                    });
                    let last = self.open.len() - 1;
                    &mut self.open[last]
                }
            };
            let before = (
                inc.alerts.len(),
                inc.quiet_since,
                inc.suppressed.clone(),
                inc.root_causes.clone(),
            );
            inc.started = inc.started.min(g.started);
            inc.quiet_since = None;
            inc.alerts.extend(fps.iter().copied());
            inc.services.extend(services);
            // The group's alerts fire now: their suppression is as of this step.
            inc.suppressed.retain(|(a, _)| !fps.contains(a));
            inc.suppressed.extend(suppressed);
            inc.suppressed.sort_unstable();
            // Re-ranked while it keeps or gains services; as its alerts resolve, the ranking
            // made with the most services stands (the last alert left firing is not the
            // root cause for being the last).
            if g.root_causes.len() >= inc.root_causes.len() {
                inc.root_causes = g.root_causes;
            }
            if before
                != (
                    inc.alerts.len(),
                    inc.quiet_since,
                    inc.suppressed.clone(),
                    inc.root_causes.clone(),
                )
                || inc.detected_at == t
            {
                self.changed.insert(inc.id);
            }
            touched.insert(inc.id);
        }
        let mut still = Vec::new();
        for mut inc in std::mem::take(&mut self.open) {
            if !touched.contains(&inc.id) {
                let quiet = *inc.quiet_since.get_or_insert_with(|| {
                    self.changed.insert(inc.id);
                    t
                });
                if t.saturating_sub(quiet) >= self.resolve_after {
                    inc.resolved_at = Some(quiet);
                    self.changed.insert(inc.id);
                    self.resolved.push_front(inc);
                    continue;
                }
            }
            still.push(inc);
        }
        self.open = still;
        self.truncate();
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
            series: vec![(0, 1.0), (1, 2.0), (2, 3.0), (3, 5.0)],
        }
    }

    #[test]
    fn incidents_open_grow_and_resolve_with_mttr() {
        let mut topo = Topology::default();
        topo.add("frontend", "db");
        let p = correlate::Params::default();
        let mut none = no_evidence();
        let mut inc = Incidents::new(5 * MIN);
        inc.update(10 * MIN, &[alert(1, "db", 10, 1.0)], &topo, &mut none, &p);
        assert_eq!(inc.open.len(), 1);
        let id = inc.open[0].id;
        // A related alert joins the same incident; db, the root cause (deepest, first),
        // suppresses the correlated frontend alert despite its higher priority.
        inc.update(
            12 * MIN,
            &[alert(1, "db", 10, 1.0), alert(2, "frontend", 12, 2.0)],
            &topo,
            &mut none,
            &p,
        );
        assert_eq!(inc.open.len(), 1);
        assert_eq!(inc.open[0].alerts, [1, 2].into());
        assert_eq!(inc.open[0].suppressed, vec![(2, 1)]);
        assert_eq!(inc.open[0].root_causes[0].service, "db");
        // db resolves; frontend still fires: still open.
        inc.update(
            20 * MIN,
            &[alert(2, "frontend", 12, 2.0)],
            &topo,
            &mut none,
            &p,
        );
        assert_eq!(inc.open.len(), 1);
        assert_eq!(inc.open[0].id, id);
        // Nothing fires: quiet, still open for `resolve_after`.
        inc.update(25 * MIN, &[], &topo, &mut none, &p);
        assert_eq!(inc.open[0].quiet_since, Some(25 * MIN));
        // A new alert on db within the window continues it.
        inc.update(27 * MIN, &[alert(3, "db", 27, 1.0)], &topo, &mut none, &p);
        assert_eq!((inc.open.len(), inc.open[0].id), (1, id));
        assert_eq!(inc.open[0].alerts, [1, 2, 3].into());
        assert_eq!(inc.open[0].quiet_since, None);
        inc.update(28 * MIN, &[], &topo, &mut none, &p);
        inc.update(32 * MIN, &[], &topo, &mut none, &p);
        assert_eq!(inc.open.len(), 1, "quiet 4 of 5 minutes");
        // Resolved after 5 quiet minutes, as of when it went quiet; MTTR from detection.
        inc.update(33 * MIN, &[], &topo, &mut none, &p);
        assert!(inc.open.is_empty());
        let done = inc.get(id).unwrap();
        assert_eq!(done.resolved_at, Some(28 * MIN));
        assert_eq!(done.mttr(), Some(18 * MIN));
        // A later alert opens a new incident.
        inc.update(90 * MIN, &[alert(4, "db", 90, 1.0)], &topo, &mut none, &p);
        assert_ne!(inc.open[0].id, id);
        // An unrelated service (not adjacent, its series uncorrelated) opens its own.
        let search = FiringAlert {
            series: vec![(0, 5.0), (1, 1.0), (2, 5.0), (3, 1.0)],
            ..alert(5, "search", 91, 1.0)
        };
        inc.update(
            91 * MIN,
            &[alert(4, "db", 90, 1.0), search],
            &topo,
            &mut none,
            &p,
        );
        assert_eq!(inc.open.len(), 2);
    }

    fn no_evidence()
    -> impl FnMut(&[&FiringAlert], u64, Option<&Incident>) -> HashMap<String, ServiceEvidence> {
        |_, _, _| HashMap::new()
    }

    #[test]
    fn a_group_bridging_two_incidents_merges_them() {
        let topo = Topology::default();
        let p = correlate::Params::default();
        let mut none = no_evidence();
        let mut inc = Incidents::new(5 * MIN);
        // db and search: unrelated (no topology, r = −0.58).
        let a = FiringAlert {
            series: vec![(0, 5.0), (1, 1.0), (2, 5.0), (3, 1.0)],
            ..alert(1, "db", 10, 1.0)
        };
        let b = FiringAlert {
            series: vec![(0, 1.0), (1, 1.0), (2, 1.0), (3, 9.0)],
            ..alert(2, "search", 10, 1.0)
        };
        inc.update(10 * MIN, &[a.clone(), b.clone()], &topo, &mut none, &p);
        assert_eq!(inc.open.len(), 2);
        let ids: Vec<u64> = inc.open.iter().map(|i| i.id).collect();
        inc.take_changes();
        // A db alert whose series follows search's relates to both: one incident.
        let c = FiringAlert {
            series: vec![(0, 2.0), (1, 2.0), (2, 2.0), (3, 18.0)],
            ..alert(3, "db", 11, 1.0)
        };
        inc.update(11 * MIN, &[a, b, c], &topo, &mut none, &p);
        assert_eq!(inc.open.len(), 1, "{:?}", inc.open);
        assert_eq!(inc.open[0].id, ids[0]);
        assert_eq!(inc.open[0].alerts, [1, 2, 3].into());
        assert_eq!(
            inc.open[0].services,
            ["db".to_string(), "search".to_string()].into()
        );
        let (changed, dropped) = inc.take_changes();
        assert_eq!(changed.iter().map(|i| i.id).collect::<Vec<_>>(), [ids[0]]);
        assert_eq!(dropped, [ids[1]]);
    }

    #[test]
    fn records_round_trip_and_restore() {
        let mut none = no_evidence();
        let mut topo = Topology::default();
        topo.add("frontend", "db");
        let p = correlate::Params::default();
        let mut inc = Incidents::new(MIN);
        inc.update(
            10 * MIN,
            &[alert(1, "db", 10, 1.0), alert(2, "frontend", 10, 2.0)],
            &topo,
            &mut none,
            &p,
        );
        inc.update(12 * MIN, &[], &topo, &mut none, &p);
        inc.update(13 * MIN, &[], &topo, &mut none, &p);
        inc.update(20 * MIN, &[alert(3, "db", 20, 1.0)], &topo, &mut none, &p);
        let (changed, dropped) = inc.take_changes();
        assert_eq!(changed.len(), 2);
        assert!(dropped.is_empty());
        let bytes: Vec<Vec<u8>> = changed.iter().map(|i| i.encode()).collect();
        let mut back = Incidents::new(MIN);
        for b in &bytes {
            back.restore(Incident::decode(b).unwrap());
        }
        back.restored();
        assert_eq!(back.open, inc.open);
        assert_eq!(back.resolved, inc.resolved);
        // Ids go on from the largest restored.
        back.update(
            90 * MIN,
            &[alert(9, "other", 90, 1.0)],
            &topo,
            &mut none,
            &p,
        );
        assert_eq!(back.open.iter().map(|i| i.id).max(), Some(3));
        assert!(Incident::decode(b"\xff\xff").is_err());
        // Nothing changed since the last take: nothing to write.
        inc.take_changes();
        inc.update(21 * MIN, &[alert(3, "db", 20, 1.0)], &topo, &mut none, &p);
        assert!(inc.take_changes().0.is_empty());
    }
}

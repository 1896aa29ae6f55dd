//! The service graph, after the Collector's servicegraph connector: edges between services
//! from pairs of spans, with request and failure counts and latency histograms.
//!
//! A CLIENT span and the SERVER span whose parent it is form one request from the client's
//! service to the server's; a PRODUCER span and a CONSUMER child form a messaging edge. The
//! two halves of a pair arrive in any order, in different requests: each waits in a pending
//! table keyed by (trace id, the client's span id) until its other half comes, at most
//! `max_wait` (explicit clock: [`ServiceGraph::expire`]) and at most `max_pending` entries
//! (past it the oldest is given up). Halves that never pair are counted as unpaired, per
//! kind; but a caller half that names its peer (`peer`, from `peer.service`, `db.name` or
//! `db.system` as the Collector's `virtual_node_peer_attributes` default) makes an edge to a
//! virtual node of that name instead, as a database or third-party call does (the Collector's
//! virtual nodes). A request failed when either half has status ERROR. Latency: the client side's
//! duration and the server side's, each in a [`Histogram`]. Edges and unpaired counts are
//! kept per time bucket of `step` by the caller's start time (the unpaired half's own start),
//! so the wiring can drain them into time series.

use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use crate::otlp::FastMap;
use crate::series::histogram::Histogram;

/// The span kinds that make edges (OTLP numbering).
pub const SERVER: i32 = 2;
pub const CLIENT: i32 = 3;
pub const PRODUCER: i32 = 4;
pub const CONSUMER: i32 = 5;

/// (trace id, the caller's span id): what the two halves of a pair share.
type PairKey = ([u8; 16], [u8; 8]);

/// One half of a pair.
#[derive(Debug, Clone)]
struct Half {
    service: Arc<str>,
    duration: u64,
    failed: bool,
    /// When it was observed (the caller's clock).
    at: u64,
    /// Messaging (PRODUCER/CONSUMER) rather than request (CLIENT/SERVER).
    messaging: bool,
    /// The span's start (data time): picks the time bucket.
    start: u64,
    /// A caller's peer, when its span names one.
    peer: Option<Arc<str>>,
}

/// What connects the two services of an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EdgeKind {
    /// CLIENT → SERVER.
    Request,
    /// PRODUCER → CONSUMER.
    Messaging,
    /// A caller to the peer it names, with no server half (no server latency).
    Virtual,
}

impl EdgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::Request => "request",
            EdgeKind::Messaging => "messaging",
            EdgeKind::Virtual => "virtual",
        }
    }
}

/// One edge's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edge {
    pub requests: u64,
    pub failed: u64,
    pub client_latency: Histogram,
    pub server_latency: Histogram,
}

/// Halves given up on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unpaired {
    pub client: u64,
    pub server: u64,
}

/// The graph being built.
#[derive(Debug)]
pub struct ServiceGraph {
    max_wait: u64,
    max_pending: usize,
    step: u64,
    /// Caller halves (CLIENT, PRODUCER) by (trace id, span id).
    callers: FastMap<PairKey, Half>,
    /// Callee halves (SERVER, CONSUMER) by (trace id, parent span id).
    callees: FastMap<PairKey, Half>,
    /// Arrival order of pending keys: (at, is caller, key).
    order: VecDeque<(u64, bool, PairKey)>,
    /// By (bucket start, client service, server service, kind).
    pub edges: FastMap<(u64, Arc<str>, Arc<str>, EdgeKind), Edge>,
    /// By (bucket start, service of the half).
    pub unpaired: FastMap<(u64, Arc<str>), Unpaired>,
}

/// A span as the graph needs it. Names are shared (the caller interns them), so a pending
/// half costs no allocation of its own.
pub struct SpanEdge {
    pub service: Arc<str>,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_id: Option<[u8; 8]>,
    pub kind: i32,
    pub start: u64,
    pub duration: u64,
    pub failed: bool,
    /// For a caller: the peer it names (`peer.service`, `db.name` or `db.system`).
    pub peer: Option<Arc<str>>,
}

impl ServiceGraph {
    pub fn new(max_wait: u64, max_pending: usize, step: u64) -> ServiceGraph {
        ServiceGraph {
            max_wait,
            max_pending: max_pending.max(1),
            step: step.max(1),
            callers: FastMap::default(),
            callees: FastMap::default(),
            order: VecDeque::new(),
            edges: FastMap::default(),
            unpaired: FastMap::default(),
        }
    }

    /// Spans waiting for their other half.
    pub fn pending(&self) -> usize {
        self.callers.len() + self.callees.len()
    }

    /// Takes in one span observed at `now`.
    pub fn observe(&mut self, s: SpanEdge, now: u64) {
        let half = |messaging| Half {
            service: s.service,
            duration: s.duration,
            failed: s.failed,
            at: now,
            messaging,
            start: s.start,
            peer: s.peer,
        };
        match s.kind {
            CLIENT | PRODUCER => {
                let key = (s.trace_id, s.span_id);
                let me = half(s.kind == PRODUCER);
                match self.callees.remove(&key) {
                    Some(callee) => self.pair(me, callee),
                    None => self.wait(true, key, me),
                }
            }
            SERVER | CONSUMER => {
                let Some(parent) = s.parent_id else { return };
                let key = (s.trace_id, parent);
                let me = half(s.kind == CONSUMER);
                match self.callers.remove(&key) {
                    Some(caller) => self.pair(caller, me),
                    None => self.wait(false, key, me),
                }
            }
            _ => {}
        }
    }

    fn wait(&mut self, caller: bool, key: PairKey, half: Half) {
        let at = half.at;
        let table = if caller {
            &mut self.callers
        } else {
            &mut self.callees
        };
        table.insert(key, half);
        self.order.push_back((at, caller, key));
        // Entries of halves that paired stay in `order` until they reach its front; keep it
        // within a constant factor of what is pending.
        if self.order.len() > 2 * self.pending() + 1024 {
            let (callers, callees) = (&self.callers, &self.callees);
            self.order.retain(|(at, caller, key)| {
                let table = if *caller { callers } else { callees };
                table.get(key).is_some_and(|h| h.at == *at)
            });
        }
        while self.pending() > self.max_pending {
            if !self.give_up_oldest() {
                break;
            }
        }
    }

    /// Gives up the oldest pending half still waiting; false when none is left.
    fn give_up_oldest(&mut self) -> bool {
        while let Some((at, caller, key)) = self.order.pop_front() {
            let table = if caller {
                &mut self.callers
            } else {
                &mut self.callees
            };
            // Entries already paired (or replaced by a newer half) are stale.
            let Entry::Occupied(e) = table.entry(key) else {
                continue;
            };
            if e.get().at != at {
                continue;
            }
            let h = e.remove();
            let bucket = h.start - h.start % self.step;
            match h.peer {
                Some(peer) if caller => {
                    let e = self
                        .edges
                        .entry((bucket, h.service, peer, EdgeKind::Virtual))
                        .or_default();
                    e.requests += 1;
                    e.failed += u64::from(h.failed);
                    e.client_latency.record(h.duration);
                }
                _ => {
                    let u = self.unpaired.entry((bucket, h.service)).or_default();
                    if caller {
                        u.client += 1;
                    } else {
                        u.server += 1;
                    }
                }
            }
            return true;
        }
        false
    }

    fn pair(&mut self, caller: Half, callee: Half) {
        let bucket = caller.start - caller.start % self.step;
        let kind = if caller.messaging {
            EdgeKind::Messaging
        } else {
            EdgeKind::Request
        };
        let e = self
            .edges
            .entry((bucket, caller.service, callee.service, kind))
            .or_default();
        e.requests += 1;
        e.failed += u64::from(caller.failed || callee.failed);
        e.client_latency.record(caller.duration);
        e.server_latency.record(callee.duration);
    }

    /// Gives up halves that have waited longer than `max_wait` at `now`.
    pub fn expire(&mut self, now: u64) {
        while let Some(&(at, _, _)) = self.order.front() {
            if now.saturating_sub(at) <= self.max_wait {
                break;
            }
            if !self.give_up_oldest() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    fn span(
        service: &str,
        trace: u8,
        id: u8,
        parent: Option<u8>,
        kind: i32,
        dur: u64,
        failed: bool,
    ) -> SpanEdge {
        SpanEdge {
            service: service.into(),
            trace_id: [trace; 16],
            span_id: [id; 8],
            parent_id: parent.map(|p| [p; 8]),
            kind,
            start: 0,
            duration: dur,
            failed,
            peer: None,
        }
    }

    #[test]
    fn pairs_in_either_order_and_counts_failures() {
        let mut g = ServiceGraph::new(10, 100, 1);
        // client first
        g.observe(span("web", 1, 1, None, CLIENT, 100, false), 0);
        g.observe(span("cart", 1, 2, Some(1), SERVER, 80, false), 1);
        // server first, failed
        g.observe(span("cart", 2, 4, Some(3), SERVER, 50, true), 2);
        g.observe(span("web", 2, 3, None, CLIENT, 60, false), 3);
        // messaging
        g.observe(span("cart", 3, 5, None, PRODUCER, 5, false), 4);
        g.observe(span("mailer", 3, 6, Some(5), CONSUMER, 500, false), 5);
        // internal spans make no edge
        g.observe(span("web", 4, 7, None, 1, 5, false), 6);
        let web_cart = &g.edges[&(0, name("web"), name("cart"), EdgeKind::Request)];
        assert_eq!((web_cart.requests, web_cart.failed), (2, 1));
        assert_eq!(web_cart.client_latency.count(), 2);
        let msg = &g.edges[&(0, name("cart"), name("mailer"), EdgeKind::Messaging)];
        assert_eq!(msg.requests, 1);
        assert_eq!(g.pending(), 0);
        assert!(g.unpaired.is_empty());
    }

    #[test]
    fn a_caller_naming_its_peer_makes_a_virtual_node() {
        let mut g = ServiceGraph::new(10, 100, 1);
        let mut db = span("catalog", 1, 1, None, CLIENT, 12, true);
        db.peer = Some("postgresql".into());
        g.observe(db, 0);
        // A peer attribute does not stop a real server half from pairing.
        let mut api = span("web", 2, 2, None, CLIENT, 30, false);
        api.peer = Some("cart-svc".into());
        g.observe(api, 0);
        g.observe(span("cart", 2, 3, Some(2), SERVER, 20, false), 1);
        g.expire(20);
        let e = &g.edges[&(0, name("catalog"), name("postgresql"), EdgeKind::Virtual)];
        assert_eq!((e.requests, e.failed), (1, 1));
        assert_eq!(e.client_latency.count(), 1);
        assert_eq!(e.server_latency.count(), 0);
        assert!(
            g.edges
                .contains_key(&(0, name("web"), name("cart"), EdgeKind::Request))
        );
        assert_eq!(g.edges.len(), 2);
        assert!(g.unpaired.is_empty());
    }

    #[test]
    fn paired_entries_do_not_grow_the_order_queue() {
        let mut g = ServiceGraph::new(u64::MAX, 100, 1);
        for i in 0..100_000u32 {
            let t = (i % 250) as u8;
            let id = (i / 250) as u8;
            let mut c = span("web", t, id, None, CLIENT, 1, false);
            c.trace_id[..4].copy_from_slice(&i.to_be_bytes());
            g.observe(c, u64::from(i));
            let mut sv = span("api", t, id.wrapping_add(1), Some(id), SERVER, 1, false);
            sv.trace_id[..4].copy_from_slice(&i.to_be_bytes());
            g.observe(sv, u64::from(i));
        }
        assert_eq!(g.pending(), 0);
        assert!(g.order.len() <= 1024 + 1, "{}", g.order.len());
        let requests: u64 = g.edges.values().map(|e| e.requests).sum();
        assert_eq!(requests, 100_000);
    }

    #[test]
    fn unpaired_halves_expire_and_the_table_is_bounded() {
        let mut g = ServiceGraph::new(10, 3, 1);
        g.observe(span("web", 1, 1, None, CLIENT, 1, false), 0);
        g.observe(span("db", 2, 9, Some(8), SERVER, 1, false), 5);
        g.expire(10);
        assert_eq!(g.pending(), 2);
        g.expire(11);
        let web = (0, name("web"));
        let db = (0, name("db"));
        assert_eq!(
            g.unpaired[&web],
            Unpaired {
                client: 1,
                server: 0
            }
        );
        assert!(!g.unpaired.contains_key(&db));
        g.expire(16);
        assert_eq!(
            g.unpaired[&db],
            Unpaired {
                client: 0,
                server: 1
            }
        );
        // Bounded: the fourth pending half pushes out the oldest.
        for i in 0..4u8 {
            g.observe(span("web", 10 + i, i, None, CLIENT, 1, false), 20);
        }
        assert_eq!(g.pending(), 3);
        assert_eq!(g.unpaired[&web].client, 2);
        // A late server half of the evicted one does not pair.
        g.observe(span("api", 10, 50, Some(0), SERVER, 1, false), 21);
        assert!(g.edges.is_empty());
    }
}

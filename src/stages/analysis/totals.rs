//! Figures since start, for Prometheus: RED cells per (service, operation, kind, status) and
//! service-graph edges per (client, server, kind), summed over every checkpointed bucket plus
//! what is still in memory. `/metrics` shows them under the names of the Collector's
//! `spanmetrics` and `servicegraph` connectors, so dashboards built for those work on sieve.
//!
//! A cell enters the totals when the checkpoint has merged it into sled (a cell that goes
//! back to memory on a sled error is not counted twice); a read holds the checkpoint's lock,
//! so every cell is in memory or in the totals, never in neither, and the counters never go
//! back. Keys are those of the series, already bounded by `max_series` (past it, `*`).

use super::*;

/// The running sums.
#[derive(Default)]
pub(super) struct Totals {
    red: FastMap<RedKey, Cell>,
    edges: HashMap<Vec<String>, Cell>,
}

impl Totals {
    pub(super) fn add_red(&mut self, key: &RedKey, cell: &Cell) {
        match self.red.get_mut(key) {
            Some(t) => add(t, cell),
            None => add(self.red.entry(key.clone()).or_default(), cell),
        }
    }

    pub(super) fn add_edge(&mut self, labels: &[String], cell: &Cell) {
        match self.edges.get_mut(labels) {
            Some(t) => add(t, cell),
            None => add(self.edges.entry(labels.to_vec()).or_default(), cell),
        }
    }
}

/// Adds `c`'s figures to `t`; totals keep no exemplars.
fn add(t: &mut Cell, c: &Cell) {
    t.merge(c);
    t.exemplars.clear();
}

/// One span-metric series since start.
#[derive(Debug, Clone)]
pub struct SpanMetric {
    pub service: String,
    pub operation: String,
    /// OTLP span kind (0-5).
    pub kind: i32,
    /// OTLP status code (0 unset, 1 ok, 2 error).
    pub status: i32,
    /// Calls, and their durations in `hist` (nanoseconds).
    pub cell: Cell,
}

/// One service-graph edge since start.
#[derive(Debug, Clone)]
pub struct EdgeMetric {
    pub client: String,
    pub server: String,
    /// `request`, `messaging` or `virtual`.
    pub kind: String,
    /// Requests in `count`, failed ones in `errors`, client latency in `hist`, server
    /// latency in `hist2`.
    pub cell: Cell,
}

impl Analyzer {
    /// The span metrics and graph edges since start.
    pub fn totals(&self) -> (Vec<SpanMetric>, Vec<EdgeMetric>) {
        let _moving = lock(&self.moving);
        let mut red: FastMap<RedKey, Cell> = lock(&self.totals).red.clone();
        let mut edges = lock(&self.totals).edges.clone();
        {
            let st = lock(&self.state);
            for ((_, k), c) in &st.red {
                red.entry(k.clone()).or_default().merge(c);
            }
            for ((family, _, labels), c) in &st.folds {
                if *family == Family::Edge {
                    edges.entry(labels.clone()).or_default().merge(c);
                }
            }
            // Edges paired but not yet moved into cells.
            for ((_, client, server, kind), e) in &st.graph.edges {
                let labels = vec![client.to_string(), server.to_string(), kind.as_str().into()];
                edges.entry(labels).or_default().merge(&Cell {
                    count: e.requests,
                    errors: e.failed,
                    hist: e.client_latency.clone(),
                    hist2: e.server_latency.clone(),
                    ..Cell::default()
                });
            }
        }
        let mut spans: Vec<SpanMetric> = red
            .into_iter()
            .map(|(k, cell)| SpanMetric {
                service: k.service.to_string(),
                operation: k.operation.to_string(),
                kind: k.kind,
                status: k.status,
                cell,
            })
            .collect();
        spans.sort_by(|a, b| {
            (&a.service, &a.operation, a.kind, a.status).cmp(&(
                &b.service,
                &b.operation,
                b.kind,
                b.status,
            ))
        });
        let mut edges: Vec<EdgeMetric> = edges
            .into_iter()
            .filter_map(|(l, cell)| {
                let mut l = l.into_iter();
                Some(EdgeMetric {
                    client: l.next()?,
                    server: l.next()?,
                    kind: l.next()?,
                    cell,
                })
            })
            .collect();
        edges.sort_by(|a, b| (&a.client, &a.server, &a.kind).cmp(&(&b.client, &b.server, &b.kind)));
        (spans, edges)
    }
}

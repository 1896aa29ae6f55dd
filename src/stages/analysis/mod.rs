//! The analysis stage: feeds every validated span, before sampling, to the pure modules of
//! [`crate::traces`], [`crate::series`] and [`crate::log_templates`], and keeps their figures
//! as time series in sled.
//!
//! Per span, at intake ([`Analyzer::observe`], under one short lock per request):
//! - its RED cell (calls, errors, duration histogram) in the 10 s bucket of its start, per
//!   (service, operation, kind, status), like the Collector's spanmetrics connector;
//! - the service graph ([`crate::traces::service_graph`]), pairing client and server halves;
//! - trace assembly: the span joins its trace in memory.
//!
//! A trace is complete when no span of it has come for `trace_idle`; then (in
//! [`Analyzer::run`], off the request path) its critical path is computed and folded
//! ([`crate::traces::bottleneck`]) into cells per operation, per call path and for the trace
//! as a whole. Assembly is bounded by `max_spans` (the oldest traces are analysed early) and
//! remembers analysed trace ids (`decided_cache`) so that late spans are counted, not analysed
//! as a second partial trace.
//!
//! Every `flush_interval` the cells in memory are merged into the tree `analysis` at the three
//! resolutions (10 s, 1 min, 1 h) with sled's merge operator ([`series::merge_operator`]): a
//! late delta for an old bucket adds to it, and downsampling costs one merge per resolution.
//! Each resolution is swept by its own retention. Reads merge what is stored with what is still
//! in memory, so a query sees a span as soon as it was acknowledged.
//!
//! Durability: the figures are derived from data that is itself durable, and a crash loses at
//! most the last `flush_interval` of them plus the traces still assembling (the store and the
//! export queues lose nothing). Spans are observed before their request is committed, so a
//! request whose write fails (a disk error; the client retries) is counted twice; keeping
//! a copy of every request until its commit would cost more than that rare error does. Bounds on distinct keys (`max_series`, `max_operations`) hold
//! since start; past them, keys are counted under `*`.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::otlp::{FastMap, FastSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use tokio_util::sync::CancellationToken;

use crate::config;
use crate::series::{self, Cell, Exemplar, Family, STEPS};
use crate::telemetry::events;
use crate::traces::bottleneck::{self, Projection, Row, TraceFold};
use crate::traces::critical_path::{Kind, SpanInput, critical_path};
use crate::traces::service_graph::{ServiceGraph, SpanEdge};

pub mod logs;

/// Errors of the analysis stage.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzerError {
    #[error("analysis store: {0}")]
    Sled(#[from] sled::Error),
    #[error("trace analysis is disabled (analysis.enabled: false)")]
    Disabled,
    /// A query argument the stored data cannot answer; the message says why.
    #[error("{0}")]
    Invalid(String),
}

/// Attributes naming a caller's peer when no server half answers (the Collector's
/// `virtual_node_peer_attributes` default), first found wins.
pub const PEER_ATTRIBUTES: [&str; 3] = ["peer.service", "db.name", "db.system"];

/// The label a key past a bound is counted under.
pub const OVERFLOW: &str = "*";

/// Counters shown by GetStats.
#[derive(Debug, Default)]
pub struct Counters {
    pub spans: AtomicU64,
    pub traces: AtomicU64,
    pub early: AtomicU64,
    pub late_spans: AtomicU64,
    pub out_of_range: AtomicU64,
    pub checkpoints: AtomicU64,
    /// The largest event time (span start, log record time) analysed: the alerting
    /// watermark's input.
    pub max_event_time: AtomicU64,
    /// The smallest (0 until the first): where a replay's evaluation starts.
    pub min_event_time: AtomicU64,
}

/// A snapshot of the stage's state.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub spans: u64,
    pub traces: u64,
    pub early: u64,
    pub late_spans: u64,
    pub out_of_range: u64,
    pub assembling_traces: u64,
    pub assembling_spans: u64,
    pub series: u64,
    pub operations: u64,
    pub call_paths: u64,
    pub graph_pending: u64,
}

/// A span-metric series key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RedKey {
    service: Arc<str>,
    operation: Arc<str>,
    kind: i32,
    status: i32,
}

/// A span waiting for its trace to complete.
struct Assembling {
    inputs: Vec<SpanInput>,
    names: Vec<(Arc<str>, Arc<str>)>,
    last: u64,
    /// The earliest span start (event time, Unix ns): its fold goes to that bucket.
    first: u64,
}

/// A trace ready for its critical path.
struct Ready {
    trace_id: [u8; 16],
    inputs: Vec<SpanInput>,
    names: Vec<(Arc<str>, Arc<str>)>,
    first: u64,
}

/// Longest service or operation name analysed, in bytes; longer ones are cut (marked `…`).
pub const MAX_NAME: usize = 512;

/// Spans starting further than this after the gateway's clock are not analysed (their
/// buckets would outlive every retention sweep).
pub const MAX_FUTURE: u64 = 3_600_000_000_000;

/// Keys not seen for this long leave the bounded key sets.
const KEY_IDLE: Duration = Duration::from_secs(3600);

/// Strings shared by the spans that carry them.
#[derive(Default)]
struct Interner(FastSet<Arc<str>>);

impl Interner {
    const MAX: usize = 100_000;

    fn get(&mut self, s: &str) -> Arc<str> {
        let s = bottleneck::cut(s, MAX_NAME);
        let s: &str = &s;
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        if self.0.len() >= Self::MAX {
            // Spans still hold their Arcs; only sharing restarts.
            self.0.clear();
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(a.clone());
        a
    }
}

struct State {
    names: Interner,
    traces: FastMap<[u8; 16], Assembling>,
    /// (last arrival, trace) in arrival order; an entry is stale once the trace saw a later
    /// span or left.
    order: VecDeque<(u64, [u8; 16])>,
    spans: usize,
    decided: FastSet<[u8; 16]>,
    decided_order: VecDeque<[u8; 16]>,
    graph: ServiceGraph,
    /// Cells not yet merged into sled, by 10 s bucket.
    red: FastMap<(u64, RedKey), Cell>,
    folds: HashMap<(Family, u64, Vec<String>), Cell>,
    /// Tracked keys with when they were last seen (monotonic), for the bounds.
    red_keys: FastMap<RedKey, u64>,
    op_keys: HashMap<Vec<String>, u64>,
    path_keys: HashMap<Vec<String>, u64>,
    overflow_warned: [bool; 3],
    /// Traces taken out of assembly early (past `max_spans`), waiting for [`Analyzer::tick`].
    ready: Vec<Ready>,
    ready_spans: usize,
    /// Batches taken out for their critical paths and not yet folded: the earliest `first`
    /// of each (a multiset), so [`Analyzer::pending_floor`] still sees them.
    in_flight: BTreeMap<u64, usize>,
}

/// The analysis stage.
pub struct Analyzer {
    cfg: config::Analysis,
    tree: sled::Tree,
    state: Mutex<State>,
    /// Held while a checkpoint moves cells from memory to sled, so that a read finds each
    /// cell in one place or the other.
    moving: Mutex<()>,
    base: Instant,
    /// Log template clusters (None when `analysis.logs.enabled` is false).
    logs: Option<Mutex<logs::LogState>>,
    log_tree: sled::Tree,
    /// Wakes [`Analyzer::run`] when traces were taken out of assembly early.
    wake: tokio::sync::Notify,
    pub counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves figures, not invariants, half-updated.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn floor(t: u64, step: u64) -> u64 {
    t - t % step
}

impl Analyzer {
    /// Opens the stage over its series tree and its log-cluster tree (the store's
    /// `StateTree::Analysis` and `StateTree::LogClusters`).
    pub fn open(
        cfg: &config::Analysis,
        tree: sled::Tree,
        log_tree: sled::Tree,
    ) -> Result<Arc<Analyzer>, AnalyzerError> {
        tree.set_merge_operator(series::merge_operator);
        let logs = if cfg.enabled && cfg.logs.enabled {
            Some(Mutex::new(
                logs::LogState::load(&cfg.logs, &log_tree).map_err(AnalyzerError::Invalid)?,
            ))
        } else {
            None
        };
        Ok(Arc::new(Analyzer {
            cfg: cfg.clone(),
            tree,
            state: Mutex::new(State {
                names: Interner::default(),
                traces: FastMap::default(),
                order: VecDeque::new(),
                spans: 0,
                decided: FastSet::default(),
                decided_order: VecDeque::new(),
                graph: ServiceGraph::new(
                    cfg.graph_wait.as_nanos() as u64,
                    cfg.graph_max_pending,
                    STEPS[0],
                ),
                red: FastMap::default(),
                folds: HashMap::new(),
                red_keys: FastMap::default(),
                op_keys: HashMap::new(),
                path_keys: HashMap::new(),
                overflow_warned: [false; 3],
                ready: Vec::new(),
                ready_spans: 0,
                in_flight: BTreeMap::new(),
            }),
            moving: Mutex::new(()),
            base: Instant::now(),
            logs,
            log_tree,
            wake: tokio::sync::Notify::new(),
            counters: Counters::default(),
        }))
    }

    pub fn enabled(&self) -> bool {
        self.cfg.enabled
    }

    /// Monotonic nanoseconds since open (assembly and pairing timeouts).
    fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// Clusters a request's validated log records (before sampling) and adds the cluster
    /// attributes; counts them per cluster and 10 s bucket. Returns whether it changed them.
    pub fn observe_logs(&self, resource_logs: &mut [ResourceLogs]) -> bool {
        let Some(logs) = &self.logs else {
            return false;
        };
        let wall = crate::store::now_ns();
        let assigned = lock(logs).observe(resource_logs, wall);
        if assigned.is_empty() {
            return false;
        }
        let oldest = wall.saturating_sub(self.cfg.retention_1h.as_nanos() as u64);
        let newest = wall.saturating_add(MAX_FUTURE);
        // Counted per (service, cluster, bucket) here; a cell key is built once for each.
        let mut counts: FastMap<(Arc<str>, u64, u64), u64> = FastMap::default();
        let (mut min_t, mut max_t) = (u64::MAX, 0);
        for (service, id, t) in assigned {
            if t < oldest || t > newest {
                continue;
            }
            (min_t, max_t) = (min_t.min(t), max_t.max(t));
            *counts.entry((service, id, floor(t, STEPS[0]))).or_default() += 1;
        }
        if max_t > 0 {
            self.counters
                .max_event_time
                .fetch_max(max_t, Ordering::Relaxed);
            self.note_min_event(min_t);
        }
        let mut st = lock(&self.state);
        for ((service, id, bucket), n) in counts {
            st.folds
                .entry((
                    Family::LogCluster,
                    bucket,
                    vec![service.to_string(), id.to_string()],
                ))
                .or_default()
                .count += n;
        }
        true
    }

    fn note_min_event(&self, t: u64) {
        let m = &self.counters.min_event_time;
        let _ = m.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
            (cur == 0 || t < cur).then_some(t)
        });
    }

    /// The log clusters, to read (None when log clustering is off).
    pub fn log_clusters(&self) -> Option<MutexGuard<'_, logs::LogState>> {
        self.logs.as_ref().map(lock)
    }

    /// Takes in a request's validated spans (before sampling).
    pub fn observe(&self, resource_spans: &[ResourceSpans]) {
        if !self.cfg.enabled {
            return;
        }
        let now = self.now();
        let wall = crate::store::now_ns();
        let oldest = wall.saturating_sub(self.cfg.retention_1h.as_nanos() as u64);
        let newest = wall.saturating_add(MAX_FUTURE);
        let (mut spans, mut late, mut out_of_range) = (0u64, 0u64, 0u64);
        let (mut max_event, mut min_event) = (0u64, u64::MAX);
        let mut inline = Vec::new();
        let mut inline_flight = None;
        {
            let mut st = lock(&self.state);
            let st = &mut *st;
            for (svc, span) in crate::otlp::spans(resource_spans) {
                // Validation has checked the ids; anything else is not a span to count.
                let (Ok(trace_id), Ok(span_id)) = (
                    <[u8; 16]>::try_from(span.trace_id.as_slice()),
                    <[u8; 8]>::try_from(span.span_id.as_slice()),
                ) else {
                    continue;
                };
                let (start, end) = (span.start_time_unix_nano, span.end_time_unix_nano);
                if start < oldest || start > newest {
                    out_of_range += 1;
                    continue;
                }
                spans += 1;
                max_event = max_event.max(start);
                min_event = min_event.min(start);
                let parent_id = <[u8; 8]>::try_from(span.parent_span_id.as_slice()).ok();
                let duration = end.saturating_sub(start);
                let status = span.status.as_ref().map(|s| s.code).unwrap_or(0);
                let service = st.names.get(svc);
                let operation = st.names.get(&span.name);
                self.red_observe(
                    st,
                    RedKey {
                        service: service.clone(),
                        operation: operation.clone(),
                        kind: span.kind,
                        status,
                    },
                    start,
                    duration,
                    now,
                );
                let peer = if matches!(span.kind, 3 | 4) {
                    PEER_ATTRIBUTES
                        .iter()
                        .find_map(|k| crate::otlp::string_attr(&span.attributes, k))
                        .map(|p| st.names.get(p))
                } else {
                    None
                };
                st.graph.observe(
                    SpanEdge {
                        // The interned name, cut as the span metrics cut it.
                        service: service.clone(),
                        trace_id,
                        span_id,
                        parent_id,
                        kind: span.kind,
                        start,
                        duration,
                        failed: status == 2,
                        peer,
                    },
                    now,
                );
                if st.decided.contains(&trace_id) {
                    late += 1;
                    continue;
                }
                let t = st.traces.entry(trace_id).or_insert_with(|| Assembling {
                    inputs: Vec::new(),
                    names: Vec::new(),
                    last: u64::MAX,
                    first: u64::MAX,
                });
                t.first = t.first.min(start);
                if t.last != now {
                    t.last = now;
                    st.order.push_back((now, trace_id));
                }
                t.inputs.push(SpanInput {
                    span_id,
                    parent_id,
                    start,
                    end,
                    kind: match span.kind {
                        4 => Kind::Producer,
                        5 => Kind::Consumer,
                        _ => Kind::Other,
                    },
                });
                t.names.push((service, operation));
                st.spans += 1;
            }
            let mut early = 0;
            while st.spans > self.cfg.max_spans {
                match Self::pop_oldest(st, |_| true) {
                    Some(r) => {
                        early += 1;
                        st.ready_spans += r.inputs.len();
                        st.ready.push(r);
                    }
                    None => break,
                }
            }
            if early > 0 {
                self.counters.early.fetch_add(early, Ordering::Relaxed);
                self.wake.notify_one();
            }
            // The analysis task is behind by a whole assembly's worth: this request helps.
            if st.ready_spans > self.cfg.max_spans {
                st.ready_spans = 0;
                inline = std::mem::take(&mut st.ready);
                inline_flight = Self::take_in_flight(st, &inline);
            }
        }
        self.counters.spans.fetch_add(spans, Ordering::Relaxed);
        self.counters
            .max_event_time
            .fetch_max(max_event, Ordering::Relaxed);
        if min_event != u64::MAX {
            self.note_min_event(min_event);
        }
        self.counters.late_spans.fetch_add(late, Ordering::Relaxed);
        self.counters
            .out_of_range
            .fetch_add(out_of_range, Ordering::Relaxed);
        if !inline.is_empty() {
            self.analyse(inline, inline_flight);
        }
    }

    fn red_observe(&self, st: &mut State, key: RedKey, start: u64, duration: u64, now: u64) {
        let key = if let Some(seen) = st.red_keys.get_mut(&key) {
            *seen = now;
            key
        } else if st.red_keys.len() < self.cfg.max_series {
            st.red_keys.insert(key.clone(), now);
            key
        } else {
            if !st.overflow_warned[0] {
                st.overflow_warned[0] = true;
                events::AnalysisKeysOverflowed {
                    what: "span-metric series",
                    bound: self.cfg.max_series,
                }
                .emit();
            }
            let star: Arc<str> = Arc::from(OVERFLOW);
            RedKey {
                service: star.clone(),
                operation: star,
                kind: 0,
                status: 0,
            }
        };
        let error = key.status == 2;
        let c = st.red.entry((floor(start, STEPS[0]), key)).or_default();
        c.count += 1;
        c.errors += u64::from(error);
        c.hist.record(duration);
    }

    /// Removes the oldest assembling trace for which `due(last arrival)` holds.
    fn pop_oldest(st: &mut State, due: impl Fn(u64) -> bool) -> Option<Ready> {
        while let Some(&(at, id)) = st.order.front() {
            let live = st.traces.get(&id).is_some_and(|t| t.last == at);
            if live && !due(at) {
                return None;
            }
            st.order.pop_front();
            if live && let Some(t) = st.traces.remove(&id) {
                st.spans -= t.inputs.len();
                return Some(Ready {
                    trace_id: id,
                    inputs: t.inputs,
                    names: t.names,
                    first: t.first,
                });
            }
        }
        None
    }

    /// Notes a batch taken out of the state for analysis (see `in_flight`); its key, to be
    /// handed to [`Analyzer::analyse`].
    fn take_in_flight(st: &mut State, batch: &[Ready]) -> Option<u64> {
        let m = batch.iter().map(|r| r.first).min()?;
        *st.in_flight.entry(m).or_default() += 1;
        Some(m)
    }

    /// The earliest span start among the traces still assembling, waiting or being analysed
    /// (None when there are none): the traces whose folds are still to come go to buckets
    /// from there on. The alerting engine does not evaluate past it for long (see
    /// [`crate::stages::alerting`]), so that a replay, whose traces complete seconds of wall time but
    /// many minutes of event time after they were sent, is judged on complete data.
    pub fn pending_floor(&self) -> Option<u64> {
        let st = lock(&self.state);
        st.traces
            .values()
            .map(|t| t.first)
            .chain(st.ready.iter().map(|r| r.first))
            .chain(st.in_flight.keys().next().copied())
            .min()
    }

    /// How long a trace waits for more spans before it is analysed.
    pub fn trace_idle(&self) -> Duration {
        self.cfg.trace_idle
    }

    /// Critical paths of complete traces, folded into the cells; `flight` is the batch's
    /// `in_flight` key, released when this returns or unwinds.
    fn analyse(&self, ready: Vec<Ready>, flight: Option<u64>) {
        /// Releases an `in_flight` key, even if the analysis panics (the analysis task
        /// survives a panic; a key left behind would hold the floor forever).
        struct Release<'a>(&'a Analyzer, Option<u64>);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                let Some(m) = self.1 else { return };
                let mut st = lock(&self.0.state);
                if let Some(n) = st.in_flight.get_mut(&m) {
                    *n -= 1;
                    if *n == 0 {
                        st.in_flight.remove(&m);
                    }
                }
            }
        }
        let _release = Release(self, flight);
        let folds: Vec<([u8; 16], TraceFold)> = ready
            .iter()
            .map(|r| {
                let cp = critical_path(&r.inputs, self.cfg.tolerance);
                (r.trace_id, bottleneck::fold(&r.inputs, &r.names, &cp))
            })
            .collect();
        let now = self.now();
        let mut st = lock(&self.state);
        let st = &mut *st;
        for (id, f) in folds {
            self.add_fold(st, id, f, now);
            if st.decided.insert(id) {
                st.decided_order.push_back(id);
            }
            while st.decided_order.len() > self.cfg.decided_cache {
                if let Some(old) = st.decided_order.pop_front() {
                    st.decided.remove(&old);
                }
            }
        }
        self.counters
            .traces
            .fetch_add(ready.len() as u64, Ordering::Relaxed);
    }

    fn add_fold(&self, st: &mut State, trace_id: [u8; 16], f: TraceFold, now: u64) {
        let bucket = floor(f.start, STEPS[0]);
        let t = st
            .folds
            .entry((Family::Trace, bucket, Vec::new()))
            .or_default();
        t.count += 1;
        t.time = t.time.saturating_add(f.duration);
        t.hist.record(f.duration);
        t.exemplar(Exemplar {
            trace_id,
            value: f.duration,
        });
        let ops = f
            .operations
            .into_iter()
            .map(|((s, o), x)| (Family::Operation, vec![s, o], x));
        let paths = f
            .call_paths
            .into_iter()
            .map(|(p, x)| (Family::CallPath, vec![p], x));
        for (family, labels, x) in ops.chain(paths) {
            let labels = self.bound_operation(st, family, labels, now);
            let c = st.folds.entry((family, bucket, labels)).or_default();
            c.count += 1;
            c.time = c.time.saturating_add(x);
            c.e2e = c.e2e.saturating_add(f.duration);
            c.hist.record(x);
            c.exemplar(Exemplar { trace_id, value: x });
        }
    }

    /// `labels`, or `*`s once `max_operations` distinct label sets of `family` are tracked.
    fn bound_operation(
        &self,
        st: &mut State,
        family: Family,
        labels: Vec<String>,
        now: u64,
    ) -> Vec<String> {
        let (keys, warned, what) = if family == Family::CallPath {
            (&mut st.path_keys, &mut st.overflow_warned[2], "call paths")
        } else {
            (
                &mut st.op_keys,
                &mut st.overflow_warned[1],
                "bottleneck operations",
            )
        };
        if let Some(seen) = keys.get_mut(&labels) {
            *seen = now;
            return labels;
        }
        if keys.len() < self.cfg.max_operations {
            keys.insert(labels.clone(), now);
            return labels;
        }
        if !*warned {
            *warned = true;
            events::AnalysisKeysOverflowed {
                what,
                bound: self.cfg.max_operations,
            }
            .emit();
        }
        labels.iter().map(|_| OVERFLOW.to_string()).collect()
    }

    /// Analyses traces idle for `trace_idle` (all of them when `all`), gives up graph halves
    /// that waited too long, and moves the graph's figures into cells.
    pub fn tick(&self, all: bool) {
        let now = self.now();
        let idle = self.cfg.trace_idle.as_nanos() as u64;
        let mut ready: Vec<Ready>;
        let flight;
        {
            let mut st = lock(&self.state);
            let st = &mut *st;
            ready = std::mem::take(&mut st.ready);
            st.ready_spans = 0;
            while let Some(r) = Self::pop_oldest(st, |at| all || now.saturating_sub(at) >= idle) {
                ready.push(r);
            }
            flight = Self::take_in_flight(st, &ready);
            st.graph.expire(now);
            Self::drain_graph(st);
        }
        if !ready.is_empty() {
            self.analyse(ready, flight);
        }
    }

    /// Moves the graph's paired edges and unpaired counts into cells.
    fn drain_graph(st: &mut State) {
        {
            for ((bucket, client, server, kind), e) in std::mem::take(&mut st.graph.edges) {
                let c = st
                    .folds
                    .entry((
                        Family::Edge,
                        bucket,
                        vec![client.to_string(), server.to_string(), kind.as_str().into()],
                    ))
                    .or_default();
                c.merge(&Cell {
                    count: e.requests,
                    errors: e.failed,
                    hist: e.client_latency,
                    hist2: e.server_latency,
                    ..Cell::default()
                });
            }
            for ((bucket, service), u) in std::mem::take(&mut st.graph.unpaired) {
                let c = st
                    .folds
                    .entry((Family::Unpaired, bucket, vec![service.to_string()]))
                    .or_default();
                c.count += u.client;
                c.errors += u.server;
            }
        }
    }

    /// Merges the cells in memory into sled at every resolution. On a sled error the cells
    /// not yet written go back to memory for the next checkpoint.
    pub fn checkpoint(&self) -> Result<(), AnalyzerError> {
        let _moving = lock(&self.moving);
        let (red, folds) = {
            let mut st = lock(&self.state);
            (std::mem::take(&mut st.red), std::mem::take(&mut st.folds))
        };
        let merge = |family: Family, bucket: u64, labels: &[&str], cell: &Cell| {
            let value = cell.encode();
            for (res, step) in STEPS.iter().enumerate() {
                self.tree.merge(
                    series::key(family, res, floor(bucket, *step), labels),
                    value.as_slice(),
                )?;
            }
            Ok::<(), sled::Error>(())
        };
        let n = red.len() + folds.len();
        let mut red = red.into_iter();
        let mut failed = None;
        for ((bucket, k), cell) in red.by_ref() {
            let (kind, status) = (k.kind.to_string(), k.status.to_string());
            let labels = [&*k.service, &*k.operation, &kind, &status];
            if let Err(e) = merge(Family::Red, bucket, &labels, &cell) {
                failed = Some((e, Some(((bucket, k), cell))));
                break;
            }
        }
        let mut folds = folds.into_iter();
        if failed.is_none() {
            for ((family, bucket, labels), cell) in folds.by_ref() {
                let l: Vec<&str> = labels.iter().map(String::as_str).collect();
                if let Err(e) = merge(family, bucket, &l, &cell) {
                    failed = Some((e, None));
                    let mut st = lock(&self.state);
                    st.folds
                        .entry((family, bucket, labels))
                        .or_default()
                        .merge(&cell);
                    break;
                }
            }
        }
        if let Some((e, red_cell)) = failed {
            let mut st = lock(&self.state);
            for ((b, k), c) in red_cell.into_iter().chain(red) {
                st.red.entry((b, k)).or_default().merge(&c);
            }
            for (k, c) in folds {
                st.folds.entry(k).or_default().merge(&c);
            }
            return Err(e.into());
        }
        if let Some(logs) = &self.logs {
            // Encoded under the lock, written outside it: intake is not held up by sled.
            let (ids, batch) = lock(logs).take_dirty();
            if let Err(e) = self.log_tree.apply_batch(batch) {
                lock(logs).unwritten(ids);
                return Err(e.into());
            }
        }
        if n > 0 || self.logs.is_some() {
            self.tree.flush()?;
        }
        self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Forgets tracked keys not seen for an hour, so the bounds hold for the keys in use
    /// rather than for every key since start.
    fn forget_idle_keys(&self) {
        let horizon = self.now().saturating_sub(KEY_IDLE.as_nanos() as u64);
        let mut st = lock(&self.state);
        st.red_keys.retain(|_, seen| *seen >= horizon);
        st.op_keys.retain(|_, seen| *seen >= horizon);
        st.path_keys.retain(|_, seen| *seen >= horizon);
        st.overflow_warned = [
            st.red_keys.len() >= self.cfg.max_series,
            st.op_keys.len() >= self.cfg.max_operations,
            st.path_keys.len() >= self.cfg.max_operations,
        ];
    }

    /// Deletes buckets past each resolution's retention (by `now`, Unix nanoseconds).
    pub fn sweep(&self, now: u64) -> Result<u64, AnalyzerError> {
        let mut removed = 0;
        for (res, keep) in self.cfg.retentions().iter().enumerate() {
            let horizon = floor(now.saturating_sub(keep.as_nanos() as u64), STEPS[res]);
            for family in Family::ALL {
                let range = series::prefix(family, res, 0)..series::prefix(family, res, horizon);
                let mut batch = sled::Batch::default();
                for kv in self.tree.range(range).keys() {
                    batch.remove(kv?);
                    removed += 1;
                }
                self.tree.apply_batch(batch)?;
            }
        }
        Ok(removed)
    }

    /// Runs assembly timeouts every second, checkpoints every `flush_interval` and sweeps
    /// every minute, until `stop`; then analyses every trace still assembling and makes a
    /// last checkpoint.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        if !self.cfg.enabled {
            return;
        }
        let mut last_checkpoint = Instant::now();
        let mut last_sweep: Option<Instant> = None;
        loop {
            let stopping = tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => false,
                _ = self.wake.notified() => false,
                _ = stop.cancelled() => true,
            };
            let checkpoint = stopping || last_checkpoint.elapsed() >= self.cfg.flush_interval;
            let sweep = last_sweep.is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
            let me = self.clone();
            let r = tokio::task::spawn_blocking(move || {
                me.tick(stopping);
                if checkpoint {
                    me.checkpoint()?;
                }
                if sweep {
                    me.forget_idle_keys();
                    me.sweep(crate::store::now_ns())?;
                }
                Ok::<(), AnalyzerError>(())
            })
            .await;
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => events::AnalysisCheckpointFailed { error: &e }.emit(),
                Err(e) => events::AnalysisCheckpointFailed { error: &e }.emit(),
            }
            if checkpoint {
                last_checkpoint = Instant::now();
            }
            if sweep {
                last_sweep = Some(Instant::now());
            }
            if stopping {
                return;
            }
        }
    }

    /// A snapshot for GetStats.
    pub fn snapshot(&self) -> Snapshot {
        let st = lock(&self.state);
        Snapshot {
            spans: self.counters.spans.load(Ordering::Relaxed),
            traces: self.counters.traces.load(Ordering::Relaxed),
            early: self.counters.early.load(Ordering::Relaxed),
            late_spans: self.counters.late_spans.load(Ordering::Relaxed),
            out_of_range: self.counters.out_of_range.load(Ordering::Relaxed),
            assembling_traces: st.traces.len() as u64,
            assembling_spans: st.spans as u64,
            series: st.red_keys.len() as u64,
            operations: st.op_keys.len() as u64,
            call_paths: st.path_keys.len() as u64,
            graph_pending: st.graph.pending() as u64,
        }
    }

    /// The resolution to read `[from, to)` at: the finest whose retention reaches back to
    /// `from` (by `now`) and that gives at most `max_points` buckets, or the coarsest.
    pub fn resolution(&self, from: u64, to: u64, now: u64, max_points: u64) -> usize {
        let r = self.cfg.retentions();
        (0..STEPS.len())
            .find(|&i| {
                now.saturating_sub(r[i].as_nanos() as u64) <= from
                    && to.saturating_sub(from) / STEPS[i] <= max_points
            })
            .unwrap_or(STEPS.len() - 1)
    }

    /// Visits the cells of `family` at resolution `res` in buckets starting in
    /// `[floor(from), to)` whose labels `keep` accepts, stored and still in memory, as
    /// `f(bucket, labels, cell)`; a label set may come twice for one bucket (stored and in
    /// memory), so callers merge. Labels are checked before a value is decoded, and nothing
    /// is collected here: memory is the caller's merged result.
    pub fn scan(
        &self,
        family: Family,
        res: usize,
        (from, to): (u64, u64),
        keep: &dyn Fn(&[String]) -> bool,
        f: &mut dyn FnMut(u64, &[String], &Cell),
    ) -> Result<(), AnalyzerError> {
        if !self.cfg.enabled {
            return Err(AnalyzerError::Disabled);
        }
        let step = STEPS[res];
        let from = floor(from, step);
        let _moving = lock(&self.moving);
        let range = series::prefix(family, res, from)..series::prefix(family, res, to);
        for kv in self.tree.range(range) {
            let (k, v) = kv?;
            let key = match series::parse_key(&k) {
                Ok(key) => key,
                Err(e) => {
                    events::AnalysisValueCorrupt { error: &e }.emit();
                    continue;
                }
            };
            if !keep(&key.labels) {
                continue;
            }
            match Cell::decode(&v) {
                Ok(c) => f(key.bucket, &key.labels, &c),
                Err(e) => events::AnalysisValueCorrupt { error: &e }.emit(),
            }
        }
        let mut st = lock(&self.state);
        if matches!(family, Family::Edge | Family::Unpaired) {
            Self::drain_graph(&mut st);
        }
        let in_range = |b: u64| b >= from && b < to;
        if family == Family::Red {
            for ((b, k), c) in &st.red {
                let b = floor(*b, step);
                if in_range(b) {
                    let labels = [
                        k.service.to_string(),
                        k.operation.to_string(),
                        k.kind.to_string(),
                        k.status.to_string(),
                    ];
                    if keep(&labels) {
                        f(b, &labels, c);
                    }
                }
            }
        } else {
            for ((fam, b, labels), c) in &st.folds {
                let b = floor(*b, step);
                if *fam == family && in_range(b) && keep(labels) {
                    f(b, labels, c);
                }
            }
        }
        Ok(())
    }

    /// The cells of `family` over `[from, to)` at `res`, merged per label set, with the range
    /// actually read (whole buckets).
    pub fn read(
        &self,
        family: Family,
        res: usize,
        (from, to): (u64, u64),
        keep: &dyn Fn(&[String]) -> bool,
    ) -> Result<Read, AnalyzerError> {
        let mut cells: HashMap<Vec<String>, Cell> = HashMap::new();
        if from < to {
            self.scan(
                family,
                res,
                (from, to),
                keep,
                &mut |_, labels, c| match cells.get_mut(labels) {
                    Some(have) => have.merge(c),
                    None => {
                        cells.insert(labels.to_vec(), c.clone());
                    }
                },
            )?;
        }
        let step = STEPS[res];
        Ok(Read {
            cells,
            from: floor(from, step),
            to: floor(to.saturating_sub(1), step)
                .saturating_add(step)
                .max(floor(from, step)),
        })
    }

    /// [`Analyzer::read`] at the resolution [`Analyzer::resolution`] picks.
    pub fn window(
        &self,
        family: Family,
        (from, to): (u64, u64),
        keep: &dyn Fn(&[String]) -> bool,
    ) -> Result<Read, AnalyzerError> {
        let res = self.resolution(from, to, crate::store::now_ns(), MAX_SCAN_BUCKETS);
        self.read(family, res, (from, to), keep)
    }

    /// Bottlenecks over the query's window, compared with its baseline. Both are read at one
    /// resolution (the coarser either needs), and the baseline stops where the window's first
    /// bucket starts, so no bucket counts in both.
    pub fn bottlenecks(&self, q: &BottleneckQuery) -> Result<Bottlenecks, AnalyzerError> {
        let now = crate::store::now_ns();
        let family = if q.by_call_path {
            Family::CallPath
        } else {
            Family::Operation
        };
        let mut res = self.resolution(q.window.0, q.window.1, now, MAX_SCAN_BUCKETS);
        if let Some((bf, bt)) = q.baseline {
            res = res.max(self.resolution(bf, bt, now, MAX_SCAN_BUCKETS));
        }
        let keep = |labels: &[String]| q.matches(labels, q.by_call_path);
        let all = |_: &[String]| true;
        let read = |(from, to): (u64, u64)| -> Result<_, AnalyzerError> {
            let cells = self.read(family, res, (from, to), &keep)?;
            let total = self
                .read(Family::Trace, res, (from, to), &all)?
                .cells
                .remove(&Vec::new())
                .unwrap_or_default();
            Ok((cells, total))
        };
        let (window, total) = read(q.window)?;
        let (baseline, base_total) = match q.baseline {
            Some((bf, bt)) => {
                let (b, t) = read((bf, bt.min(window.from)))?;
                (Some(b), t)
            }
            None => (None, Cell::default()),
        };
        let empty = HashMap::new();
        Ok(Bottlenecks {
            rows: bottleneck::rank(
                &window.cells,
                &total,
                baseline.as_ref().map(|b| &b.cells).unwrap_or(&empty),
                &base_total,
                q.top_k,
            ),
            total,
            baseline_total: base_total,
            window: (window.from, window.to),
            baseline: baseline.map(|b| (b.from, b.to)),
        })
    }

    /// What-if: speeding (service, operation) up by `speedup` over `[from, to)`; also the
    /// range read.
    pub fn what_if(
        &self,
        service: &str,
        operation: &str,
        speedup: f64,
        (from, to): (u64, u64),
    ) -> Result<(Projection, Cell, (u64, u64)), AnalyzerError> {
        let res = self.resolution(from, to, crate::store::now_ns(), MAX_SCAN_BUCKETS);
        let key = vec![service.to_string(), operation.to_string()];
        let op = self
            .read(Family::Operation, res, (from, to), &|l| l == key.as_slice())?
            .cells
            .remove(&key)
            .unwrap_or_default();
        let all = self.read(Family::Trace, res, (from, to), &|_| true)?;
        let range = (all.from, all.to);
        let total = all.cells.get(&Vec::new()).cloned().unwrap_or_default();
        Ok((bottleneck::what_if(&op, &total, speedup), op, range))
    }

    /// The bucket width span metrics from `from` on are kept at: the finest resolution whose
    /// retention still covers `from`.
    pub fn finest_step(&self, from: u64, now: u64) -> u64 {
        STEPS[self.resolution(from, from, now, u64::MAX)]
    }

    /// Span-metric series of `service` (and `operation`) over `[from, to)` at `step`, a
    /// multiple of [`Analyzer::finest_step`], by (service, operation, kind, status).
    pub fn span_metrics(
        &self,
        service: &str,
        operation: Option<&str>,
        (from, to): (u64, u64),
        step: u64,
    ) -> Result<BTreeMap<Vec<String>, series::Series>, AnalyzerError> {
        let res = self.resolution(from, from, crate::store::now_ns(), u64::MAX);
        if step == 0 || !step.is_multiple_of(STEPS[res]) {
            return Err(AnalyzerError::Invalid(format!(
                "step {} is not a multiple of {}, the resolution data from {} on is kept at",
                step, STEPS[res], from
            )));
        }
        let keep = |l: &[String]| {
            l.first().map(String::as_str) == Some(service)
                && operation.is_none_or(|o| l.get(1).map(String::as_str) == Some(o))
        };
        let mut out: BTreeMap<Vec<String>, series::Series> = BTreeMap::new();
        self.scan(Family::Red, res, (from, to), &keep, &mut |b, labels, c| {
            if !out.contains_key(labels) {
                out.insert(labels.to_vec(), series::Series::new(step));
            }
            if let Some(s) = out.get_mut(labels) {
                s.add(b, c);
            }
        })?;
        Ok(out)
    }
}

/// Buckets a window or baseline read scans at most before a coarser resolution is used.
pub const MAX_SCAN_BUCKETS: u64 = 2_000;

/// Cells of a window merged per label set, and the range read (whole buckets).
#[derive(Debug, Clone)]
pub struct Read {
    pub cells: HashMap<Vec<String>, Cell>,
    pub from: u64,
    pub to: u64,
}

/// A bottleneck query; windows are `[from, to)` in Unix nanoseconds.
#[derive(Debug, Clone)]
pub struct BottleneckQuery {
    pub service: Option<String>,
    pub operation: Option<String>,
    pub window: (u64, u64),
    pub baseline: Option<(u64, u64)>,
    pub top_k: usize,
    pub by_call_path: bool,
}

impl BottleneckQuery {
    /// Operation labels are (service, operation); a call path matches on its last element.
    fn matches(&self, labels: &[String], call_path: bool) -> bool {
        let (svc, op) = if call_path {
            let (s, o) = bottleneck::call_path_last(labels.first().map_or("", String::as_str));
            (s.to_string(), o.to_string())
        } else {
            (
                labels.first().cloned().unwrap_or_default(),
                labels.get(1).cloned().unwrap_or_default(),
            )
        };
        self.service.as_ref().is_none_or(|s| *s == svc)
            && self.operation.as_ref().is_none_or(|o| *o == op)
    }
}

/// The answer to a [`BottleneckQuery`].
#[derive(Debug, Clone)]
pub struct Bottlenecks {
    pub rows: Vec<Row>,
    /// All traces of the window: count, end-to-end time and histogram, slowest exemplars.
    pub total: Cell,
    pub baseline_total: Cell,
    /// The ranges read (whole buckets).
    pub window: (u64, u64),
    pub baseline: Option<(u64, u64)>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span, Status};

    fn rs(service: &str, spans: Vec<Span>) -> ResourceSpans {
        ResourceSpans {
            resource: Some(Resource {
                attributes: vec![crate::otlp::string_kv("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn span(
        trace: u8,
        id: u8,
        parent: Option<u8>,
        name: &str,
        kind: i32,
        start: u64,
        end: u64,
        error: bool,
    ) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: name.into(),
            kind,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            status: error.then(|| Status {
                code: 2,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The analysis stage's two trees in `db`.
    pub(crate) fn trees(db: &sled::Db) -> (sled::Tree, sled::Tree) {
        use crate::store::keys::StateTree;
        (
            db.open_tree(StateTree::Analysis.name()).unwrap(),
            db.open_tree(StateTree::LogClusters.name()).unwrap(),
        )
    }

    fn analyzer(dir: &std::path::Path, cfg: config::Analysis) -> (sled::Db, Arc<Analyzer>) {
        // sled's flusher thread lets go of the previous handle's file lock a moment after
        // the handle is dropped: a reopen waits for it (up to 10 s).
        let began = std::time::Instant::now();
        let db = loop {
            match sled::open(dir) {
                Ok(db) => break db,
                Err(e) if began.elapsed() < std::time::Duration::from_secs(10) => {
                    assert!(e.to_string().contains("could not acquire lock"), "{e}");
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("{e}"),
            }
        };
        let a = Analyzer::open(&cfg, trees(&db).0, trees(&db).1).unwrap();
        (db, a)
    }

    /// The default analysis with traces complete after 1 ms idle.
    fn quick() -> config::Analysis {
        config::Analysis {
            trace_idle: Duration::from_millis(1),
            ..config::Analysis::default()
        }
    }

    const MS: u64 = 1_000_000;

    /// A minute boundary an hour ago: inside every retention.
    fn t0() -> u64 {
        floor(crate::store::now_ns() - 3_600_000 * MS, STEPS[1])
    }

    /// Every cell of `family` in `[from, to)` at `res`, merged per label set.
    fn cells(
        a: &Analyzer,
        family: Family,
        res: usize,
        from: u64,
        to: u64,
    ) -> HashMap<Vec<String>, Cell> {
        a.read(family, res, (from, to), &|_| true).unwrap().cells
    }

    /// web GET / [0,100ms] → CLIENT [10,90] → api SERVER [15,85] (error in trace 2).
    fn trace(t: u8, base: u64) -> Vec<ResourceSpans> {
        vec![
            rs(
                "web",
                vec![
                    span(t, 1, None, "GET /", 2, base, base + 100 * MS, false),
                    span(
                        t,
                        2,
                        Some(1),
                        "call api",
                        3,
                        base + 10 * MS,
                        base + 90 * MS,
                        false,
                    ),
                ],
            ),
            rs(
                "api",
                vec![span(
                    t,
                    3,
                    Some(2),
                    "GET /x",
                    2,
                    base + 15 * MS,
                    base + 85 * MS,
                    t == 2,
                )],
            ),
        ]
    }

    #[test]
    fn spans_become_red_cells_graph_edges_and_bottlenecks() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, a) = analyzer(dir.path(), quick());
        let t0 = t0();
        for t in 1..=3u8 {
            a.observe(&trace(t, t0 + u64::from(t) * 1000 * MS));
        }
        std::thread::sleep(Duration::from_millis(5));
        a.tick(false);
        assert_eq!(a.snapshot().traces, 3);
        // Read before and after the checkpoint: the same figures.
        let window = (t0, t0 + 60_000 * MS);
        let check = |a: &Analyzer| {
            let red = cells(a, Family::Red, 0, window.0, window.1);
            let api_err = &red[&vec!["api".into(), "GET /x".into(), "2".into(), "2".into()]];
            assert_eq!((api_err.count, api_err.errors), (1, 1));
            let api_ok = &red[&vec!["api".into(), "GET /x".into(), "2".into(), "0".into()]];
            assert_eq!(api_ok.count, 2);
            let edges = cells(a, Family::Edge, 0, window.0, window.1);
            let e = &edges[&vec!["web".into(), "api".into(), "request".into()]];
            assert_eq!((e.count, e.errors), (3, 1));
            let ops = cells(a, Family::Operation, 0, window.0, window.1);
            // api's span is 70 of the 100 ms; web's GET / 20, its client span 10.
            let api = &ops[&vec!["api".into(), "GET /x".into()]];
            assert_eq!((api.count, api.time, api.e2e), (3, 210 * MS, 300 * MS));
            assert_eq!(api.exemplars.len(), 3);
            let total = &cells(a, Family::Trace, 0, window.0, window.1)[&Vec::new()];
            assert_eq!((total.count, total.time), (3, 300 * MS));
        };
        check(&a);
        a.checkpoint().unwrap();
        check(&a);
        // The 1-minute and 1-hour resolutions hold the same sums.
        for res in [1, 2] {
            let sum: u64 = cells(&a, Family::Trace, res, window.0, window.1)
                .values()
                .map(|c| c.count)
                .sum();
            assert_eq!(sum, 3, "resolution {res}");
        }
        // A late span of an analysed trace is counted as late, not as a new trace.
        a.observe(&[rs(
            "api",
            vec![span(
                1,
                9,
                Some(3),
                "late",
                1,
                t0 + 1000 * MS,
                t0 + 1001 * MS,
                false,
            )],
        )]);
        std::thread::sleep(Duration::from_millis(5));
        a.tick(false);
        assert_eq!((a.snapshot().late_spans, a.snapshot().traces), (1, 3));
        let b = a
            .bottlenecks(&BottleneckQuery {
                service: None,
                operation: None,
                window,
                baseline: None,
                top_k: 10,
                by_call_path: false,
            })
            .unwrap();
        assert_eq!(
            b.rows[0].labels,
            vec!["api".to_string(), "GET /x".to_string()]
        );
        assert!((b.rows[0].share - 0.7).abs() < 1e-9);
    }

    #[test]
    fn assembly_is_bounded_and_keys_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config::Analysis {
            max_spans: 5,
            max_series: 2,
            ..config::Analysis::default()
        };
        let (_db, a) = analyzer(dir.path(), cfg);
        let t0 = t0();
        for t in 1..=4u8 {
            a.observe(&trace(t, t0));
        }
        let s = a.snapshot();
        assert!(s.assembling_spans <= 5, "{s:?}");
        assert_eq!(s.early, 3);
        assert_eq!(s.series, 2);
        // Early traces wait for the analysis task, until they hold more than `max_spans`
        // spans themselves: then the request that finds them so analyses them (traces 1, 2).
        assert_eq!(s.traces, 2);
        a.tick(false);
        assert_eq!(a.snapshot().traces, 3);
        let red = cells(&a, Family::Red, 0, t0, t0 + 60_000 * MS);
        let star = vec![
            OVERFLOW.to_string(),
            OVERFLOW.into(),
            "0".into(),
            "0".into(),
        ];
        // 12 spans: 2 series of web take 8, api's 4 go to the overflow series.
        assert_eq!(red[&star].count, 4);
        assert_eq!(red.values().map(|c| c.count).sum::<u64>(), 12);
    }

    #[test]
    fn figures_survive_a_reopen_and_retention_sweeps_by_resolution() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config::Analysis::default();
        let now = crate::store::now_ns();
        let old = now - 48 * 3600 * 1_000_000_000; // past the 10 s retention (24 h)
        {
            let (_db, a) = analyzer(dir.path(), cfg.clone());
            a.observe(&trace(1, now));
            a.observe(&trace(2, old));
            a.tick(true);
            a.checkpoint().unwrap();
        }
        let (_db, a) = analyzer(dir.path(), cfg);
        let count = |res: usize| {
            cells(&a, Family::Trace, res, 0, u64::MAX)
                .values()
                .map(|c| c.count)
                .sum::<u64>()
        };
        assert_eq!((count(0), count(1), count(2)), (2, 2, 2));
        assert!(a.sweep(now).unwrap() > 0);
        assert_eq!((count(0), count(1), count(2)), (1, 2, 2));
        // A corrupt value is skipped with a warning, the rest is read.
        a.tree
            .insert(
                series::key(Family::Trace, 0, floor(now, STEPS[0]) + STEPS[0], &[]),
                &b"\xff\xff"[..],
            )
            .unwrap();
        assert_eq!(count(0), 1);
    }
    #[test]
    fn long_names_and_odd_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, a) = analyzer(dir.path(), config::Analysis::default());
        let t0 = t0();
        let long = "SELECT ".to_string() + &"x".repeat(2000);
        a.observe(&[rs(
            "db",
            vec![span(1, 1, None, &long, 3, t0, t0 + MS, false)],
        )]);
        // Far future and far past starts are counted, not analysed.
        let year = 365 * 24 * 3_600_000 * MS;
        a.observe(&[rs(
            "db",
            vec![
                span(2, 1, None, "q", 3, t0 + year, t0 + year + MS, false),
                span(3, 1, None, "q", 3, 1, 2, false),
            ],
        )]);
        assert_eq!((a.snapshot().spans, a.snapshot().out_of_range), (1, 2));
        a.tick(true);
        let read = |a: &Analyzer| cells(a, Family::Red, 0, t0, t0 + 60_000 * MS);
        let before = read(&a);
        assert_eq!(before.len(), 1);
        let name = &before.keys().next().unwrap()[1];
        assert_eq!(name.len(), MAX_NAME + '…'.len_utf8());
        // The same single series after the checkpoint: the name was cut once, at intake.
        a.checkpoint().unwrap();
        assert_eq!(read(&a), before);
    }

    #[test]
    fn idle_keys_leave_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config::Analysis {
            max_series: 1,
            ..config::Analysis::default()
        };
        let (_db, a) = analyzer(dir.path(), cfg);
        let t0 = t0();
        a.observe(&[rs("a", vec![span(1, 1, None, "x", 1, t0, t0 + MS, false)])]);
        a.observe(&[rs("a", vec![span(2, 1, None, "y", 1, t0, t0 + MS, false)])]);
        assert_eq!(a.snapshot().series, 1);
        // Seen just now: kept.
        a.forget_idle_keys();
        assert_eq!(a.snapshot().series, 1);
        // An hour later "x" is idle and leaves, so "y" gets its own series.
        lock(&a.state)
            .red_keys
            .values_mut()
            .for_each(|seen| *seen = 0);
        let later = Analyzer {
            base: a.base - KEY_IDLE - Duration::from_secs(1),
            ..Arc::into_inner(a).unwrap()
        };
        later.forget_idle_keys();
        assert_eq!(later.snapshot().series, 0);
        later.observe(&[rs("a", vec![span(3, 1, None, "y", 1, t0, t0 + MS, false)])]);
        let red = cells(&later, Family::Red, 0, t0, t0 + 60_000 * MS);
        assert!(
            red.contains_key(&vec!["a".into(), "y".into(), "1".into(), "0".into()]),
            "{red:?}"
        );
    }

    #[test]
    fn baselines_stop_where_the_window_starts() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, a) = analyzer(dir.path(), quick());
        let t0 = t0();
        a.observe(&trace(1, t0 + 5_000 * MS)); // in the bucket [t0, t0 + 10 s)
        a.observe(&trace(2, t0 + 15_000 * MS));
        a.tick(true);
        // A window starting mid-bucket reads that whole bucket; the baseline ends before it.
        let b = a
            .bottlenecks(&BottleneckQuery {
                service: None,
                operation: None,
                window: (t0 + 7_000 * MS, t0 + 60_000 * MS),
                baseline: Some((t0 - 60_000 * MS, t0 + 7_000 * MS)),
                top_k: 10,
                by_call_path: false,
            })
            .unwrap();
        assert_eq!(b.window, (t0, t0 + 60_000 * MS));
        assert_eq!(b.baseline, Some((t0 - 60_000 * MS, t0)));
        assert_eq!((b.total.count, b.baseline_total.count), (2, 0));
    }
}

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
mod observe;
mod persist;
mod read;
mod totals;

pub use read::{BottleneckQuery, Bottlenecks, MAX_SCAN_BUCKETS, Read};
pub use totals::{EdgeMetric, SpanMetric};

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
    /// Figures since start, for `/metrics` ([`Analyzer::totals`]).
    totals: Mutex<totals::Totals>,
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
            totals: Mutex::new(totals::Totals::default()),
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
}

/// The analysis stage's loop ([`Analyzer::run`]).
impl crate::stages::Stage for Arc<Analyzer> {
    async fn run(self, stop: CancellationToken) {
        Analyzer::run(self, stop).await
    }
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

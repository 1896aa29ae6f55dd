//! The query side of the analysis stage: snapshots, window reads that merge sled with what
//! is still in memory, bottleneck rankings against a baseline, what-if projections and
//! span metrics.

use super::*;

impl Analyzer {
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

//! The clock side of the analysis stage: the tick that analyses idle traces and drains the
//! service graph, the checkpoint that merges cells into sled, the retention sweep, and the
//! loop ([`Analyzer::run`]) that drives them.

use super::*;

impl Analyzer {
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
    pub(super) fn drain_graph(st: &mut State) {
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
        // Only this checkpoint (under `moving`) and a scrape (also under `moving`) take it.
        let mut totals = lock(&self.totals);
        for ((bucket, k), cell) in red.by_ref() {
            let (kind, status) = (k.kind.to_string(), k.status.to_string());
            let labels = [&*k.service, &*k.operation, &kind, &status];
            if let Err(e) = merge(Family::Red, bucket, &labels, &cell) {
                failed = Some((e, Some(((bucket, k), cell))));
                break;
            }
            totals.add_red(&k, &cell);
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
                if family == Family::Edge {
                    totals.add_edge(&labels, &cell);
                }
            }
        }
        drop(totals);
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
    pub(super) fn forget_idle_keys(&self) {
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
}

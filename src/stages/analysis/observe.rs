//! The request side of the analysis stage: each span becomes a RED cell, a service-graph
//! half and a member of its assembling trace; traces idle for `trace_idle` (or pushed out
//! by the `max_spans` bound) get their critical path and are folded into cells.

use super::*;

impl Analyzer {
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
    pub(super) fn pop_oldest(st: &mut State, due: impl Fn(u64) -> bool) -> Option<Ready> {
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
    pub(super) fn take_in_flight(st: &mut State, batch: &[Ready]) -> Option<u64> {
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
    pub(super) fn analyse(&self, ready: Vec<Ready>, flight: Option<u64>) {
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
}

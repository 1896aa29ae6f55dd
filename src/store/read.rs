//! Reads: a trace by id, trace search over the indexes, log search, the catalog.
//!
//! Every search reads index entries newest first (reverse key order, see [`super::keys`]);
//! trace search merges the entries of all partitions into one stream. Index entries only
//! nominate candidates; each candidate is checked exactly against the stored data before it is
//! returned, so an index coarser than the query (per request, with ranges) never yields a
//! wrong answer. Reads take no lock on the sweeper: a partition dropped under a scan keeps its
//! open run files readable until the scan ends, and an unreadable chunk is skipped and
//! reported. Arguments are assumed checked by
//! the caller (the query layer).

use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{TracesData, status::StatusCode};
use prost::Message;

use super::keys;
use super::table::MergeRev;
use super::{Signal, Store, StoreError};
use crate::otlp;
use crate::telemetry::events;

/// A FindTraces query. Bounds are inclusive; `None` is unbounded.
#[derive(Debug, Clone, Default)]
pub struct TraceQuery {
    pub service: String,
    pub operation: Option<String>,
    pub attributes: Vec<(String, String)>,
    pub start_min: Option<u64>,
    pub start_max: Option<u64>,
    pub duration_min: Option<u64>,
    pub duration_max: Option<u64>,
    pub limit: usize,
    /// Candidate traces to inspect at most.
    pub search_depth: usize,
}

/// One line of a trace search result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSummary {
    pub trace_id: [u8; 16],
    pub root_service: String,
    pub root_operation: String,
    pub start: u64,
    pub duration: u64,
    pub span_count: u32,
    pub error_count: u32,
}

/// A SearchLogs query.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub service: Option<String>,
    pub min_severity: i32,
    pub trace_id: Option<[u8; 16]>,
    pub contains: Option<String>,
    pub start_min: Option<u64>,
    pub start_max: Option<u64>,
    pub limit: usize,
}

/// A log record with the resource and scope it came with.
#[derive(Debug, Clone, PartialEq)]
pub struct LogHit {
    pub resource: Option<Resource>,
    pub scope: Option<InstrumentationScope>,
    pub record: LogRecord,
    /// The record's effective time (time, else observed time).
    pub time: u64,
}

fn corrupt(what: &'static str, e: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what,
        reason: e.to_string(),
    }
}

impl Store {
    /// Every stored span of a trace, chunk by chunk in arrival order; `None` if none is stored.
    pub fn get_trace(&self, trace_id: &[u8; 16]) -> Result<Option<TracesData>, StoreError> {
        let mut out = TracesData::default();
        let mut chunks: Vec<(u64, TracesData)> = Vec::new();
        for (start, part) in self.partitions_newest_first(Signal::Traces, 0, u64::MAX) {
            let mut prefix = vec![keys::CHUNK];
            prefix.extend_from_slice(trace_id);
            let mut hi = prefix.clone();
            hi.extend_from_slice(&[0xff; 8]);
            for kv in part.table.range_rev(&prefix, &hi) {
                let (k, v) = kv?;
                let seq = keys::read_u64(k.get(17..).unwrap_or_default());
                match self.decode_chunk::<TracesData>(Signal::Traces, start, &part, &v) {
                    Some(mut data) => {
                        // A body is a whole request: keep this trace's spans.
                        retain_trace(&mut data, trace_id);
                        chunks.push((seq, data));
                    }
                    None => continue,
                }
            }
        }
        if chunks.is_empty() {
            return Ok(None);
        }
        chunks.sort_by_key(|(seq, _)| *seq);
        for (_, c) in chunks {
            out.resource_spans.extend(c.resource_spans);
        }
        Ok(Some(out))
    }

    /// Traces with a span matching every condition of `q`, newest first by the start of their
    /// newest matching span (ties: larger trace id first).
    ///
    /// A k-way merge: posting lists of every partition are read in one stream ordered by
    /// their key's newest start (a list's postings may lie in a later partition than the list,
    /// since a trace's spans of one request are listed where the trace's earliest span is).
    /// Each posting pushes its trace with an upper bound of its newest matching start; a popped
    /// trace is checked against its stored spans and pushed back with its exact start, and a
    /// trace comes out only with its exact start and only once no unread list can hold a
    /// newer one. So the order is exact and the scan stops as soon as `limit` traces are out.
    pub fn find_traces(&self, q: &TraceQuery) -> Result<Vec<TraceSummary>, StoreError> {
        let tmin = q.start_min.unwrap_or(0);
        let tmax = q.start_max.unwrap_or(u64::MAX);
        let dmin = q.duration_min.unwrap_or(0);
        let dmax = q.duration_max.unwrap_or(u64::MAX);
        // The most selective index available: an indexed attribute value, else the operation,
        // else the service.
        let indexed_attr = q
            .attributes
            .iter()
            .find(|(k, v)| self.is_indexed(&q.service, k, v, tmin));
        let prefix = match (indexed_attr, &q.operation) {
            (Some((k, v)), _) => keys::prefix(
                keys::ATTRIBUTE,
                &[q.service.as_bytes(), k.as_bytes(), v.as_bytes()],
            ),
            (None, Some(op)) => {
                keys::prefix(keys::OPERATION, &[q.service.as_bytes(), op.as_bytes()])
            }
            (None, None) => keys::prefix(keys::SERVICE, &[q.service.as_bytes()]),
        };
        // Lists whose newest start is before tmin cannot match; newer ones may hold older
        // postings, so there is no upper bound on the key. A partition starting after tmax
        // holds only postings starting after it.
        let mut lo = prefix.clone();
        lo.extend_from_slice(&tmin.to_be_bytes());
        let mut hi = prefix;
        hi.extend_from_slice(&[0xff; keys::SPAN_SUFFIX]);
        let parts = self.partitions_newest_first(Signal::Traces, 0, tmax);

        // Heads of the per-partition list streams, newest list first.
        let mut streams: Vec<MergeRev> = parts
            .iter()
            .map(|(_, p)| p.table.range_rev(&lo, &hi))
            .collect();
        let mut heads: BinaryHeap<(u64, usize, Vec<u8>)> = BinaryHeap::new();
        for (i, it) in streams.iter_mut().enumerate() {
            if let Some((k, v)) = it.next().transpose()? {
                heads.push((keys::parse_span_index_key(&k).unwrap_or(0), i, v));
            }
        }

        // (start bound or exact start, trace id, exact?)
        let mut pending: BinaryHeap<(u64, [u8; 16], bool)> = BinaryHeap::new();
        let mut checked: HashSet<[u8; 16]> = HashSet::new();
        let mut ready: HashMap<[u8; 16], TraceSummary> = HashMap::new();
        let mut found = Vec::new();
        loop {
            let next_list = heads.peek().map(|(list_max, _, _)| *list_max);
            // Settle every pending trace that no unread list can beat.
            while let Some(&(start, tid, exact)) = pending.peek() {
                if next_list.is_some_and(|bound| start <= bound) {
                    break;
                }
                pending.pop();
                if exact {
                    if let Some(summary) = ready.remove(&tid) {
                        found.push(summary);
                        if found.len() >= q.limit {
                            return Ok(found);
                        }
                    }
                    continue;
                }
                if !checked.insert(tid) {
                    continue; // an older bound of a trace already checked
                }
                if let Some(trace) = self.get_trace(&tid)?
                    && let Some(newest) = newest_match(&trace, q, tmin, tmax, dmin, dmax)
                {
                    ready.insert(tid, summarize(tid, &trace));
                    pending.push((newest, tid, true));
                }
                if checked.len() >= q.search_depth {
                    // Out of budget: what is settled so far, newest first.
                    let mut rest: Vec<(u64, [u8; 16], bool)> =
                        pending.into_iter().filter(|e| e.2).collect();
                    rest.sort_unstable_by(|a, b| b.cmp(a));
                    for (_, tid, _) in rest {
                        if found.len() >= q.limit {
                            break;
                        }
                        if let Some(summary) = ready.remove(&tid) {
                            found.push(summary);
                        }
                    }
                    return Ok(found);
                }
            }
            let Some((_, i, v)) = heads.pop() else {
                return Ok(found);
            };
            if keys::Posting::list_min_start(&v) <= tmax {
                let (part_start, part) = &parts[i];
                match self.read_chunk(Signal::Traces, *part_start, part, &v) {
                    Ok(list) => {
                        for p in keys::Posting::decode_list(&list) {
                            if p.may_match(tmin, tmax, dmin, dmax) && !checked.contains(&p.trace_id)
                            {
                                pending.push((p.max_start.min(tmax), p.trace_id, false));
                            }
                        }
                    }
                    Err(e) => events::StoreChunkUnreadable { error: &e }.emit(),
                }
            }
            if let Some((k, v)) = streams[i].next().transpose()? {
                heads.push((keys::parse_span_index_key(&k).unwrap_or(0), i, v));
            }
        }
    }

    /// Reads and decodes a chunk; an unreadable one (torn by a crash before it was
    /// acknowledged, or damaged on disk) is reported and skipped so one bad record does not
    /// fail every query that touches it.
    fn decode_chunk<M: Message + Default>(
        &self,
        signal: Signal,
        start: u64,
        part: &super::Partition,
        sled_value: &[u8],
    ) -> Option<M> {
        let result = self
            .read_chunk(signal, start, part, sled_value)
            .and_then(|body| M::decode(body.as_slice()).map_err(|e| corrupt("chunk", e)));
        match result {
            Ok(m) => Some(m),
            Err(e) => {
                events::StoreChunkUnreadable { error: &e }.emit();
                None
            }
        }
    }

    /// May a search for `key = value` from data time `from` use the attribute index?
    fn is_indexed(&self, service: &str, key: &str, value: &str, from: u64) -> bool {
        let inner = self.inner();
        if from < inner.attribute_index_since
            || value.len() > inner.attribute_index.max_value_length
        {
            return false;
        }
        let cat = self
            .inner()
            .catalog
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cat.is_indexed(service, key, value)
    }

    /// Services with data newer than the retention horizon, sorted.
    pub fn services(&self) -> Vec<String> {
        let horizon = self.retention_horizon();
        let cat = self
            .inner()
            .catalog
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out: Vec<String> = cat
            .services
            .iter()
            .filter(|(_, t)| **t >= horizon)
            .map(|(s, _)| s.clone())
            .collect();
        out.sort();
        out
    }

    /// (operation, span kind) of a service with data newer than the retention horizon, sorted.
    pub fn operations(&self, service: &str) -> Vec<(String, i32)> {
        let horizon = self.retention_horizon();
        let cat = self
            .inner()
            .catalog
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out: Vec<(String, i32)> = cat
            .operations
            .get(service)
            .into_iter()
            .flatten()
            .flat_map(|(op, kinds)| {
                kinds
                    .iter()
                    .filter(|(_, t)| *t >= horizon)
                    .map(move |(kind, _)| (op.clone(), *kind))
            })
            .collect();
        out.sort();
        out
    }

    /// Log records matching every condition, newest first.
    pub fn search_logs(&self, q: &LogQuery) -> Result<Vec<LogHit>, StoreError> {
        let tmin = q.start_min.unwrap_or(0);
        let tmax = q.start_max.unwrap_or(u64::MAX);
        let prefix = if let Some(tid) = &q.trace_id {
            let mut p = vec![keys::TRACE];
            p.extend_from_slice(tid);
            p
        } else if let Some(svc) = &q.service {
            keys::prefix(keys::SERVICE, &[svc.as_bytes()])
        } else {
            vec![keys::CHUNK]
        };
        // Index keys carry the chunk's newest time: entries older than tmin cannot match,
        // entries newer than tmax may still hold older records, so no upper bound on the scan.
        let mut lo = prefix.clone();
        lo.extend_from_slice(&tmin.to_be_bytes());
        let mut hi = prefix.clone();
        hi.extend_from_slice(&[0xff; 16]);

        // Newest `limit` hits so far, keyed by (time, insertion order) for a stable order.
        let mut best: BTreeMap<(u64, u64), LogHit> = BTreeMap::new();
        let mut order = 0u64;
        for (start, part) in self.partitions_newest_first(Signal::Logs, tmin, tmax) {
            for kv in part.table.range_rev(&lo, &hi) {
                let (k, v) = kv?;
                let Some(chunk_key) = keys::log_chunk_key_of_index(&k) else {
                    continue;
                };
                let chunk_time = keys::time_of_chunk_key(&chunk_key).unwrap_or(0);
                // Chunks come newest (by their newest record) first: once `limit` hits are all
                // newer than this chunk's newest record, nothing further can enter.
                if best.len() >= q.limit && best.keys().next().is_some_and(|(t, _)| *t > chunk_time)
                {
                    return Ok(into_newest_first(best));
                }
                let value = if prefix[0] == keys::CHUNK {
                    v
                } else {
                    match part.table.get(&chunk_key)? {
                        Some(v) => v,
                        None => continue,
                    }
                };
                let header = keys::LogChunkHeader::read(&value)
                    .ok_or_else(|| corrupt("log chunk", "short header"))?;
                if (header.max_severity as i32) < q.min_severity
                    || header.max_time < tmin
                    || header.min_time > tmax
                {
                    continue;
                }
                if let Some(rl) =
                    self.decode_chunk::<ResourceLogs>(Signal::Logs, start, &part, &value)
                {
                    collect_log_hits(rl, q, tmin, tmax, &mut best, &mut order);
                }
            }
        }
        Ok(into_newest_first(best))
    }
}

/// Keeps the spans of one trace (and the resources and scopes that hold them).
fn retain_trace(data: &mut TracesData, trace_id: &[u8; 16]) {
    for rs in &mut data.resource_spans {
        for ss in &mut rs.scope_spans {
            ss.spans.retain(|s| s.trace_id.as_slice() == trace_id);
        }
        rs.scope_spans.retain(|ss| !ss.spans.is_empty());
    }
    data.resource_spans.retain(|rs| !rs.scope_spans.is_empty());
}

fn into_newest_first(best: BTreeMap<(u64, u64), LogHit>) -> Vec<LogHit> {
    best.into_values().rev().collect()
}

fn collect_log_hits(
    rl: ResourceLogs,
    q: &LogQuery,
    tmin: u64,
    tmax: u64,
    best: &mut BTreeMap<(u64, u64), LogHit>,
    order: &mut u64,
) {
    if let Some(svc) = &q.service
        && otlp::service_name(rl.resource.as_ref()) != svc
    {
        return;
    }
    let now = super::now_ns();
    for sl in rl.scope_logs {
        for rec in sl.log_records {
            let t = super::write::record_time(rec.time_unix_nano, rec.observed_time_unix_nano, now);
            if t < tmin || t > tmax {
                continue;
            }
            if otlp::effective_severity(rec.severity_number, &rec.severity_text) < q.min_severity {
                continue;
            }
            if let Some(tid) = &q.trace_id
                && rec.trace_id.as_slice() != tid
            {
                continue;
            }
            if let Some(text) = &q.contains {
                let hit = match rec.body.as_ref().and_then(|b| b.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) => s.contains(text.as_str()),
                    _ => otlp::any_value_text(rec.body.as_ref()).contains(text.as_str()),
                };
                if !hit {
                    continue;
                }
            }
            if best.len() >= q.limit {
                match best.keys().next() {
                    Some(&(oldest, _)) if oldest < t => {
                        best.pop_first();
                    }
                    _ => continue,
                }
            }
            // Later insertions of the same time sort after earlier ones; reversed at the end.
            *order += 1;
            best.insert(
                (t, u64::MAX - *order),
                LogHit {
                    resource: rl.resource.clone(),
                    scope: sl.scope.clone(),
                    record: rec,
                    time: t,
                },
            );
        }
    }
}

/// The start of the trace's newest span that satisfies every condition of the query.
fn newest_match(
    trace: &TracesData,
    q: &TraceQuery,
    tmin: u64,
    tmax: u64,
    dmin: u64,
    dmax: u64,
) -> Option<u64> {
    otlp::spans(&trace.resource_spans)
        .filter(|(svc, span)| {
            let dur = span
                .end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano);
            *svc == q.service
                && q.operation.as_ref().is_none_or(|op| *op == span.name)
                && (tmin..=tmax).contains(&span.start_time_unix_nano)
                && (dmin..=dmax).contains(&dur)
                && q.attributes
                    .iter()
                    .all(|(k, v)| otlp::string_attr(&span.attributes, k) == Some(v.as_str()))
        })
        .map(|(_, span)| span.start_time_unix_nano)
        .max()
}

/// Root service and operation (the span without a parent, earliest if several; else the
/// earliest span), start, duration, span and error counts.
pub fn summarize(trace_id: [u8; 16], trace: &TracesData) -> TraceSummary {
    let mut start = u64::MAX;
    let mut end = 0u64;
    let mut spans = 0u32;
    let mut errors = 0u32;
    let mut root: Option<(bool, u64, &str, &str)> = None;
    let mut ids: HashMap<&[u8], ()> = HashMap::new();
    for (_, span) in otlp::spans(&trace.resource_spans) {
        ids.insert(span.span_id.as_slice(), ());
    }
    for (svc, span) in otlp::spans(&trace.resource_spans) {
        spans += 1;
        start = start.min(span.start_time_unix_nano);
        end = end.max(span.end_time_unix_nano);
        if span
            .status
            .as_ref()
            .is_some_and(|s| s.code == StatusCode::Error as i32)
        {
            errors += 1;
        }
        // A span is a root if it has no parent, or its parent is not in the trace.
        let is_root =
            span.parent_span_id.is_empty() || !ids.contains_key(span.parent_span_id.as_slice());
        let candidate = (is_root, span.start_time_unix_nano, svc, span.name.as_str());
        root = match root {
            None => Some(candidate),
            Some(r) => {
                let better = (candidate.0 && !r.0) || (candidate.0 == r.0 && candidate.1 < r.1);
                Some(if better { candidate } else { r })
            }
        };
    }
    let (_, _, svc, op) = root.unwrap_or((false, 0, "", ""));
    TraceSummary {
        trace_id,
        root_service: svc.to_string(),
        root_operation: op.to_string(),
        start: if spans == 0 { 0 } else { start },
        duration: end.saturating_sub(if spans == 0 { end } else { start }),
        span_count: spans,
        error_count: errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;
    /// One unit of start time in the generated rows: 100 units span five one-second
    /// partitions, so traces cross partition boundaries.
    const STEP: u64 = 50 * MS;
    const SERVICES: [&str; 3] = ["a", "b", "c"];
    const OPS: [&str; 3] = ["x", "y", "z"];

    /// (trace, service, op, start ms, duration ms, request)
    type SpanRow = (u8, usize, usize, u64, u64, usize);

    fn request(rows: &[SpanRow], base: u64) -> Vec<ResourceSpans> {
        SERVICES
            .iter()
            .enumerate()
            .map(|(si, svc)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![crate::otlp::string_kv("service.name", svc)],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: rows
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.1 == si)
                        .map(|(i, r)| Span {
                            trace_id: vec![r.0 + 1; 16],
                            span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                            name: OPS[r.2].into(),
                            start_time_unix_nano: base + r.3 * STEP,
                            end_time_unix_nano: base + r.3 * STEP + r.4 * MS,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                schema_url: String::new(),
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// FindTraces returns exactly what a naive scan over every span would — the same
        /// traces in the same order, up to `limit` — whatever the split of traces into
        /// requests (chunks and posting lists) and the filters.
        #[test]
        fn find_traces_agrees_with_naive_scan(
            rows in proptest::collection::vec((0u8..10, 0usize..3, 0usize..3, 0u64..100, 1u64..50, 0usize..3), 1..40),
            svc in 0usize..3,
            op in proptest::option::of(0usize..3),
            tmin in proptest::option::of(0u64..100),
            tmax in proptest::option::of(0u64..100),
            dmin in proptest::option::of(1u64..50),
            dmax in proptest::option::of(1u64..50),
            limit in 1usize..15,
        ) {
            let mut cfg = config::Storage {
                partition: std::time::Duration::from_secs(1),
                ..config::Storage::default()
            };
            let (_dir, store) = crate::store::temp_store(&mut cfg);
            let base = crate::store::now_ns() - 3600 * 1_000_000_000;
            for req in 0..3 {
                let part: Vec<SpanRow> = rows.iter().copied().filter(|r| r.5 == req).collect();
                let w = store.prepare_spans(request(&part, base)).unwrap();
                store.apply(w).unwrap();
            }
            let q = TraceQuery {
                service: SERVICES[svc].into(),
                operation: op.map(|o| OPS[o].to_string()),
                start_min: tmin.map(|t| base + t * STEP),
                start_max: tmax.map(|t| base + t * STEP),
                duration_min: dmin.map(|d| d * MS),
                duration_max: dmax.map(|d| d * MS),
                limit,
                search_depth: 10_000,
                ..Default::default()
            };
            // The oracle: each trace's newest matching span start, newest first, ties by the
            // larger trace id, then the first `limit`.
            let mut newest: HashMap<[u8; 16], u64> = HashMap::new();
            for r in rows.iter().filter(|r| {
                r.1 == svc
                    && op.is_none_or(|o| o == r.2)
                    && tmin.is_none_or(|t| r.3 >= t)
                    && tmax.is_none_or(|t| r.3 <= t)
                    && dmin.is_none_or(|d| r.4 >= d)
                    && dmax.is_none_or(|d| r.4 <= d)
            }) {
                let e = newest.entry([r.0 + 1; 16]).or_insert(0);
                *e = (*e).max(r.3);
            }
            let mut expected: Vec<(u64, [u8; 16])> = newest.into_iter().map(|(t, k)| (k, t)).collect();
            expected.sort_unstable_by(|a, b| b.cmp(a));
            let expected: Vec<[u8; 16]> = expected.into_iter().take(limit).map(|(_, t)| t).collect();
            let got: Vec<[u8; 16]> = store.find_traces(&q).unwrap().iter().map(|t| t.trace_id).collect();
            prop_assert_eq!(got, expected);
        }
    }

    /// Found by `find_traces_agrees_with_naive_scan`: a posting used to keep only the
    /// earliest start of its spans, so a trace whose early span fell before `start_min` was
    /// dropped although a later span of the same entry matched. Postings now carry the start
    /// range.
    #[test]
    fn regression_later_span_of_an_entry_matches_the_window() {
        let mut cfg = config::Storage::default();
        let (_dir, store) = crate::store::temp_store(&mut cfg);
        let base = crate::store::now_ns() - 3600 * 1_000_000_000;
        let rows = [(0, 1, 0, 0, 1, 0), (0, 1, 0, 28, 1, 0)];
        store
            .apply(store.prepare_spans(request(&rows, base)).unwrap())
            .unwrap();
        let q = TraceQuery {
            service: "b".into(),
            start_min: Some(base + STEP),
            limit: 1,
            search_depth: 100,
            ..Default::default()
        };
        assert_eq!(store.find_traces(&q).unwrap().len(), 1);
    }

    fn colored(tid: u8, color: &str, start: u64) -> Vec<ResourceSpans> {
        vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![crate::otlp::string_kv("service.name", "shop")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![tid; 16],
                    span_id: vec![1; 8],
                    name: "op".into(),
                    start_time_unix_nano: start,
                    end_time_unix_nano: start + 1,
                    attributes: vec![crate::otlp::string_kv("color", color)],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            schema_url: String::new(),
        }]
    }

    /// Raising the attribute index bounds on an existing store: a value skipped before is
    /// indexed from now on, and a search over the earlier time still finds the old traces
    /// (by scanning) as well as the new ones.
    #[test]
    fn changed_attribute_bounds_do_not_hide_older_data() {
        let mut cfg = config::Storage::default();
        cfg.attribute_index.max_values_per_key = 1;
        let (_dir, store) = crate::store::temp_store(&mut cfg);
        let t0 = crate::store::now_ns() - 60 * 1_000_000_000;
        for (tid, color) in [(1, "red"), (2, "blue")] {
            store
                .apply(
                    store
                        .prepare_spans(colored(tid, color, t0 + tid as u64))
                        .unwrap(),
                )
                .unwrap();
        }
        drop(store);
        cfg.attribute_index.max_values_per_key = 10;
        let store = Store::open(&cfg).unwrap();
        store
            .apply(store.prepare_spans(colored(3, "blue", t0 + 3)).unwrap())
            .unwrap();
        let q = TraceQuery {
            service: "shop".into(),
            attributes: vec![("color".into(), "blue".into())],
            limit: 10,
            search_depth: 100,
            ..Default::default()
        };
        let ids: Vec<u8> = store
            .find_traces(&q)
            .unwrap()
            .iter()
            .map(|t| t.trace_id[0])
            .collect();
        assert_eq!(ids, [3, 2]);
    }

    #[test]
    fn summary_of_a_trace_without_a_root_uses_the_earliest_span() {
        let spans = vec![
            Span {
                span_id: vec![1; 8],
                parent_span_id: vec![9; 8],
                name: "late".into(),
                start_time_unix_nano: 20,
                end_time_unix_nano: 30,
                ..Default::default()
            },
            Span {
                span_id: vec![2; 8],
                parent_span_id: vec![8; 8],
                name: "early".into(),
                start_time_unix_nano: 10,
                end_time_unix_nano: 15,
                ..Default::default()
            },
        ];
        let t = TracesData {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let s = summarize([1; 16], &t);
        assert_eq!(
            (s.root_operation.as_str(), s.start, s.duration, s.span_count),
            ("early", 10, 20, 2)
        );
        assert_eq!(s.root_service, crate::otlp::UNKNOWN_SERVICE);
    }
}

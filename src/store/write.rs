//! Turning one validated OTLP request into one [`Write`]: the chunks, index entries and catalog
//! updates it adds, grouped per partition (applied by `table` as one value-log append each).
//!
//! Write amplification decides throughput, so a request becomes:
//! - spans: one chunk per (trace, partition) — the trace's spans from this request, resource
//!   and scope kept — plus one index entry per distinct (service), (service, operation) and
//!   indexed (service, attribute, value) in that chunk, not per span;
//! - logs: one chunk per (resource, partition), plus one service entry and one entry per
//!   distinct trace id;
//! - metrics: one chunk per (resource, partition).
//!
//! Spans are moved out of the request, not cloned; only a chunk's resource and scope are copied.
//! Preparing does no I/O but takes the catalog lock once to learn what is new.

use std::collections::HashMap;

use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, metric};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, TracesData};
use prost::Message;

use super::keys;
use super::{MAX_OPERATIONS_PER_SERVICE, MAX_SERVICES, Signal, Store, StoreError};
use crate::otlp;

/// A prepared write: per partition, the bodies for the value log and the index entries,
/// plus catalog updates. Built by the `prepare_*` methods of [`Store`], applied by
/// [`Store::apply`].
#[derive(Default)]
pub struct Write {
    pub(crate) parts: Vec<PartWrite>,
    pub(crate) catalog: Option<sled::Batch>,
    /// Bytes of keys and values written (index entries and bodies).
    pub bytes: u64,
    /// Items (spans, log records, metric data points) written.
    pub items: u64,
}

/// What one request writes into one partition.
pub(crate) struct PartWrite {
    pub signal: Signal,
    pub start: u64,
    /// Index entries, written as they are.
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// Chunks: their bodies go to the value log, and `key → meta ++ pointer` to the index.
    pub chunks: Vec<Chunk>,
    /// Items (spans, records, points) in this part's chunks.
    pub items: u64,
}

pub(crate) use super::table::Chunk;

impl Write {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty() && self.catalog.is_none()
    }

    fn part(&mut self, signal: Signal, start: u64) -> &mut PartWrite {
        let i = match self
            .parts
            .iter()
            .position(|p| p.signal == signal && p.start == start)
        {
            Some(i) => i,
            None => {
                self.parts.push(PartWrite {
                    signal,
                    start,
                    entries: Vec::new(),
                    chunks: Vec::new(),
                    items: 0,
                });
                self.parts.len() - 1
            }
        };
        &mut self.parts[i]
    }

    fn insert(&mut self, signal: Signal, start: u64, key: &[u8], value: &[u8]) {
        self.bytes += (key.len() + value.len()) as u64;
        self.part(signal, start)
            .entries
            .push((key.to_vec(), value.to_vec()));
    }

    /// Adds a chunk holding `items` items (0 for an index list).
    fn chunk(
        &mut self,
        signal: Signal,
        start: u64,
        key: Vec<u8>,
        meta: Vec<u8>,
        body: Vec<u8>,
        items: u64,
    ) {
        debug_assert!(meta.len() <= super::table::MAX_META);
        self.bytes += (key.len() + meta.len() + body.len()) as u64;
        let part = self.part(signal, start);
        part.items += items;
        part.chunks.push(Chunk {
            keys: vec![(key, meta)],
            body,
        });
    }

    fn catalog_insert(&mut self, key: Vec<u8>, value: &[u8]) {
        self.bytes += (key.len() + value.len()) as u64;
        self.catalog
            .get_or_insert_with(sled::Batch::default)
            .insert(key, value);
    }
}

/// The spans of one trace behind one index entry: their start and duration ranges.
#[derive(Debug, Clone, Copy)]
struct Agg {
    min_start: u64,
    max_start: u64,
    min_duration: u64,
    max_duration: u64,
}

const EMPTY_AGG: Agg = Agg {
    min_start: u64::MAX,
    max_start: 0,
    min_duration: u64::MAX,
    max_duration: 0,
};

impl Agg {
    fn add(&mut self, start: u64, dur: u64) {
        self.min_start = self.min_start.min(start);
        self.max_start = self.max_start.max(start);
        self.min_duration = self.min_duration.min(dur);
        self.max_duration = self.max_duration.max(dur);
    }

    fn merge(&mut self, o: &Agg) {
        self.min_start = self.min_start.min(o.min_start);
        self.max_start = self.max_start.max(o.max_start);
        self.min_duration = self.min_duration.min(o.min_duration);
        self.max_duration = self.max_duration.max(o.max_duration);
    }
}

/// A fast hasher for the per-request maps (their keys come from one request, so HashDoS
/// resistance buys nothing here).
use crate::otlp::FastMap;

impl Store {
    /// Prepares the spans of one request (already validated: ids have their lengths),
    /// encoding them once as the stored body.
    pub fn prepare_spans(&self, resource_spans: Vec<ResourceSpans>) -> Result<Write, StoreError> {
        self.prepare_spans_received(resource_spans, None)
    }

    /// Prepares the spans of one request. `received` is the request's body as it came, when
    /// nothing was removed from it: it is stored as it is, so the spans are not encoded again
    /// (an `ExportTraceServiceRequest` is a `TracesData` on the wire). Otherwise what is left
    /// is encoded once.
    ///
    /// A request is stored as one body per partition its traces start in (one, but for
    /// requests across a partition boundary), and every trace gets a chunk key pointing at
    /// it; reads pick the trace's spans out of the body.
    pub fn prepare_spans_received(
        &self,
        resource_spans: Vec<ResourceSpans>,
        received: Option<&[u8]>,
    ) -> Result<Write, StoreError> {
        let mut write = Write::default();
        let trace_start = self.index_spans(&resource_spans, &mut write)?;
        if trace_start.is_empty() {
            return Ok(write);
        }
        let count = otlp::spans(&resource_spans).count() as u64;
        let body = match received {
            Some(b) => b.to_vec(),
            None => TracesData { resource_spans }.encode_to_vec(),
        };
        let mut parts: Vec<(u64, Vec<super::run::Entry>)> = Vec::new();
        for (tid, start) in &trace_start {
            let part = self.partition_start(*start);
            let seq = self.next_seq()?;
            let key = keys::span_chunk_key(tid, seq).to_vec();
            match parts.iter_mut().find(|(p, _)| *p == part) {
                Some((_, keys)) => keys.push((key, Vec::new())),
                None => parts.push((part, vec![(key, Vec::new())])),
            }
        }
        write.items += count;
        let mut body = Some(body);
        let n_parts = parts.len();
        for (i, (part, keys)) in parts.into_iter().enumerate() {
            // The spans count once, in the first partition written.
            let items = if i == 0 { count } else { 0 };
            // The last partition takes the body; earlier ones (a request across a boundary)
            // get copies.
            let body = if i + 1 == n_parts {
                body.take().unwrap_or_default()
            } else {
                body.clone().unwrap_or_default()
            };
            write.bytes += (body.len() + keys.iter().map(|(k, _)| k.len()).sum::<usize>()) as u64;
            let p = write.part(Signal::Traces, part);
            p.items += items;
            p.chunks.push(Chunk { keys, body });
        }
        Ok(write)
    }

    /// The index of [`Store::prepare_spans`]: catalog updates and posting lists. Returns each
    /// trace's earliest start in the request.
    fn index_spans<'r>(
        &self,
        resource_spans: &'r [ResourceSpans],
        write: &mut Write,
    ) -> Result<FastMap<[u8; 16], u64>, StoreError> {
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        let max_value_len = self.inner().attribute_index.max_value_length;
        let services: Vec<&str> = resource_spans
            .iter()
            .map(|rs| otlp::service_name(rs.resource.as_ref()))
            .collect();
        // Sized from the span count up front: growing these maps showed in `perf`.
        let n_spans: usize = resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum();
        // Per trace: earliest start (it decides the chunk's partition).
        let mut trace_start: FastMap<[u8; 16], u64> = sized(n_spans / 4 + 1);
        // (trace, resource, span name, kind) and (trace, resource, key, value) aggregates.
        let mut ops: FastMap<([u8; 16], usize, &str, i32), Agg> = sized(n_spans);
        let mut attrs: FastMap<([u8; 16], usize, &str, &str), Agg> = sized(n_spans * 4);
        for (ri, rs) in resource_spans.iter().enumerate() {
            for span in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                let Ok(tid) = <[u8; 16]>::try_from(span.trace_id.as_slice()) else {
                    continue;
                };
                let start = span.start_time_unix_nano;
                let dur = span.end_time_unix_nano.saturating_sub(start);
                let t = trace_start.entry(tid).or_insert(u64::MAX);
                *t = (*t).min(start);
                ops.entry((tid, ri, span.name.as_str(), span.kind))
                    .or_insert(EMPTY_AGG)
                    .add(start, dur);
                for kv in &span.attributes {
                    if let Some(Value::StringValue(v)) =
                        kv.value.as_ref().and_then(|v| v.value.as_ref())
                        && v.len() <= max_value_len
                    {
                        attrs
                            .entry((tid, ri, kv.key.as_str(), v.as_str()))
                            .or_insert(EMPTY_AGG)
                            .add(start, dur);
                    }
                }
            }
        }

        // What the catalog must learn, and which attribute values may be indexed.
        let mut seen_ops: FastMap<(usize, &str, i32), u64> = FastMap::default();
        for (&(_, ri, name, kind), agg) in &ops {
            let t = seen_ops.entry((ri, name, kind)).or_insert(0);
            *t = (*t).max(agg.max_start);
        }
        let mut seen_attrs: crate::otlp::FastSet<(usize, &str, &str)> =
            crate::otlp::FastSet::with_capacity_and_hasher(attrs.len(), Default::default());
        seen_attrs.extend(attrs.keys().map(|&(_, ri, k, v)| (ri, k, v)));
        let indexable = self.update_catalog(&services, &seen_ops, &seen_attrs, write);

        // Posting lists per (partition, index key): one index entry per key per request. Keyed
        // by the borrowed names; a key's bytes are built once per list, not once per trace.
        let mut postings: FastMap<(u64, IndexKey<'r>), Vec<keys::Posting>> =
            sized(seen_ops.len() + seen_attrs.len() + services.len());
        let mut post = |tid: [u8; 16], key: IndexKey<'r>, agg: &Agg| {
            let part =
                self.partition_start(trace_start.get(&tid).copied().unwrap_or(agg.min_start));
            postings
                .entry((part, key))
                .or_default()
                .push(keys::Posting {
                    trace_id: tid,
                    min_start: agg.min_start,
                    max_start: agg.max_start,
                    min_duration: agg.min_duration,
                    max_duration: agg.max_duration,
                });
        };
        let mut per_service: FastMap<([u8; 16], &str), Agg> = sized(trace_start.len());
        for (&(tid, ri, name, _kind), agg) in &ops {
            let svc = services[ri];
            per_service
                .entry((tid, svc))
                .or_insert(EMPTY_AGG)
                .merge(agg);
            post(tid, IndexKey::Operation(svc, name), agg);
        }
        for (&(tid, svc), agg) in &per_service {
            post(tid, IndexKey::Service(svc), agg);
        }
        for (&(tid, ri, k, v), agg) in &attrs {
            if indexable.contains(&(ri, k, v)) {
                post(tid, IndexKey::Attribute(services[ri], k, v), agg);
            }
        }
        if !postings.is_empty() {
            let seq = self.next_seq()?;
            for ((part, index_key), mut list) in postings {
                // Newest first inside a list, as the merge in `read` expects.
                list.sort_unstable_by_key(|p| std::cmp::Reverse(p.max_start));
                let max_start = list.first().map(|p| p.max_start).unwrap_or(0);
                let prefix = match index_key {
                    IndexKey::Service(svc) => keys::prefix(keys::SERVICE, &[svc.as_bytes()]),
                    IndexKey::Operation(svc, name) => {
                        keys::prefix(keys::OPERATION, &[svc.as_bytes(), name.as_bytes()])
                    }
                    IndexKey::Attribute(svc, k, v) => keys::prefix(
                        keys::ATTRIBUTE,
                        &[svc.as_bytes(), k.as_bytes(), v.as_bytes()],
                    ),
                };
                let key = keys::span_index_key(&prefix, max_start, seq);
                // The list goes to the value log like a chunk; the index keeps its earliest start
                // (so a scan skips lists that are too new without reading them) and a pointer.
                let body = keys::Posting::encode_list(&list);
                let meta = body[..8].to_vec();
                write.chunk(Signal::Traces, part, key, meta, body, 0);
            }
        }
        Ok(trace_start)
    }

    /// Records new services, operations and attribute values in the in-memory catalog and in
    /// the write's catalog batch. Returns the attribute values that may be indexed.
    fn update_catalog<'a>(
        &self,
        services: &[&str],
        ops: &FastMap<(usize, &str, i32), u64>,
        attrs: &crate::otlp::FastSet<(usize, &'a str, &'a str)>,
        write: &mut Write,
    ) -> std::collections::HashSet<(usize, &'a str, &'a str), foldhash::fast::RandomState> {
        let limits = &self.inner().attribute_index;
        let mut indexable = std::collections::HashSet::default();
        let mut cat = self
            .inner()
            .catalog
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (&(ri, name, kind), &t) in ops {
            let svc = services[ri];
            let part = self.partition_start(t);
            let known = cat.services.get(svc).copied();
            if known.is_none() && cat.services.len() >= MAX_SERVICES {
                continue;
            }
            if known.is_none_or(|old| self.partition_start(old) < part) {
                cat.services.insert(svc.to_string(), t);
                write.catalog_insert(
                    keys::prefix(keys::CAT_SERVICE, &[svc.as_bytes()]),
                    &t.to_be_bytes(),
                );
            }
            let known = cat.operation(svc, name, kind);
            let per_service = cat.operations_per_service.get(svc).copied().unwrap_or(0);
            if known.is_none() && per_service >= MAX_OPERATIONS_PER_SERVICE {
                continue;
            }
            if known.is_none_or(|old| self.partition_start(old) < part) {
                let mut key = keys::prefix(keys::CAT_OPERATION, &[svc.as_bytes(), name.as_bytes()]);
                key.push(kind.clamp(0, 255) as u8);
                write.catalog_insert(key, &t.to_be_bytes());
                cat.set_operation(svc, name, kind, t);
            }
        }
        for &(ri, key, value) in attrs {
            let svc: &str = services[ri];
            let Some(added) =
                cat.index_value(svc, key, value, limits.max_keys, limits.max_values_per_key)
            else {
                continue;
            };
            if added {
                write.catalog_insert(
                    keys::prefix(
                        keys::CAT_VALUE,
                        &[svc.as_bytes(), key.as_bytes(), value.as_bytes()],
                    ),
                    &[],
                );
            }
            indexable.insert((ri, key, value));
        }
        indexable
    }

    /// Prepares the log records of one request.
    pub fn prepare_logs(&self, resource_logs: Vec<ResourceLogs>) -> Result<Write, StoreError> {
        let now = super::now_ns();
        let mut write = Write::default();
        for mut rl in resource_logs {
            let service = otlp::service_name(rl.resource.as_ref()).to_string();
            // partition → (chunk, header, trace ids)
            let mut parts: HashMap<u64, (ResourceLogs, keys::LogChunkHeader, Vec<[u8; 16]>)> =
                HashMap::new();
            for mut sl in std::mem::take(&mut rl.scope_logs) {
                for mut rec in std::mem::take(&mut sl.log_records) {
                    // A record without any time gets the time it was received as its
                    // observed time (what OTLP asks of a receiver), so reads see the time
                    // it was filed under.
                    if rec.time_unix_nano == 0 && rec.observed_time_unix_nano == 0 {
                        rec.observed_time_unix_nano = now;
                    }
                    let t = record_time(rec.time_unix_nano, rec.observed_time_unix_nano, now);
                    let sev = otlp::effective_severity(rec.severity_number, &rec.severity_text);
                    let part = self.partition_start(t);
                    let (chunk, header, tids) = parts.entry(part).or_insert_with(|| {
                        (
                            ResourceLogs {
                                resource: rl.resource.clone(),
                                scope_logs: Vec::new(),
                                schema_url: rl.schema_url.clone(),
                            },
                            keys::LogChunkHeader {
                                min_time: u64::MAX,
                                max_time: 0,
                                max_severity: 0,
                            },
                            Vec::new(),
                        )
                    });
                    header.min_time = header.min_time.min(t);
                    header.max_time = header.max_time.max(t);
                    header.max_severity = header.max_severity.max(sev.clamp(0, 255) as u8);
                    if let Ok(tid) = <[u8; 16]>::try_from(rec.trace_id.as_slice())
                        && !tids.contains(&tid)
                    {
                        tids.push(tid);
                    }
                    // Records of one scope stay together; a new scope starts a new ScopeLogs.
                    let same_scope = chunk
                        .scope_logs
                        .last()
                        .is_some_and(|s| s.scope == sl.scope && s.schema_url == sl.schema_url);
                    if !same_scope {
                        chunk.scope_logs.push(ScopeLogs {
                            scope: sl.scope.clone(),
                            log_records: Vec::new(),
                            schema_url: sl.schema_url.clone(),
                        });
                    }
                    if let Some(s) = chunk.scope_logs.last_mut() {
                        s.log_records.push(rec);
                        write.items += 1;
                    }
                }
            }
            for (part, (chunk, header, tids)) in parts {
                let seq = self.next_seq()?;
                let mut meta = Vec::with_capacity(keys::LogChunkHeader::LEN);
                header.write(&mut meta);
                let records = chunk
                    .scope_logs
                    .iter()
                    .map(|s| s.log_records.len() as u64)
                    .sum();
                write.chunk(
                    Signal::Logs,
                    part,
                    keys::time_chunk_key(header.max_time, seq).to_vec(),
                    meta,
                    chunk.encode_to_vec(),
                    records,
                );
                let p = keys::prefix(keys::SERVICE, &[service.as_bytes()]);
                write.insert(
                    Signal::Logs,
                    part,
                    &keys::log_index_key(&p, header.max_time, seq),
                    &[],
                );
                for tid in tids {
                    let mut p = vec![keys::TRACE];
                    p.extend_from_slice(&tid);
                    write.insert(
                        Signal::Logs,
                        part,
                        &keys::log_index_key(&p, header.max_time, seq),
                        &[],
                    );
                }
            }
        }
        Ok(write)
    }

    /// Prepares the metrics of one request: one chunk per resource, in the partition of its
    /// newest data point. Returns the write and the number of data points.
    pub fn prepare_metrics(
        &self,
        resource_metrics: Vec<ResourceMetrics>,
    ) -> Result<Write, StoreError> {
        let now = super::now_ns();
        let mut write = Write::default();
        for rm in resource_metrics {
            let (points, newest) = count_points(&rm);
            let t = if newest == 0 { now } else { newest };
            let seq = self.next_seq()?;
            write.items += points;
            write.chunk(
                Signal::Metrics,
                self.partition_start(t),
                keys::time_chunk_key(t, seq).to_vec(),
                Vec::new(),
                rm.encode_to_vec(),
                points,
            );
        }
        Ok(write)
    }
}

/// A log record's time: its own, else when it was observed, else now.
pub fn record_time(time: u64, observed: u64, now: u64) -> u64 {
    if time != 0 {
        time
    } else if observed != 0 {
        observed
    } else {
        now
    }
}

/// Data points in a resource's metrics, and the newest point time.
pub fn count_points(rm: &ResourceMetrics) -> (u64, u64) {
    let mut n = 0u64;
    let mut newest = 0u64;
    for sm in &rm.scope_metrics {
        for m in &sm.metrics {
            let times: Vec<u64> = match &m.data {
                Some(metric::Data::Gauge(g)) => {
                    g.data_points.iter().map(|p| p.time_unix_nano).collect()
                }
                Some(metric::Data::Sum(s)) => {
                    s.data_points.iter().map(|p| p.time_unix_nano).collect()
                }
                Some(metric::Data::Histogram(h)) => {
                    h.data_points.iter().map(|p| p.time_unix_nano).collect()
                }
                Some(metric::Data::ExponentialHistogram(h)) => {
                    h.data_points.iter().map(|p| p.time_unix_nano).collect()
                }
                Some(metric::Data::Summary(s)) => {
                    s.data_points.iter().map(|p| p.time_unix_nano).collect()
                }
                None => Vec::new(),
            };
            n += times.len() as u64;
            newest = times.into_iter().fold(newest, u64::max);
        }
    }
    (n, newest)
}
/// A span index a posting list belongs to, by borrowed names (see `keys` for its bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum IndexKey<'a> {
    /// (service)
    Service(&'a str),
    /// (service, span name)
    Operation(&'a str, &'a str),
    /// (service, attribute key, string value)
    Attribute(&'a str, &'a str, &'a str),
}

/// An empty map with room for `n` entries.
fn sized<K, V>(n: usize) -> FastMap<K, V> {
    FastMap::with_capacity_and_hasher(n, Default::default())
}

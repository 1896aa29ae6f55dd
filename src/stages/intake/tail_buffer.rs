//! The tail-sampling stage: a durable buffer that assembles traces, and the loop that
//! decides them with the policies of [`crate::sampling::tail`].
//!
//! **Buffer.** Spans of undecided traces are written to the sled tree `tail/<processor>`
//! under `trace id ‖ sequence` as an encoded export request per trace per received request.
//! The receiver writes them before its commit, so the flush that precedes the OK makes them
//! durable: an acknowledged span is never only in memory. What is pending (first and last
//! arrival, spans, bytes, whether the root has come) is kept in memory and rebuilt from the
//! tree at start-up, when every trace found there is pending again (its wait restarts).
//!
//! **Decisions.** A trace is decided `decision_wait` after its first span, or early once its
//! root span (no parent) has arrived and nothing came for `quiet_period`, or early when the
//! buffer passes `num_traces` or `max_buffer_mib` (oldest first, counted). Its chunks are read
//! back and the policies run in order; the first that keeps decides (its name is counted and,
//! with `record_policy`, set as `sampling.policy` on the spans). A kept trace is written to the
//! store and the export queues; then its chunks leave the buffer, and one flush per round
//! makes it all durable. A crash in between decides the trace again after the restart
//! (at-least-once: possibly stored twice, never lost).
//!
//! **Late spans** of a decided trace follow the decision while the bounded decision cache
//! remembers it; past that they start a new pending trace (evictions are counted).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use prost::Message;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config;
use crate::otlp::Signal;
use crate::sampling::tail::{Policy, TraceId, TraceView, decide};
use crate::stages::export::Exporters;
use crate::store::{Store, StoreError};

/// Counters of one tail sampler since start.
#[derive(Debug, Default)]
pub struct Counters {
    pub traces_seen: AtomicU64,
    pub traces_kept: AtomicU64,
    pub traces_dropped: AtomicU64,
    /// Decided before `decision_wait`: root seen and quiet.
    pub early_quiet: AtomicU64,
    /// Decided before `decision_wait` because the buffer was over a bound.
    pub early_bound: AtomicU64,
    pub late_spans_kept: AtomicU64,
    pub late_spans_dropped: AtomicU64,
    /// Decisions forgotten by the bounded cache.
    pub cache_evictions: AtomicU64,
    /// Spans of a trace whose decision the cache had forgotten: they start a new pending
    /// trace and are decided again.
    pub late_spans_forgotten: AtomicU64,
}

/// A trace waiting for its decision.
#[derive(Debug, Clone, Copy)]
struct Pending {
    first: Instant,
    last: Instant,
    spans: u64,
    bytes: u64,
    root: bool,
}

#[derive(Default)]
struct State {
    pending: HashMap<TraceId, Pending>,
    /// Pending traces in order of first arrival (entries of traces decided meanwhile are
    /// stale: skipped, and dropped once they reach the front).
    by_first: VecDeque<(Instant, TraceId)>,
    /// Traces whose root has arrived, by last arrival: the candidates for a quiet decision.
    quiet: BTreeSet<(Instant, TraceId)>,
    bytes: u64,
    decided: HashMap<TraceId, bool>,
    decided_order: VecDeque<TraceId>,
    /// Traces whose decision the cache forgot (the last `forgotten_bound` of them), to count
    /// their late spans.
    forgotten: HashSet<TraceId>,
    forgotten_order: VecDeque<TraceId>,
}

impl State {
    /// Records `spans` more spans of `tid` (new or pending) arriving at `now`; returns
    /// whether the trace is new.
    fn note(&mut self, tid: TraceId, now: Instant, spans: u64, bytes: u64, root: bool) -> bool {
        let mut new = false;
        let p = self.pending.entry(tid).or_insert_with(|| {
            new = true;
            Pending {
                first: now,
                last: now,
                spans: 0,
                bytes: 0,
                root: false,
            }
        });
        if p.root {
            self.quiet.remove(&(p.last, tid));
        }
        p.last = now;
        p.spans += spans;
        p.bytes += bytes;
        p.root |= root;
        if p.root {
            self.quiet.insert((now, tid));
        }
        if new {
            self.by_first.push_back((now, tid));
        }
        self.bytes += bytes;
        new
    }

    fn forget(&mut self, tid: &TraceId) -> Option<Pending> {
        let p = self.pending.remove(tid)?;
        self.bytes = self.bytes.saturating_sub(p.bytes);
        if p.root {
            self.quiet.remove(&(p.last, *tid));
        }
        Some(p)
    }

    fn is_current(&self, first: Instant, tid: &TraceId) -> bool {
        self.pending.get(tid).is_some_and(|p| p.first == first)
    }
}

/// Why a trace was decided now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    Wait,
    Quiet,
    Bound,
}

/// What routing a request did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Routed {
    /// Spans were taken out of (or changed in) the request.
    pub changed: bool,
    /// Spans were written to the buffer: the request needs a flush before its OK.
    pub buffered: bool,
    /// How many (accepted: they are durable in the buffer once the flush is done).
    pub buffered_spans: u64,
}

/// One `tail_sampling` processor.
pub struct TailSampler {
    pub name: String,
    cfg: config::TailSampling,
    pub policies: Vec<Policy>,
    tree: sled::Tree,
    seq: AtomicU64,
    state: Mutex<State>,
    wake: Notify,
    pub counters: Counters,
}

/// How many forgotten decisions are remembered as forgotten (ids only; 32 bytes each).
fn forgotten_bound(decision_cache: usize) -> usize {
    decision_cache.saturating_mul(4).max(10_000)
}

fn now_second() -> u64 {
    crate::store::now_ns() / 1_000_000_000
}

impl TailSampler {
    /// Opens the buffer (the store's `StateTree::TailBuffer(name)`) and makes every trace in
    /// it pending again.
    pub fn open(
        name: &str,
        cfg: &config::TailSampling,
        tree: sled::Tree,
    ) -> Result<TailSampler, StoreError> {
        let mut state = State::default();
        let now = Instant::now();
        let mut max_seq = 0u64;
        for kv in tree.iter() {
            let (k, v) = kv?;
            let (Ok(tid), Some(seq)) = (
                TraceId::try_from(&k[..k.len().min(16)]),
                k.get(16..24)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes),
            ) else {
                continue;
            };
            max_seq = max_seq.max(seq);
            let (spans, root) = match ExportTraceServiceRequest::decode(&v[..]) {
                Ok(r) => {
                    let spans: Vec<&Span> = crate::otlp::spans(&r.resource_spans)
                        .map(|(_, s)| s)
                        .collect();
                    (
                        spans.len() as u64,
                        spans.iter().any(|s| s.parent_span_id.is_empty()),
                    )
                }
                Err(_) => (0, false),
            };
            state.note(tid, now, spans, v.len() as u64, root);
        }
        Ok(TailSampler {
            name: name.to_string(),
            policies: cfg.policies.iter().map(Policy::build).collect(),
            cfg: cfg.clone(),
            tree,
            seq: AtomicU64::new(max_seq + 1),
            state: Mutex::new(state),
            wake: Notify::new(),
            counters: Counters::default(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// (pending traces, pending spans, buffered bytes).
    pub fn occupancy(&self) -> (u64, u64, u64) {
        let s = self.state();
        (
            s.pending.len() as u64,
            s.pending.values().map(|p| p.spans).sum(),
            s.bytes,
        )
    }

    /// Takes the spans of undecided traces out of the request into the buffer, drops the
    /// spans of traces decided "drop", and leaves those of traces decided "keep".
    ///
    /// The decision check, the buffer write and the pending update happen under one hold of
    /// the state lock, so a decision published by [`TailSampler::decide_round`] is either seen
    /// here (the spans follow it) or not yet made (the spans join the pending trace, and the
    /// round picks them up when it looks again after publishing).
    pub fn route(&self, resource_spans: &mut Vec<ResourceSpans>) -> Result<Routed, StoreError> {
        if resource_spans.is_empty() {
            return Ok(Routed::default());
        }
        // Count and encode outside the lock (routing many requests serialises on it); the
        // spans of an already-decided trace (late spans, rare) are encoded in vain.
        let groups: Vec<_> = crate::otlp::by_trace(std::mem::take(resource_spans))
            .into_iter()
            .map(|(tid, group)| {
                let spans = crate::otlp::spans(&group).count() as u64;
                let root = crate::otlp::spans(&group).any(|(_, s)| s.parent_span_id.is_empty());
                // The export request's encoding (field 1 per ResourceSpans), by reference.
                let mut body = Vec::new();
                for rs in &group {
                    prost::encoding::message::encode(1, rs, &mut body);
                }
                (tid, spans, root, group, body)
            })
            .collect();
        let mut routed = Routed::default();
        let mut s = self.state();
        let mut batch = sled::Batch::default();
        let mut notes = Vec::new();
        for (tid, spans, root, group, body) in groups {
            match s.decided.get(&tid) {
                Some(true) => {
                    self.counters
                        .late_spans_kept
                        .fetch_add(spans, Ordering::Relaxed);
                    resource_spans.extend(group);
                }
                Some(false) => {
                    self.counters
                        .late_spans_dropped
                        .fetch_add(spans, Ordering::Relaxed);
                    routed.changed = true;
                }
                None => {
                    if !s.pending.contains_key(&tid) && s.forgotten.contains(&tid) {
                        self.counters
                            .late_spans_forgotten
                            .fetch_add(spans, Ordering::Relaxed);
                    }
                    let mut key = [0u8; 24];
                    key[..16].copy_from_slice(&tid);
                    key[16..]
                        .copy_from_slice(&self.seq.fetch_add(1, Ordering::SeqCst).to_be_bytes());
                    notes.push((tid, spans, body.len() as u64, root));
                    batch.insert(&key[..], body);
                }
            }
        }
        if notes.is_empty() {
            return Ok(routed);
        }
        self.tree.apply_batch(batch)?;
        routed.changed = true;
        routed.buffered = true;
        let now = Instant::now();
        for (tid, spans, bytes, root) in notes {
            routed.buffered_spans += spans;
            if s.note(tid, now, spans, bytes, root) {
                self.counters.traces_seen.fetch_add(1, Ordering::Relaxed);
            }
        }
        let over = s.pending.len() > self.cfg.num_traces
            || s.bytes > self.cfg.max_buffer_mib.saturating_mul(1024 * 1024);
        drop(s);
        if over {
            self.wake.notify_one();
        }
        Ok(routed)
    }

    /// Traces to decide now, at most `max`: those past `decision_wait` (oldest first), those
    /// rooted and quiet, then, while the buffer is over a bound, the oldest of the rest.
    fn due(&self, now: Instant, max: usize) -> Vec<(TraceId, Due)> {
        let mut s = self.state();
        while let Some((first, tid)) = s.by_first.front().copied() {
            if s.is_current(first, &tid) {
                break;
            }
            s.by_first.pop_front();
        }
        let mut out = Vec::new();
        let mut chosen: HashSet<TraceId> = HashSet::new();
        for (first, tid) in &s.by_first {
            if out.len() >= max || now.duration_since(*first) < self.cfg.decision_wait {
                break;
            }
            if s.is_current(*first, tid) && chosen.insert(*tid) {
                out.push((*tid, Due::Wait));
            }
        }
        if !self.cfg.quiet_period.is_zero() {
            for (last, tid) in &s.quiet {
                if out.len() >= max || now.duration_since(*last) < self.cfg.quiet_period {
                    break;
                }
                if chosen.insert(*tid) {
                    out.push((*tid, Due::Quiet));
                }
            }
        }
        let limit_bytes = self.cfg.max_buffer_mib.saturating_mul(1024 * 1024);
        let mut traces = s.pending.len().saturating_sub(chosen.len());
        let chosen_bytes: u64 = chosen
            .iter()
            .map(|t| s.pending.get(t).map(|p| p.bytes).unwrap_or(0))
            .sum();
        let mut bytes = s.bytes.saturating_sub(chosen_bytes);
        for (first, tid) in &s.by_first {
            if out.len() >= max || (traces <= self.cfg.num_traces && bytes <= limit_bytes) {
                break;
            }
            if s.is_current(*first, tid) && chosen.insert(*tid) {
                traces = traces.saturating_sub(1);
                bytes = bytes.saturating_sub(s.pending.get(tid).map(|p| p.bytes).unwrap_or(0));
                out.push((*tid, Due::Bound));
            }
        }
        out
    }

    /// Past twice its bounds the buffer refuses new spans (the decider is behind): the
    /// receiver answers UNAVAILABLE with RetryInfo rather than let it grow without limit.
    pub fn is_overloaded(&self) -> bool {
        let s = self.state();
        s.pending.len() > self.cfg.num_traces.saturating_mul(2)
            || s.bytes > self.cfg.max_buffer_mib.saturating_mul(2 * 1024 * 1024)
    }

    /// Reads a trace's chunks: (key, bytes) in key order.
    fn chunks(&self, tid: &TraceId) -> Result<Vec<(sled::IVec, Bytes)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(tid) {
            let (k, v) = kv?;
            out.push((k, Bytes::from(v.to_vec())));
        }
        Ok(out)
    }

    /// Decides one round of due traces. For each: read its chunks, run the policies, publish
    /// the decision (from then on its spans follow it in [`TailSampler::route`]), read again
    /// for chunks that arrived meanwhile, and for a keep write the whole trace to the store
    /// and the export queues. Returns the buffer keys to delete once the round is flushed
    /// (deleting before would let a crash lose a kept trace). Blocking (sled): run it off the
    /// async workers.
    fn decide_round(
        &self,
        store: &Store,
        exporters: &Exporters,
    ) -> Result<(usize, Vec<sled::IVec>), StoreError> {
        let due = self.due(Instant::now(), 4096);
        let second = now_second();
        let mut delete = Vec::new();
        let mut kept: Vec<(TraceId, u64, u64, Vec<sled::IVec>)> = Vec::new();
        let mut kept_spans: Vec<ResourceSpans> = Vec::new();
        let mut kept_bodies: Vec<Bytes> = Vec::new();
        for (tid, why) in &due {
            let first = match self.chunks(tid) {
                Ok(c) => c,
                Err(e) => {
                    // Not decided; it stays pending and is tried next round.
                    tracing::error!(processor = %self.name, error = %e, "cannot read a pending trace");
                    break;
                }
            };
            let bodies: Vec<Bytes> = first.iter().map(|(_, b)| b.clone()).collect();
            let mut body = crate::stages::export::wire::concat(&bodies);
            let mut req = ExportTraceServiceRequest::decode(body.clone()).unwrap_or_default();
            let keep = decide(
                &self.policies,
                &TraceView {
                    trace_id: *tid,
                    data: &req.resource_spans,
                },
                second,
            );
            // Publish: later spans of this trace follow the decision in route().
            let pending_bytes = {
                let mut s = self.state();
                let pending = s.forget(tid).map(|p| p.bytes).unwrap_or(0);
                s.decided.insert(*tid, keep.is_some());
                s.decided_order.push_back(*tid);
                while s.decided_order.len() > self.cfg.decision_cache {
                    if let Some(old) = s.decided_order.pop_front()
                        && s.decided.remove(&old).is_some()
                    {
                        self.counters
                            .cache_evictions
                            .fetch_add(1, Ordering::Relaxed);
                        s.forgotten.insert(old);
                        s.forgotten_order.push_back(old);
                        while s.forgotten_order.len() > forgotten_bound(self.cfg.decision_cache) {
                            if let Some(f) = s.forgotten_order.pop_front() {
                                s.forgotten.remove(&f);
                            }
                        }
                    }
                }
                pending
            };
            // Chunks written between the first read and the publication belong to it too
            // (route() adds their bytes to the pending entry under the same lock, so more
            // pending bytes than were read means there are some).
            let read_bytes: u64 = first.iter().map(|(_, b)| b.len() as u64).sum();
            let mut keys: Vec<sled::IVec> = first.into_iter().map(|(k, _)| k).collect();
            if pending_bytes > read_bytes {
                let seen: HashSet<sled::IVec> = keys.iter().cloned().collect();
                match self.chunks(tid) {
                    Ok(more) => {
                        let late: Vec<(sled::IVec, Bytes)> = more
                            .into_iter()
                            .filter(|(k, _)| !seen.contains(k))
                            .collect();
                        let late_bodies: Vec<Bytes> = late.iter().map(|(_, b)| b.clone()).collect();
                        let late_body = crate::stages::export::wire::concat(&late_bodies);
                        if let Ok(more) = ExportTraceServiceRequest::decode(late_body.clone()) {
                            req.resource_spans.extend(more.resource_spans);
                        }
                        body = crate::stages::export::wire::concat(&[body, late_body]);
                        keys.extend(late.into_iter().map(|(k, _)| k));
                    }
                    Err(e) => {
                        tracing::error!(processor = %self.name, error = %e, "cannot re-read a decided trace")
                    }
                }
            }
            match why {
                Due::Quiet => self.counters.early_quiet.fetch_add(1, Ordering::Relaxed),
                Due::Bound => self.counters.early_bound.fetch_add(1, Ordering::Relaxed),
                Due::Wait => 0,
            };
            match keep {
                Some(i) => {
                    let bytes = body.len() as u64;
                    let (resource_spans, body, spans) = self.kept(req, body, i);
                    kept.push((*tid, spans, bytes, keys));
                    kept_spans.extend(resource_spans);
                    kept_bodies.push(body);
                    self.policies[i].kept.fetch_add(1, Ordering::Relaxed);
                    self.counters.traces_kept.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    self.counters.traces_dropped.fetch_add(1, Ordering::Relaxed);
                    delete.extend(keys);
                }
            }
        }
        // One store write and one queue entry for every trace this round kept.
        if !kept.is_empty() {
            let n: u64 = kept.iter().map(|k| k.1).sum();
            let written = store
                .prepare_spans(kept_spans)
                .and_then(|w| store.apply(w))
                .and_then(|_| {
                    if exporters.wants(Signal::Traces) && n > 0 {
                        exporters.enqueue(
                            Signal::Traces,
                            &crate::stages::export::wire::concat(&kept_bodies),
                            n,
                        )?;
                    }
                    Ok(())
                });
            match written {
                Ok(()) => {
                    for (_, _, _, keys) in kept {
                        delete.extend(keys);
                    }
                }
                Err(e) => {
                    // Undo: the kept traces are pending again and their chunks stay.
                    tracing::error!(processor = %self.name, error = %e, "cannot write kept traces; they stay pending");
                    let mut s = self.state();
                    for (tid, spans, bytes, _) in kept {
                        s.decided.remove(&tid);
                        s.note(tid, Instant::now(), spans, bytes, false);
                    }
                }
            }
        }
        Ok((due.len(), delete))
    }

    /// A kept trace's spans (marked with the policy when `record_policy`), its encoded
    /// request for the export queues (`body`, re-encoded only when marked), and its span count.
    fn kept(
        &self,
        mut req: ExportTraceServiceRequest,
        mut body: Bytes,
        policy: usize,
    ) -> (Vec<ResourceSpans>, Bytes, u64) {
        if self.cfg.record_policy {
            for s in req
                .resource_spans
                .iter_mut()
                .flat_map(|rs| rs.scope_spans.iter_mut())
                .flat_map(|ss| ss.spans.iter_mut())
            {
                s.attributes.push(crate::otlp::string_kv(
                    "sampling.policy",
                    &self.policies[policy].name,
                ));
            }
            body = Bytes::from(req.encode_to_vec());
        }
        let spans = crate::otlp::spans(&req.resource_spans).count() as u64;
        (req.resource_spans, body, spans)
    }

    /// Decides due traces until `stop`: every 100 ms, or at once when the buffer passes a
    /// bound. Each round is flushed (kept traces durable in the store and the queues) before
    /// its buffer keys are deleted.
    pub async fn run(
        self: Arc<Self>,
        store: Store,
        exporters: Arc<Exporters>,
        stop: CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = self.wake.notified() => {}
                _ = stop.cancelled() => return,
            }
            loop {
                let (me, st, ex) = (self.clone(), store.clone(), exporters.clone());
                let r = tokio::task::spawn_blocking(move || me.decide_round(&st, &ex)).await;
                let (decided, delete) = match r {
                    Ok(Ok(x)) => x,
                    Ok(Err(e)) => {
                        tracing::error!(processor = %self.name, error = %e, "tail sampling round failed");
                        (0, Vec::new())
                    }
                    Err(e) => {
                        tracing::error!(processor = %self.name, error = %e, "tail sampling task failed");
                        (0, Vec::new())
                    }
                };
                if decided == 0 && delete.is_empty() {
                    break;
                }
                if let Err(e) = store.flush().await {
                    // Keep the buffer keys: the traces are decided again after a restart.
                    tracing::error!(processor = %self.name, error = %e, "flush after tail decisions failed");
                    break;
                }
                let mut batch = sled::Batch::default();
                for k in delete {
                    batch.remove(k);
                }
                if let Err(e) = self.tree.apply_batch(batch) {
                    tracing::error!(processor = %self.name, error = %e, "cannot delete decided traces from the buffer");
                }
                exporters.notify(Signal::Traces);
                if stop.is_cancelled() || decided == 0 {
                    break;
                }
            }
        }
    }
}

/// The tail sampler's decision loop as a stage: what it keeps goes to `store` and
/// `exporters`.
pub struct TailStage {
    pub sampler: Arc<TailSampler>,
    pub store: Store,
    pub exporters: Arc<Exporters>,
}

impl crate::stages::Stage for TailStage {
    async fn run(self, stop: CancellationToken) {
        self.sampler.run(self.store, self.exporters, stop).await
    }
}

//! Sampling: what of the accepted traffic is stored and forwarded.
//!
//! [`head`] holds the pure decision functions. [`Sampling`] applies a pipeline's samplers to a
//! request in the receiver, after validation and before the store write and the export
//! queues: dropped spans and log records are neither stored nor forwarded (they are not
//! rejected either: the client is told nothing, as with the Collector). Kept spans carry the
//! new `ot=th:` in their tracestate in the proportional modes, so downstream consumers can
//! weight them by the adjusted count.
//!
//! Logs: a record with a trace id gets the decision its trace gets from the same sampler
//! (computed from the trace id, so a logs pipeline naming the traces pipeline's sampler keeps
//! exactly the logs of kept traces); a record without one is sampled by a hash of
//! `logs.from_attribute` (or its body) at `logs.sampling_percentage`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

use crate::config::{self, Config, SamplerMode};
use crate::otlp::Signal;
use crate::sampling::adaptive;
use crate::sampling::head::{self, Consistent, Threshold};
use crate::store::keys::StateTree;

/// One sampler's counters since start.
#[derive(Debug, Default)]
pub struct Counters {
    pub spans_seen: AtomicU64,
    pub spans_kept: AtomicU64,
    pub logs_seen: AtomicU64,
    pub logs_kept: AtomicU64,
    /// Items with a malformed tracestate `ot` entry.
    pub errors: AtomicU64,
}

/// A `probabilistic_sampler` ready to decide.
pub struct HeadSampler {
    pub name: String,
    pub cfg: config::ProbabilisticSampler,
    /// hash_seed: keep iff bucket < bound.
    bound: u32,
    /// Proportional modes: the probability (the percentage as float32, as the Collector).
    ratio: f64,
    /// Records without a trace id.
    log_bound: u32,
    log_threshold: Option<Threshold>,
    pub counters: Counters,
}

impl HeadSampler {
    pub fn new(name: &str, cfg: &config::ProbabilisticSampler) -> HeadSampler {
        let log_pct = cfg
            .logs
            .sampling_percentage
            .unwrap_or(cfg.sampling_percentage);
        HeadSampler {
            name: name.to_string(),
            bound: head::hash_seed_bound(cfg.sampling_percentage),
            ratio: head::ratio(cfg.sampling_percentage),
            log_bound: head::hash_seed_bound(log_pct),
            log_threshold: Threshold::from_probability(
                head::ratio(log_pct),
                cfg.sampling_precision,
            ),
            cfg: cfg.clone(),
            counters: Counters::default(),
        }
    }

    fn consistent(&self) -> Option<Consistent> {
        match self.cfg.mode() {
            SamplerMode::HashSeed => None,
            SamplerMode::Proportional => Some(Consistent::Proportional),
            SamplerMode::Equalizing => Some(Consistent::Equalizing),
        }
    }

    /// The decision for a span: keep (with the new tracestate, if it changes) or drop.
    /// `Err` for a malformed tracestate.
    pub fn decide_span(
        &self,
        trace_id: &[u8],
        tracestate: &str,
    ) -> Result<Option<Option<String>>, head::TraceStateError> {
        match self.consistent() {
            None => Ok(
                (head::hash_seed_bucket(self.cfg.seed(), trace_id) < self.bound).then_some(None),
            ),
            Some(mode) => {
                let d = head::decide_consistent(
                    mode,
                    self.ratio,
                    self.cfg.sampling_precision,
                    trace_id,
                    tracestate,
                )?;
                Ok(d.keep.then_some(d.tracestate))
            }
        }
    }

    /// The decision for a trace id alone (what a log record with that trace id follows).
    pub fn decide_trace_id(&self, trace_id: &[u8]) -> bool {
        matches!(self.decide_span(trace_id, ""), Ok(Some(_)))
    }

    /// The decision for a log record.
    pub fn decide_log(&self, resource: &[KeyValue], rec: &LogRecord) -> bool {
        if rec.trace_id.len() == 16 && rec.trace_id.iter().any(|b| *b != 0) {
            return self.decide_trace_id(&rec.trace_id);
        }
        let value = self
            .cfg
            .logs
            .from_attribute
            .as_deref()
            .and_then(|key| {
                rec.attributes
                    .iter()
                    .chain(resource)
                    .find(|kv| kv.key == key)
                    .map(|kv| crate::otlp::any_value_text(kv.value.as_ref()))
            })
            .unwrap_or_else(|| crate::otlp::any_value_text(rec.body.as_ref()));
        let seed = self.cfg.seed().to_le_bytes();
        match self.consistent() {
            None => head::fnv1a32(&[&seed, value.as_bytes()]) & 0x3FFF < self.log_bound,
            Some(_) => match self.log_threshold {
                None => false,
                Some(t) => {
                    head::fnv1a64(&[&seed, value.as_bytes()]) & (head::MAX_ADJUSTED - 1) >= t.0
                }
            },
        }
    }

    /// Samples the spans of a request in place; returns whether anything changed.
    pub fn sample_spans(&self, resource_spans: &mut Vec<ResourceSpans>) -> bool {
        let (mut seen, mut kept, mut errors) = (0u64, 0u64, 0u64);
        let mut changed = false;
        for rs in resource_spans.iter_mut() {
            for ss in rs.scope_spans.iter_mut() {
                ss.spans.retain_mut(|span| {
                    seen += 1;
                    let keep = match self.decide_span(&span.trace_id, &span.trace_state) {
                        Ok(Some(new_state)) => {
                            if let Some(st) = new_state
                                && st != span.trace_state
                            {
                                span.trace_state = st;
                                changed = true;
                            }
                            true
                        }
                        Ok(None) => false,
                        Err(_) => {
                            errors += 1;
                            !self.cfg.fail_closed
                        }
                    };
                    kept += u64::from(keep);
                    keep
                });
            }
            rs.scope_spans.retain(|ss| !ss.spans.is_empty());
        }
        resource_spans.retain(|rs| !rs.scope_spans.is_empty());
        let c = &self.counters;
        c.spans_seen.fetch_add(seen, Ordering::Relaxed);
        c.spans_kept.fetch_add(kept, Ordering::Relaxed);
        c.errors.fetch_add(errors, Ordering::Relaxed);
        changed || kept < seen
    }

    /// Samples the log records of a request in place; returns whether anything changed.
    pub fn sample_logs(&self, resource_logs: &mut Vec<ResourceLogs>) -> bool {
        let (mut seen, mut kept) = (0u64, 0u64);
        for rl in resource_logs.iter_mut() {
            let resource = rl
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or_default();
            for sl in rl.scope_logs.iter_mut() {
                sl.log_records.retain(|rec| {
                    seen += 1;
                    let keep = self.decide_log(resource, rec);
                    kept += u64::from(keep);
                    keep
                });
            }
            rl.scope_logs.retain(|sl| !sl.log_records.is_empty());
        }
        resource_logs.retain(|rl| !rl.scope_logs.is_empty());
        self.counters.logs_seen.fetch_add(seen, Ordering::Relaxed);
        self.counters.logs_kept.fetch_add(kept, Ordering::Relaxed);
        kept < seen
    }
}

/// An `adaptive_sampler` at work.
pub struct AdaptiveRuntime {
    pub name: String,
    pub cfg: config::AdaptiveSampler,
    pub controller: std::sync::Mutex<adaptive::Controller>,
    pub counters: Counters,
}

impl AdaptiveRuntime {
    fn new(name: &str, cfg: &config::AdaptiveSampler) -> AdaptiveRuntime {
        AdaptiveRuntime {
            name: name.to_string(),
            controller: std::sync::Mutex::new(adaptive::Controller::new(
                cfg.target_traces_per_second,
                cfg.interval,
                cfg.initial_probability,
                cfg.min_probability,
                std::time::Instant::now(),
            )),
            cfg: cfg.clone(),
            counters: Counters::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, adaptive::Controller> {
        self.controller.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Samples a request's spans trace by trace at the probability of each trace's entry
    /// (service, operation).
    pub fn sample_spans(&self, resource_spans: &mut Vec<ResourceSpans>) -> bool {
        use std::collections::{HashMap, HashSet};
        // The entry span of each trace in this request: its root, else the first span whose
        // parent is not here.
        let present: HashSet<(&[u8], &[u8])> = crate::otlp::spans(resource_spans)
            .map(|(_, s)| (s.trace_id.as_slice(), s.span_id.as_slice()))
            .collect();
        let mut entry: HashMap<Vec<u8>, (String, String, bool)> = HashMap::new();
        for (svc, s) in crate::otlp::spans(resource_spans) {
            let is_root = s.parent_span_id.is_empty();
            let is_entry =
                is_root || !present.contains(&(s.trace_id.as_slice(), s.parent_span_id.as_slice()));
            if !is_entry {
                continue;
            }
            let e = entry
                .entry(s.trace_id.clone())
                .or_insert_with(|| (svc.to_string(), s.name.clone(), is_root));
            if is_root && !e.2 {
                *e = (svc.to_string(), s.name.clone(), true);
            }
        }
        // Each trace's probability under the current interval.
        let probability: HashMap<Vec<u8>, f64> = {
            let mut c = self.lock();
            c.roll(std::time::Instant::now());
            entry
                .iter()
                .map(|(tid, (svc, op, _))| (tid.clone(), c.probability(&(svc.clone(), op.clone()))))
                .collect()
        };
        let mut kept_roots = Vec::new();
        let (mut seen, mut kept) = (0u64, 0u64);
        let mut changed = false;
        for rs in resource_spans.iter_mut() {
            let svc = crate::otlp::service_name(rs.resource.as_ref()).to_string();
            for ss in rs.scope_spans.iter_mut() {
                ss.spans.retain_mut(|span| {
                    seen += 1;
                    let Some(p) = probability.get(&span.trace_id) else {
                        return false;
                    };
                    match head::decide_consistent(
                        Consistent::Proportional,
                        *p,
                        4,
                        &span.trace_id,
                        &span.trace_state,
                    ) {
                        Ok(d) if d.keep => {
                            // A trace counts once towards the rate: at its root.
                            if span.parent_span_id.is_empty() {
                                kept_roots.push((svc.clone(), span.name.clone()));
                            }
                            if let Some(st) = d.tracestate
                                && st != span.trace_state
                            {
                                span.trace_state = st;
                                changed = true;
                            }
                            kept += 1;
                            true
                        }
                        Ok(_) => false,
                        Err(_) => {
                            self.counters.errors.fetch_add(1, Ordering::Relaxed);
                            false
                        }
                    }
                });
            }
            rs.scope_spans.retain(|ss| !ss.spans.is_empty());
        }
        resource_spans.retain(|rs| !rs.scope_spans.is_empty());
        if !kept_roots.is_empty() {
            let mut c = self.lock();
            for key in kept_roots {
                c.observe(key);
            }
        }
        self.counters.spans_seen.fetch_add(seen, Ordering::Relaxed);
        self.counters.spans_kept.fetch_add(kept, Ordering::Relaxed);
        changed || kept < seen
    }
}

/// A step of the traces pipeline.
enum TraceStage {
    Head(Arc<HeadSampler>),
    Adaptive(Arc<AdaptiveRuntime>),
}

/// The samplers of each pipeline, in pipeline order.
#[derive(Default)]
pub struct Sampling {
    traces: Vec<TraceStage>,
    logs: Vec<Arc<HeadSampler>>,
    /// Every head sampler a pipeline names, once (for stats).
    all: Vec<Arc<HeadSampler>>,
    /// The traces pipeline's tail sampler (after its head samplers).
    tail: Option<Arc<super::tail_buffer::TailSampler>>,
    adaptive: Vec<Arc<AdaptiveRuntime>>,
}

pub use super::tail_buffer::Routed as Sampled;

/// Errors of setting up the samplers.
#[derive(Debug, thiserror::Error)]
pub enum SamplingError {
    /// A tail sampler's durable buffer could not be opened or read back.
    #[error("tail sampler {name}: cannot open its buffer: {source}")]
    TailBuffer {
        name: String,
        source: crate::store::StoreError,
    },
}

impl Sampling {
    /// Builds the pipelines' samplers; a tail sampler opens its buffer in the store.
    pub fn open(config: &Config, store: &crate::store::Store) -> Result<Sampling, SamplingError> {
        let mut s = Sampling::default();
        for (signal, pipeline) in &config.service.pipelines {
            for name in &pipeline.processors {
                let cfg = match config.processors.get(name) {
                    Some(config::Processor::ProbabilisticSampler(cfg)) => cfg,
                    Some(config::Processor::TailSampling(cfg)) => {
                        if signal == "traces" && s.tail.is_none() {
                            let buffer = |source| SamplingError::TailBuffer {
                                name: name.clone(),
                                source,
                            };
                            let tree = store
                                .state_tree(StateTree::TailBuffer(name))
                                .map_err(buffer)?;
                            s.tail = Some(Arc::new(
                                super::tail_buffer::TailSampler::open(name, cfg, tree)
                                    .map_err(buffer)?,
                            ));
                        }
                        continue;
                    }
                    Some(config::Processor::AdaptiveSampler(cfg)) => {
                        if signal == "traces" {
                            let a = Arc::new(AdaptiveRuntime::new(name, cfg));
                            s.adaptive.push(a.clone());
                            s.traces.push(TraceStage::Adaptive(a));
                        }
                        continue;
                    }
                    // Not samplers: batch is mapped onto the exporters by the config,
                    // memory_limiter guards admission (`super::memory`).
                    Some(config::Processor::Batch(_) | config::Processor::MemoryLimiter(_))
                    | None => continue,
                };
                let sampler = match s.all.iter().find(|x| &x.name == name) {
                    Some(x) => x.clone(),
                    None => {
                        let x = Arc::new(HeadSampler::new(name, cfg));
                        s.all.push(x.clone());
                        x
                    }
                };
                match signal.as_str() {
                    "traces" => s.traces.push(TraceStage::Head(sampler)),
                    "logs" => s.logs.push(sampler),
                    _ => {}
                }
            }
        }
        Ok(s)
    }

    /// The adaptive samplers of the traces pipeline.
    pub fn adaptive(&self) -> &[Arc<AdaptiveRuntime>] {
        &self.adaptive
    }

    /// The tail sampler, if the traces pipeline has one.
    pub fn tail(&self) -> Option<&Arc<super::tail_buffer::TailSampler>> {
        self.tail.as_ref()
    }

    /// Is a sampler's buffer too full to take more of this signal?
    pub fn is_overloaded(&self, signal: Signal) -> bool {
        signal == Signal::Traces && self.tail.as_ref().is_some_and(|t| t.is_overloaded())
    }

    /// Applies the traces pipeline's head samplers, then its tail sampler (which takes the
    /// spans of undecided traces into its buffer).
    pub fn traces(
        &self,
        resource_spans: &mut Vec<ResourceSpans>,
    ) -> Result<Sampled, crate::store::StoreError> {
        let mut out = Sampled::default();
        for s in &self.traces {
            out.changed |= match s {
                TraceStage::Head(h) => h.sample_spans(resource_spans),
                TraceStage::Adaptive(a) => a.sample_spans(resource_spans),
            };
        }
        if let Some(t) = &self.tail {
            let r = t.route(resource_spans)?;
            out.changed |= r.changed;
            out.buffered |= r.buffered;
            out.buffered_spans += r.buffered_spans;
        }
        Ok(out)
    }

    /// Applies the logs pipeline's samplers; true when the request changed.
    pub fn logs(&self, resource_logs: &mut Vec<ResourceLogs>) -> bool {
        let mut changed = false;
        for s in &self.logs {
            changed |= s.sample_logs(resource_logs);
        }
        changed
    }

    /// Every sampler, for GetSamplingStats.
    pub fn samplers(&self) -> &[Arc<HeadSampler>] {
        &self.all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span};

    fn sampler(mode: SamplerMode, pct: f64) -> HeadSampler {
        HeadSampler::new(
            "probabilistic_sampler",
            &config::ProbabilisticSampler {
                sampling_percentage: pct,
                mode: Some(mode),
                hash_seed: None,
                sampling_precision: 4,
                fail_closed: true,
                logs: Default::default(),
            },
        )
    }

    fn spans(ids: &[[u8; 16]]) -> Vec<ResourceSpans> {
        vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: ids
                    .iter()
                    .map(|id| Span {
                        trace_id: id.to_vec(),
                        span_id: vec![1; 8],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }]
    }

    #[test]
    fn spans_are_filtered_and_marked_and_empty_containers_go() {
        let mut keep = [0u8; 16];
        keep[9] = 0x90; // R = 0x90..., above th:8
        let mut drop = [0u8; 16];
        drop[9] = 0x10;
        let s = sampler(SamplerMode::Proportional, 50.0);
        let mut rs = spans(&[keep, drop]);
        assert!(s.sample_spans(&mut rs));
        let kept: Vec<_> = crate::otlp::spans(&rs).map(|(_, s)| s.clone()).collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].trace_id, keep.to_vec());
        assert_eq!(kept[0].trace_state, "ot=th:8");
        let mut rs = spans(&[drop]);
        s.sample_spans(&mut rs);
        assert!(rs.is_empty(), "an emptied resource is removed");
        assert_eq!(s.counters.spans_seen.load(Ordering::Relaxed), 3);
        assert_eq!(s.counters.spans_kept.load(Ordering::Relaxed), 1);
        // 0% keeps nothing, 100% everything; a malformed tracestate fails closed.
        let mut rs = spans(&[keep]);
        sampler(SamplerMode::Proportional, 0.0).sample_spans(&mut rs);
        assert!(rs.is_empty());
        let mut rs = spans(&[drop]);
        let all = sampler(SamplerMode::HashSeed, 100.0);
        assert!(!all.sample_spans(&mut rs));
        assert_eq!(rs.len(), 1);
        let mut rs = spans(&[keep]);
        rs[0].scope_spans[0].spans[0].trace_state = "ot=th:zz".into();
        s.sample_spans(&mut rs);
        assert!(rs.is_empty());
        assert_eq!(s.counters.errors.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn logs_follow_their_trace_and_hash_the_attribute_otherwise() {
        let s = sampler(SamplerMode::HashSeed, 50.0);
        let mut kept = 0;
        for i in 0..2000u32 {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_be_bytes());
            id[15] = 1;
            let rec = LogRecord {
                trace_id: id.to_vec(),
                ..Default::default()
            };
            let d = s.decide_log(&[], &rec);
            assert_eq!(d, s.decide_trace_id(&id), "a log follows its trace");
            kept += u32::from(d);
        }
        assert!((900..1100).contains(&kept), "{kept}");
        // Without a trace id: the same body, the same decision; different bodies spread.
        let body = |t: &str| LogRecord {
            body: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                value: Some(
                    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(t.into()),
                ),
            }),
            ..Default::default()
        };
        let a = s.decide_log(&[], &body("user 17 logged in"));
        assert_eq!(a, s.decide_log(&[], &body("user 17 logged in")));
        let kept = (0..2000)
            .filter(|i| s.decide_log(&[], &body(&format!("line {i}"))))
            .count();
        assert!((900..1100).contains(&kept), "{kept}");
    }
}

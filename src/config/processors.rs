//! `processors:` — head sampling (`probabilistic_sampler`, adaptive) and `tail_sampling`
//! with its policies.

use super::*;

/// `processors.<type>[/name]`: one processor.
#[derive(Debug, Clone)]
pub enum Processor {
    /// Consistent head sampling by trace id.
    ProbabilisticSampler(ProbabilisticSampler),
    /// Whole-trace decisions from a durable assembly buffer.
    TailSampling(TailSampling),
    /// Per (service, operation) probabilities steered to a target rate.
    AdaptiveSampler(AdaptiveSampler),
    /// The Collector's `batch`: sets the batching of the pipeline's exporters.
    Batch(BatchProcessor),
    /// The Collector's `memory_limiter`: refuses requests while memory is high.
    MemoryLimiter(MemoryLimiter),
}

impl Processor {
    /// The type part of a `type/name` key.
    pub const TYPES: [&'static str; 5] = [
        "probabilistic_sampler",
        "tail_sampling",
        "adaptive_sampler",
        "batch",
        "memory_limiter",
    ];

    pub(super) fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let invalid = |sub: &str, reason: String| invalid_at(key, sub, reason);
        match self {
            Processor::Batch(b) => {
                if b.send_batch_size == 0 {
                    return invalid("send_batch_size", "must be at least 1".into());
                }
                if b.timeout.is_zero() {
                    return invalid("timeout", "must be greater than zero".into());
                }
                if !b.metadata_keys.is_empty() {
                    return invalid(
                        "metadata_keys",
                        "batching by client metadata is not supported".into(),
                    );
                }
            }
            Processor::MemoryLimiter(m) => {
                if m.check_interval.is_zero() {
                    return invalid("check_interval", "must be greater than zero".into());
                }
                match (m.limit_mib, m.limit_percentage) {
                    (0, 0) => {
                        return invalid("limit_mib", "set limit_mib or limit_percentage".into());
                    }
                    (_, p) if p > 100 || m.spike_limit_percentage > 100 => {
                        return invalid("limit_percentage", "percentages are 0..=100".into());
                    }
                    (l, _) if l > 0 && m.spike_limit_mib.is_some_and(|s| s >= l) => {
                        return invalid("spike_limit_mib", "must be below limit_mib".into());
                    }
                    _ => {}
                }
                if m.limit_mib == 0 && m.spike_limit_percentage >= m.limit_percentage {
                    return invalid(
                        "spike_limit_percentage",
                        "must be below limit_percentage".into(),
                    );
                }
            }
            Processor::TailSampling(t) => t.validate(key)?,
            Processor::AdaptiveSampler(a) => {
                if !(a.target_traces_per_second.is_finite() && a.target_traces_per_second > 0.0) {
                    return invalid(
                        "target_traces_per_second",
                        format!("{} must be a positive number", a.target_traces_per_second),
                    );
                }
                if a.interval.is_zero() {
                    return invalid("interval", "must be greater than zero".into());
                }
                if !(a.min_probability >= 1e-5 && a.min_probability <= 1.0) {
                    return invalid(
                        "min_probability",
                        format!("{} is outside [0.00001, 1]", a.min_probability),
                    );
                }
                if !(a.initial_probability >= a.min_probability && a.initial_probability <= 1.0) {
                    return invalid(
                        "initial_probability",
                        format!("{} is outside [min_probability, 1]", a.initial_probability),
                    );
                }
            }
            Processor::ProbabilisticSampler(p) => {
                let pct_ok = |v: f64| v.is_finite() && (0.0..=100.0).contains(&v);
                if !pct_ok(p.sampling_percentage) {
                    return invalid(
                        "sampling_percentage",
                        format!("{} is outside [0, 100]", p.sampling_percentage),
                    );
                }
                if let Some(l) = p.logs.sampling_percentage
                    && !pct_ok(l)
                {
                    return invalid(
                        "logs.sampling_percentage",
                        format!("{l} is outside [0, 100]"),
                    );
                }
                if !(1..=14).contains(&p.sampling_precision) {
                    return invalid(
                        "sampling_precision",
                        format!("{} is outside 1..=14", p.sampling_precision),
                    );
                }
                if p.mode() != SamplerMode::HashSeed
                    && p.sampling_percentage > 0.0
                    && p.sampling_percentage < 100.0 / (1u64 << 56) as f64
                {
                    return invalid(
                        "sampling_percentage",
                        "below the smallest probability a 56-bit threshold can express".into(),
                    );
                }
            }
        }
        Ok(())
    }
}

/// `processors.batch[/name]`, the Collector's batch processor. sieve batches in each exporter
/// (`exporters.<name>.batch`, from its persistent queue); a batch processor in a pipeline sets
/// `send_batch_size` and `timeout` of every exporter of that pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchProcessor {
    /// Items per batch. Default 8192.
    pub send_batch_size: u64,
    /// Longest wait for a batch. Default 200ms.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// The Collector's item cap per request. Accepted and not used: sieve splits requests by
    /// size (`exporters.<name>.batch.max_request_bytes`).
    pub send_batch_max_size: u64,
    /// Batching per client metadata: must be empty.
    pub metadata_keys: Vec<String>,
    /// Accepted with metadata_keys (unused).
    pub metadata_cardinality_limit: u64,
}

impl Default for BatchProcessor {
    fn default() -> Self {
        BatchProcessor {
            send_batch_size: 8192,
            timeout: Duration::from_millis(200),
            send_batch_max_size: 0,
            metadata_keys: Vec::new(),
            metadata_cardinality_limit: 0,
        }
    }
}

/// `processors.memory_limiter[/name]`, in the Collector's shape: while the process's resident
/// memory is above `limit − spike`, receivers refuse new requests with a retryable status.
/// One check guards the whole process (the lowest soft limit wins when several are set).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryLimiter {
    /// How often memory is read. Default 1s.
    #[serde(with = "duration")]
    pub check_interval: Duration,
    /// The hard limit, MiB (or use limit_percentage).
    pub limit_mib: u64,
    /// Headroom below the hard limit, MiB. Default 20% of limit_mib.
    pub spike_limit_mib: Option<u64>,
    /// The hard limit as a share of total (or cgroup) memory, when limit_mib is 0.
    pub limit_percentage: u64,
    /// The headroom as a share of total memory, with limit_percentage.
    pub spike_limit_percentage: u64,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        MemoryLimiter {
            check_interval: Duration::from_secs(1),
            limit_mib: 0,
            spike_limit_mib: None,
            limit_percentage: 0,
            spike_limit_percentage: 0,
        }
    }
}

impl MemoryLimiter {
    /// (hard, spike) in bytes; `total` is the machine's memory for the percentages.
    pub fn limits(&self, total: Option<u64>) -> Option<(u64, u64)> {
        if self.limit_mib > 0 {
            let hard = self.limit_mib << 20;
            let spike = self.spike_limit_mib.map_or(hard / 5, |s| s << 20);
            return Some((hard, spike));
        }
        let total = total?;
        Some((
            total / 100 * self.limit_percentage,
            total / 100 * self.spike_limit_percentage,
        ))
    }
}

/// How `probabilistic_sampler` decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerMode {
    /// The Collector's legacy mode: FNV-1a of seed and trace id into 16384 buckets.
    HashSeed,
    /// OpenTelemetry consistent probability sampling (threshold vs. 56-bit randomness); an
    /// incoming `th` is sampled again (probabilities multiply).
    Proportional,
    /// As proportional, but an incoming `th` that is already stricter is kept unchanged.
    Equalizing,
}

/// `processors.probabilistic_sampler[/name]`: keeps a fixed share of traces, decided from the
/// trace id alone so that every instance with this configuration keeps the same traces. In a
/// logs pipeline, records with a trace id follow their trace's decision; records without one
/// are sampled by a hash of `logs.from_attribute` (or the body).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbabilisticSampler {
    /// Share of traces kept, 0–100. Required.
    pub sampling_percentage: f64,
    /// `hash_seed`, `proportional` or `equalizing`. Default as in the Collector: hash_seed
    /// when `hash_seed` is set, else proportional.
    #[serde(default)]
    pub mode: Option<SamplerMode>,
    /// Seed of the hash_seed mode (and of the hash of log records without a trace id).
    /// Instances that must agree need the same seed. Default 0.
    #[serde(default)]
    pub hash_seed: Option<u32>,
    /// Significant hex digits of the threshold written as `th` (proportional modes), 1–14.
    /// Default 4.
    #[serde(default = "default_precision")]
    pub sampling_precision: u8,
    /// Drop items whose tracestate `ot` entry is malformed (default true); false keeps them
    /// unsampled.
    #[serde(default = "default_true")]
    pub fail_closed: bool,
    /// Log records without a trace id.
    #[serde(default)]
    pub logs: LogSampling,
}

/// `processors.probabilistic_sampler.logs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSampling {
    /// Share of records without a trace id kept, 0–100. Default: `sampling_percentage`.
    pub sampling_percentage: Option<f64>,
    /// Attribute whose value is hashed (record attributes, then resource attributes); when
    /// absent, or the record lacks it, the body is hashed.
    pub from_attribute: Option<String>,
}

/// `processors.tail_sampling[/name]`: spans wait in a buffer on disk until their trace is
/// decided, then the whole trace is kept (stored and forwarded) or dropped. Acknowledged spans
/// are in the buffer durably, so a restart resumes every pending decision.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailSampling {
    /// Decide this long after a trace's first span. Default 10s.
    #[serde(default = "default_decision_wait", with = "duration")]
    pub decision_wait: Duration,
    /// Decide early once the root span has arrived and no span came for this long. 0
    /// disables. Default 2s.
    #[serde(default = "default_quiet_period", with = "duration")]
    pub quiet_period: Duration,
    /// Most traces pending at once; past it the oldest is decided early. Default 50000.
    #[serde(default = "default_num_traces")]
    pub num_traces: usize,
    /// Most bytes of spans pending, MiB; past it the oldest is decided early. Default 256.
    #[serde(default = "default_buffer_mib")]
    pub max_buffer_mib: u64,
    /// Decided traces remembered so late spans follow the decision. Default 100000.
    #[serde(default = "default_decision_cache")]
    pub decision_cache: usize,
    /// Add `sampling.policy` = the deciding policy's name to the kept spans. Default false.
    #[serde(default)]
    pub record_policy: bool,
    /// Evaluated in order; the first that keeps decides. A trace none keeps is dropped.
    pub policies: Vec<TailPolicy>,
}

pub(super) fn default_decision_wait() -> Duration {
    Duration::from_secs(10)
}
pub(super) fn default_quiet_period() -> Duration {
    Duration::from_secs(2)
}
pub(super) fn default_num_traces() -> usize {
    50_000
}
pub(super) fn default_buffer_mib() -> u64 {
    256
}
pub(super) fn default_decision_cache() -> usize {
    100_000
}

pub use crate::sampling::policy::{
    AndPolicy, CompositePolicy, LatencyPolicy, NumericAttributePolicy, ProbabilisticPolicy,
    RateAllocation, RateLimitingPolicy, SpanCountPolicy, StatusCodePolicy, StringAttributePolicy,
    TailPolicy,
};

impl TailSampling {
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let invalid = |sub: &str, reason: String| invalid_at(key, sub, reason);
        if self.decision_wait.is_zero() {
            return invalid("decision_wait", "must be greater than zero".into());
        }
        if self.quiet_period > self.decision_wait {
            return invalid("quiet_period", "must not exceed decision_wait".into());
        }
        if self.num_traces == 0 {
            return invalid("num_traces", "must be at least 1".into());
        }
        if self.max_buffer_mib == 0 {
            return invalid("max_buffer_mib", "must be at least 1".into());
        }
        if self.policies.is_empty() {
            return invalid("policies", "at least one policy is needed".into());
        }
        let mut names = std::collections::HashSet::new();
        for (i, p) in self.policies.iter().enumerate() {
            if !names.insert(p.name()) {
                return invalid(
                    &format!("policies[{i}].name"),
                    format!("{:?} is used twice", p.name()),
                );
            }
            validate_policy(p, &format!("{key}.policies[{i}]"))?;
        }
        Ok(())
    }
}

/// Checks what the types cannot say: names, ranges, codes, and that sub-policies are simple
/// and named once.
fn validate_policy(policy: &TailPolicy, key: &str) -> Result<(), ConfigError> {
    let invalid = |sub: &str, reason: String| invalid_at(key, sub, reason);
    if policy.name().is_empty() {
        return invalid("name", "must not be empty".into());
    }
    let subs = |what: &str, subs: &[TailPolicy]| -> Result<(), ConfigError> {
        for (i, p) in subs.iter().enumerate() {
            if p.is_compound() {
                return invalid(&format!("{what}[{i}]"), "cannot nest and/composite".into());
            }
            validate_policy(p, &format!("{key}.{what}[{i}]"))?;
        }
        Ok(())
    };
    match policy {
        TailPolicy::AlwaysSample { .. } => {}
        TailPolicy::Latency { latency: l, .. } => {
            if l.upper_threshold_ms.is_some_and(|hi| hi <= l.threshold_ms) {
                return invalid(
                    "latency.upper_threshold_ms",
                    "must exceed threshold_ms".into(),
                );
            }
        }
        TailPolicy::StatusCode { status_code: c, .. } => {
            if c.status_codes.is_empty() {
                return invalid(
                    "status_code.status_codes",
                    "at least one code is needed".into(),
                );
            }
            if let Some(bad) = c
                .status_codes
                .iter()
                .find(|c| !["OK", "ERROR", "UNSET"].contains(&c.as_str()))
            {
                return invalid(
                    "status_code.status_codes",
                    format!("{bad:?} is not OK, ERROR or UNSET"),
                );
            }
        }
        TailPolicy::StringAttribute {
            string_attribute: a,
            ..
        } => {
            if a.key.is_empty() || a.values.is_empty() {
                return invalid(
                    "string_attribute",
                    "needs a key and at least one value".into(),
                );
            }
        }
        TailPolicy::NumericAttribute {
            numeric_attribute: a,
            ..
        } => {
            if a.key.is_empty()
                || a.min_value
                    .partial_cmp(&a.max_value)
                    .is_none_or(|o| o.is_gt())
            {
                return invalid(
                    "numeric_attribute",
                    "needs a key and min_value <= max_value".into(),
                );
            }
        }
        TailPolicy::Probabilistic {
            probabilistic: p, ..
        } => {
            if !(p.sampling_percentage.is_finite()
                && (0.0..=100.0).contains(&p.sampling_percentage))
            {
                return invalid(
                    "probabilistic.sampling_percentage",
                    format!("{} is outside [0, 100]", p.sampling_percentage),
                );
            }
        }
        TailPolicy::RateLimiting {
            rate_limiting: r, ..
        } => {
            if r.spans_per_second == 0 {
                return invalid(
                    "rate_limiting.spans_per_second",
                    "must be at least 1".into(),
                );
            }
        }
        TailPolicy::SpanCount { span_count: c, .. } => {
            if c.max_spans.is_some_and(|m| m < c.min_spans) {
                return invalid("span_count.max_spans", "must be at least min_spans".into());
            }
        }
        TailPolicy::And { and, .. } => {
            if and.and_sub_policy.is_empty() {
                return invalid(
                    "and.and_sub_policy",
                    "at least one sub-policy is needed".into(),
                );
            }
            subs("and.and_sub_policy", &and.and_sub_policy)?;
        }
        TailPolicy::Composite { composite: c, .. } => {
            if c.max_total_spans_per_second == 0 {
                return invalid(
                    "composite.max_total_spans_per_second",
                    "must be at least 1".into(),
                );
            }
            let names: Vec<&str> = c.composite_sub_policy.iter().map(|p| p.name()).collect();
            if names.is_empty() {
                return invalid(
                    "composite.composite_sub_policy",
                    "at least one sub-policy is needed".into(),
                );
            }
            for (what, list) in [
                ("composite.composite_sub_policy", names.clone()),
                (
                    "composite.policy_order",
                    c.policy_order.iter().map(String::as_str).collect(),
                ),
                (
                    "composite.rate_allocation",
                    c.rate_allocation
                        .iter()
                        .map(|a| a.policy.as_str())
                        .collect(),
                ),
            ] {
                let mut seen = std::collections::HashSet::new();
                if let Some(dup) = list.iter().find(|n| !seen.insert(**n)) {
                    return invalid(what, format!("{dup:?} is listed twice"));
                }
            }
            subs("composite.composite_sub_policy", &c.composite_sub_policy)?;
            if let Some(n) = c.policy_order.iter().find(|n| !names.contains(&n.as_str())) {
                return invalid(
                    "composite.policy_order",
                    format!("{n:?} is not a composite_sub_policy"),
                );
            }
            let mut total = 0.0;
            for a in &c.rate_allocation {
                if !names.contains(&a.policy.as_str()) {
                    return invalid(
                        "composite.rate_allocation",
                        format!("{:?} is not a composite_sub_policy", a.policy),
                    );
                }
                if !(a.percent.is_finite() && a.percent >= 0.0) {
                    return invalid(
                        "composite.rate_allocation",
                        format!("{}: percent must be >= 0", a.policy),
                    );
                }
                total += a.percent;
            }
            if total > 100.0 {
                return invalid(
                    "composite.rate_allocation",
                    format!("shares add up to {total}%, over 100%"),
                );
            }
        }
    }
    Ok(())
}

/// `processors.adaptive_sampler[/name]`: Jaeger-style adaptive sampling. Each (service,
/// operation) of a trace's root span gets its own probability, re-computed every `interval`
/// as `p × target / observed` (unchanged within ±30% of the target, at most doubled, clamped
/// to `[min_probability, 1]`); decisions within an interval are consistent by trace id.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveSampler {
    /// Kept traces per second wanted for each (service, operation). Required.
    pub target_traces_per_second: f64,
    /// How often probabilities are re-computed. Default 1m.
    #[serde(default = "default_adaptive_interval", with = "duration")]
    pub interval: Duration,
    /// Probability of an operation not seen before. Default 1.
    #[serde(default = "default_one")]
    pub initial_probability: f64,
    /// Floor of every probability. Default 0.00001.
    #[serde(default = "default_min_probability")]
    pub min_probability: f64,
}

pub(super) fn default_adaptive_interval() -> Duration {
    Duration::from_secs(60)
}
pub(super) fn default_one() -> f64 {
    1.0
}
pub(super) fn default_min_probability() -> f64 {
    1e-5
}

impl ProbabilisticSampler {
    /// The mode in effect.
    pub fn mode(&self) -> SamplerMode {
        self.mode.unwrap_or(if self.hash_seed.is_some() {
            SamplerMode::HashSeed
        } else {
            SamplerMode::Proportional
        })
    }

    /// The seed in effect.
    pub fn seed(&self) -> u32 {
        self.hash_seed.unwrap_or(0)
    }
}

pub(super) fn default_precision() -> u8 {
    4
}

pub(super) fn default_true() -> bool {
    true
}

//! Tail-sampling policies as they are configured (`processors.tail_sampling.policies`), in
//! the Collector's shape. Plain data: the config layer reads and validates them, and
//! [`super::tail::Policy::build`] turns one into a rule ready to evaluate.

#![deny(missing_docs)]

use serde::Deserialize;

/// One tail policy, in the Collector's shape: `name`, `type`, and the settings under a key
/// named like the type (`type: latency` with `latency: {threshold_ms: 500}`). A key that
/// belongs to another type is refused when the file is read.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TailPolicy {
    /// Keep every trace.
    AlwaysSample {
        /// The policy's name (`sampling.policy` on kept spans with `record_policy`).
        name: String,
    },
    /// Keep traces at least as long as a threshold.
    Latency {
        /// The policy's name (`sampling.policy` on kept spans with `record_policy`).
        name: String,
        /// Its settings.
        latency: LatencyPolicy,
    },
    /// Keep traces with a span of one of the given statuses.
    StatusCode {
        /// The policy's name (`sampling.policy` on kept spans with `record_policy`).
        name: String,
        /// Its settings.
        status_code: StatusCodePolicy,
    },
    /// Keep traces by a string attribute's value.
    StringAttribute {
        /// The policy's name (`sampling.policy` on kept spans with `record_policy`).
        name: String,
        /// Its settings.
        string_attribute: StringAttributePolicy,
    },
    /// Keep traces by a numeric attribute's range.
    NumericAttribute {
        /// The policy's name (`sampling.policy` on kept spans with `record_policy`).
        name: String,
        /// Its settings.
        numeric_attribute: NumericAttributePolicy,
    },
    /// Keep a share of traces, consistently by trace id.
    Probabilistic {
        /// The policy's name (`sampling.policy` on kept spans with `record_policy`).
        name: String,
        /// Its settings.
        probabilistic: ProbabilisticPolicy,
    },
    /// Keep traces while under a spans-per-second budget.
    RateLimiting {
        /// The policy's name (`sampling.policy` on kept spans with `record_policy`).
        name: String,
        /// Its settings.
        rate_limiting: RateLimitingPolicy,
    },
    /// Keep traces by their number of spans.
    SpanCount {
        /// The policy's name (`sampling.policy` on kept spans with `record_policy`).
        name: String,
        /// Its settings.
        span_count: SpanCountPolicy,
    },
    /// Keep traces every sub-policy keeps.
    And {
        /// The policy's name (`sampling.policy` on kept spans with `record_policy`).
        name: String,
        /// Its settings.
        and: AndPolicy,
    },
    /// Sub-policies sharing a spans-per-second budget.
    Composite {
        /// The policy's name (`sampling.policy` on kept spans with `record_policy`).
        name: String,
        /// Its settings.
        composite: CompositePolicy,
    },
}

impl TailPolicy {
    /// The policy's `name`.
    pub fn name(&self) -> &str {
        match self {
            TailPolicy::AlwaysSample { name }
            | TailPolicy::Latency { name, .. }
            | TailPolicy::StatusCode { name, .. }
            | TailPolicy::StringAttribute { name, .. }
            | TailPolicy::NumericAttribute { name, .. }
            | TailPolicy::Probabilistic { name, .. }
            | TailPolicy::RateLimiting { name, .. }
            | TailPolicy::SpanCount { name, .. }
            | TailPolicy::And { name, .. }
            | TailPolicy::Composite { name, .. } => name,
        }
    }

    /// `and` and `composite` hold sub-policies (which cannot be `and` or `composite`).
    pub fn is_compound(&self) -> bool {
        matches!(self, TailPolicy::And { .. } | TailPolicy::Composite { .. })
    }
}

/// Keep traces whose duration (last end − first start) is at least `threshold_ms`, and
/// below `upper_threshold_ms` when set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyPolicy {
    /// Shortest duration kept, ms. Required.
    pub threshold_ms: u64,
    /// Durations from this on are not kept, ms. Default: no bound.
    #[serde(default)]
    pub upper_threshold_ms: Option<u64>,
}

/// Keep traces with a span whose status is one of `status_codes` (OK, ERROR, UNSET).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusCodePolicy {
    /// `OK`, `ERROR` and/or `UNSET`. At least one.
    pub status_codes: Vec<String>,
}

/// Keep traces with a span (or resource) whose string attribute `key` is one of `values`
/// (or, with `invert_match`, traces where none is).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringAttributePolicy {
    /// The attribute key (span attributes, and resource attributes for strings).
    pub key: String,
    /// Values that match (exactly). At least one.
    pub values: Vec<String>,
    /// Keep the traces where no span matches instead. Default false.
    #[serde(default)]
    pub invert_match: bool,
}

/// Keep traces with a span whose numeric attribute `key` lies in [min_value, max_value].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumericAttributePolicy {
    /// The attribute key (span attributes, and resource attributes for strings).
    pub key: String,
    /// Smallest matching value (inclusive).
    pub min_value: f64,
    /// Largest matching value (inclusive).
    pub max_value: f64,
}

/// Keep a share of traces by the hash_seed rule of the probabilistic sampler.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbabilisticPolicy {
    /// Share kept, 0..=100.
    pub sampling_percentage: f64,
    /// The FNV seed; instances with the same seed keep the same traces. Default 0.
    #[serde(default)]
    pub hash_seed: u32,
}

/// Keep traces while the spans kept by this policy in the current second stay under
/// `spans_per_second`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitingPolicy {
    /// The budget, spans per second. At least 1.
    pub spans_per_second: u64,
}

/// Keep traces with at least `min_spans` (and at most `max_spans`) spans.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpanCountPolicy {
    /// Fewest spans kept.
    pub min_spans: u64,
    /// Most spans kept. Default: no bound.
    #[serde(default)]
    pub max_spans: Option<u64>,
}

/// Keep traces every sub-policy keeps.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AndPolicy {
    /// The sub-policies (not `and` or `composite`). At least one.
    pub and_sub_policy: Vec<TailPolicy>,
}

/// Sub-policies tried in `policy_order`, each allowed `percent` of
/// `max_total_spans_per_second`; a trace is kept by the first that keeps it within its share.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompositePolicy {
    /// The budget the sub-policies share, spans per second.
    pub max_total_spans_per_second: u64,
    /// Sub-policy names in the order they are tried; the rest follow in their own order.
    pub policy_order: Vec<String>,
    /// The sub-policies (not `and` or `composite`). At least one.
    pub composite_sub_policy: Vec<TailPolicy>,
    /// Shares of the budget by sub-policy; the unallocated rest is split evenly among the others.
    pub rate_allocation: Vec<RateAllocation>,
}

/// A composite sub-policy's share.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateAllocation {
    /// A `composite_sub_policy` name.
    pub policy: String,
    /// Its share of `max_total_spans_per_second`, percent.
    pub percent: f64,
}

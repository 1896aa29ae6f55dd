//! Tail-sampling policies as they are configured (`processors.tail_sampling.policies`), in
//! the Collector's shape. Plain data: the config layer reads and validates them, and
//! [`super::tail::Policy::build`] turns one into a rule ready to evaluate.

use serde::Deserialize;

/// One tail policy, in the Collector's shape: `name`, `type`, and the settings under a key
/// named like the type (`type: latency` with `latency: {threshold_ms: 500}`). A key that
/// belongs to another type is refused when the file is read.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TailPolicy {
    /// Keep every trace.
    AlwaysSample {
        name: String,
    },
    Latency {
        name: String,
        latency: LatencyPolicy,
    },
    StatusCode {
        name: String,
        status_code: StatusCodePolicy,
    },
    StringAttribute {
        name: String,
        string_attribute: StringAttributePolicy,
    },
    NumericAttribute {
        name: String,
        numeric_attribute: NumericAttributePolicy,
    },
    Probabilistic {
        name: String,
        probabilistic: ProbabilisticPolicy,
    },
    RateLimiting {
        name: String,
        rate_limiting: RateLimitingPolicy,
    },
    SpanCount {
        name: String,
        span_count: SpanCountPolicy,
    },
    And {
        name: String,
        and: AndPolicy,
    },
    Composite {
        name: String,
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
    pub threshold_ms: u64,
    #[serde(default)]
    pub upper_threshold_ms: Option<u64>,
}

/// Keep traces with a span whose status is one of `status_codes` (OK, ERROR, UNSET).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusCodePolicy {
    pub status_codes: Vec<String>,
}

/// Keep traces with a span (or resource) whose string attribute `key` is one of `values`
/// (or, with `invert_match`, traces where none is).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringAttributePolicy {
    pub key: String,
    pub values: Vec<String>,
    #[serde(default)]
    pub invert_match: bool,
}

/// Keep traces with a span whose numeric attribute `key` lies in [min_value, max_value].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumericAttributePolicy {
    pub key: String,
    pub min_value: f64,
    pub max_value: f64,
}

/// Keep a share of traces by the hash_seed rule of the probabilistic sampler.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbabilisticPolicy {
    pub sampling_percentage: f64,
    #[serde(default)]
    pub hash_seed: u32,
}

/// Keep traces while the spans kept by this policy in the current second stay under
/// `spans_per_second`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitingPolicy {
    pub spans_per_second: u64,
}

/// Keep traces with at least `min_spans` (and at most `max_spans`) spans.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpanCountPolicy {
    pub min_spans: u64,
    #[serde(default)]
    pub max_spans: Option<u64>,
}

/// Keep traces every sub-policy keeps.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AndPolicy {
    pub and_sub_policy: Vec<TailPolicy>,
}

/// Sub-policies tried in `policy_order`, each allowed `percent` of
/// `max_total_spans_per_second`; a trace is kept by the first that keeps it within its share.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompositePolicy {
    pub max_total_spans_per_second: u64,
    pub policy_order: Vec<String>,
    pub composite_sub_policy: Vec<TailPolicy>,
    pub rate_allocation: Vec<RateAllocation>,
}

/// A composite sub-policy's share.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateAllocation {
    pub policy: String,
    pub percent: f64,
}

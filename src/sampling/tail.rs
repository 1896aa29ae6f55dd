//! Tail-sampling policies: whole-trace decisions, as pure functions of a trace's spans and
//! the current second (rate budgets are per second).
//!
//! A policy ([`Policy`]) is built from its configuration ([`TailPolicy`]) once; [`decide`]
//! runs the policies of a processor in order and returns the first that keeps the trace
//! (none: drop). Kinds, as the Collector's `tail_sampling` processor names them:
//! `always_sample`, `status_code`, `latency`, `string_attribute`, `numeric_attribute`,
//! `probabilistic` (consistent with head sampling: a function of the trace id),
//! `rate_limiting` (spans per second), `span_count`, `and`, and `composite` (sub-policies
//! in order sharing a spans-per-second budget by percent).
//!
//! The durable buffer that collects a trace's spans until its decision, and the loop that
//! decides, are a stage: `stages::intake::tail_buffer`.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span, status};

use super::policy::TailPolicy;

pub type TraceId = [u8; 16];

/// A policy ready to evaluate.
enum Rule {
    Always,
    Latency {
        lo: u64,
        hi: Option<u64>,
    },
    Status(Vec<i32>),
    StringAttr {
        key: String,
        values: HashSet<String>,
        invert: bool,
    },
    Numeric {
        key: String,
        min: f64,
        max: f64,
    },
    Probabilistic {
        seed: u32,
        bound: u32,
    },
    Rate(RateBudget),
    SpanCount {
        min: u64,
        max: Option<u64>,
    },
    And(Vec<Rule>),
    Composite(Vec<(Rule, RateBudget)>),
}

/// Spans kept per wall-clock second.
struct RateBudget {
    limit: u64,
    used: Mutex<(u64, u64)>,
}

impl RateBudget {
    fn new(limit: u64) -> RateBudget {
        RateBudget {
            limit,
            used: Mutex::new((0, 0)),
        }
    }

    fn take(&self, spans: u64, second: u64) -> bool {
        let mut u = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if u.0 != second {
            *u = (second, 0);
        }
        if u.1 + spans <= self.limit {
            u.1 += spans;
            true
        } else {
            false
        }
    }
}

/// What the policies look at.
pub struct TraceView<'a> {
    pub trace_id: TraceId,
    pub data: &'a [ResourceSpans],
}

impl TraceView<'_> {
    fn spans(&self) -> impl Iterator<Item = &Span> {
        crate::otlp::spans(self.data).map(|(_, s)| s)
    }

    fn count(&self) -> u64 {
        self.spans().count() as u64
    }

    fn duration(&self) -> u64 {
        let start = self
            .spans()
            .map(|s| s.start_time_unix_nano)
            .min()
            .unwrap_or(0);
        let end = self
            .spans()
            .map(|s| s.end_time_unix_nano)
            .max()
            .unwrap_or(0);
        end.saturating_sub(start)
    }

    /// Every attribute value under `key`, on spans and their resources.
    fn attrs<'b>(&'b self, key: &'b str) -> impl Iterator<Item = &'b any_value::Value> + 'b {
        self.data.iter().flat_map(move |rs| {
            let res = rs
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .filter(move |kv| kv.key == key);
            let spans = rs
                .scope_spans
                .iter()
                .flat_map(|ss| ss.spans.iter())
                .flat_map(|s| s.attributes.iter())
                .filter(move |kv| kv.key == key);
            res.chain(spans)
                .filter_map(|kv| kv.value.as_ref()?.value.as_ref())
        })
    }
}

impl Rule {
    fn build(p: &TailPolicy) -> Rule {
        match p {
            TailPolicy::AlwaysSample { .. } => Rule::Always,
            TailPolicy::Latency { latency: l, .. } => Rule::Latency {
                lo: l.threshold_ms.saturating_mul(1_000_000),
                hi: l.upper_threshold_ms.map(|h| h.saturating_mul(1_000_000)),
            },
            TailPolicy::StatusCode { status_code: c, .. } => Rule::Status(
                c.status_codes
                    .iter()
                    .map(|c| match c.as_str() {
                        "OK" => status::StatusCode::Ok as i32,
                        "ERROR" => status::StatusCode::Error as i32,
                        _ => status::StatusCode::Unset as i32,
                    })
                    .collect(),
            ),
            TailPolicy::StringAttribute {
                string_attribute: a,
                ..
            } => Rule::StringAttr {
                key: a.key.clone(),
                values: a.values.iter().cloned().collect(),
                invert: a.invert_match,
            },
            TailPolicy::NumericAttribute {
                numeric_attribute: a,
                ..
            } => Rule::Numeric {
                key: a.key.clone(),
                min: a.min_value,
                max: a.max_value,
            },
            TailPolicy::Probabilistic {
                probabilistic: pr, ..
            } => Rule::Probabilistic {
                seed: pr.hash_seed,
                bound: super::head::hash_seed_bound(pr.sampling_percentage),
            },
            TailPolicy::RateLimiting {
                rate_limiting: r, ..
            } => Rule::Rate(RateBudget::new(r.spans_per_second)),
            TailPolicy::SpanCount { span_count: c, .. } => Rule::SpanCount {
                min: c.min_spans,
                max: c.max_spans,
            },
            TailPolicy::And { and, .. } => {
                Rule::And(and.and_sub_policy.iter().map(Rule::build).collect())
            }
            TailPolicy::Composite { composite: c, .. } => {
                let allocated: f64 = c.rate_allocation.iter().map(|a| a.percent).sum();
                let unallocated: Vec<&str> = c
                    .composite_sub_policy
                    .iter()
                    .map(|s| s.name())
                    .filter(|n| !c.rate_allocation.iter().any(|a| a.policy == *n))
                    .collect();
                let share = |name: &str| -> f64 {
                    match c.rate_allocation.iter().find(|a| a.policy == name) {
                        Some(a) => a.percent,
                        None => (100.0 - allocated).max(0.0) / unallocated.len().max(1) as f64,
                    }
                };
                let mut order: Vec<&TailPolicy> = c
                    .policy_order
                    .iter()
                    .filter_map(|n| c.composite_sub_policy.iter().find(|s| s.name() == n))
                    .collect();
                for s in &c.composite_sub_policy {
                    if !c.policy_order.iter().any(|n| n == s.name()) {
                        order.push(s);
                    }
                }
                Rule::Composite(
                    order
                        .into_iter()
                        .map(|s| {
                            let limit = (c.max_total_spans_per_second as f64 * share(s.name())
                                / 100.0) as u64;
                            (Rule::build(s), RateBudget::new(limit))
                        })
                        .collect(),
                )
            }
        }
    }

    fn keeps(&self, t: &TraceView, second: u64) -> bool {
        match self {
            Rule::Always => true,
            Rule::Latency { lo, hi } => {
                let d = t.duration();
                d >= *lo && hi.is_none_or(|h| d < h)
            }
            Rule::Status(codes) => t
                .spans()
                .any(|s| codes.contains(&s.status.as_ref().map(|st| st.code).unwrap_or(0))),
            Rule::StringAttr {
                key,
                values,
                invert,
            } => {
                let hit = t.attrs(key).any(|v| match v {
                    any_value::Value::StringValue(s) => values.contains(s),
                    _ => false,
                });
                hit != *invert
            }
            Rule::Numeric { key, min, max } => t.attrs(key).any(|v| {
                let x = match v {
                    any_value::Value::IntValue(i) => *i as f64,
                    any_value::Value::DoubleValue(d) => *d,
                    _ => return false,
                };
                *min <= x && x <= *max
            }),
            Rule::Probabilistic { seed, bound } => {
                super::head::hash_seed_bucket(*seed, &t.trace_id) < *bound
            }
            Rule::Rate(b) => b.take(t.count(), second),
            Rule::SpanCount { min, max } => {
                let n = t.count();
                n >= *min && max.is_none_or(|m| n <= m)
            }
            Rule::And(rules) => rules.iter().all(|r| r.keeps(t, second)),
            Rule::Composite(subs) => subs
                .iter()
                .any(|(r, budget)| r.keeps(t, second) && budget.take(t.count(), second)),
        }
    }
}

/// A named top-level policy and how many traces it kept.
pub struct Policy {
    pub name: String,
    rule: Rule,
    pub kept: AtomicU64,
}

impl Policy {
    /// A policy from its config.
    pub fn build(p: &TailPolicy) -> Policy {
        Policy {
            name: p.name().to_string(),
            rule: Rule::build(p),
            kept: AtomicU64::new(0),
        }
    }
}

/// The decision for one trace: the index of the keeping policy, or None (drop).
pub fn decide(policies: &[Policy], t: &TraceView, second: u64) -> Option<usize> {
    policies.iter().position(|p| p.rule.keeps(t, second))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Status};

    fn span(tid: u8, id: u8, parent: Option<u8>, start: u64, end: u64, code: i32) -> Span {
        Span {
            trace_id: vec![tid; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: format!("s{id}"),
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            status: Some(Status {
                code,
                message: String::new(),
            }),
            attributes: vec![
                crate::otlp::string_kv("tier", if id.is_multiple_of(2) { "gold" } else { "free" }),
                KeyValue {
                    key: "n".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::IntValue(i64::from(id))),
                    }),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    fn data(spans: Vec<Span>) -> Vec<ResourceSpans> {
        vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }]
    }

    fn policies(yaml: &str) -> Vec<Policy> {
        let cfg: Vec<TailPolicy> = serde_norway::from_str(yaml).unwrap();
        cfg.iter()
            .map(|p| Policy {
                name: p.name().to_string(),
                rule: Rule::build(p),
                kept: AtomicU64::new(0),
            })
            .collect()
    }

    fn first_keeper(ps: &[Policy], d: &[ResourceSpans], tid: u8) -> Option<String> {
        decide(
            ps,
            &TraceView {
                trace_id: [tid; 16],
                data: d,
            },
            1,
        )
        .map(|i| ps[i].name.clone())
    }

    #[test]
    fn policies_decide_in_order() {
        let ps = policies(
            "- {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}
- {name: slow, type: latency, latency: {threshold_ms: 500}}
- {name: gold, type: string_attribute, string_attribute: {key: tier, values: [gold]}}
- {name: big-n, type: numeric_attribute, numeric_attribute: {key: n, min_value: 40, max_value: 50}}
- {name: many, type: span_count, span_count: {min_spans: 3}}",
        );
        let ms = 1_000_000u64;
        let err = data(vec![span(1, 1, None, 0, 10 * ms, 2)]);
        assert_eq!(first_keeper(&ps, &err, 1).as_deref(), Some("errors"));
        let slow = data(vec![
            span(2, 1, None, 0, 600 * ms, 0),
            span(2, 3, Some(1), 0, 10, 0),
        ]);
        assert_eq!(first_keeper(&ps, &slow, 2).as_deref(), Some("slow"));
        // Latency is the trace's span: first start to last end across spans.
        let spread = data(vec![
            span(3, 1, None, 0, 100 * ms, 0),
            span(3, 3, Some(1), 450 * ms, 550 * ms, 0),
        ]);
        assert_eq!(first_keeper(&ps, &spread, 3).as_deref(), Some("slow"));
        let gold = data(vec![span(4, 2, None, 0, ms, 0)]);
        assert_eq!(first_keeper(&ps, &gold, 4).as_deref(), Some("gold"));
        let n = data(vec![span(5, 41, None, 0, ms, 0)]);
        assert_eq!(first_keeper(&ps, &n, 5).as_deref(), Some("big-n"));
        let many = data(vec![
            span(6, 1, None, 0, ms, 1),
            span(6, 3, Some(1), 0, ms, 1),
            span(6, 5, Some(1), 0, ms, 1),
        ]);
        assert_eq!(first_keeper(&ps, &many, 6).as_deref(), Some("many"));
        let boring = data(vec![span(7, 1, None, 0, ms, 1)]);
        assert_eq!(first_keeper(&ps, &boring, 7), None);
    }

    #[test]
    fn rate_limits_and_composites_share_a_budget_per_second() {
        let ps =
            policies("- {name: rate, type: rate_limiting, rate_limiting: {spans_per_second: 3}}");
        let two = data(vec![
            span(1, 1, None, 0, 1, 0),
            span(1, 3, Some(1), 0, 1, 0),
        ]);
        let v = TraceView {
            trace_id: [1; 16],
            data: &two,
        };
        assert_eq!(decide(&ps, &v, 10), Some(0));
        assert_eq!(decide(&ps, &v, 10), None, "4 spans would pass 3/s");
        assert_eq!(decide(&ps, &v, 11), Some(0), "a new second, a new budget");

        let ps = policies(
            "- name: comp
  type: composite
  composite:
    max_total_spans_per_second: 10
    policy_order: [errors, rest]
    composite_sub_policy:
      - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}
      - {name: rest, type: always_sample}
    rate_allocation:
      - {policy: errors, percent: 50}
      - {policy: rest, percent: 20}",
        );
        let err = data(vec![span(1, 1, None, 0, 1, 2); 3]);
        let ok = data(vec![span(2, 1, None, 0, 1, 0); 1]);
        let t = |d| TraceView {
            trace_id: [1; 16],
            data: d,
        };
        // errors: 5 spans/s; rest: 2 spans/s.
        assert!(decide(&ps, &t(&err), 5).is_some());
        // A second error trace (3 more spans) is over the errors share and falls to rest (2/s): no.
        assert!(decide(&ps, &t(&err), 5).is_none());
        assert!(decide(&ps, &t(&ok), 5).is_some());
        assert!(decide(&ps, &t(&ok), 5).is_some());
        assert!(decide(&ps, &t(&ok), 5).is_none());
        // and: both must keep.
        let ps = policies(
            "- name: both
  type: and
  and:
    and_sub_policy:
      - {name: e, type: status_code, status_code: {status_codes: [ERROR]}}
      - {name: g, type: string_attribute, string_attribute: {key: tier, values: [gold]}}",
        );
        let gold_err = data(vec![span(1, 2, None, 0, 1, 2)]);
        let free_err = data(vec![span(1, 1, None, 0, 1, 2)]);
        assert!(decide(&ps, &t(&gold_err), 1).is_some());
        assert!(decide(&ps, &t(&free_err), 1).is_none());
        // Probabilistic follows the hash_seed rule.
        let ps =
            policies("- {name: p, type: probabilistic, probabilistic: {sampling_percentage: 50}}");
        let zero = TraceView {
            trace_id: [0; 16],
            data: &[],
        };
        assert_eq!(
            decide(&ps, &zero, 1).is_some(),
            super::super::head::hash_seed_bucket(0, &[0; 16]) < 8192
        );
    }
}

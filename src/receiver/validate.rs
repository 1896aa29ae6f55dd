//! Per-item validation of spans and log records. Pure functions; no I/O.
//!
//! An invalid item is removed from the request alone; the rest is kept. The [`Rejections`]
//! returned count what was removed and describe the first few problems, which become the
//! OTLP `partial_success.error_message`.
//!
//! Rules for a span: trace id of 16 bytes, not all zero; span id of 8 bytes, not all zero;
//! parent span id empty or 8 bytes; end time not before start time; a non-empty name no
//! longer than `max_attribute_value_length`; at most `max_attributes` attributes on the span,
//! on each event and on each link; no string or bytes value (nested ones included) longer
//! than `max_attribute_value_length`. The resource's and the scope's attributes (and the
//! scope's name and version) obey the same limits; when they do not, every item under them
//! is rejected (service names and attribute values are kept in indexes and the catalog).
//! A log record: trace id empty or 16 bytes not all zero; span id empty or 8 bytes not all
//! zero; the same attribute limits, and the body within the value length limit.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

use crate::config::Limits;

/// How many problems the error message names.
pub const MAX_DESCRIBED: usize = 5;

/// What validation removed from one request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rejections {
    pub count: u64,
    /// The first [`MAX_DESCRIBED`] problems.
    pub problems: Vec<String>,
    /// Items the problems above account for.
    described: u64,
}

impl Rejections {
    fn add(&mut self, problem: impl FnOnce() -> String) {
        self.count += 1;
        if self.problems.len() < MAX_DESCRIBED {
            self.problems.push(problem());
            self.described += 1;
        }
    }

    /// Adds `count` items dropped for one reason (e.g. past retention).
    pub fn add_many(&mut self, count: u64, problem: String) {
        self.count += count;
        if self.problems.len() < MAX_DESCRIBED {
            self.problems.push(problem);
            self.described += count;
        }
    }

    /// Counts `n` items rejected together because their resource or scope broke a limit.
    fn add_group(&mut self, problem: &str, n: usize, item: &str) {
        if n > 0 {
            self.add_many(n as u64, format!("{problem}: its {n} {item}"));
        }
    }

    /// The `partial_success.error_message`; empty when nothing was rejected.
    pub fn message(&self, item: &str) -> String {
        if self.count == 0 {
            return String::new();
        }
        let more = self.count.saturating_sub(self.described);
        let mut m = format!(
            "rejected {} {item}: {}",
            self.count,
            self.problems.join("; ")
        );
        if more > 0 {
            m.push_str(&format!("; and {more} more"));
        }
        m
    }
}

/// Removes invalid spans; returns what was removed. A resource or scope over the limits
/// takes all of its spans with it.
pub fn validate_spans(resource_spans: &mut [ResourceSpans], limits: &Limits) -> Rejections {
    let mut rej = Rejections::default();
    let newest = newest_time(limits);
    for rs in resource_spans {
        if let Some(p) = resource_problem(rs.resource.as_ref(), limits) {
            rej.add_group(
                &p,
                rs.scope_spans.iter().map(|s| s.spans.len()).sum(),
                "spans",
            );
            rs.scope_spans.clear();
            continue;
        }
        for ss in &mut rs.scope_spans {
            if let Some(p) = scope_problem(ss.scope.as_ref(), limits) {
                rej.add_group(&p, ss.spans.len(), "spans");
                ss.spans.clear();
                continue;
            }
            let problem = |span: &Span| {
                span_problem(span, limits)
                    .or_else(|| future_problem("start time", span.start_time_unix_nano, newest))
            };
            ss.spans.retain(|span| match problem(span) {
                None => true,
                Some(p) => {
                    rej.add(|| {
                        format!(
                            "span {:?} (trace {}, span {}): {p}",
                            truncate(&span.name),
                            hex::encode(&span.trace_id),
                            hex::encode(&span.span_id)
                        )
                    });
                    false
                }
            });
        }
    }
    rej
}

/// Removes invalid log records; returns what was removed. A resource or scope over the
/// limits takes all of its records with it.
pub fn validate_logs(resource_logs: &mut [ResourceLogs], limits: &Limits) -> Rejections {
    let mut rej = Rejections::default();
    let newest = newest_time(limits);
    for rl in resource_logs {
        if let Some(p) = resource_problem(rl.resource.as_ref(), limits) {
            rej.add_group(
                &p,
                rl.scope_logs.iter().map(|s| s.log_records.len()).sum(),
                "log records",
            );
            rl.scope_logs.clear();
            continue;
        }
        for sl in &mut rl.scope_logs {
            if let Some(p) = scope_problem(sl.scope.as_ref(), limits) {
                rej.add_group(&p, sl.log_records.len(), "log records");
                sl.log_records.clear();
                continue;
            }
            let mut index = 0usize;
            sl.log_records.retain(|rec| {
                index += 1;
                let problem = log_problem(rec, limits)
                    .or_else(|| future_problem("time", rec.time_unix_nano, newest));
                match problem {
                    None => true,
                    Some(p) => {
                        rej.add(|| format!("log record {} of its scope: {p}", index - 1));
                        false
                    }
                }
            });
        }
    }
    rej
}

/// The latest item time accepted now: the clock plus `max_clock_skew`.
fn newest_time(limits: &Limits) -> u64 {
    let skew = u64::try_from(limits.max_clock_skew.as_nanos()).unwrap_or(u64::MAX);
    crate::store::now_ns().saturating_add(skew)
}

/// An item time past `newest` would open a partition no retention sweep reaches for as long
/// as it is ahead: refused, like a malformed item.
fn future_problem(what: &str, t: u64, newest: u64) -> Option<String> {
    (t > newest)
        .then(|| format!("{what} {t} is further ahead of the gateway's clock than max_clock_skew"))
}

/// At most 64 characters of a name, for messages.
fn truncate(name: &str) -> String {
    match name.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &name[..i]),
        None => name.to_string(),
    }
}

fn resource_problem(
    resource: Option<&opentelemetry_proto::tonic::resource::v1::Resource>,
    limits: &Limits,
) -> Option<String> {
    attrs_problem("resource attributes", &resource?.attributes, limits)
}

fn scope_problem(
    scope: Option<&opentelemetry_proto::tonic::common::v1::InstrumentationScope>,
    limits: &Limits,
) -> Option<String> {
    let scope = scope?;
    if scope.name.len() > limits.max_attribute_value_length
        || scope.version.len() > limits.max_attribute_value_length
    {
        return Some(format!(
            "scope name or version longer than {} bytes",
            limits.max_attribute_value_length
        ));
    }
    attrs_problem("scope attributes", &scope.attributes, limits)
}

fn id_problem(name: &str, id: &[u8], len: usize, optional: bool) -> Option<String> {
    if id.is_empty() && optional {
        return None;
    }
    if id.len() != len {
        return Some(format!("{name} must be {len} bytes, got {}", id.len()));
    }
    if id.iter().all(|b| *b == 0) {
        return Some(format!("{name} is all zeros"));
    }
    None
}

/// The first problem of a span, if any.
pub fn span_problem(span: &Span, limits: &Limits) -> Option<String> {
    if let Some(p) = id_problem("trace_id", &span.trace_id, 16, false) {
        return Some(p);
    }
    if let Some(p) = id_problem("span_id", &span.span_id, 8, false) {
        return Some(p);
    }
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return Some(format!(
            "parent_span_id must be empty or 8 bytes, got {}",
            span.parent_span_id.len()
        ));
    }
    if span.end_time_unix_nano < span.start_time_unix_nano {
        return Some(format!(
            "end time {} is before start time {}",
            span.end_time_unix_nano, span.start_time_unix_nano
        ));
    }
    if span.name.is_empty() {
        return Some("name is empty".into());
    }
    if span.name.len() > limits.max_attribute_value_length {
        return Some(format!(
            "name of {} bytes exceeds the limit of {}",
            span.name.len(),
            limits.max_attribute_value_length
        ));
    }
    attrs_problem("attributes", &span.attributes, limits)
        .or_else(|| {
            span.events.iter().find_map(|e| {
                attrs_problem(
                    &format!("event {:?} attributes", e.name),
                    &e.attributes,
                    limits,
                )
            })
        })
        .or_else(|| {
            span.links
                .iter()
                .find_map(|l| attrs_problem("link attributes", &l.attributes, limits))
        })
}

/// The first problem of a log record, if any.
pub fn log_problem(rec: &LogRecord, limits: &Limits) -> Option<String> {
    if let Some(p) = id_problem("trace_id", &rec.trace_id, 16, true) {
        return Some(p);
    }
    if let Some(p) = id_problem("span_id", &rec.span_id, 8, true) {
        return Some(p);
    }
    if let Some(body) = &rec.body
        && let Some(len) = longest_value(body)
        && len > limits.max_attribute_value_length
    {
        return Some(format!(
            "body value of {len} bytes exceeds the limit of {}",
            limits.max_attribute_value_length
        ));
    }
    attrs_problem("attributes", &rec.attributes, limits)
}

fn attrs_problem(what: &str, attrs: &[KeyValue], limits: &Limits) -> Option<String> {
    if attrs.len() > limits.max_attributes {
        return Some(format!(
            "{what}: {} attributes exceed the limit of {}",
            attrs.len(),
            limits.max_attributes
        ));
    }
    attrs.iter().find_map(|kv| {
        let len = kv.value.as_ref().and_then(longest_value)?;
        (len > limits.max_attribute_value_length).then(|| {
            format!(
                "{what}: value of {:?} is {len} bytes, over the limit of {}",
                kv.key, limits.max_attribute_value_length
            )
        })
    })
}

/// The longest string or bytes value inside `v` (nested arrays and maps included).
fn longest_value(v: &AnyValue) -> Option<usize> {
    match v.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.len()),
        any_value::Value::BytesValue(b) => Some(b.len()),
        any_value::Value::ArrayValue(a) => a.values.iter().filter_map(longest_value).max(),
        any_value::Value::KvlistValue(kv) => kv
            .values
            .iter()
            .filter_map(|kv| kv.value.as_ref().and_then(longest_value))
            .max(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::ScopeSpans;

    fn good_span() -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "op".into(),
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            ..Default::default()
        }
    }

    fn string_attr(key: &str, len: usize) -> KeyValue {
        crate::otlp::string_kv(key, &"x".repeat(len))
    }

    #[test]
    fn each_span_rule() {
        let limits = Limits {
            max_attributes: 2,
            max_attribute_value_length: 8,
            ..Default::default()
        };
        assert_eq!(span_problem(&good_span(), &limits), None);
        type Mutation = Box<dyn Fn(&mut Span)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|s| s.trace_id = vec![1; 3]),
                "trace_id must be 16 bytes",
            ),
            (
                Box::new(|s| s.trace_id = vec![0; 16]),
                "trace_id is all zeros",
            ),
            (Box::new(|s| s.span_id = vec![]), "span_id must be 8 bytes"),
            (Box::new(|s| s.span_id = vec![0; 8]), "span_id is all zeros"),
            (
                Box::new(|s| s.parent_span_id = vec![1; 4]),
                "parent_span_id",
            ),
            (Box::new(|s| s.end_time_unix_nano = 5), "before start"),
            (Box::new(|s| s.name.clear()), "name is empty"),
            (
                Box::new(|s| s.attributes = vec![string_attr("a", 1); 3]),
                "3 attributes exceed",
            ),
            (
                Box::new(|s| s.attributes = vec![string_attr("a", 9)]),
                "over the limit",
            ),
            (
                Box::new(|s| {
                    s.events
                        .push(opentelemetry_proto::tonic::trace::v1::span::Event {
                            name: "e".into(),
                            attributes: vec![string_attr("a", 9)],
                            ..Default::default()
                        })
                }),
                "event \"e\" attributes",
            ),
        ];
        for (mutate, want) in cases {
            let mut s = good_span();
            mutate(&mut s);
            let p = span_problem(&s, &limits).unwrap_or_default();
            assert!(p.contains(want), "{p:?} should contain {want:?}");
        }
    }

    #[test]
    fn invalid_spans_are_removed_alone() {
        let limits = Limits::default();
        let mut bad = good_span();
        bad.name.clear();
        let mut rs = vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![good_span(), bad, good_span()],
                ..Default::default()
            }],
            ..Default::default()
        }];
        let rej = validate_spans(&mut rs, &limits);
        assert_eq!(rej.count, 1);
        assert_eq!(rs[0].scope_spans[0].spans.len(), 2);
        let m = rej.message("spans");
        assert!(m.starts_with("rejected 1 spans: span \"\""), "{m}");
    }

    #[test]
    fn an_oversize_resource_or_scope_rejects_its_items() {
        let limits = Limits {
            max_attributes: 4,
            max_attribute_value_length: 8,
            ..Default::default()
        };
        let mut rs = vec![
            ResourceSpans {
                resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                    attributes: vec![string_attr("service.name", 100)],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![good_span(), good_span()],
                    ..Default::default()
                }],
                ..Default::default()
            },
            ResourceSpans {
                scope_spans: vec![
                    ScopeSpans {
                        scope: Some(
                            opentelemetry_proto::tonic::common::v1::InstrumentationScope {
                                name: "x".repeat(9),
                                ..Default::default()
                            },
                        ),
                        spans: vec![good_span()],
                        ..Default::default()
                    },
                    ScopeSpans {
                        spans: vec![good_span()],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
        ];
        let rej = validate_spans(&mut rs, &limits);
        assert_eq!(rej.count, 3);
        let m = rej.message("spans");
        assert!(
            m.starts_with(
                "rejected 3 spans: resource attributes: value of \"service.name\" is 100 bytes"
            ),
            "{m}"
        );
        assert!(
            m.contains("its 2 spans") && m.contains("scope name or version"),
            "{m}"
        );
        assert!(!m.contains("more"), "{m}");
        assert_eq!(rs[1].scope_spans[1].spans.len(), 1);
        let mut long = good_span();
        long.name = "n".repeat(9);
        assert!(
            span_problem(&long, &limits)
                .unwrap()
                .contains("name of 9 bytes")
        );
    }

    #[test]
    fn message_names_first_problems_only() {
        let mut r = Rejections::default();
        for i in 0..8 {
            r.add(|| format!("p{i}"));
        }
        assert_eq!(
            r.message("spans"),
            "rejected 8 spans: p0; p1; p2; p3; p4; and 3 more"
        );
        assert_eq!(Rejections::default().message("spans"), "");
    }

    #[test]
    fn log_rules() {
        let limits = Limits {
            max_attributes: 4,
            max_attribute_value_length: 4,
            ..Default::default()
        };
        let ok = LogRecord::default();
        assert_eq!(log_problem(&ok, &limits), None);
        let r = LogRecord {
            trace_id: vec![0; 16],
            ..Default::default()
        };
        assert!(log_problem(&r, &limits).unwrap().contains("all zeros"));
        let r = LogRecord {
            span_id: vec![1; 3],
            ..Default::default()
        };
        assert!(
            log_problem(&r, &limits)
                .unwrap()
                .contains("span_id must be 8")
        );
        let r = LogRecord {
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue("too long".into())),
            }),
            ..Default::default()
        };
        assert!(log_problem(&r, &limits).unwrap().contains("body"));
    }
}

//! How much memory a protobuf OTLP request takes once decoded, estimated from its bytes
//! without decoding it: the intake budget reserves this, not the wire length.
//!
//! Why: an empty span is 2 bytes on the wire and a few hundred decoded (the `Span` struct,
//! its `Vec`s and `String`s), so one 16 MiB request of tiny spans decodes to gigabytes. The
//! wire format says where every field and sub-message is, and the OTLP schema says which
//! length-delimited fields are messages; [`decoded_size`] walks the bytes once (no
//! allocation, an explicit stack as deep as the nesting) and adds, for every sub-message,
//! the size of its Rust struct, and for every string, bytes or packed field its length
//! (eight bytes per element for the one packed varint field, exponential-histogram bucket
//! counts). Vec growth slack (up to 2× the item arrays) is not added.
//!
//! Invariants: the walk reads each byte at most once; nesting deeper than [`MAX_DEPTH`] or
//! bytes that are not protobuf give `None` (the decoder will refuse them anyway).

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as common;
use opentelemetry_proto::tonic::logs::v1 as logs;
use opentelemetry_proto::tonic::metrics::v1 as metrics;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as trace;

use super::Signal;

/// Deepest nesting walked (AnyValue arrays and maps nest).
pub const MAX_DEPTH: usize = 64;

/// The message types of OTLP export requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    TraceRequest,
    ResourceSpans,
    ScopeSpans,
    Span,
    Event,
    Link,
    Status,
    LogRequest,
    ResourceLogs,
    ScopeLogs,
    LogRecord,
    MetricRequest,
    ResourceMetrics,
    ScopeMetrics,
    Metric,
    /// Gauge and Sum: data points are NumberDataPoint.
    Numbers,
    Histogram,
    ExpHistogram,
    Summary,
    NumberPoint,
    HistogramPoint,
    ExpPoint,
    ExpBuckets,
    SummaryPoint,
    Quantile,
    Exemplar,
    Resource,
    Scope,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
    /// A message sieve does not look into (e.g. a resource's entity refs): its bytes only.
    Opaque,
}

use Node::*;

impl Node {
    /// The decoded struct's size.
    fn size(self) -> usize {
        use std::mem::size_of;
        match self {
            TraceRequest => size_of::<ExportTraceServiceRequest>(),
            ResourceSpans => size_of::<trace::ResourceSpans>(),
            ScopeSpans => size_of::<trace::ScopeSpans>(),
            Span => size_of::<trace::Span>(),
            Event => size_of::<trace::span::Event>(),
            Link => size_of::<trace::span::Link>(),
            Status => size_of::<trace::Status>(),
            LogRequest => size_of::<ExportLogsServiceRequest>(),
            ResourceLogs => size_of::<logs::ResourceLogs>(),
            ScopeLogs => size_of::<logs::ScopeLogs>(),
            LogRecord => size_of::<logs::LogRecord>(),
            MetricRequest => size_of::<ExportMetricsServiceRequest>(),
            ResourceMetrics => size_of::<metrics::ResourceMetrics>(),
            ScopeMetrics => size_of::<metrics::ScopeMetrics>(),
            Metric => size_of::<metrics::Metric>(),
            Numbers => size_of::<metrics::Sum>(),
            Histogram => size_of::<metrics::Histogram>(),
            ExpHistogram => size_of::<metrics::ExponentialHistogram>(),
            Summary => size_of::<metrics::Summary>(),
            NumberPoint => size_of::<metrics::NumberDataPoint>(),
            HistogramPoint => size_of::<metrics::HistogramDataPoint>(),
            ExpPoint => size_of::<metrics::ExponentialHistogramDataPoint>(),
            ExpBuckets => size_of::<metrics::exponential_histogram_data_point::Buckets>(),
            SummaryPoint => size_of::<metrics::SummaryDataPoint>(),
            Quantile => size_of::<metrics::summary_data_point::ValueAtQuantile>(),
            Exemplar => size_of::<metrics::Exemplar>(),
            Resource => size_of::<Resource>(),
            Scope => size_of::<common::InstrumentationScope>(),
            KeyValue => size_of::<common::KeyValue>(),
            AnyValue => size_of::<common::AnyValue>(),
            ArrayValue => size_of::<common::ArrayValue>(),
            KeyValueList => size_of::<common::KeyValueList>(),
            Opaque => 0,
        }
    }

    /// The message type of length-delimited field `field`, if it is a message.
    fn child(self, field: u64) -> Option<Node> {
        Some(match (self, field) {
            (TraceRequest, 1) => ResourceSpans,
            (ResourceSpans, 1) | (ResourceLogs, 1) | (ResourceMetrics, 1) => Resource,
            (ResourceSpans, 2) => ScopeSpans,
            (ScopeSpans, 1) | (ScopeLogs, 1) | (ScopeMetrics, 1) => Scope,
            (ScopeSpans, 2) => Span,
            (Span, 9) | (Event, 3) | (Link, 4) => KeyValue,
            (Span, 11) => Event,
            (Span, 13) => Link,
            (Span, 15) => Status,
            (LogRequest, 1) => ResourceLogs,
            (ResourceLogs, 2) => ScopeLogs,
            (ScopeLogs, 2) => LogRecord,
            (LogRecord, 5) => AnyValue,
            (LogRecord, 6) => KeyValue,
            (MetricRequest, 1) => ResourceMetrics,
            (ResourceMetrics, 2) => ScopeMetrics,
            (ScopeMetrics, 2) => Metric,
            (Metric, 5) | (Metric, 7) => Numbers,
            (Metric, 9) => Histogram,
            (Metric, 10) => ExpHistogram,
            (Metric, 11) => Summary,
            (Metric, 12) => KeyValue,
            (Numbers, 1) => NumberPoint,
            (Histogram, 1) => HistogramPoint,
            (ExpHistogram, 1) => ExpPoint,
            (Summary, 1) => SummaryPoint,
            (NumberPoint, 7) | (HistogramPoint, 9) | (ExpPoint, 1) | (SummaryPoint, 7) => KeyValue,
            (NumberPoint, 5) | (HistogramPoint, 8) | (ExpPoint, 11) => Exemplar,
            (ExpPoint, 8) | (ExpPoint, 9) => ExpBuckets,
            (SummaryPoint, 6) => Quantile,
            (Exemplar, 7) => KeyValue,
            (Resource, 1) | (Scope, 3) => KeyValue,
            (Resource, 3) => Opaque,
            (KeyValue, 2) => AnyValue,
            (AnyValue, 5) => ArrayValue,
            (AnyValue, 6) => KeyValueList,
            (ArrayValue, 1) => AnyValue,
            (KeyValueList, 1) => KeyValue,
            _ => return None,
        })
    }

    /// Heap bytes of a length-delimited field that is not a message, from its length.
    fn payload(self, field: u64, len: usize) -> usize {
        match (self, field) {
            // uint64 bucket counts, packed as varints: at least one byte each, eight decoded.
            (ExpBuckets, 2) => len.saturating_mul(8),
            _ => len,
        }
    }
}

/// An upper bound of what an OTLP JSON body takes decoded, from its bytes: every `{` can
/// open at most one struct, none larger than a span or a data point, and every string is at
/// most its JSON length. Conservative (strings holding `{` count too), cheap (one scan), and
/// exact in the case it exists for: a body of empty objects.
pub fn json_upper_bound(body: &[u8]) -> usize {
    use std::mem::size_of;
    let largest = size_of::<trace::Span>()
        .max(size_of::<logs::LogRecord>())
        .max(size_of::<metrics::HistogramDataPoint>())
        .max(size_of::<metrics::ExponentialHistogramDataPoint>());
    let objects = body.iter().filter(|b| **b == b'{').count();
    objects.saturating_mul(largest).saturating_add(body.len())
}

/// A varint at the start of `b`: its value and the rest.
fn varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

/// The estimated decoded size of a protobuf export request of `signal`, in bytes (`None`
/// when `body` is not a well-formed protobuf message).
pub fn decoded_size(signal: Signal, body: &[u8]) -> Option<usize> {
    let root = match signal {
        Signal::Traces => TraceRequest,
        Signal::Logs => LogRequest,
        Signal::Metrics => MetricRequest,
    };
    let mut total = root.size();
    let mut stack: Vec<(&[u8], Node)> = vec![(body, root)];
    while let Some((buf, node)) = stack.last_mut() {
        if buf.is_empty() {
            stack.pop();
            continue;
        }
        let node = *node;
        let (key, rest) = varint(buf)?;
        let (field, wire) = (key >> 3, key & 7);
        let next = match wire {
            0 => varint(rest)?.1,
            1 => rest.get(8..)?,
            5 => rest.get(4..)?,
            2 => {
                let (len, rest) = varint(rest)?;
                let len = usize::try_from(len).ok()?;
                let (data, after) = (rest.get(..len)?, rest.get(len..)?);
                *buf = after;
                match node.child(field) {
                    Some(child) => {
                        total = total.saturating_add(child.size());
                        if stack.len() >= MAX_DEPTH {
                            return None;
                        }
                        if child != Opaque {
                            stack.push((data, child));
                        } else {
                            total = total.saturating_add(len);
                        }
                    }
                    None => total = total.saturating_add(node.payload(field, len)),
                }
                continue;
            }
            _ => return None,
        };
        *buf = next;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn span(name: &str, attrs: usize) -> trace::Span {
        trace::Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: name.into(),
            attributes: (0..attrs)
                .map(|i| crate::otlp::string_kv(&format!("k{i}"), "v"))
                .collect(),
            ..Default::default()
        }
    }

    fn request(spans: &[trace::Span]) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![trace::ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![crate::otlp::string_kv("service.name", "svc")],
                    ..Default::default()
                }),
                scope_spans: vec![trace::ScopeSpans {
                    spans: spans.to_vec(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    /// The oracle: the same sum, from the decoded value.
    fn oracle(req: &ExportTraceServiceRequest) -> usize {
        use std::mem::size_of;
        let kv = |kvs: &[common::KeyValue]| -> usize {
            kvs.iter()
                .map(|kv| {
                    size_of::<common::KeyValue>()
                        + kv.key.len()
                        + kv.value.as_ref().map_or(0, |v| {
                            size_of::<common::AnyValue>()
                                + match &v.value {
                                    Some(common::any_value::Value::StringValue(s)) => s.len(),
                                    _ => 0,
                                }
                        })
                })
                .sum()
        };
        let mut n = size_of::<ExportTraceServiceRequest>();
        for rs in &req.resource_spans {
            n += size_of::<trace::ResourceSpans>();
            if let Some(r) = &rs.resource {
                n += size_of::<Resource>() + kv(&r.attributes);
            }
            for ss in &rs.scope_spans {
                n += size_of::<trace::ScopeSpans>();
                for s in &ss.spans {
                    n += size_of::<trace::Span>()
                        + s.trace_id.len()
                        + s.span_id.len()
                        + s.name.len()
                        + kv(&s.attributes);
                }
            }
        }
        n
    }

    #[test]
    fn the_estimate_is_what_the_decoded_request_holds() {
        let req = request(&[span("a", 0), span("GET /x", 3)]);
        let body = req.encode_to_vec();
        assert_eq!(decoded_size(Signal::Traces, &body), Some(oracle(&req)));
    }

    #[test]
    fn tiny_spans_weigh_far_more_than_their_bytes() {
        let spans: Vec<trace::Span> = (0..10_000).map(|_| trace::Span::default()).collect();
        let req = request(&spans);
        let body = req.encode_to_vec();
        let est = decoded_size(Signal::Traces, &body).unwrap();
        assert!(body.len() < 30_000, "{}", body.len());
        assert!(est >= 10_000 * std::mem::size_of::<trace::Span>(), "{est}");
    }

    #[test]
    fn json_bound_covers_the_decoded_size() {
        let req = request(&[span("GET /x", 3), trace::Span::default()]);
        let json = serde_json::to_vec(&req).unwrap();
        let decoded = decoded_size(Signal::Traces, &req.encode_to_vec()).unwrap();
        assert!(json_upper_bound(&json) >= decoded);
        let empties = format!(
            "{{\"resourceSpans\":[{{\"scopeSpans\":[{{\"spans\":[{}]}}]}}]}}",
            vec!["{}"; 1000].join(",")
        );
        assert!(json_upper_bound(empties.as_bytes()) >= 1000 * std::mem::size_of::<trace::Span>());
    }

    #[test]
    fn garbage_and_deep_nesting_give_none() {
        assert_eq!(decoded_size(Signal::Traces, &[0xff; 11]), None);
        assert_eq!(decoded_size(Signal::Logs, &[0x0a, 0x05, 0x01]), None);
        // AnyValue arrays nested past MAX_DEPTH.
        let mut v = common::AnyValue {
            value: Some(common::any_value::Value::StringValue("x".into())),
        };
        for _ in 0..MAX_DEPTH {
            v = common::AnyValue {
                value: Some(common::any_value::Value::ArrayValue(common::ArrayValue {
                    values: vec![v],
                })),
            };
        }
        let rec = logs::LogRecord {
            body: Some(v),
            ..Default::default()
        };
        let req = ExportLogsServiceRequest {
            resource_logs: vec![logs::ResourceLogs {
                scope_logs: vec![logs::ScopeLogs {
                    log_records: vec![rec],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(decoded_size(Signal::Logs, &req.encode_to_vec()), None);
        assert_eq!(
            decoded_size(Signal::Metrics, &[]),
            Some(Node::MetricRequest.size())
        );
    }
}

//! Small helpers over the OTLP types of `opentelemetry-proto`: the service name of a resource,
//! attribute lookup, a text form of `AnyValue`, severity names, id formatting. No I/O.

pub mod size;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

/// The three OTLP signals, as pipelines, counters and the store name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Signal {
    Traces,
    Logs,
    Metrics,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Logs, Signal::Metrics];

    /// The pipeline name: `traces`, `logs`, `metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }

    /// What one item of this signal is called.
    pub fn item(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Logs => "log records",
            Signal::Metrics => "data points",
        }
    }
}

/// What OpenTelemetry SDKs call a service that did not name itself.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// Every span under `resource_spans`, with its resource's service name.
pub fn spans(
    resource_spans: &[opentelemetry_proto::tonic::trace::v1::ResourceSpans],
) -> impl Iterator<Item = (&str, &opentelemetry_proto::tonic::trace::v1::Span)> {
    resource_spans.iter().flat_map(|rs| {
        let svc = service_name(rs.resource.as_ref());
        rs.scope_spans
            .iter()
            .flat_map(move |ss| ss.spans.iter().map(move |s| (svc, s)))
    })
}

/// Groups spans by trace, keeping each span under a copy of its resource and scope.
///
/// A hash map with a fast, randomly seeded hasher, for keys from one request (trace ids,
/// names) on the intake and analysis paths.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// A hash set like [`FastMap`].
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Used by the store (one chunk per trace per request) and the tail sampler (one buffer entry
/// per trace per request). Traces come out in order of first appearance. Spans whose trace id
/// is not 16 bytes are left out (validation has removed them before either runs).
pub fn by_trace(resource_spans: Vec<ResourceSpans>) -> Vec<([u8; 16], Vec<ResourceSpans>)> {
    let mut out: Vec<([u8; 16], Vec<ResourceSpans>)> = Vec::new();
    // Per group: the (resource, scope) position its last container came from.
    let mut last: Vec<(usize, usize)> = Vec::new();
    let mut index: FastMap<[u8; 16], usize> = Default::default();
    for (ri, mut rs) in resource_spans.into_iter().enumerate() {
        for (si, mut ss) in std::mem::take(&mut rs.scope_spans).into_iter().enumerate() {
            for span in std::mem::take(&mut ss.spans) {
                let Ok(tid) = <[u8; 16]>::try_from(span.trace_id.as_slice()) else {
                    continue;
                };
                let i = *index.entry(tid).or_insert_with(|| {
                    out.push((tid, Vec::new()));
                    last.push((usize::MAX, usize::MAX));
                    out.len() - 1
                });
                let group = &mut out[i].1;
                if last[i].0 != ri {
                    group.push(ResourceSpans {
                        resource: rs.resource.clone(),
                        scope_spans: Vec::new(),
                        schema_url: rs.schema_url.clone(),
                    });
                }
                if last[i] != (ri, si)
                    && let Some(r) = group.last_mut()
                {
                    r.scope_spans.push(ScopeSpans {
                        scope: ss.scope.clone(),
                        spans: Vec::new(),
                        schema_url: ss.schema_url.clone(),
                    });
                }
                last[i] = (ri, si);
                if let Some(sc) = group.last_mut().and_then(|r| r.scope_spans.last_mut()) {
                    sc.spans.push(span);
                }
            }
        }
    }
    out
}

/// `service.name` of a resource, or [`UNKNOWN_SERVICE`].
pub fn service_name(resource: Option<&Resource>) -> &str {
    resource
        .and_then(|r| string_attr(&r.attributes, "service.name"))
        .filter(|s| !s.is_empty())
        .unwrap_or(UNKNOWN_SERVICE)
}

/// The string value of attribute `key`, if it is a string.
pub fn string_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

/// A string attribute.
pub fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// A readable text form of a value: strings as they are, others in a JSON-like form.
pub fn any_value_text(v: Option<&AnyValue>) -> String {
    let mut out = String::new();
    write_any_value(&mut out, v, true);
    out
}

fn write_any_value(out: &mut String, v: Option<&AnyValue>, top: bool) {
    use std::fmt::Write as _;
    let Some(value) = v.and_then(|v| v.value.as_ref()) else {
        if !top {
            out.push_str("null");
        }
        return;
    };
    match value {
        any_value::Value::StringValue(s) => {
            if top {
                out.push_str(s)
            } else {
                let _ = write!(out, "{s:?}");
            }
        }
        any_value::Value::BoolValue(b) => {
            let _ = write!(out, "{b}");
        }
        any_value::Value::IntValue(i) => {
            let _ = write!(out, "{i}");
        }
        any_value::Value::DoubleValue(d) => {
            let _ = write!(out, "{d}");
        }
        any_value::Value::BytesValue(b) => out.push_str(&hex::encode(b)),
        any_value::Value::StringValueStrindex(i) => {
            let _ = write!(out, "<string table index {i}>");
        }
        any_value::Value::ArrayValue(a) => {
            out.push('[');
            for (i, v) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_any_value(out, Some(v), false);
            }
            out.push(']');
        }
        any_value::Value::KvlistValue(kv) => {
            out.push('{');
            for (i, kv) in kv.values.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{:?}: ", kv.key);
                write_any_value(out, kv.value.as_ref(), false);
            }
            out.push('}');
        }
    }
}

/// OTLP severity numbers of the named levels (the first number of each range).
pub const SEVERITY_LEVELS: [(&str, i32); 6] = [
    ("TRACE", 1),
    ("DEBUG", 5),
    ("INFO", 9),
    ("WARN", 13),
    ("ERROR", 17),
    ("FATAL", 21),
];

/// Parses a level name (`warn`, `WARNING`, `error`...) or a number 0..=24.
pub fn parse_severity(text: &str) -> Option<i32> {
    let t = text.trim().to_ascii_uppercase();
    if let Ok(n) = t.parse::<i32>() {
        return (0..=24).contains(&n).then_some(n);
    }
    let t = match t.as_str() {
        "WARNING" => "WARN",
        "CRITICAL" | "PANIC" => "FATAL",
        "ERR" => "ERROR",
        "INFORMATION" => "INFO",
        other => other,
    };
    SEVERITY_LEVELS
        .iter()
        .find(|(name, _)| *name == t)
        .map(|(_, n)| *n)
}

/// The severity number of a record: its number, or its text mapped when the number is unset.
pub fn effective_severity(number: i32, text: &str) -> i32 {
    if number > 0 {
        number
    } else {
        parse_severity(text).unwrap_or(0)
    }
}

/// The short name of a severity number (`WARN` for 13..=16).
pub fn severity_name(n: i32) -> &'static str {
    SEVERITY_LEVELS
        .iter()
        .rev()
        .find(|(_, start)| n >= *start)
        .map(|(name, _)| *name)
        .unwrap_or("UNSPECIFIED")
}

/// Parses a 32-hex-digit trace id.
pub fn parse_trace_id(text: &str) -> Result<[u8; 16], String> {
    let text = text.trim();
    let mut id = [0u8; 16];
    hex::decode_to_slice(text, &mut id)
        .map_err(|e| format!("trace id {text:?} is not 32 hex digits ({e})"))?;
    if id == [0u8; 16] {
        return Err("trace id is all zeros".into());
    }
    Ok(id)
}

/// A client-side gRPC codec that sends bytes as they are (a pre-encoded OTLP request, or
/// deliberately malformed bytes) and decodes the response with prost. Used by the loadgen,
/// which must not spend its CPU encoding, and by tests that send what no SDK would.
pub struct PreEncodedCodec<R>(std::marker::PhantomData<R>);

impl<R> Default for PreEncodedCodec<R> {
    fn default() -> Self {
        PreEncodedCodec(std::marker::PhantomData)
    }
}

impl<R: prost::Message + Default + Send + 'static> tonic::codec::Codec for PreEncodedCodec<R> {
    type Encode = bytes::Bytes;
    type Decode = R;
    type Encoder = BytesEncoder;
    type Decoder = <tonic_prost::ProstCodec<R, R> as tonic::codec::Codec>::Decoder;

    fn encoder(&mut self) -> Self::Encoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic::codec::Codec::decoder(&mut tonic_prost::ProstCodec::<R, R>::default())
    }
}

/// Writes bytes unchanged into the gRPC frame.
pub struct BytesEncoder;

impl tonic::codec::Encoder for BytesEncoder {
    type Item = bytes::Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: bytes::Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put(item);
        Ok(())
    }
}

/// Sends pre-encoded bytes to a unary gRPC method (`path` like
/// `/opentelemetry.proto.collector.trace.v1.TraceService/Export`) and decodes the answer.
pub async fn send_pre_encoded<R: prost::Message + Default + Send + 'static>(
    channel: tonic::transport::Channel,
    path: &'static str,
    body: bytes::Bytes,
) -> Result<R, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("channel not ready: {e}")))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    grpc.unary(
        tonic::Request::new(body),
        path,
        PreEncodedCodec::<R>::default(),
    )
    .await
    .map(tonic::Response::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    fn s(v: &str) -> AnyValue {
        AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }
    }

    #[test]
    fn service_name_falls_back() {
        assert_eq!(service_name(None), UNKNOWN_SERVICE);
        let r = Resource {
            attributes: vec![string_kv("service.name", "cart")],
            ..Default::default()
        };
        assert_eq!(service_name(Some(&r)), "cart");
    }

    #[test]
    fn value_text() {
        let v = AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![KeyValue {
                    key: "a".into(),
                    key_strindex: 0,
                    value: Some(AnyValue {
                        value: Some(any_value::Value::ArrayValue(ArrayValue {
                            values: vec![
                                s("x"),
                                AnyValue {
                                    value: Some(any_value::Value::IntValue(3)),
                                },
                            ],
                        })),
                    }),
                }],
            })),
        };
        assert_eq!(any_value_text(Some(&v)), r#"{"a": ["x", 3]}"#);
        assert_eq!(any_value_text(Some(&s("plain"))), "plain");
        assert_eq!(any_value_text(None), "");
    }

    #[test]
    fn severities() {
        assert_eq!(parse_severity("warn"), Some(13));
        assert_eq!(parse_severity("Warning"), Some(13));
        assert_eq!(parse_severity("17"), Some(17));
        assert_eq!(parse_severity("25"), None);
        assert_eq!(parse_severity("loud"), None);
        assert_eq!(severity_name(14), "WARN");
        assert_eq!(severity_name(0), "UNSPECIFIED");
        assert_eq!(effective_severity(0, "ERROR"), 17);
        assert_eq!(effective_severity(9, "ERROR"), 9);
    }

    #[test]
    fn trace_ids() {
        assert!(parse_trace_id("0af7651916cd43dd8448eb211c80319c").is_ok());
        assert!(parse_trace_id("0AF7651916CD43DD8448EB211C80319C").is_ok());
        assert!(parse_trace_id("xyz").is_err());
        assert!(parse_trace_id("00000000000000000000000000000000").is_err());
        assert!(parse_trace_id("0af7651916cd43dd8448eb211c80319c00").is_err());
    }

    #[test]
    fn by_trace_keeps_resources_and_scopes() {
        let span = |t: u8, id: u8| opentelemetry_proto::tonic::trace::v1::Span {
            trace_id: vec![t; 16],
            span_id: vec![id; 8],
            ..Default::default()
        };
        let mut rs = vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span(1, 1), span(2, 2), span(1, 3), span(0, 4)],
                ..Default::default()
            }],
            ..Default::default()
        }];
        // A span without a 16-byte trace id is left out.
        rs[0].scope_spans[0].spans[3].trace_id.truncate(3);
        rs[0].schema_url = "https://s".into();
        rs[0].resource = Some(opentelemetry_proto::tonic::resource::v1::Resource {
            attributes: vec![string_kv("service.name", "x")],
            ..Default::default()
        });
        let groups = by_trace(rs);
        assert_eq!(groups.len(), 2);
        let (tid, g) = &groups[0];
        assert_eq!(tid, &[1; 16]);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].schema_url, "https://s");
        assert_eq!(g[0].scope_spans.len(), 1);
        assert_eq!(g[0].scope_spans[0].spans.len(), 2);
        assert_eq!(service_name(g[0].resource.as_ref()), "x");
    }
}

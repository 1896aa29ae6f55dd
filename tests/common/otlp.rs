//! Builders for raw OTLP requests, for the tests that need exact ids, times and fields
//! (the SDK providers in `common` choose their own).

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

/// A resource naming its service.
pub fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![sieve::otlp::string_kv("service.name", service)],
        ..Default::default()
    })
}

/// A root span (no parent) of `trace_id` from `start` to `end` (unix nanoseconds); set the
/// other fields with struct update syntax.
pub fn span(trace_id: &[u8], span_id: &[u8], name: &str, start: u64, end: u64) -> Span {
    Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        name: name.into(),
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        ..Default::default()
    }
}

/// One service's spans as a request: one resource, one scope.
pub fn traces_request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    traces_by_service(vec![(service, spans)])
}

/// Several services' spans in one request, a resource each.
pub fn traces_by_service(groups: Vec<(&str, Vec<Span>)>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: groups
            .into_iter()
            .map(|(service, spans)| ResourceSpans {
                resource: resource(service),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
}

/// One service's log records as a request.
pub fn logs_request(service: &str, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    logs_by_service(vec![(service, records)])
}

/// Several services' log records in one request, a resource each.
pub fn logs_by_service(groups: Vec<(&str, Vec<LogRecord>)>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: groups
            .into_iter()
            .map(|(service, log_records)| ResourceLogs {
                resource: resource(service),
                scope_logs: vec![ScopeLogs {
                    log_records,
                    ..Default::default()
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
}

/// A log record at `time` with a string body; set the other fields with struct update
/// syntax.
pub fn log(time: u64, body: &str) -> LogRecord {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
    LogRecord {
        time_unix_nano: time,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body.into())),
        }),
        ..Default::default()
    }
}

/// Appends `v` as a protobuf varint.
pub fn varint(mut v: usize, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The protobuf of an export request with one resource and one scope whose `spans` field
/// entries (tag and length included) are `spans`: for requests too large to build as structs.
pub fn raw_traces_request(spans: &[u8]) -> Vec<u8> {
    let mut resource = vec![0x12]; // ResourceSpans.scope_spans (2)
    varint(spans.len(), &mut resource);
    resource.extend_from_slice(spans);
    let mut body = vec![0x0a]; // ExportTraceServiceRequest.resource_spans (1)
    varint(resource.len(), &mut body);
    body.extend_from_slice(&resource);
    body
}

//! Synthetic OTLP traffic for the loadgen and the benchmarks: realistic trace batches (10-30
//! spans per trace across five services, a handful of attributes per span, events on some,
//! a few errors), and log batches (a dozen kinds of line with fresh values). Not used by the
//! gateway itself.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span::Event};
use rand::Rng;

const SERVICES: [&str; 5] = ["frontend", "auth", "catalog", "inventory", "pricing"];
const OPERATIONS: [&str; 6] = [
    "GET /product/{id}",
    "POST /verify",
    "GET /item",
    "SELECT products",
    "GET /stock",
    "GET /price",
];

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

/// An export request of `spans` spans in whole traces of 10-30 spans (the last one may be
/// shorter), starting within the second before `now_ns`, grouped by service resource.
pub fn trace_request(rng: &mut impl Rng, spans: usize, now_ns: u64) -> ExportTraceServiceRequest {
    let mut per_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
    let mut made = 0;
    while made < spans {
        let n = rng.random_range(10..=30).min(spans - made);
        let tid: [u8; 16] = rng.random();
        let start = now_ns.saturating_sub(rng.random_range(0..1_000_000_000u64));
        let mut ids: Vec<[u8; 8]> = Vec::with_capacity(n);
        for i in 0..n {
            let sid: [u8; 8] = rng.random();
            let parent = if i == 0 {
                vec![]
            } else {
                ids[rng.random_range(0..ids.len())].to_vec()
            };
            ids.push(sid);
            let svc = if i == 0 {
                0
            } else {
                rng.random_range(0..SERVICES.len())
            };
            let s0 = start + i as u64 * 100_000;
            let dur = rng.random_range(50_000..50_000_000u64);
            let mut span = Span {
                trace_id: tid.to_vec(),
                span_id: sid.to_vec(),
                parent_span_id: parent,
                name: OPERATIONS[rng.random_range(0..OPERATIONS.len())].into(),
                kind: if i == 0 { 2 } else { 3 },
                start_time_unix_nano: s0,
                end_time_unix_nano: s0 + dur,
                attributes: vec![
                    kv("http.request.method", s("GET")),
                    kv("http.route", s("/product/{id}")),
                    kv(
                        "user.tier",
                        s(if rng.random_bool(0.2) {
                            "gold"
                        } else {
                            "standard"
                        }),
                    ),
                    kv(
                        "product.id",
                        any_value::Value::IntValue(rng.random_range(0..1000)),
                    ),
                    kv("server.port", any_value::Value::IntValue(443)),
                ],
                ..Default::default()
            };
            if rng.random_bool(0.1) {
                span.events.push(Event {
                    time_unix_nano: s0 + dur / 2,
                    name: "retry".into(),
                    attributes: vec![kv("attempt", any_value::Value::IntValue(2))],
                    ..Default::default()
                });
            }
            if rng.random_bool(0.02) {
                span.status = Some(Status {
                    code: 2,
                    message: "upstream reset".into(),
                });
            }
            per_service[svc].push(span);
        }
        made += n;
    }
    ExportTraceServiceRequest {
        resource_spans: per_service
            .into_iter()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .map(|(i, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", s(SERVICES[i])),
                        kv("service.version", s("1.4.2")),
                        kv("host.name", s("node-7")),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
}

/// An export request of `records` log records across the five services, each a line from
/// a dozen kinds of message with fresh values (ids, users, sizes, addresses, durations),
/// timestamped within the second before `now_ns`.
pub fn log_request(rng: &mut impl Rng, records: usize, now_ns: u64) -> ExportLogsServiceRequest {
    const USERS: [&str; 8] = [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
    ];
    let mut per_service: Vec<Vec<LogRecord>> = vec![Vec::new(); SERVICES.len()];
    for _ in 0..records {
        let n: u32 = rng.random_range(0..1_000_000);
        let user = USERS[rng.random_range(0..USERS.len())];
        let ip = format!("10.{}.{}.{}", n % 256, (n / 7) % 256, (n / 13) % 256);
        let line = match rng.random_range(0..12) {
            0 => format!("session opened for user {user} by (uid={})", n % 1000),
            1 => format!("GET /product/{} 200 in {} ms", n % 5000, n % 700),
            2 => format!("connection from {ip} port {} closed", 1024 + n % 60000),
            3 => format!("Received block blk_{n} of size {} from {ip}", n * 3),
            4 => format!("cache miss for key product:{n}, fetching from catalog"),
            5 => format!("payment {n} declined for user {user}: insufficient funds"),
            6 => format!(
                "retrying request {n} (attempt {} of 5) after {} ms",
                n % 5,
                n % 900
            ),
            7 => format!(
                "Worker thread-{} finished job {n} in {}.{} s",
                n % 16,
                n % 60,
                n % 1000
            ),
            8 => format!("disk /dev/sda{} is {}% full", n % 4, n % 100),
            9 => "health check passed".to_string(),
            10 => format!("user {user} logged out after {} minutes", n % 300),
            _ => format!(
                "slow query: SELECT * FROM orders WHERE id = {n} took {} ms",
                n % 5000
            ),
        };
        let rec = LogRecord {
            time_unix_nano: now_ns.saturating_sub(rng.random_range(0..1_000_000_000u64)),
            severity_number: 9,
            severity_text: "INFO".into(),
            body: Some(AnyValue {
                value: Some(s(&line)),
            }),
            ..Default::default()
        };
        per_service[rng.random_range(0..SERVICES.len())].push(rec);
    }
    ExportLogsServiceRequest {
        resource_logs: per_service
            .into_iter()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .map(|(i, log_records)| ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", s(SERVICES[i]))],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records,
                    ..Default::default()
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_has_the_asked_spans_and_all_are_valid() {
        let mut rng = rand::rng();
        let mut req = trace_request(&mut rng, 333, 10_000_000_000);
        let n = crate::otlp::spans(&req.resource_spans).count();
        assert_eq!(n, 333);
        let rej = crate::receiver::validate::validate_spans(
            &mut req.resource_spans,
            &crate::config::Limits::default(),
        );
        assert_eq!(rej.count, 0);
    }
}

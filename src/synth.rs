//! Synthetic OTLP traffic for the loadgen and the benchmarks. Not used by the gateway itself.
//!
//! - [`sdk_trace_request`]: what one OpenTelemetry SDK's batch exporter sends: one process's
//!   resource (the SDK's and host's attributes), spans of many traces under a few
//!   instrumentation scopes, each trace a local subtree (a SERVER span, its INTERNAL work and
//!   its HTTP and database CLIENT calls) with the semantic-convention attributes of its kind,
//!   1-2% errors with an exception event. About 330 bytes per span on the wire.
//! - [`trace_request`]: the older, leaner shape (10-30 spans per trace across five services
//!   in one request, a handful of attributes, about 200 bytes per span).
//! - [`log_request`]: log batches (a dozen kinds of line with fresh values).

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

/// Services an [`sdk_trace_request`] comes from, with their entry routes and the peers
/// they call.
const SDK_SERVICES: [(&str, &[&str], &[&str]); 6] = [
    (
        "frontend",
        &["/", "/product/{id}", "/cart", "/checkout"],
        &["catalog", "cart", "checkout"],
    ),
    (
        "catalog",
        &["/api/products", "/api/products/{id}"],
        &["postgres", "redis"],
    ),
    ("cart", &["/api/cart", "/api/cart/items"], &["redis"]),
    (
        "checkout",
        &["/api/checkout", "/api/orders"],
        &["payment", "postgres", "kafka"],
    ),
    ("payment", &["/api/charge"], &["bank-gateway"]),
    (
        "recommendation",
        &["/api/recommendations"],
        &["catalog", "redis"],
    ),
];

/// An export request as one SDK's batch exporter sends it: `spans` spans (the last trace may
/// be cut short) from one service (`which` picks it, modulo the list), in traces of 4-12
/// spans that started within the second before `now_ns`. Entry services' traces are roots;
/// the others' hang under a remote parent span id, as a downstream service's do.
pub fn sdk_trace_request(
    rng: &mut impl Rng,
    which: usize,
    spans: usize,
    now_ns: u64,
) -> ExportTraceServiceRequest {
    use any_value::Value::{IntValue, StringValue};
    let (service, routes, peers) = SDK_SERVICES[which % SDK_SERVICES.len()];
    let entry = which.is_multiple_of(SDK_SERVICES.len());
    let str_ = |v: &str| StringValue(v.to_string());
    let mut server_spans = Vec::new();
    let mut client_spans = Vec::new();
    let mut internal_spans = Vec::new();
    let mut made = 0;
    while made < spans {
        let n = rng.random_range(4..=12usize).min(spans - made);
        let trace_id: [u8; 16] = rng.random();
        let start = now_ns.saturating_sub(rng.random_range(0..1_000_000_000u64));
        let total = rng.random_range(2_000_000..80_000_000u64);
        let root_id: [u8; 8] = rng.random();
        let failed = rng.random_bool(0.015);
        let route = routes[rng.random_range(0..routes.len())];
        let path = route.replace("{id}", &rng.random_range(1..5000u32).to_string());
        let method = if route.contains("checkout") || route.contains("charge") {
            "POST"
        } else {
            "GET"
        };
        let status_code = if failed { 500 } else { 200 };
        let mut root = Span {
            trace_id: trace_id.to_vec(),
            span_id: root_id.to_vec(),
            parent_span_id: if entry {
                Vec::new()
            } else {
                rng.random::<[u8; 8]>().to_vec()
            },
            name: format!("{method} {route}"),
            kind: 2,
            start_time_unix_nano: start,
            end_time_unix_nano: start + total,
            attributes: vec![
                kv("http.request.method", str_(method)),
                kv("url.scheme", str_("http")),
                kv("url.path", str_(&path)),
                kv("http.route", str_(route)),
                kv("http.response.status_code", IntValue(status_code)),
                kv("server.address", str_(service)),
                kv("server.port", IntValue(8080)),
                kv("network.protocol.version", str_("1.1")),
                kv(
                    "client.address",
                    str_(&format!(
                        "10.0.{}.{}",
                        rng.random_range(0..8),
                        rng.random_range(2..250)
                    )),
                ),
                kv(
                    "user_agent.original",
                    str_("Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0"),
                ),
            ],
            flags: 0x100,
            ..Default::default()
        };
        if failed {
            root.status = Some(Status {
                code: 2,
                message: "Internal Server Error".into(),
            });
            root.events.push(Event {
                time_unix_nano: start + total - 1000,
                name: "exception".into(),
                attributes: vec![
                    kv("exception.type", str_("TimeoutError")),
                    kv("exception.message", str_("upstream call timed out after 5s")),
                    kv(
                        "exception.stacktrace",
                        str_("TimeoutError: upstream call timed out after 5s\n    at call (client.js:88:11)\n    at handler (routes.js:41:5)"),
                    ),
                ],
                ..Default::default()
            });
        }
        server_spans.push(root);
        // Children: work in this service and calls out of it, one after another.
        let step = total / n as u64;
        for i in 1..n {
            let s0 = start + i as u64 * step / 2 + rng.random_range(0..step / 4 + 1);
            let dur = rng.random_range(step / 4..step.max(2));
            let span_id: [u8; 8] = rng.random();
            let peer = peers[rng.random_range(0..peers.len())];
            let mut span = Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                parent_span_id: root_id.to_vec(),
                start_time_unix_nano: s0,
                end_time_unix_nano: s0 + dur,
                flags: 0x100,
                ..Default::default()
            };
            match (peer, rng.random_range(0..3)) {
                (_, 0) => {
                    span.name = format!("{service}.handle");
                    span.kind = 1;
                    span.attributes = vec![
                        kv("code.function.name", str_("handle")),
                        kv("code.namespace", str_(&format!("app.{service}"))),
                        kv("app.items", IntValue(rng.random_range(0..50))),
                    ];
                    internal_spans.push(span);
                }
                ("postgres", _) => {
                    let op = if rng.random_bool(0.8) {
                        "SELECT"
                    } else {
                        "UPDATE"
                    };
                    span.name = format!("{op} shop.orders");
                    span.kind = 3;
                    span.attributes = vec![
                        kv("db.system.name", str_("postgresql")),
                        kv("db.namespace", str_("shop")),
                        kv("db.operation.name", str_(op)),
                        kv("db.collection.name", str_("orders")),
                        kv(
                            "db.query.text",
                            str_(if op == "SELECT" {
                                "SELECT id, status, total FROM orders WHERE customer_id = $1"
                            } else {
                                "UPDATE orders SET status = $1 WHERE id = $2"
                            }),
                        ),
                        kv("server.address", str_("postgres")),
                        kv("server.port", IntValue(5432)),
                    ];
                    client_spans.push(span);
                }
                ("redis", _) => {
                    let op = if rng.random_bool(0.7) { "GET" } else { "SET" };
                    span.name = op.to_string();
                    span.kind = 3;
                    span.attributes = vec![
                        kv("db.system.name", str_("redis")),
                        kv("db.operation.name", str_(op)),
                        kv(
                            "db.query.text",
                            str_(&format!("{op} session:{}", rng.random_range(0..100_000u32))),
                        ),
                        kv("server.address", str_("redis")),
                        kv("server.port", IntValue(6379)),
                    ];
                    client_spans.push(span);
                }
                ("kafka", _) => {
                    span.name = "send orders".into();
                    span.kind = 4;
                    span.attributes = vec![
                        kv("messaging.system", str_("kafka")),
                        kv("messaging.operation.type", str_("send")),
                        kv("messaging.destination.name", str_("orders")),
                        kv("server.address", str_("kafka")),
                        kv("server.port", IntValue(9092)),
                    ];
                    client_spans.push(span);
                }
                (peer, _) => {
                    span.name = "GET".into();
                    span.kind = 3;
                    let code = if failed && i == n - 1 { 503 } else { 200 };
                    span.attributes = vec![
                        kv("http.request.method", str_("GET")),
                        kv(
                            "url.full",
                            str_(&format!(
                                "http://{peer}:8080/api/{}",
                                rng.random_range(0..100u32)
                            )),
                        ),
                        kv("server.address", str_(peer)),
                        kv("server.port", IntValue(8080)),
                        kv("http.response.status_code", IntValue(code)),
                        kv("network.protocol.version", str_("1.1")),
                    ];
                    if code >= 500 {
                        span.status = Some(Status {
                            code: 2,
                            message: String::new(),
                        });
                    }
                    client_spans.push(span);
                }
            }
        }
        made += n;
    }
    // What the Java agent and others add to every span: the thread that ran it.
    for span in server_spans
        .iter_mut()
        .chain(client_spans.iter_mut())
        .chain(internal_spans.iter_mut())
    {
        let t = rng.random_range(20..60);
        span.attributes.push(kv("thread.id", IntValue(t)));
        span.attributes
            .push(kv("thread.name", str_(&format!("http-nio-8080-exec-{t}"))));
    }
    let scope = |name: &str, version: &str, spans: Vec<Span>| ScopeSpans {
        scope: Some(
            opentelemetry_proto::tonic::common::v1::InstrumentationScope {
                name: name.into(),
                version: version.into(),
                ..Default::default()
            },
        ),
        spans,
        schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
    };
    let instance = format!("{service}-{:x}", rng.random::<u32>());
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", str_(service)),
                    kv("service.version", str_("2.3.1")),
                    kv("service.namespace", str_("shop")),
                    kv("service.instance.id", str_(&instance)),
                    kv("deployment.environment.name", str_("production")),
                    kv("host.name", str_(&format!("node-{}", which % 7))),
                    kv("host.arch", str_("amd64")),
                    kv("os.type", str_("linux")),
                    kv("process.pid", IntValue(rng.random_range(100..60_000))),
                    kv("process.runtime.name", str_("node")),
                    kv("process.runtime.version", str_("20.11.1")),
                    kv("telemetry.sdk.name", str_("opentelemetry")),
                    kv("telemetry.sdk.language", str_("nodejs")),
                    kv("telemetry.sdk.version", str_("1.30.0")),
                ],
                ..Default::default()
            }),
            scope_spans: [
                (
                    "@opentelemetry/instrumentation-http",
                    "0.57.0",
                    server_spans,
                ),
                (
                    "@opentelemetry/instrumentation-undici",
                    "0.10.0",
                    client_spans,
                ),
                ("shop-app", "2.3.1", internal_spans),
            ]
            .into_iter()
            .filter(|(_, _, v)| !v.is_empty())
            .map(|(n, v, spans)| scope(n, v, spans))
            .collect(),
            schema_url: String::new(),
        }],
    }
}

/// Where the ids of `req` sit in its encoding `bytes`, found in one pass: a trace id is
/// field 1 of a Span (tag 0x0a, length 16), a span id field 2 (0x12, 8), a parent span id
/// field 4 (0x22, 8); a match must also be one of the request's ids, so attribute bytes that
/// happen to look like a tag are left alone. Returns (offset, length) pairs.
pub fn id_offsets(req: &ExportTraceServiceRequest, bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut ids16 = std::collections::HashSet::new();
    let mut ids8 = std::collections::HashSet::new();
    for (_, s) in crate::otlp::spans(&req.resource_spans) {
        ids16.insert(s.trace_id.as_slice());
        ids8.insert(s.span_id.as_slice());
        if !s.parent_span_id.is_empty() {
            ids8.insert(s.parent_span_id.as_slice());
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 < bytes.len() {
        let (tag, len) = (bytes[i], bytes[i + 1] as usize);
        let hit = match (tag, len, bytes.get(i + 2..i + 2 + len)) {
            (0x0a, 16, Some(id)) => ids16.contains(id),
            (0x12 | 0x22, 8, Some(id)) => ids8.contains(id),
            _ => false,
        };
        if hit {
            out.push((i + 2, len));
            i += 2 + len;
        } else {
            i += 1;
        }
    }
    out
}

/// XORs the first 8 bytes of every id at `offsets` (from [`id_offsets`]) with `mask`: every
/// trace and span gets a new id, and a parent span id still names its parent.
pub fn mask_ids(bytes: &mut [u8], offsets: &[(usize, usize)], mask: [u8; 8]) {
    for &(at, _) in offsets {
        for (b, m) in bytes[at..at + 8].iter_mut().zip(mask) {
            *b ^= m;
        }
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
    use prost::Message;

    /// Masking the ids found in the bytes gives what masking them in the decoded request
    /// gives: every trace id, span id and parent span id, and nothing else.
    #[test]
    fn masked_ids_are_fresh_and_keep_their_links() {
        let mut rng = rand::rng();
        for req in [
            sdk_trace_request(&mut rng, 3, 100, 10_000_000_000),
            trace_request(&mut rng, 200, 10_000_000_000),
        ] {
            let mut bytes = req.encode_to_vec();
            let offsets = id_offsets(&req, &bytes);
            let mask = [1, 2, 3, 4, 5, 6, 7, 0x80];
            mask_ids(&mut bytes, &offsets, mask);
            let got = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
            let mut want = req.clone();
            let xor = |id: &mut Vec<u8>| {
                for (b, m) in id.iter_mut().zip(mask) {
                    *b ^= m;
                }
            };
            for rs in &mut want.resource_spans {
                for span in rs.scope_spans.iter_mut().flat_map(|ss| &mut ss.spans) {
                    xor(&mut span.trace_id);
                    xor(&mut span.span_id);
                    xor(&mut span.parent_span_id);
                }
            }
            assert_eq!(got, want);
        }
    }

    #[test]
    fn sdk_batches_are_one_service_valid_and_sdk_sized() {
        let mut rng = rand::rng();
        for (which, (service, _, _)) in SDK_SERVICES.iter().enumerate() {
            let mut req = sdk_trace_request(&mut rng, which, 100, 10_000_000_000);
            assert_eq!(req.resource_spans.len(), 1, "one process per SDK export");
            assert_eq!(crate::otlp::spans(&req.resource_spans).count(), 100);
            let per_span = req.encoded_len() / 100;
            assert!(
                (250..450).contains(&per_span),
                "{service} sends {per_span} bytes per span"
            );
            let rej = crate::receiver::validate::validate_spans(
                &mut req.resource_spans,
                &crate::config::Limits::default(),
            );
            assert_eq!(rej.count, 0);
        }
    }

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

//! A small multi-service shop instrumented with the official OpenTelemetry Rust SDK
//! (`opentelemetry`, `opentelemetry_sdk`, `opentelemetry-otlp`), sending traces and logs to
//! sieve over OTLP/gRPC.
//!
//! Five services in one process, each with its own tracer and logger provider (its own
//! `service.name`), calling each other through W3C trace-context headers as real services
//! would:
//!
//! ```text
//! frontend  GET /product ── auth  POST /verify                       (sequential)
//!                        ├─ catalog GET /item ── SELECT product (db) (parallel with pricing)
//!                        │                    └─ inventory GET /stock
//!                        └─ pricing GET /price ── compute discount
//! ```
//!
//! Each request is first planned (a tree of spans and log records with their times: jittered
//! work, the slow service's extra latency, the failing service's failures), then emitted
//! through the SDK with those timestamps. Log records go through the OpenTelemetry logs bridge
//! inside their span's context, so they carry its trace and span ids.
//!
//! Two modes:
//! - **live** (default): requests start at `--rate` per second of wall time for `--duration`,
//!   and each is emitted when its root span ends.
//! - **replay** (`--replay`): `--duration` of traffic (say an hour) with synthetic timestamps
//!   ending now, sent as fast as the gateway takes it. Every 5 s of event time all services
//!   flush, so no service's data runs more than that ahead of another's: the gateway's
//!   alerting `lateness` (30 s by default) covers it, and an hour is evaluated as if lived
//!   through. `--seed` makes a replay reproducible.
//!
//! `--fault-after` starts the fault (`--slow-service`, `--fail-service`) that far into the run,
//! and `--fault-for` ends it after that long.
//!
//! Run sieve, then:
//!
//! ```sh
//! cargo run --example demo -- --endpoint http://127.0.0.1:4317 --rate 20 --duration 30s
//! cargo run --example demo -- --slow-service pricing --slow-ms 250      # a bottleneck
//! cargo run --example demo -- --fail-service inventory --fail-rate 0.3  # an incident
//! cargo run --example demo -- --replay --duration 1h --rate 2 \
//!     --slow-service inventory --slow-ms 60 --fault-after 30m --fault-for 15m  # an hour in seconds
//! ```

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use clap::Parser;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{BatchLogProcessor, SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracer, SdkTracerProvider};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A multi-service demo app sending OTLP traces and logs.
#[derive(Parser, Debug, Clone)]
struct Args {
    /// OTLP/gRPC endpoint of sieve.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    /// Requests per second to the frontend (of event time in a replay).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// How long to run, or how much traffic to replay (e.g. 30s, 2m, 1h).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Replay: send `--duration` of traffic with synthetic timestamps ending now, as fast as
    /// the gateway takes it.
    #[arg(long)]
    replay: bool,
    /// Make this service slow (frontend, auth, catalog, inventory, pricing).
    #[arg(long)]
    slow_service: Option<String>,
    /// Extra latency of the slow service, in milliseconds.
    #[arg(long, default_value_t = 200)]
    slow_ms: u64,
    /// Make this service fail some of its requests.
    #[arg(long)]
    fail_service: Option<String>,
    /// Fraction of the failing service's requests that fail (0..=1).
    #[arg(long, default_value_t = 0.2)]
    fail_rate: f64,
    /// The fault starts this far into the run (e.g. 40m).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    fault_after: Duration,
    /// The fault lasts this long (until the end when not given).
    #[arg(long, value_parser = humantime::parse_duration)]
    fault_for: Option<Duration>,
    /// Seed of the jitter and failures (random when not given).
    #[arg(long)]
    seed: Option<u64>,
}

const SERVICES: [&str; 5] = ["frontend", "auth", "catalog", "inventory", "pricing"];

/// Event time between flushes of every service in a replay.
const REPLAY_FLUSH: Duration = Duration::from_secs(5);

/// One instrumented service.
struct Service {
    tracer: SdkTracer,
    logger: SdkLogger,
    tracer_provider: SdkTracerProvider,
    logger_provider: SdkLoggerProvider,
}

impl Service {
    fn new(name: &'static str, endpoint: &str) -> anyhow::Result<Service> {
        let resource = Resource::builder()
            .with_service_name(name)
            .with_attributes([
                KeyValue::new("service.version", "1.4.2"),
                KeyValue::new("deployment.environment", "demo"),
            ])
            .build();
        // A queue large enough that a replay's burst between flushes is never dropped.
        let span_exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()?;
        let spans = BatchSpanProcessor::builder(span_exporter)
            .with_batch_config(
                opentelemetry_sdk::trace::BatchConfigBuilder::default()
                    .with_max_queue_size(1 << 18)
                    .build(),
            )
            .build();
        let tracer_provider = SdkTracerProvider::builder()
            .with_span_processor(spans)
            .with_resource(resource.clone())
            .build();
        let log_exporter = opentelemetry_otlp::LogExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()?;
        let logs = BatchLogProcessor::builder(log_exporter)
            .with_batch_config(
                opentelemetry_sdk::logs::BatchConfigBuilder::default()
                    .with_max_queue_size(1 << 18)
                    .build(),
            )
            .build();
        let logger_provider = SdkLoggerProvider::builder()
            .with_log_processor(logs)
            .with_resource(resource)
            .build();
        Ok(Service {
            tracer: tracer_provider.tracer("shop"),
            logger: logger_provider.logger("shop"),
            tracer_provider,
            logger_provider,
        })
    }
}

/// A log record planned at time `at`.
struct PlannedLog {
    at: SystemTime,
    severity: Severity,
    body: String,
    attrs: Vec<(&'static str, AnyValue)>,
}

/// A span planned with its times; `remote` children are reached over "HTTP" (their context
/// crosses in W3C headers).
struct Planned {
    service: &'static str,
    name: String,
    kind: SpanKind,
    start: SystemTime,
    end: SystemTime,
    attrs: Vec<KeyValue>,
    error: Option<String>,
    logs: Vec<PlannedLog>,
    children: Vec<(bool, Planned)>,
}

impl Planned {
    fn new(
        service: &'static str,
        name: impl Into<String>,
        kind: SpanKind,
        start: SystemTime,
    ) -> Self {
        Planned {
            service,
            name: name.into(),
            kind,
            start,
            end: start,
            attrs: Vec::new(),
            error: None,
            logs: Vec::new(),
            children: Vec::new(),
        }
    }
}

/// The fault, when active.
struct Fault<'a> {
    slow: Option<(&'a str, Duration)>,
    fail: Option<(&'a str, f64)>,
}

/// Plans requests: jittered work, the fault's latency and failures.
struct Planner<'a> {
    rng: StdRng,
    fault: Fault<'a>,
}

fn ms(x: f64) -> Duration {
    Duration::from_micros((x * 1000.0) as u64)
}

/// The network between a client span and its server span, each way.
const HOP: Duration = Duration::from_micros(200);

impl Planner<'_> {
    /// About `base` milliseconds of work (±30%).
    fn work(&mut self, base: f64) -> Duration {
        ms(base * self.rng.random_range(0.7..1.3))
    }

    fn extra(&self, service: &str) -> Duration {
        match self.fault.slow {
            Some((s, d)) if s == service => d,
            _ => Duration::ZERO,
        }
    }

    /// A CLIENT span of `from` calling `to` at `start`; `handler` plans the SERVER span's
    /// work from its start and says whether it succeeded. Returns the client span and
    /// whether the call succeeded.
    fn call(
        &mut self,
        from: &'static str,
        to: &'static str,
        route: &'static str,
        start: SystemTime,
        handler: impl FnOnce(&mut Self, &mut Planned) -> bool,
    ) -> (Planned, bool) {
        let method = if route.starts_with("/verify") {
            "POST"
        } else {
            "GET"
        };
        let name = format!("{method} {route}");
        let mut client = Planned::new(from, name.clone(), SpanKind::Client, start);
        client.attrs = vec![
            KeyValue::new("server.address", to),
            KeyValue::new("url.path", route),
        ];
        let mut server = Planned::new(to, name, SpanKind::Server, start + HOP);
        server.attrs = vec![KeyValue::new("http.route", route)];
        server.end = server.start + self.extra(to);
        let mut ok = handler(self, &mut server);
        let fail_rate = match self.fault.fail {
            Some((s, r)) if s == to => r,
            _ => 0.0,
        };
        if ok && self.rng.random_bool(fail_rate) {
            ok = false;
            server.logs.push(PlannedLog {
                at: server.end,
                severity: Severity::Error,
                body: format!("{route} failed: upstream connection reset"),
                attrs: vec![("error.type", AnyValue::from("ECONNRESET"))],
            });
        }
        let status: i64 = if ok { 200 } else { 503 };
        server
            .attrs
            .push(KeyValue::new("http.response.status_code", status));
        client
            .attrs
            .push(KeyValue::new("http.response.status_code", status));
        if !ok {
            server.error = Some("service unavailable".into());
            client.error = Some(format!("{to} answered {status}"));
        }
        client.end = server.end + HOP;
        client.children.push((true, server));
        (client, ok)
    }

    /// Request `n`, starting at `start`.
    fn request(&mut self, n: u64, start: SystemTime) -> Planned {
        let product = n % 50;
        let mut root = Planned::new("frontend", "GET /product/{id}", SpanKind::Server, start);
        root.attrs = vec![
            KeyValue::new("http.route", "/product/{id}"),
            KeyValue::new("product.id", product as i64),
            KeyValue::new(
                "user.tier",
                if n.is_multiple_of(5) {
                    "gold"
                } else {
                    "standard"
                },
            ),
        ];
        let at = start + self.extra("frontend");

        // Sequential: authenticate first.
        let (auth, authed) = self.call("frontend", "auth", "/verify", at, |p, s| {
            s.end += p.work(4.0);
            true
        });
        let after_auth = auth.end;

        // Then catalog and pricing in parallel.
        let (catalog, cat_ok) = self.call("frontend", "catalog", "/item", after_auth, |p, s| {
            let mut db = Planned::new("catalog", "SELECT products", SpanKind::Client, s.end);
            db.attrs = vec![
                KeyValue::new("db.system", "postgresql"),
                KeyValue::new("db.query.text", "SELECT * FROM products WHERE id = $1"),
            ];
            db.end = db.start + p.work(12.0);
            let (stock, ok) = p.call("catalog", "inventory", "/stock", db.end, |p, s| {
                s.end += p.work(6.0);
                true
            });
            s.end = stock.end;
            s.children.push((false, db));
            s.children.push((false, stock));
            ok
        });
        let (pricing, price_ok) = self.call("frontend", "pricing", "/price", after_auth, |p, s| {
            let mut c = Planned::new("pricing", "compute discount", SpanKind::Internal, s.end);
            c.end = c.start + p.work(8.0);
            s.end = c.end;
            s.children.push((false, c));
            true
        });
        root.end = catalog.end.max(pricing.end);
        let ok = authed && cat_ok && price_ok;
        if ok {
            root.logs.push(PlannedLog {
                at: root.end,
                severity: Severity::Info,
                body: format!("served product {product}"),
                attrs: vec![("product.id", AnyValue::from(product as i64))],
            });
        } else {
            root.error = Some("dependency failed".into());
            root.logs.push(PlannedLog {
                at: root.end,
                severity: Severity::Warn,
                body: format!("degraded response for product {product}"),
                attrs: vec![],
            });
        }
        root.attrs.push(KeyValue::new(
            "http.response.status_code",
            if ok { 200i64 } else { 502 },
        ));
        for c in [auth, catalog, pricing] {
            root.children.push((false, c));
        }
        root
    }
}

struct Shop {
    services: HashMap<&'static str, Service>,
    propagator: TraceContextPropagator,
}

impl Shop {
    /// Emits a planned span tree through the SDK under `parent`, with its timestamps.
    fn emit(&self, p: &Planned, parent: &Context) {
        let svc = &self.services[p.service];
        let span = svc
            .tracer
            .span_builder(p.name.clone())
            .with_kind(p.kind.clone())
            .with_start_time(p.start)
            .with_attributes(p.attrs.clone())
            .start_with_context(&svc.tracer, parent);
        let cx = parent.with_span(span);
        for l in &p.logs {
            let _guard = cx.clone().attach();
            let mut rec = svc.logger.create_log_record();
            rec.set_timestamp(l.at);
            rec.set_observed_timestamp(l.at);
            rec.set_severity_number(l.severity);
            rec.set_severity_text(l.severity.name());
            rec.set_body(AnyValue::from(l.body.clone()));
            for (k, v) in &l.attrs {
                rec.add_attribute(*k, v.clone());
            }
            svc.logger.emit(rec);
        }
        for (remote, c) in &p.children {
            if *remote {
                // The callee, as if in another process: the context crosses in headers.
                let mut headers: HashMap<String, String> = HashMap::new();
                self.propagator.inject_context(&cx, &mut headers);
                self.emit(c, &self.propagator.extract(&headers));
            } else {
                self.emit(c, &cx);
            }
        }
        if let Some(e) = &p.error {
            cx.span().set_status(Status::error(e.clone()));
        }
        cx.span().end_with_timestamp(p.end);
    }

    /// Flushes every service's spans and logs (blocking); the number of failed exports.
    fn flush(&self) -> usize {
        let mut failed = 0;
        for (name, s) in &self.services {
            if let Err(e) = s.tracer_provider.force_flush() {
                eprintln!("{name}: span export: {e}");
                failed += 1;
            }
            if let Err(e) = s.logger_provider.force_flush() {
                eprintln!("{name}: log export: {e}");
                failed += 1;
            }
        }
        failed
    }

    /// Flushes and stops every provider; the number of failures.
    fn shutdown(&self) -> usize {
        let mut failed = 0;
        for (name, s) in &self.services {
            if let Err(e) = s.tracer_provider.shutdown() {
                eprintln!("{name}: span export: {e}");
                failed += 1;
            }
            if let Err(e) = s.logger_provider.shutdown() {
                eprintln!("{name}: log export: {e}");
                failed += 1;
            }
        }
        failed
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    for flag in [&args.slow_service, &args.fail_service]
        .into_iter()
        .flatten()
    {
        anyhow::ensure!(
            SERVICES.contains(&flag.as_str()),
            "unknown service {flag:?}; use one of {SERVICES:?}"
        );
    }
    anyhow::ensure!(
        args.rate > 0.0 && args.rate <= 1e6,
        "--rate must be in (0, 1000000]"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.fail_rate),
        "--fail-rate must be in 0..=1"
    );
    let mut services = HashMap::new();
    for name in SERVICES {
        services.insert(name, Service::new(name, &args.endpoint)?);
    }
    let shop = Shop {
        services,
        propagator: TraceContextPropagator::new(),
    };
    eprintln!(
        "demo: {} req/s for {:?} to {} (slow: {:?}, failing: {:?}, after {:?}{})",
        args.rate,
        args.duration,
        args.endpoint,
        args.slow_service,
        args.fail_service,
        args.fault_after,
        if args.replay { ", replayed" } else { "" }
    );
    let seed = args.seed.unwrap_or_else(|| rand::rng().random());
    let (n, failed) = if args.replay {
        tokio::task::spawn_blocking(move || {
            let (n, failed) = replay(&shop, &args, seed);
            (n, failed + shop.shutdown())
        })
        .await?
    } else {
        let n = live(&shop, &args, seed).await;
        (
            n,
            tokio::task::spawn_blocking(move || shop.shutdown()).await?,
        )
    };
    eprintln!("demo: sent {n} requests");
    // A lost batch would make the gateway's figures wrong without saying so.
    anyhow::ensure!(failed == 0, "{failed} exports failed");
    Ok(())
}

/// The fault at `offset` into the run.
fn fault(args: &Args, offset: Duration) -> Fault<'_> {
    let active =
        offset >= args.fault_after && args.fault_for.is_none_or(|d| offset < args.fault_after + d);
    if !active {
        return Fault {
            slow: None,
            fail: None,
        };
    }
    Fault {
        slow: args
            .slow_service
            .as_deref()
            .map(|s| (s, Duration::from_millis(args.slow_ms))),
        fail: args.fail_service.as_deref().map(|s| (s, args.fail_rate)),
    }
}

/// Live: a request every 1/rate s; each is emitted when it ends. Returns the count.
async fn live(shop: &Shop, args: &Args, seed: u64) -> u64 {
    let start = tokio::time::Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    let mut pending = Vec::new();
    let mut n = 0u64;
    while start.elapsed() < args.duration {
        tick.tick().await;
        let mut planner = Planner {
            rng: StdRng::seed_from_u64(rng.random()),
            fault: fault(args, start.elapsed()),
        };
        let plan = planner.request(n, SystemTime::now());
        let wait = plan
            .end
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        pending.push((tokio::time::Instant::now() + wait, plan));
        // Emit what has ended.
        let now = tokio::time::Instant::now();
        pending.retain(|(due, p)| {
            if *due <= now {
                shop.emit(p, &Context::new());
                false
            } else {
                true
            }
        });
        n += 1;
    }
    for (due, p) in pending {
        tokio::time::sleep_until(due).await;
        shop.emit(&p, &Context::new());
    }
    n
}

/// Replay: `duration` of traffic ending now, flushed every [`REPLAY_FLUSH`] of event time.
/// Returns the requests sent and the failed exports.
fn replay(shop: &Shop, args: &Args, seed: u64) -> (u64, usize) {
    let end = SystemTime::now();
    let start = end - args.duration;
    let mut rng = StdRng::seed_from_u64(seed);
    let gap = Duration::from_secs_f64(1.0 / args.rate);
    let mut next_flush = start + REPLAY_FLUSH;
    let mut n = 0u64;
    let mut failed = 0;
    loop {
        let offset = gap.mul_f64(n as f64);
        let at = start + offset;
        if at >= end {
            break;
        }
        if at >= next_flush {
            failed += shop.flush();
            next_flush += REPLAY_FLUSH;
        }
        let mut planner = Planner {
            rng: StdRng::seed_from_u64(rng.random()),
            fault: fault(args, offset),
        };
        let plan = planner.request(n, at);
        shop.emit(&plan, &Context::new());
        n += 1;
    }
    (n, failed)
}

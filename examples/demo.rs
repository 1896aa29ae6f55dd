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
//! Log records go through the OpenTelemetry logs bridge inside the active span, so they carry
//! its trace and span ids.
//!
//! Run sieve, then:
//!
//! ```sh
//! cargo run --example demo -- --endpoint http://127.0.0.1:4317 --rate 20 --duration 30s
//! cargo run --example demo -- --slow-service pricing --slow-ms 250      # a bottleneck
//! cargo run --example demo -- --fail-service inventory --fail-rate 0.3  # an incident
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    FutureExt as _, Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use rand::Rng;

/// A multi-service demo app sending OTLP traces and logs.
#[derive(Parser, Debug, Clone)]
struct Args {
    /// OTLP/gRPC endpoint of sieve.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    /// Requests per second to the frontend.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// How long to run (e.g. 30s, 2m).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
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
}

const SERVICES: [&str; 5] = ["frontend", "auth", "catalog", "inventory", "pricing"];

/// One instrumented service.
struct Service {
    name: &'static str,
    tracer: SdkTracer,
    logger: SdkLogger,
    tracer_provider: SdkTracerProvider,
    logger_provider: SdkLoggerProvider,
    /// Added latency per request (the --slow-service flag).
    extra: Duration,
    /// Probability that a request fails (the --fail-service flag).
    fail_rate: f64,
}

impl Service {
    fn new(name: &'static str, args: &Args) -> anyhow::Result<Service> {
        let resource = Resource::builder()
            .with_service_name(name)
            .with_attributes([
                KeyValue::new("service.version", "1.4.2"),
                KeyValue::new("deployment.environment", "demo"),
            ])
            .build();
        let span_exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(&args.endpoint)
            .build()?;
        let tracer_provider = SdkTracerProvider::builder()
            .with_batch_exporter(span_exporter)
            .with_resource(resource.clone())
            .build();
        let log_exporter = opentelemetry_otlp::LogExporter::builder()
            .with_tonic()
            .with_endpoint(&args.endpoint)
            .build()?;
        let logger_provider = SdkLoggerProvider::builder()
            .with_batch_exporter(log_exporter)
            .with_resource(resource)
            .build();
        Ok(Service {
            name,
            tracer: tracer_provider.tracer("shop"),
            logger: logger_provider.logger("shop"),
            tracer_provider,
            logger_provider,
            extra: if args.slow_service.as_deref() == Some(name) {
                Duration::from_millis(args.slow_ms)
            } else {
                Duration::ZERO
            },
            fail_rate: if args.fail_service.as_deref() == Some(name) {
                args.fail_rate.clamp(0.0, 1.0)
            } else {
                0.0
            },
        })
    }

    /// Emits a log record through the logs bridge in the context `cx` (its span's ids).
    fn log(
        &self,
        cx: &Context,
        severity: Severity,
        body: String,
        attrs: Vec<(&'static str, AnyValue)>,
    ) {
        let _guard = cx.clone().attach();
        let mut rec = self.logger.create_log_record();
        rec.set_severity_number(severity);
        rec.set_severity_text(severity.name());
        rec.set_body(AnyValue::from(body));
        for (k, v) in attrs {
            rec.add_attribute(k, v);
        }
        self.logger.emit(rec);
    }
}

struct Shop {
    services: HashMap<&'static str, Service>,
    propagator: TraceContextPropagator,
}

/// Jittered sleep of about `ms` milliseconds.
async fn work(ms: u64) {
    let jitter = rand::rng().random_range(0.7..1.3);
    tokio::time::sleep(Duration::from_micros((ms as f64 * 1000.0 * jitter) as u64)).await;
}

type Headers = HashMap<String, String>;

impl Shop {
    fn svc(&self, name: &str) -> &Service {
        &self.services[name]
    }

    /// A CLIENT span in `from` calling `to` over "HTTP": headers carry the trace context and
    /// `to` runs `handler` under a SERVER span. Returns whether the call succeeded.
    async fn call<F, Fut>(
        &self,
        cx: &Context,
        from: &str,
        to: &'static str,
        route: &'static str,
        handler: F,
    ) -> bool
    where
        F: FnOnce(Context) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let caller = self.svc(from);
        let span = caller
            .tracer
            .span_builder(format!(
                "{} {route}",
                if route.starts_with("/verify") {
                    "POST"
                } else {
                    "GET"
                }
            ))
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("server.address", to),
                KeyValue::new("url.path", route),
            ])
            .start_with_context(&caller.tracer, cx);
        let client_cx = cx.with_span(span);
        let mut headers = Headers::new();
        self.propagator.inject_context(&client_cx, &mut headers);

        // --- the callee, as if in another process ---
        let parent = self.propagator.extract(&headers);
        let callee = self.svc(to);
        let server_span = callee
            .tracer
            .span_builder(format!(
                "{} {route}",
                if route.starts_with("/verify") {
                    "POST"
                } else {
                    "GET"
                }
            ))
            .with_kind(SpanKind::Server)
            .with_attributes([KeyValue::new("http.route", route)])
            .start_with_context(&callee.tracer, &parent);
        let server_cx = parent.with_span(server_span);
        if !callee.extra.is_zero() {
            tokio::time::sleep(callee.extra).await;
        }
        let mut ok = handler(server_cx.clone())
            .with_context(server_cx.clone())
            .await;
        if ok && rand::rng().random_bool(callee.fail_rate) {
            ok = false;
            callee.log(
                &server_cx,
                Severity::Error,
                format!("{route} failed: upstream connection reset"),
                vec![("error.type", AnyValue::from("ECONNRESET"))],
            );
        }
        let status = if ok { 200 } else { 503 };
        server_cx
            .span()
            .set_attribute(KeyValue::new("http.response.status_code", status as i64));
        if !ok {
            server_cx
                .span()
                .set_status(Status::error("service unavailable"));
        }
        server_cx.span().end();
        // --- back in the caller ---
        client_cx
            .span()
            .set_attribute(KeyValue::new("http.response.status_code", status as i64));
        if !ok {
            client_cx
                .span()
                .set_status(Status::error(format!("{to} answered {status}")));
        }
        client_cx.span().end();
        ok
    }

    async fn request(self: Arc<Self>, n: u64) {
        let fe = self.svc("frontend");
        let product = n % 50;
        let root = fe
            .tracer
            .span_builder("GET /product/{id}")
            .with_kind(SpanKind::Server)
            .with_attributes([
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
            ])
            .start(&fe.tracer);
        let cx = Context::current_with_span(root);
        if !fe.extra.is_zero() {
            tokio::time::sleep(fe.extra).await;
        }

        // Sequential: authenticate first.
        let authed = self
            .call(&cx, "frontend", "auth", "/verify", |scx| async move {
                work(4).await;
                let _ = scx;
                true
            })
            .await;

        // Then catalog and pricing in parallel.
        let shop = self.clone();
        let catalog = self.call(&cx, "frontend", "catalog", "/item", |scx| {
            let shop = shop.clone();
            async move {
                let cat = shop.svc("catalog");
                let mut db = cat
                    .tracer
                    .span_builder("SELECT products")
                    .with_kind(SpanKind::Client)
                    .with_attributes([
                        KeyValue::new("db.system", "postgresql"),
                        KeyValue::new("db.query.text", "SELECT * FROM products WHERE id = $1"),
                    ])
                    .start_with_context(&cat.tracer, &scx);
                work(12).await;
                db.end();
                shop.call(&scx, "catalog", "inventory", "/stock", |icx| async move {
                    work(6).await;
                    let _ = icx;
                    true
                })
                .await
            }
        });
        let shop2 = self.clone();
        let pricing = self.call(&cx, "frontend", "pricing", "/price", |scx| {
            let shop = shop2.clone();
            async move {
                let p = shop.svc("pricing");
                let mut s = p
                    .tracer
                    .span_builder("compute discount")
                    .start_with_context(&p.tracer, &scx);
                work(8).await;
                s.end();
                true
            }
        });
        let (cat_ok, price_ok) = tokio::join!(catalog, pricing);
        let ok = authed && cat_ok && price_ok;
        if ok {
            fe.log(
                &cx,
                Severity::Info,
                format!("served product {product}"),
                vec![("product.id", AnyValue::from(product as i64))],
            );
        } else {
            cx.span().set_status(Status::error("dependency failed"));
            fe.log(
                &cx,
                Severity::Warn,
                format!("degraded response for product {product}"),
                vec![],
            );
        }
        cx.span().set_attribute(KeyValue::new(
            "http.response.status_code",
            if ok { 200i64 } else { 502 },
        ));
        cx.span().end();
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
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    let mut services = HashMap::new();
    for name in SERVICES {
        services.insert(name, Service::new(name, &args)?);
    }
    let shop = Arc::new(Shop {
        services,
        propagator: TraceContextPropagator::new(),
    });
    eprintln!(
        "demo: {} req/s for {:?} to {} (slow: {:?}, failing: {:?})",
        args.rate, args.duration, args.endpoint, args.slow_service, args.fail_service
    );
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    let mut n = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    while start.elapsed() < args.duration {
        tick.tick().await;
        tasks.spawn(shop.clone().request(n));
        n += 1;
    }
    while tasks.join_next().await.is_some() {}
    let shop = Arc::into_inner(shop).ok_or_else(|| anyhow::anyhow!("requests still running"))?;
    tokio::task::spawn_blocking(move || {
        for s in shop.services.values() {
            if let Err(e) = s.tracer_provider.shutdown() {
                eprintln!("{}: span export: {e}", s.name);
            }
            if let Err(e) = s.logger_provider.shutdown() {
                eprintln!("{}: log export: {e}", s.name);
            }
        }
    })
    .await?;
    eprintln!("demo: sent {n} requests");
    Ok(())
}

//! Wiring: build each stage from a validated [`Config`], bind the listeners, run, and stop in
//! order.
//!
//! One shutdown mechanism: [`start`] takes a future (ctrl-c/SIGTERM in `main`, a oneshot in
//! tests). When it completes, a `CancellationToken` stops the listeners: they refuse new
//! connections and finish the requests in flight, which still get their flush. Then the
//! background stages (each a [`Stage`] in one `JoinSet`) stop together: the flusher's last
//! flush, the analysis checkpoint, the tail buffer left on disk, the alerting engine with its
//! notifications drained, the sweeper. Then the exporters drain their queues for up to their
//! `drain_timeout` (what is left stays on disk), the store closes, and [`Gateway::wait`]
//! returns.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use crate::config::Config;
use crate::proto::query_service_server::QueryServiceServer;
use crate::query::Query;
use crate::query::metrics::{self, Health};
use crate::receiver::http::HttpReceiver;
use crate::receiver::{Logs, Metrics, Receiver, Traces};
use crate::receiver::{auth, conn};
use crate::stages::Stage;
use crate::stages::alerting::{AlertingStage, Engine};
use crate::stages::analysis::Analyzer;
use crate::stages::export::{ExportError, Exporters};
use crate::stages::intake::Intake;
use crate::stages::intake::memory;
use crate::stages::intake::pipeline::Pipeline;
use crate::stages::intake::sampling::Sampling;
use crate::stages::intake::tail_buffer::TailStage;
use crate::stages::retention::Sweeper;
use crate::store::keys::StateTree;
use crate::store::{Store, StoreError};
use crate::telemetry::{Stats, events};

/// Errors of starting or running the gateway.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the store at {path}: {source}")]
    Store { path: String, source: StoreError },
    #[error("{listener} server failed: {source}")]
    Transport {
        listener: &'static str,
        source: tonic::transport::Error,
    },
    #[error("a gateway task failed: {0}")]
    Task(String),
    #[error("cannot start the exporters: {0}")]
    Export(#[from] ExportError),
    #[error("cannot open the analysis state: {0}")]
    Analysis(#[from] crate::stages::analysis::AnalyzerError),
    #[error("cannot open the alerting state: {0}")]
    Alerting(#[from] crate::stages::alerting::AlertingError),
    #[error("cannot start the samplers: {0}")]
    Sampling(#[from] crate::stages::intake::sampling::SamplingError),
    #[error("{key}: {reason}")]
    Auth { key: &'static str, reason: String },
    #[error("{key}.tls: {source}")]
    Tls {
        key: &'static str,
        source: crate::receiver::tls::TlsError,
    },
}

/// A running gateway.
pub struct Gateway {
    /// Where the OTLP/gRPC receiver listens (the real port when the config said 0).
    pub otlp_addr: Option<SocketAddr>,
    /// Where the OTLP/HTTP receiver listens, when on.
    pub otlp_http_addr: Option<SocketAddr>,
    /// Where the query API listens.
    pub query_addr: SocketAddr,
    /// Where `/metrics` and the health endpoints are served, when on.
    pub metrics_addr: Option<SocketAddr>,
    /// The intake (tests use it to hold the budget).
    pub intake: Intake,
    /// The counters behind GetStats.
    pub stats: Arc<Stats>,
    done: JoinHandle<Result<(), ServeError>>,
}

impl Gateway {
    /// Waits until the gateway has stopped: listeners closed, last flush done.
    pub async fn wait(self) -> Result<(), ServeError> {
        self.done
            .await
            .map_err(|e| ServeError::Task(e.to_string()))?
    }
}

/// Opens the store, binds the listeners and starts every stage. Returns once listening.
pub async fn start(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Gateway, ServeError> {
    // Health answers from here on: live now, ready once every stage runs. The endpoints
    // stop if starting fails below (the guard is disarmed once the gateway runs).
    let health = Arc::new(Health::default());
    let stop_metrics = CancellationToken::new();
    let metrics_guard = stop_metrics.clone().drop_guard();
    let metrics_addr = serve_health(&config, &health, &stop_metrics).await?;
    let guard = Guard {
        tokens: Tokens::load(&config)?,
        tls: Tls::load(&config)?,
    };
    guard.warn_if_open(&config);
    let parts = Parts::open(&config)?;
    let listeners = Listeners::bind(&config).await?;
    let gateway = run(
        &config,
        parts,
        listeners,
        guard,
        health,
        shutdown,
        stop_metrics,
    );
    metrics_guard.disarm();
    Ok(Gateway {
        metrics_addr,
        ..gateway
    })
}

/// Starts `/metrics` with the health endpoints, and the `health_check` extension when on;
/// returns where `/metrics` listens.
async fn serve_health(
    config: &Config,
    health: &Arc<Health>,
    stop: &CancellationToken,
) -> Result<Option<SocketAddr>, ServeError> {
    let metrics_addr = match config.metrics_addr() {
        Some(addr) => {
            let (listener, local) = listen("metrics http", addr).await?;
            tokio::spawn(metrics::serve(listener, health.clone(), stop.clone()));
            Some(local)
        }
        None => None,
    };
    // (Validated config: the endpoint parses.)
    if let Some((h, addr)) = config
        .health_check()
        .and_then(|h| Some((h, h.endpoint.parse::<SocketAddr>().ok()?)))
    {
        let (listener, _) = listen("health_check", addr).await?;
        let (health, path, stop) = (health.clone(), h.path.clone(), stop.clone());
        tokio::spawn(async move {
            metrics::serve_health_check(listener, health, &path, stop).await;
        });
    }
    Ok(metrics_addr)
}

/// The bearer tokens each server accepts (`None`: no auth), read before anything runs.
struct Tokens {
    grpc: Option<Arc<auth::Tokens>>,
    http: Option<Arc<auth::Tokens>>,
    query: Option<Arc<auth::Tokens>>,
}

impl Tokens {
    fn load(config: &Config) -> Result<Tokens, ServeError> {
        let load = |key: &'static str, a: Option<&crate::config::Auth>| {
            config
                .tokens(a)
                .map(|t| t.map(|(scheme, tokens)| auth::Tokens::new(&scheme, &tokens)))
                .map_err(|reason| ServeError::Auth { key, reason })
        };
        Ok(Tokens {
            grpc: load(
                "receivers.otlp.protocols.grpc.auth",
                config.otlp_grpc().and_then(|g| g.auth.as_ref()),
            )?,
            http: load(
                "receivers.otlp.protocols.http.auth",
                config.otlp_http().and_then(|h| h.auth.as_ref()),
            )?,
            query: load("query.auth", config.query.auth.as_ref())?,
        })
    }
}

/// What each server checks of its clients: tokens and TLS.
struct Guard {
    tokens: Tokens,
    tls: Tls,
}

impl Guard {
    /// Warns of each listener on every interface with neither auth nor TLS.
    fn warn_if_open(&self, config: &Config) {
        let (t, tls) = (&self.tokens, &self.tls);
        for (name, addr, protected) in [
            (
                "otlp grpc",
                config.otlp_grpc_addr(),
                t.grpc.is_some() || tls.grpc.is_some(),
            ),
            (
                "otlp http",
                config.otlp_http_addr(),
                t.http.is_some() || tls.http.is_some(),
            ),
            (
                "query grpc",
                Some(config.query_addr()),
                t.query.is_some() || tls.query.is_some(),
            ),
        ] {
            if let Some(addr) = addr.filter(|a| a.ip().is_unspecified() && !protected) {
                events::ServerListenerUnprotected { name, addr }.emit();
            }
        }
    }
}

/// The TLS settings of each server, read before anything runs.
struct Tls {
    grpc: Option<tokio_rustls::TlsAcceptor>,
    http: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    query: Option<tokio_rustls::TlsAcceptor>,
}

impl Tls {
    fn load(config: &Config) -> Result<Tls, ServeError> {
        use crate::receiver::tls;
        let wrap = |key| move |source| ServeError::Tls { key, source };
        let grpc_key = "receivers.otlp.protocols.grpc";
        let http_key = "receivers.otlp.protocols.http";
        Ok(Tls {
            grpc: match config.otlp_grpc().and_then(|g| g.tls.as_ref()) {
                Some(t) => Some(tls::h2_acceptor(t).map_err(wrap(grpc_key))?),
                None => None,
            },
            http: match config.otlp_http().and_then(|h| h.tls.as_ref()) {
                Some(t) => Some(tls::server_config(t, &[b"http/1.1"]).map_err(wrap(http_key))?),
                None => None,
            },
            query: match config.query.tls.as_ref() {
                Some(t) => Some(tls::h2_acceptor(t).map_err(wrap("query"))?),
                None => None,
            },
        })
    }
}

/// The sockets bound before anything runs, so that a busy port fails the start.
struct Listeners {
    otlp: Option<(TcpListener, SocketAddr)>,
    otlp_http: Option<(TcpListener, SocketAddr)>,
    query: (TcpListener, SocketAddr),
}

impl Listeners {
    async fn bind(config: &Config) -> Result<Listeners, ServeError> {
        let otlp = match config.otlp_grpc_addr() {
            Some(addr) => Some(listen("otlp grpc", addr).await?),
            None => None,
        };
        let otlp_http = match config.otlp_http_addr() {
            Some(addr) => Some(listen("otlp http", addr).await?),
            None => None,
        };
        let query = listen("query grpc", config.query_addr()).await?;
        Ok(Listeners {
            otlp,
            otlp_http,
            query,
        })
    }
}

/// What the stages are made of, opened from the config: the store and the state each stage
/// keeps in it.
struct Parts {
    store: Store,
    stats: Arc<Stats>,
    intake: Intake,
    exporters: Arc<Exporters>,
    sampling: Arc<Sampling>,
    analyzer: Arc<Analyzer>,
    alerts: Arc<std::sync::Mutex<Engine>>,
}

impl Parts {
    fn open(config: &Config) -> Result<Parts, ServeError> {
        let store_error = |source| ServeError::Store {
            path: config.storage.path.display().to_string(),
            source,
        };
        let store = Store::open(&config.storage).map_err(store_error)?;
        let state_tree = |tree: StateTree| store.state_tree(tree).map_err(store_error);
        let intake = Intake::new(
            store.clone(),
            (config.intake.max_inflight_mib as usize).saturating_mul(1024 * 1024),
            config.intake.retry_delay,
            config.storage.sync,
        );
        Ok(Parts {
            stats: Arc::new(Stats::default()),
            intake,
            exporters: Arc::new(Exporters::open(config, &store)?),
            sampling: Arc::new(Sampling::open(config, &store)?),
            analyzer: Analyzer::open(
                &config.analysis,
                state_tree(StateTree::Analysis)?,
                state_tree(StateTree::LogClusters)?,
            )?,
            alerts: Arc::new(std::sync::Mutex::new(Engine::open(
                &config.alerting,
                state_tree(StateTree::Alerts)?,
                state_tree(StateTree::Incidents)?,
            )?)),
            store,
        })
    }
}

/// Starts the gRPC servers and the stages, and the one shutdown sequence: when `shutdown`
/// completes, the listeners close and finish their requests; then the background stages
/// stop (the flusher's last flush, the analysis checkpoint, the tail buffer left on disk);
/// then the exporters drain within their deadlines; then the store closes.
fn run(
    config: &Config,
    parts: Parts,
    listeners: Listeners,
    Guard { tokens, tls }: Guard,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    stop_metrics: CancellationToken,
) -> Gateway {
    let Parts {
        store,
        stats,
        intake,
        exporters,
        sampling,
        analyzer,
        alerts,
    } = parts;
    let stop_listeners = CancellationToken::new();
    let stop_background = CancellationToken::new();
    let drain_exporters = CancellationToken::new();

    let Listeners {
        otlp,
        otlp_http,
        query: (query_listener, query_addr),
    } = listeners;
    let otlp_addr = otlp.as_ref().map(|(_, a)| *a);
    let otlp_http_addr = otlp_http.as_ref().map(|(_, a)| *a);
    let memory = config
        .memory_limit(memory::total_bytes())
        .map(|(hard, spike, every)| memory::MemoryLimit::new(hard, spike, every));
    let receiver = config.receivers.otlp.as_ref().map(|otlp_cfg| {
        let pipeline = Pipeline::new(
            intake.clone(),
            stats.clone(),
            exporters.clone(),
            sampling.clone(),
            analyzer.clone(),
            memory.clone(),
        );
        Receiver::new(pipeline, otlp_cfg.limits.clone())
    });
    let otlp_server = match (otlp, config.otlp_grpc(), &receiver) {
        (Some((listener, _)), Some(grpc), Some(receiver)) => {
            let max = grpc.max_recv_msg_size_mib as usize * 1024 * 1024;
            let routes = Routes::new(receiver.service::<Traces>(max))
                .add_service(receiver.service::<Logs>(max))
                .add_service(receiver.service::<Metrics>(max));
            Some(serve_grpc(
                "otlp grpc",
                routes,
                listener,
                (
                    tokens.grpc.clone(),
                    tls.grpc.clone(),
                    grpc.handshake_timeout,
                ),
                &stop_listeners,
            ))
        }
        _ => None,
    };
    let otlp_http_server = match (otlp_http, config.otlp_http(), &receiver) {
        (Some((listener, _)), Some(http), Some(receiver)) => {
            let server = HttpReceiver::new(
                receiver.clone(),
                http,
                tokens.http.clone(),
                tls.http.clone(),
            );
            Some(tokio::spawn(server.serve(listener, stop_listeners.clone())))
        }
        _ => None,
    };
    let query = Query::new(
        store.clone(),
        stats.clone(),
        exporters.clone(),
        sampling.clone(),
        analyzer.clone(),
        alerts.clone(),
        config.query.search_depth,
    );
    health.started(
        query.clone(),
        metrics::Gauges {
            intake: intake.clone(),
            memory: memory.clone(),
            receiver: receiver.as_ref().map(|r| r.counters().clone()),
        },
    );
    let query_server = serve_grpc(
        "query grpc",
        Routes::new(QueryServiceServer::new(query)),
        query_listener,
        (
            tokens.query.clone(),
            tls.query.clone(),
            conn::HANDSHAKE_TIMEOUT,
        ),
        &stop_listeners,
    );

    let mut background = JoinSet::new();
    intake
        .clone()
        .spawn(&mut background, stop_background.clone());
    analyzer
        .clone()
        .spawn(&mut background, stop_background.clone());
    if let Some(sampler) = sampling.tail().cloned() {
        let tail = TailStage {
            sampler,
            store: store.clone(),
            exporters: exporters.clone(),
        };
        tail.spawn(&mut background, stop_background.clone());
    }
    if config.analysis.enabled && config.alerting.enabled {
        let stage = AlertingStage {
            engine: alerts,
            analyzer,
        };
        stage.spawn(&mut background, stop_background.clone());
    }
    if let Some(m) = memory {
        memory::MemoryWatch(m).spawn(&mut background, stop_background.clone());
    }
    let sweeper = Sweeper {
        store: store.clone(),
        interval: config.storage.sweep_interval,
    };
    sweeper.spawn(&mut background, stop_background.clone());
    let mut export = JoinSet::new();
    exporters.spawn(&mut export, drain_exporters.clone());

    let trigger = stop_listeners.clone();
    let stopping = health.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: closing listeners, finishing requests in flight");
        stopping.stopping();
        trigger.cancel();
    });

    let done = tokio::spawn(async move {
        let mut result = Ok(());
        if let Some(task) = otlp_server {
            result = result.and(flatten(task.await));
        }
        if let Some(task) = otlp_http_server {
            let _ = task.await;
        }
        result = result.and(flatten(query_server.await));
        // Listeners are closed and every request has been answered: last flush, the
        // analysis checkpoint; pending tail decisions stay in the buffer for the next start.
        stop_listeners.cancel();
        stop_background.cancel();
        background.join_all().await;
        // Nothing new can enter the queues: the exporters send what they can within their
        // drain timeouts; the rest stays queued on disk. Then their removals are flushed.
        tracing::debug!("listeners closed and flushed; draining exporters");
        drain_exporters.cancel();
        export.join_all().await;
        tracing::debug!("exporters stopped");
        if let Err(e) = store.close().await {
            events::IntakeWriteFailed { error: &e }.emit();
        }
        // Health answered "not ready" through the drain; now it lets go of the store and
        // goes too.
        health.close().await;
        stop_metrics.cancel();
        drop(store);
        tracing::info!("stopped");
        result
    });

    Gateway {
        otlp_addr,
        otlp_http_addr,
        query_addr,
        metrics_addr: None,
        intake,
        stats,
        done,
    }
}

/// Binds `addr` for the listener called `name` and says so.
async fn listen(
    name: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    events::ServerListenerStarted { name, addr: local }.emit();
    Ok((listener, local))
}

/// Serves `routes` on `listener` until `stop`, over TLS when given, refusing requests without
/// one of `tokens` when there are tokens; a server that fails stops the others too.
fn serve_grpc(
    name: &'static str,
    routes: Routes,
    listener: TcpListener,
    (tokens, tls, handshake_timeout): (
        Option<Arc<auth::Tokens>>,
        Option<tokio_rustls::TlsAcceptor>,
        Duration,
    ),
    stop: &CancellationToken,
) -> JoinHandle<Result<(), ServeError>> {
    let token = stop.clone();
    tokio::spawn(async move {
        let incoming = conn::incoming(listener, tls, handshake_timeout, token.clone());
        let result = tonic::transport::Server::builder()
            .max_concurrent_streams(Some(256))
            .layer(auth::grpc_layer(name, tokens))
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, token.clone().cancelled_owned())
            .await
            .map_err(|source| ServeError::Transport {
                listener: name,
                source,
            });
        stop_all_if_failed(&result, &token);
        result
    })
}

/// A listener that fails stops the others too, so the gateway exits (non-zero) instead of
/// running half-deaf.
fn stop_all_if_failed(result: &Result<(), ServeError>, listeners: &CancellationToken) {
    if let Err(e) = result {
        tracing::error!(error = %e, "listener failed; shutting down");
        listeners.cancel();
    }
}

fn flatten(r: Result<Result<(), ServeError>, tokio::task::JoinError>) -> Result<(), ServeError> {
    r.map_err(|e| ServeError::Task(e.to_string()))?
}

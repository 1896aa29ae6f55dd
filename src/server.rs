//! Wiring: build each stage from a validated [`Config`], bind the listeners, run, and stop in
//! order.
//!
//! One shutdown mechanism: [`start`] takes a future (ctrl-c/SIGTERM in `main`, a oneshot in
//! tests). When it completes, a `CancellationToken` stops the listeners: they refuse new
//! connections and finish the requests in flight, which still get their flush. Then the
//! flusher makes its last flush, the sweeper stops, the exporters drain their queues for up
//! to their `drain_timeout` (what is left stays on disk), and [`Gateway::wait`] returns.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::proto::query_service_server::QueryServiceServer;
use crate::query::Query;
use crate::query::metrics::{self, Health};
use crate::receiver::{Logs, Metrics, Receiver, Traces};
use crate::stages::analysis::Analyzer;
use crate::stages::export::{ExportError, Exporters};
use crate::stages::intake::Intake;
use crate::stages::intake::pipeline::Pipeline;
use crate::stages::intake::sampling::Sampling;
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
}

/// A running gateway.
pub struct Gateway {
    /// Where the OTLP/gRPC receiver listens (the real port when the config said 0).
    pub otlp_addr: Option<SocketAddr>,
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
    // Health answers from here on: live now, ready once every stage runs.
    let health = Arc::new(Health::default());
    // Stops the endpoint if starting fails below; disarmed once the gateway runs.
    let stop_metrics = CancellationToken::new();
    let metrics_guard = stop_metrics.clone().drop_guard();
    let metrics_addr = match config.metrics_addr() {
        Some(addr) => {
            let listener = bind(addr).await?;
            let local = listener
                .local_addr()
                .map_err(|source| ServeError::Bind { addr, source })?;
            events::ServerListenerStarted {
                name: "metrics http",
                addr: local,
            }
            .emit();
            tokio::spawn(metrics::serve(
                listener,
                health.clone(),
                stop_metrics.clone(),
            ));
            Some(local)
        }
        None => None,
    };
    let store = Store::open(&config.storage).map_err(|source| ServeError::Store {
        path: config.storage.path.display().to_string(),
        source,
    })?;
    let stats = Arc::new(Stats::default());
    let intake = Intake::new(
        store.clone(),
        (config.intake.max_inflight_mib as usize).saturating_mul(1024 * 1024),
        config.intake.retry_delay,
        config.storage.sync,
    );

    let exporters = Arc::new(Exporters::open(&config, &store)?);

    let sampling = Arc::new(Sampling::open(&config, &store)?);

    let state_tree = |tree: StateTree| {
        store.state_tree(tree).map_err(|source| ServeError::Store {
            path: config.storage.path.display().to_string(),
            source,
        })
    };
    let analyzer = Analyzer::open(
        &config.analysis,
        state_tree(StateTree::Analysis)?,
        state_tree(StateTree::LogClusters)?,
    )?;
    let alerts = Arc::new(std::sync::Mutex::new(
        crate::stages::alerting::Engine::open(
            &config.alerting,
            state_tree(StateTree::Alerts)?,
            state_tree(StateTree::Incidents)?,
        )?,
    ));

    let stop_listeners = CancellationToken::new();
    let stop_background = CancellationToken::new();

    // validate() has checked that an enabled receiver's endpoint parses.
    let otlp = match (
        config.otlp_grpc_addr(),
        config.otlp_grpc(),
        &config.receivers.otlp,
    ) {
        (Some(addr), Some(grpc), Some(otlp_cfg)) => {
            let listener = bind(addr).await?;
            let local = listener
                .local_addr()
                .map_err(|source| ServeError::Bind { addr, source })?;
            let max = grpc.max_recv_msg_size_mib as usize * 1024 * 1024;
            let pipeline = Pipeline::new(
                intake.clone(),
                stats.clone(),
                exporters.clone(),
                sampling.clone(),
                analyzer.clone(),
            );
            let receiver = Receiver::new(pipeline, otlp_cfg.limits.clone());
            let router = tonic::transport::Server::builder()
                .max_concurrent_streams(Some(256))
                .add_service(receiver.service::<Traces>(max))
                .add_service(receiver.service::<Logs>(max))
                .add_service(receiver.service::<Metrics>(max));
            let token = stop_listeners.clone();
            events::ServerListenerStarted {
                name: "otlp grpc",
                addr: local,
            }
            .emit();
            Some((
                local,
                tokio::spawn(async move {
                    let result = router
                        .serve_with_incoming_shutdown(
                            incoming(listener),
                            token.clone().cancelled_owned(),
                        )
                        .await
                        .map_err(|source| ServeError::Transport {
                            listener: "otlp grpc",
                            source,
                        });
                    stop_all_if_failed(&result, &token);
                    result
                }),
            ))
        }
        _ => None,
    };

    let query_addr = config.query_addr();
    let listener = bind(query_addr).await?;
    let query_local = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: query_addr,
        source,
    })?;
    let query = Query::new(
        store.clone(),
        stats.clone(),
        exporters.clone(),
        sampling.clone(),
        analyzer.clone(),
        alerts.clone(),
        config.query.search_depth,
    );
    let token = stop_listeners.clone();
    let metrics_query = query.clone();
    events::ServerListenerStarted {
        name: "query grpc",
        addr: query_local,
    }
    .emit();
    let query_task = tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .add_service(QueryServiceServer::new(query))
            .serve_with_incoming_shutdown(incoming(listener), token.clone().cancelled_owned())
            .await
            .map_err(|source| ServeError::Transport {
                listener: "query grpc",
                source,
            });
        stop_all_if_failed(&result, &token);
        result
    });

    let flusher = tokio::spawn(
        intake
            .clone()
            .run_flusher(stop_background.clone().cancelled_owned()),
    );
    let drain_exporters = CancellationToken::new();
    let exporter_task = {
        let (exporters, drain) = (exporters.clone(), drain_exporters.clone());
        tokio::spawn(async move { exporters.run(drain).await })
    };
    let tail_task = sampling
        .tail()
        .cloned()
        .map(|t| tokio::spawn(t.run(store.clone(), exporters.clone(), stop_background.clone())));
    let analysis_task = tokio::spawn(analyzer.clone().run(stop_background.clone()));
    let alerting_task = (config.analysis.enabled && config.alerting.enabled).then(|| {
        tokio::spawn(crate::stages::alerting::run(
            alerts.clone(),
            analyzer.clone(),
            stop_background.clone(),
        ))
    });
    let sweeper = tokio::spawn(crate::stages::retention::run(
        store.clone(),
        config.storage.sweep_interval,
        stop_background.clone().cancelled_owned(),
    ));

    health.started(metrics_query);
    metrics_guard.disarm();
    let trigger = stop_listeners.clone();
    let stopping = health.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: closing listeners, finishing requests in flight");
        stopping.stopping();
        trigger.cancel();
    });

    let otlp_addr = otlp.as_ref().map(|(a, _)| *a);
    let done = tokio::spawn(async move {
        let mut result = Ok(());
        if let Some((_, task)) = otlp {
            result = result.and(flatten(task.await));
        }
        result = result.and(flatten(query_task.await));
        // Listeners are closed and every request has been answered: last flush, then stop.
        stop_listeners.cancel();
        stop_background.cancel();
        let _ = flusher.await;
        let _ = sweeper.await;
        // Traces still assembling are analysed as they are, and the figures checkpointed.
        let _ = analysis_task.await;
        if let Some(t) = alerting_task {
            let _ = t.await;
        }
        // Pending tail decisions stay in the buffer on disk for the next start.
        if let Some(t) = tail_task {
            let _ = t.await;
        }
        // Nothing new can enter the queues: the exporters send what they can within their
        // drain timeouts; the rest stays queued on disk. Then their removals are flushed.
        tracing::debug!("listeners closed and flushed; draining exporters");
        drain_exporters.cancel();
        let _ = exporter_task.await;
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

    Ok(Gateway {
        otlp_addr,
        query_addr: query_local,
        metrics_addr,
        intake,
        stats,
        done,
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

/// Accepted connections with Nagle's algorithm off. tonic sets TCP_NODELAY only on listeners
/// it binds itself; without it a response written in two parts (headers, then a body larger
/// than one segment) waits for the client's delayed ACK, about 40 ms on Linux.
fn incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    TcpListenerStream::new(listener).map(|s| {
        s.inspect(|s| {
            let _ = s.set_nodelay(true);
        })
    })
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

fn flatten(r: Result<Result<(), ServeError>, tokio::task::JoinError>) -> Result<(), ServeError> {
    r.map_err(|e| ServeError::Task(e.to_string()))?
}

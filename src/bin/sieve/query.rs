//! `sieve query ...`: the query API's client. One function per command builds its request
//! from the arguments, sends it, and prints the answer as a table or, with `--json`, as JSON
//! (the formatting lives in `sieve::cli`).

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use sieve::cli;
use sieve::proto;
use sieve::proto::query_service_client::QueryServiceClient;

type Client = QueryServiceClient<InterceptedService<Channel, BearerToken>>;

/// Adds `Authorization: Bearer <token>` to every call when a token was given.
#[derive(Clone)]
struct BearerToken(Option<MetadataValue<Ascii>>);

impl Interceptor for BearerToken {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

#[derive(Args)]
pub struct QueryArgs {
    /// Query API address: `http://host:port`, or `host:port` (http is assumed).
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:4320",
        env = "SIEVE_ADDR"
    )]
    addr: String,
    /// CA (PEM) to check an `https://` query API with (default: the public web roots).
    #[arg(long, global = true, env = "SIEVE_CA_FILE")]
    ca_file: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for a query API that asks for one (mTLS); with --key-file.
    #[arg(long, global = true, requires = "key_file")]
    cert_file: Option<std::path::PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, global = true, requires = "cert_file")]
    key_file: Option<std::path::PathBuf>,
    /// Bearer token for a query API with `query.auth`.
    #[arg(long, global = true, env = "SIEVE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    what: QueryCommand,
}

#[derive(Subcommand)]
enum QueryCommand {
    /// Services with data within the retention window.
    Services,
    /// Operations (span names) of a service.
    Operations {
        /// The service.
        service: String,
    },
    /// Traces with a span matching every filter, newest first.
    Traces(TracesArgs),
    /// One trace as an indented span tree.
    Trace {
        /// 32 hex digits.
        trace_id: String,
    },
    /// Log records matching every filter, newest first.
    Logs(LogsArgs),
    /// The critical path of a stored trace.
    CriticalPath {
        /// 32 hex digits.
        trace_id: String,
        /// Sibling overlap tolerated as a fraction of the parent's duration, 0..=0.5.
        #[arg(long, default_value_t = 0.0)]
        tolerance: f64,
    },
    /// The gateway's counters.
    Stats,
    /// What each sampler saw and kept.
    Sampling,
    /// Operations ranked by their time on the critical path of every trace (before
    /// sampling), with the change against a baseline window: what is slow, what got slower.
    Bottlenecks(BottlenecksArgs),
    /// The projected end-to-end change if one operation were faster.
    WhatIf(WhatIfArgs),
    /// Edges between services (client/server and producer/consumer span pairs).
    Graph {
        #[command(flatten)]
        window: Window,
    },
    /// RED series of a service's operations: calls, errors, p50/p95/p99 per step.
    Metrics(MetricsArgs),
    /// Log template clusters with records in the window.
    Clusters(ClustersArgs),
    /// Alerts of the rules: pending, firing and recently resolved, highest priority first.
    Alerts {
        /// Only alerts in this state (default: all).
        #[arg(long, value_enum)]
        state: Option<AlertState>,
        /// Only alerts with this service label.
        #[arg(long)]
        service: Option<String>,
    },
    /// Incidents: firing alerts grouped by time, topology and correlation.
    Incidents {
        /// Only incidents in this state (default: both).
        #[arg(long, value_enum)]
        state: Option<IncidentState>,
        /// Only incidents active in the window (default: all kept).
        #[command(flatten)]
        window: Window,
    },
    /// One incident: its alerts, the suppressed ones, the root-cause ranking with evidence.
    Incident {
        /// The incident id.
        id: u64,
    },
    /// One log cluster: template, samples, trace ids, counts over time.
    Cluster {
        /// The cluster id (`log.template.id` on its records).
        id: u64,
        /// Width of a point, a multiple of 10s (default: about 60 points).
        #[arg(long, value_parser = cli::parse_duration)]
        step: Option<Duration>,
        #[command(flatten)]
        window: Window,
    },
}

#[derive(Args)]
struct ClustersArgs {
    /// Only this service's clusters.
    #[arg(long)]
    service: Option<String>,
    /// How to rank the clusters.
    #[arg(long, value_enum, default_value_t = ClusterOrder::Count)]
    order: ClusterOrder,
    /// Rows, 1..=1000.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    #[command(flatten)]
    window: Window,
}

#[derive(Args)]
struct BottlenecksArgs {
    /// Only this service's operations.
    #[arg(long)]
    service: Option<String>,
    /// Only this operation.
    #[arg(long)]
    operation: Option<String>,
    /// Compare with the window of this length just before (e.g. 1h).
    #[arg(long, value_parser = cli::parse_duration)]
    baseline: Option<Duration>,
    /// Rank call paths (root > ... > operation) instead of operations.
    #[arg(long)]
    by_call_path: bool,
    /// Rows, 1..=1000.
    #[arg(long, default_value_t = 10)]
    top: u32,
    #[command(flatten)]
    window: Window,
}

#[derive(Args)]
struct WhatIfArgs {
    /// The operation's service.
    #[arg(long)]
    service: String,
    /// The operation (span name).
    #[arg(long)]
    operation: String,
    /// How much faster: 30% or 0.3.
    #[arg(long, value_parser = cli::analysis::parse_speedup)]
    speedup: f64,
    #[command(flatten)]
    window: Window,
}

#[derive(Args)]
struct MetricsArgs {
    /// The service.
    #[arg(long)]
    service: String,
    /// Only this operation.
    #[arg(long)]
    operation: Option<String>,
    /// Width of a point, a multiple of 10s (default: about 60 points).
    #[arg(long, value_parser = cli::parse_duration)]
    step: Option<Duration>,
    #[command(flatten)]
    window: Window,
}

#[derive(Args)]
struct TracesArgs {
    /// Service of the matching span.
    #[arg(long)]
    service: String,
    /// Name of the matching span.
    #[arg(long)]
    operation: Option<String>,
    /// String attribute the matching span carries (repeatable).
    #[arg(long = "attr", value_parser = cli::parse_attr)]
    attrs: Vec<(String, String)>,
    /// Shortest duration of the matching span (50ms, 2s).
    #[arg(long, value_parser = cli::parse_duration)]
    min_duration: Option<Duration>,
    /// Longest duration of the matching span.
    #[arg(long, value_parser = cli::parse_duration)]
    max_duration: Option<Duration>,
    #[command(flatten)]
    window: Window,
    /// How many traces, 1..=1000.
    #[arg(long, default_value_t = 20)]
    limit: u32,
}

#[derive(Args)]
struct LogsArgs {
    /// Service (resource service.name).
    #[arg(long)]
    service: Option<String>,
    /// Minimum severity: TRACE, DEBUG, INFO, WARN, ERROR, FATAL or a number.
    #[arg(long, value_parser = cli::parse_severity)]
    severity: Option<i32>,
    /// Only records of this trace.
    #[arg(long)]
    trace_id: Option<String>,
    /// Substring of the body.
    #[arg(long)]
    contains: Option<String>,
    #[command(flatten)]
    window: Window,
    /// How many records, 1..=1000.
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

/// A duration in nanoseconds, saturating.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A time window: `--since 1h`, or `--start T --end T` (RFC 3339 or unix nanoseconds).
#[derive(Args)]
struct Window {
    /// Only data from this long ago until now.
    #[arg(long, value_parser = cli::parse_duration, conflicts_with_all = ["start", "end"])]
    since: Option<Duration>,
    /// Window start.
    #[arg(long, value_parser = cli::parse_time)]
    start: Option<u64>,
    /// Window end.
    #[arg(long, value_parser = cli::parse_time)]
    end: Option<u64>,
}

impl Window {
    /// A closed window for the analysis queries: [start, end) with end defaulting to now
    /// and start to `default` before end.
    fn resolve(&self, default: Duration) -> anyhow::Result<(u64, u64)> {
        let now = sieve::store::now_ns();
        if let Some(since) = self.since {
            return Ok((now.saturating_sub(nanos(since)).max(1), now));
        }
        let end = self.end.unwrap_or(now);
        let start = self
            .start
            .unwrap_or_else(|| end.saturating_sub(nanos(default)).max(1));
        if start >= end {
            bail!("--start is not before --end");
        }
        Ok((start, end))
    }

    /// (min, max) unix nanoseconds, 0 meaning unbounded.
    fn bounds(&self) -> anyhow::Result<(u64, u64)> {
        if let Some(since) = self.since {
            let now = sieve::store::now_ns();
            return Ok((now.saturating_sub(nanos(since)).max(1), 0));
        }
        let (start, end) = (self.start.unwrap_or(0), self.end.unwrap_or(0));
        if start != 0 && end != 0 && start > end {
            bail!("--start is after --end");
        }
        Ok((start, end))
    }
}

/// `--order` of `query clusters`.
#[derive(Clone, Copy, ValueEnum)]
enum ClusterOrder {
    /// Most records in the window first.
    Count,
    /// Most recently first seen first.
    Newest,
    /// Largest rise against the window before first.
    Growth,
}

/// `--state` of `query alerts`.
#[derive(Clone, Copy, ValueEnum)]
enum AlertState {
    /// The condition holds, but not yet for the rule's `for`.
    Pending,
    /// Firing: notified and part of an incident.
    Firing,
    /// Fired and stopped, kept for a while.
    Resolved,
}

/// `--state` of `query incidents`.
#[derive(Clone, Copy, ValueEnum)]
enum IncidentState {
    /// At least one alert still firing.
    Open,
    /// Every alert resolved.
    Resolved,
}

/// The name the query API takes for a choice (its clap name).
fn wire(choice: Option<impl ValueEnum>) -> String {
    choice
        .and_then(|c| c.to_possible_value())
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

/// Runs one query command against the gateway at `--addr`.
pub fn run(args: QueryArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let url = with_scheme(&args.addr);
        let tls = url.starts_with("https://");
        let mut endpoint = tonic::transport::Endpoint::from_shared(url)
            .with_context(|| format!("invalid --addr {:?}", args.addr))?
            .connect_timeout(Duration::from_secs(5));
        if tls {
            endpoint = endpoint
                .tls_config(client_tls(&args)?)
                .context("cannot set up TLS")?;
        }
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot reach sieve at {}", args.addr))?;
        let token = match &args.token {
            Some(t) => Some(
                MetadataValue::try_from(format!("Bearer {t}"))
                    .map_err(|_| anyhow!("--token holds characters a header cannot carry"))?,
            ),
            None => None,
        };
        let client = QueryServiceClient::with_interceptor(channel, BearerToken(token))
            .max_decoding_message_size(256 * 1024 * 1024);
        args.what.run(client, args.json).await
    })
}

impl QueryCommand {
    async fn run(self, c: Client, json: bool) -> anyhow::Result<()> {
        match self {
            QueryCommand::Services => services(c, json).await,
            QueryCommand::Operations { service } => operations(c, json, service).await,
            QueryCommand::Traces(t) => traces(c, json, t).await,
            QueryCommand::Trace { trace_id } => trace(c, json, trace_id).await,
            QueryCommand::Logs(l) => logs(c, json, l).await,
            QueryCommand::Stats => stats(c, json).await,
            QueryCommand::CriticalPath {
                trace_id,
                tolerance,
            } => critical_path(c, json, trace_id, tolerance).await,
            QueryCommand::Bottlenecks(b) => bottlenecks(c, json, b).await,
            QueryCommand::WhatIf(w) => what_if(c, json, w).await,
            QueryCommand::Graph { window } => graph(c, json, window).await,
            QueryCommand::Metrics(m) => metrics(c, json, m).await,
            QueryCommand::Clusters(a) => clusters(c, json, a).await,
            QueryCommand::Cluster { id, step, window } => cluster(c, json, id, step, window).await,
            QueryCommand::Incidents { state, window } => incidents(c, json, state, window).await,
            QueryCommand::Incident { id } => incident(c, json, id).await,
            QueryCommand::Alerts { state, service } => alerts(c, json, state, service).await,
            QueryCommand::Sampling => sampling(c, json).await,
        }
    }
}

/// The TLS of an `https://` --addr: --ca-file (else the public web roots) and the client
/// certificate.
fn client_tls(args: &QueryArgs) -> anyhow::Result<tonic::transport::ClientTlsConfig> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
    };
    let mut c = tonic::transport::ClientTlsConfig::new();
    c = match &args.ca_file {
        Some(ca) => c.ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?)),
        None => c.with_webpki_roots(),
    };
    if let (Some(cert), Some(key)) = (&args.cert_file, &args.key_file) {
        c = c.identity(tonic::transport::Identity::from_pem(
            read(cert)?,
            read(key)?,
        ));
    }
    Ok(c)
}

/// `addr` as a URL: `127.0.0.1:4320` becomes `http://127.0.0.1:4320`.
fn with_scheme(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// Prints a query's answer as JSON or text, or fails with its status.
fn answer<T>(
    json: bool,
    reply: Result<tonic::Response<T>, tonic::Status>,
    value: impl FnOnce(&T) -> Value,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    let r = reply
        .map_err(|s| anyhow!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    if json {
        println!("{}", serde_json::to_string_pretty(&value(&r))?);
    } else {
        print!("{}", text(&r));
    }
    Ok(())
}

async fn services(mut c: Client, json: bool) -> anyhow::Result<()> {
    let r = c.get_services(proto::GetServicesRequest {}).await;
    answer(
        json,
        r,
        |r| serde_json::json!(r.services),
        |r| cli::services_text(&r.services),
    )
}

async fn operations(mut c: Client, json: bool, service: String) -> anyhow::Result<()> {
    let request = proto::GetOperationsRequest {
        service_name: service,
    };
    let r = c.get_operations(request).await;
    answer(
        json,
        r,
        |r| cli::operations_json(&r.operations),
        |r| cli::operations_text(&r.operations),
    )
}

async fn traces(mut c: Client, json: bool, t: TracesArgs) -> anyhow::Result<()> {
    let (start, end) = t.window.bounds()?;
    let request = proto::FindTracesRequest {
        service_name: t.service,
        operation_name: t.operation.unwrap_or_default(),
        attributes: t.attrs.into_iter().collect(),
        start_time_min_unix_nano: start,
        start_time_max_unix_nano: end,
        duration_min_nanos: t.min_duration.map(nanos).unwrap_or(0),
        duration_max_nanos: t.max_duration.map(nanos).unwrap_or(0),
        limit: t.limit,
    };
    let r = c.find_traces(request).await;
    answer(
        json,
        r,
        |r| cli::traces_json(&r.traces),
        |r| cli::traces_text(&r.traces),
    )
}

async fn trace(mut c: Client, json: bool, trace_id: String) -> anyhow::Result<()> {
    let r = c.get_trace(proto::GetTraceRequest { trace_id }).await;
    answer(json, r, cli::trace_json, cli::trace_tree_text)
}

async fn logs(mut c: Client, json: bool, l: LogsArgs) -> anyhow::Result<()> {
    let (start, end) = l.window.bounds()?;
    let request = proto::SearchLogsRequest {
        service_name: l.service.unwrap_or_default(),
        min_severity_number: l.severity.unwrap_or(0),
        trace_id: l.trace_id.unwrap_or_default(),
        contains: l.contains.unwrap_or_default(),
        start_time_min_unix_nano: start,
        start_time_max_unix_nano: end,
        limit: l.limit,
    };
    let r = c.search_logs(request).await;
    answer(
        json,
        r,
        |r| cli::logs_json(&r.logs),
        |r| cli::logs_text(&r.logs),
    )
}

async fn stats(mut c: Client, json: bool) -> anyhow::Result<()> {
    let r = c.get_stats(proto::GetStatsRequest {}).await;
    answer(json, r, cli::stats_json, cli::stats_text)
}

async fn critical_path(
    mut c: Client,
    json: bool,
    trace_id: String,
    tolerance: f64,
) -> anyhow::Result<()> {
    let request = proto::GetCriticalPathRequest {
        trace_id,
        tolerance,
    };
    let r = c.get_critical_path(request).await;
    answer(
        json,
        r,
        cli::critical_path_response_json,
        cli::critical_path_response_text,
    )
}

async fn bottlenecks(mut c: Client, json: bool, b: BottlenecksArgs) -> anyhow::Result<()> {
    let (start, end) = b.window.resolve(Duration::from_secs(15 * 60))?;
    let (baseline_start, baseline_end) = match b.baseline {
        Some(d) => (start.saturating_sub(nanos(d)).max(1), start),
        None => (0, 0),
    };
    let request = proto::GetBottlenecksRequest {
        service: b.service.unwrap_or_default(),
        operation: b.operation.unwrap_or_default(),
        start_unix_nano: start,
        end_unix_nano: end,
        baseline_start_unix_nano: baseline_start,
        baseline_end_unix_nano: baseline_end,
        top_k: b.top,
        by_call_path: b.by_call_path,
    };
    let r = c.get_bottlenecks(request).await;
    answer(
        json,
        r,
        cli::analysis::bottlenecks_json,
        cli::analysis::bottlenecks_text,
    )
}

async fn what_if(mut c: Client, json: bool, w: WhatIfArgs) -> anyhow::Result<()> {
    let (start, end) = w.window.resolve(Duration::from_secs(15 * 60))?;
    let request = proto::WhatIfRequest {
        service: w.service.clone(),
        operation: w.operation.clone(),
        speedup: w.speedup,
        start_unix_nano: start,
        end_unix_nano: end,
    };
    let r = c.what_if(request).await;
    answer(json, r, cli::analysis::what_if_json, |r| {
        cli::analysis::what_if_text(&w.service, &w.operation, w.speedup, r)
    })
}

async fn graph(mut c: Client, json: bool, window: Window) -> anyhow::Result<()> {
    let (start, end) = window.resolve(Duration::from_secs(15 * 60))?;
    let request = proto::GetServiceGraphRequest {
        start_unix_nano: start,
        end_unix_nano: end,
    };
    let r = c.get_service_graph(request).await;
    answer(
        json,
        r,
        cli::analysis::graph_json,
        cli::analysis::graph_text,
    )
}

async fn metrics(mut c: Client, json: bool, m: MetricsArgs) -> anyhow::Result<()> {
    let (start, end) = m.window.resolve(Duration::from_secs(3600))?;
    let request = proto::GetSpanMetricsRequest {
        service: m.service,
        operation: m.operation.unwrap_or_default(),
        start_unix_nano: start,
        end_unix_nano: end,
        step_nanos: m.step.map(nanos).unwrap_or(0),
    };
    let r = c.get_span_metrics(request).await;
    answer(
        json,
        r,
        cli::analysis::metrics_json,
        cli::analysis::metrics_text,
    )
}

async fn clusters(mut c: Client, json: bool, a: ClustersArgs) -> anyhow::Result<()> {
    let (start, end) = a.window.resolve(Duration::from_secs(3600))?;
    let request = proto::ListLogClustersRequest {
        service: a.service.unwrap_or_default(),
        start_unix_nano: start,
        end_unix_nano: end,
        order: wire(Some(a.order)),
        limit: a.limit,
    };
    let r = c.list_log_clusters(request).await;
    answer(json, r, cli::logs::clusters_json, cli::logs::clusters_text)
}

async fn cluster(
    mut c: Client,
    json: bool,
    id: u64,
    step: Option<Duration>,
    window: Window,
) -> anyhow::Result<()> {
    let (start, end) = window.resolve(Duration::from_secs(3600))?;
    let request = proto::GetLogClusterRequest {
        id,
        start_unix_nano: start,
        end_unix_nano: end,
        step_nanos: step.map(nanos).unwrap_or(0),
    };
    let r = c.get_log_cluster(request).await;
    answer(json, r, cli::logs::cluster_json, cli::logs::cluster_text)
}

async fn incidents(
    mut c: Client,
    json: bool,
    state: Option<IncidentState>,
    window: Window,
) -> anyhow::Result<()> {
    let (start, end) = window.bounds()?;
    let request = proto::ListIncidentsRequest {
        state: wire(state),
        start_unix_nano: start,
        end_unix_nano: end,
    };
    let r = c.list_incidents(request).await;
    answer(
        json,
        r,
        cli::analysis::incidents_json,
        cli::analysis::incidents_text,
    )
}

async fn incident(mut c: Client, json: bool, id: u64) -> anyhow::Result<()> {
    let r = c.get_incident(proto::GetIncidentRequest { id }).await;
    answer(
        json,
        r,
        cli::analysis::incident_json,
        cli::analysis::incident_text,
    )
}

async fn alerts(
    mut c: Client,
    json: bool,
    state: Option<AlertState>,
    service: Option<String>,
) -> anyhow::Result<()> {
    let request = proto::ListAlertsRequest {
        state: wire(state),
        service: service.unwrap_or_default(),
    };
    let r = c.list_alerts(request).await;
    answer(
        json,
        r,
        cli::analysis::alerts_json,
        cli::analysis::alerts_text,
    )
}

async fn sampling(mut c: Client, json: bool) -> anyhow::Result<()> {
    let r = c
        .get_sampling_stats(proto::GetSamplingStatsRequest {})
        .await;
    answer(json, r, cli::sampling_json, cli::sampling_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_without_scheme_is_http() {
        assert_eq!(with_scheme("127.0.0.1:4320"), "http://127.0.0.1:4320");
        assert_eq!(with_scheme("http://[::1]:4320"), "http://[::1]:4320");
        assert_eq!(with_scheme("https://sieve:4320"), "https://sieve:4320");
    }

    /// The names `--help` lists are the ones the query API accepts.
    #[test]
    fn choices_are_the_query_api_names() {
        assert_eq!(wire(Some(ClusterOrder::Growth)), "growth");
        assert_eq!(wire(Some(AlertState::Firing)), "firing");
        assert_eq!(wire(Some(IncidentState::Open)), "open");
        assert_eq!(wire(None::<AlertState>), "");
    }
}

//! The `sieve` command: `serve` (the default) runs the gateway; `query ...` asks a running
//! gateway over its query API; `config check` validates a configuration file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use sieve::cli;
use sieve::config::{Config, LogFormat};
use sieve::proto::query_service_client::QueryServiceClient;
use sieve::proto::{
    FindTracesRequest, GetOperationsRequest, GetServicesRequest, GetStatsRequest, GetTraceRequest,
    SearchLogsRequest,
};

/// sieve — a telemetry gateway: OTLP in, durable storage, query.
///
/// With no subcommand, `sieve` serves with the embedded default configuration: OTLP/gRPC on
/// 127.0.0.1:4317, the query API on 127.0.0.1:4320, data in ./sieve-data.
#[derive(Parser)]
#[command(name = "sieve", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve(ServeArgs),
    /// Ask a running gateway.
    Query(QueryArgs),
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Offline analysis of telemetry files.
    #[command(subcommand)]
    Analyze(AnalyzeCommand),
    /// Log template clustering offline, with the server's clusterer and defaults.
    #[command(subcommand)]
    Logs(LogsCommand),
}

#[derive(Subcommand)]
enum LogsCommand {
    /// Cluster one log message per line of FILE (or standard input, `-` or no FILE); writes
    /// CSV `LineId,ClusterId,EventTemplate` to standard output.
    Cluster {
        /// The file, or `-`.
        file: Option<String>,
        /// Print the cluster count and lines per second to standard error.
        #[arg(long)]
        stats: bool,
    },
    /// Score the clusterer on the labelled Loghub-2k systems: grouping accuracy (GA) and
    /// parsing accuracy (PA) per system and on average.
    Evaluate {
        /// The loghub-2k directory (one folder per system).
        #[arg(
            long,
            env = "SIEVE_LOGHUB_DIR",
            default_value = "../shared/data/loghub-2k"
        )]
        data: PathBuf,
        /// Only these systems (repeatable).
        #[arg(long = "system")]
        systems: Vec<String>,
    },
}

#[derive(Subcommand)]
enum AnalyzeCommand {
    /// The critical path of every trace in FILE: OTLP JSON TracesData, one object or one per
    /// line (as the Collector's file exporter writes); `-` reads standard input.
    CriticalPath {
        /// The file, or `-`.
        file: String,
        /// One JSON object per trace and line: trace_id, sections, exclusive, warnings.
        #[arg(long)]
        json: bool,
        /// Sibling overlap tolerated as a fraction of the parent's duration (CRISP), 0..=0.5.
        #[arg(long, default_value_t = 0.0)]
        tolerance: f64,
    },
}

#[derive(Args, Clone, Default)]
struct ServeArgs {
    /// Configuration file (YAML). Without it the embedded default (config/sieve.yaml) is used.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Log line format; overrides service.telemetry.logs.format.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file without serving; exits non-zero naming the bad key.
    Check {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the embedded default configuration, with every option documented.
    Default,
}

#[derive(Args)]
struct QueryArgs {
    /// Query API address.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:4320",
        env = "SIEVE_ADDR"
    )]
    addr: String,
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
        /// pending, firing or resolved.
        #[arg(long)]
        state: Option<String>,
        /// Only alerts with this service label.
        #[arg(long)]
        service: Option<String>,
    },
    /// Incidents: firing alerts grouped by time, topology and correlation.
    Incidents {
        /// open or resolved.
        #[arg(long)]
        state: Option<String>,
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
    /// count, newest or growth.
    #[arg(long, default_value = "count")]
    order: String,
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

fn logs_cluster(file: Option<String>, stats: bool) -> anyhow::Result<()> {
    let params = sieve::log_templates::Params::default();
    let t = std::time::Instant::now();
    let stdout = std::io::stdout().lock();
    let out = std::io::BufWriter::new(stdout);
    let (lines, clusters) = match file.as_deref() {
        None | Some("-") => cli::logs::cluster_lines(std::io::stdin().lock(), out, params)?,
        Some(path) => {
            let f = std::fs::File::open(path).with_context(|| format!("cannot open {path}"))?;
            cli::logs::cluster_lines(std::io::BufReader::new(f), out, params)?
        }
    };
    if stats {
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "{lines} lines, {clusters} clusters, {:.0} lines/s",
            lines as f64 / secs.max(1e-9)
        );
    }
    Ok(())
}

fn logs_evaluate(data: &std::path::Path, systems: Vec<String>) -> anyhow::Result<()> {
    if !data.is_dir() {
        bail!(
            "{} is not a directory: pass --data DIR or set SIEVE_LOGHUB_DIR to the loghub-2k folder",
            data.display()
        );
    }
    let params = sieve::log_templates::Params::default();
    let systems: Vec<String> = if systems.is_empty() {
        cli::logs::SYSTEMS.iter().map(|s| s.to_string()).collect()
    } else {
        systems
    };
    let mut scores = Vec::new();
    for s in &systems {
        scores.push(cli::logs::evaluate(data, s, &params)?);
    }
    print!("{}", cli::logs::scores_text(&scores));
    Ok(())
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

/// mimalloc instead of glibc malloc: decoding, re-chunking and sled allocate many small
/// objects from both cores, and under the loadgen glibc's arenas took ~30% of the CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Query(args)) => query(args),
        Some(Command::Config(ConfigCommand::Check { file })) => match Config::from_file(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                Ok(())
            }
            Err(e) => {
                Err(anyhow!(e).context(format!("{} is not a valid configuration", file.display())))
            }
        },
        Some(Command::Analyze(AnalyzeCommand::CriticalPath {
            file,
            json,
            tolerance,
        })) => analyze_critical_path(&file, json, tolerance),
        Some(Command::Config(ConfigCommand::Default)) => {
            print!("{}", sieve::config::DEFAULT_CONFIG_YAML);
            Ok(())
        }
        Some(Command::Logs(LogsCommand::Cluster { file, stats })) => logs_cluster(file, stats),
        Some(Command::Logs(LogsCommand::Evaluate { data, systems })) => {
            logs_evaluate(&data, systems)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn analyze_critical_path(file: &str, json: bool, tolerance: f64) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..=0.5).contains(&tolerance),
        "--tolerance {tolerance} is outside 0..=0.5"
    );
    let text = if file == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("cannot read standard input")?;
        s
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?
    };
    let data = cli::parse_traces_json(&text).map_err(|e| anyhow!("{file}: {e}"))?;
    for t in cli::critical_paths(&data, tolerance) {
        let r = sieve::query::critical_path_response(&t);
        if json {
            println!("{}", cli::critical_path_response_json(&r));
        } else {
            println!("{}", cli::critical_path_response_text(&r));
        }
    }
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::from_yaml(sieve::config::DEFAULT_CONFIG_YAML)?,
    };
    let logs = &config.service.telemetry.logs;
    sieve::telemetry::init_logging(&logs.level, args.log_format.unwrap_or(logs.format));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let gateway = sieve::server::start(config, shutdown_signal()?).await?;
        gateway.wait().await?;
        Ok(())
    })
}

/// Registers SIGINT and SIGTERM handlers now (before any listener is up, so an early signal
/// is never lost to the default action) and returns a future that completes on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

fn query(args: QueryArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_query(args))
}

fn status_error(s: tonic::Status) -> anyhow::Error {
    anyhow!("{:?}: {}", s.code(), s.message())
}

fn print_out(
    json: bool,
    value: impl FnOnce() -> Value,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&value())?);
    } else {
        print!("{}", text());
    }
    Ok(())
}

/// Prints a query's answer as JSON or text, or fails with its status.
fn answer<T>(
    json: bool,
    reply: Result<tonic::Response<T>, tonic::Status>,
    value: impl FnOnce(&T) -> Value,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    let r = reply.map_err(status_error)?.into_inner();
    print_out(json, || value(&r), || text(&r))
}

async fn run_query(args: QueryArgs) -> anyhow::Result<()> {
    let endpoint = tonic::transport::Endpoint::from_shared(args.addr.clone())
        .with_context(|| format!("invalid --addr {:?}", args.addr))?
        .connect_timeout(Duration::from_secs(5));
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach sieve at {}", args.addr))?;
    let mut client = QueryServiceClient::new(channel).max_decoding_message_size(256 * 1024 * 1024);
    let json = args.json;
    match args.what {
        QueryCommand::Services => {
            let r = client.get_services(GetServicesRequest {}).await;
            answer(
                json,
                r,
                |r| serde_json::json!(r.services),
                |r| cli::services_text(&r.services),
            )
        }
        QueryCommand::Operations { service } => {
            let r = client
                .get_operations(GetOperationsRequest {
                    service_name: service,
                })
                .await;
            answer(
                json,
                r,
                |r| cli::operations_json(&r.operations),
                |r| cli::operations_text(&r.operations),
            )
        }
        QueryCommand::Traces(t) => {
            let (start, end) = t.window.bounds()?;
            let r = client
                .find_traces(FindTracesRequest {
                    service_name: t.service,
                    operation_name: t.operation.unwrap_or_default(),
                    attributes: t.attrs.into_iter().collect(),
                    start_time_min_unix_nano: start,
                    start_time_max_unix_nano: end,
                    duration_min_nanos: t.min_duration.map(nanos).unwrap_or(0),
                    duration_max_nanos: t.max_duration.map(nanos).unwrap_or(0),
                    limit: t.limit,
                })
                .await;
            answer(
                json,
                r,
                |r| cli::traces_json(&r.traces),
                |r| cli::traces_text(&r.traces),
            )
        }
        QueryCommand::Trace { trace_id } => {
            let r = client.get_trace(GetTraceRequest { trace_id }).await;
            answer(json, r, cli::trace_json, cli::trace_tree_text)
        }
        QueryCommand::Logs(l) => {
            let (start, end) = l.window.bounds()?;
            let r = client
                .search_logs(SearchLogsRequest {
                    service_name: l.service.unwrap_or_default(),
                    min_severity_number: l.severity.unwrap_or(0),
                    trace_id: l.trace_id.unwrap_or_default(),
                    contains: l.contains.unwrap_or_default(),
                    start_time_min_unix_nano: start,
                    start_time_max_unix_nano: end,
                    limit: l.limit,
                })
                .await;
            answer(
                json,
                r,
                |r| cli::logs_json(&r.logs),
                |r| cli::logs_text(&r.logs),
            )
        }
        QueryCommand::Stats => {
            let r = client.get_stats(GetStatsRequest {}).await;
            answer(json, r, cli::stats_json, cli::stats_text)
        }
        QueryCommand::CriticalPath {
            trace_id,
            tolerance,
        } => {
            let r = client
                .get_critical_path(sieve::proto::GetCriticalPathRequest {
                    trace_id,
                    tolerance,
                })
                .await;
            answer(
                json,
                r,
                cli::critical_path_response_json,
                cli::critical_path_response_text,
            )
        }
        QueryCommand::Bottlenecks(b) => {
            let (start, end) = b.window.resolve(Duration::from_secs(15 * 60))?;
            let (bs, be) = match b.baseline {
                Some(d) => (start.saturating_sub(nanos(d)).max(1), start),
                None => (0, 0),
            };
            let r = client
                .get_bottlenecks(sieve::proto::GetBottlenecksRequest {
                    service: b.service.unwrap_or_default(),
                    operation: b.operation.unwrap_or_default(),
                    start_unix_nano: start,
                    end_unix_nano: end,
                    baseline_start_unix_nano: bs,
                    baseline_end_unix_nano: be,
                    top_k: b.top,
                    by_call_path: b.by_call_path,
                })
                .await;
            answer(
                json,
                r,
                cli::analysis::bottlenecks_json,
                cli::analysis::bottlenecks_text,
            )
        }
        QueryCommand::WhatIf(w) => {
            let (start, end) = w.window.resolve(Duration::from_secs(15 * 60))?;
            let r = client
                .what_if(sieve::proto::WhatIfRequest {
                    service: w.service.clone(),
                    operation: w.operation.clone(),
                    speedup: w.speedup,
                    start_unix_nano: start,
                    end_unix_nano: end,
                })
                .await;
            answer(json, r, cli::analysis::what_if_json, |r| {
                cli::analysis::what_if_text(&w.service, &w.operation, w.speedup, r)
            })
        }
        QueryCommand::Graph { window } => {
            let (start, end) = window.resolve(Duration::from_secs(15 * 60))?;
            let r = client
                .get_service_graph(sieve::proto::GetServiceGraphRequest {
                    start_unix_nano: start,
                    end_unix_nano: end,
                })
                .await;
            answer(
                json,
                r,
                cli::analysis::graph_json,
                cli::analysis::graph_text,
            )
        }
        QueryCommand::Metrics(m) => {
            let (start, end) = m.window.resolve(Duration::from_secs(3600))?;
            let r = client
                .get_span_metrics(sieve::proto::GetSpanMetricsRequest {
                    service: m.service,
                    operation: m.operation.unwrap_or_default(),
                    start_unix_nano: start,
                    end_unix_nano: end,
                    step_nanos: m.step.map(nanos).unwrap_or(0),
                })
                .await;
            answer(
                json,
                r,
                cli::analysis::metrics_json,
                cli::analysis::metrics_text,
            )
        }
        QueryCommand::Clusters(c) => {
            let (start, end) = c.window.resolve(Duration::from_secs(3600))?;
            let r = client
                .list_log_clusters(sieve::proto::ListLogClustersRequest {
                    service: c.service.unwrap_or_default(),
                    start_unix_nano: start,
                    end_unix_nano: end,
                    order: c.order,
                    limit: c.limit,
                })
                .await;
            answer(json, r, cli::logs::clusters_json, cli::logs::clusters_text)
        }
        QueryCommand::Cluster { id, step, window } => {
            let (start, end) = window.resolve(Duration::from_secs(3600))?;
            let r = client
                .get_log_cluster(sieve::proto::GetLogClusterRequest {
                    id,
                    start_unix_nano: start,
                    end_unix_nano: end,
                    step_nanos: step.map(nanos).unwrap_or(0),
                })
                .await;
            answer(json, r, cli::logs::cluster_json, cli::logs::cluster_text)
        }
        QueryCommand::Incidents { state, window } => {
            let (start, end) = window.bounds()?;
            let r = client
                .list_incidents(sieve::proto::ListIncidentsRequest {
                    state: state.unwrap_or_default(),
                    start_unix_nano: start,
                    end_unix_nano: end,
                })
                .await;
            answer(
                json,
                r,
                cli::analysis::incidents_json,
                cli::analysis::incidents_text,
            )
        }
        QueryCommand::Incident { id } => {
            let r = client
                .get_incident(sieve::proto::GetIncidentRequest { id })
                .await;
            answer(
                json,
                r,
                cli::analysis::incident_json,
                cli::analysis::incident_text,
            )
        }
        QueryCommand::Alerts { state, service } => {
            let r = client
                .list_alerts(sieve::proto::ListAlertsRequest {
                    state: state.unwrap_or_default(),
                    service: service.unwrap_or_default(),
                })
                .await;
            answer(
                json,
                r,
                cli::analysis::alerts_json,
                cli::analysis::alerts_text,
            )
        }
        QueryCommand::Sampling => {
            let r = client
                .get_sampling_stats(sieve::proto::GetSamplingStatsRequest {})
                .await;
            answer(json, r, cli::sampling_json, cli::sampling_text)
        }
    }
}

//! The `sieve` command: `serve` (the default) runs the gateway; `query ...` asks a running
//! gateway over its query API; `config check` validates a configuration file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Parser, Subcommand};

use sieve::cli;
use sieve::config::{Config, LogFormat};

mod query;
use query::QueryArgs;

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
    Query(Box<QueryArgs>),
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

/// mimalloc instead of glibc malloc: decoding, re-chunking and sled allocate many small
/// objects from both cores, and under the loadgen glibc's arenas took ~30% of the CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Query(args)) => query::run(*args),
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

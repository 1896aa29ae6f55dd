//! sieve's configuration: the YAML file's shape, its defaults, `${env:NAME}` expansion and
//! validation.
//!
//! The structs below are the reference documentation of every option: `config/sieve.yaml`
//! repeats them with comments and is the embedded default (a test parses it against these
//! structs). The file follows the OpenTelemetry Collector's layout — `receivers`, `processors`,
//! `exporters`, `service` with `pipelines` — plus sieve's own `storage`, `intake` and `query`
//! sections. Every struct denies unknown keys, and every error names the key it is about
//! (`storage.retention: invalid duration ...`).
//!
//! Config is inert: parsing and validating here starts nothing; `server::serve` builds the running
//! stages from a validated [`Config`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub mod alerting;

/// The embedded default configuration (`config/sieve.yaml`), used when no `--config` is given.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("../../config/sieve.yaml");

/// Errors of loading a configuration. Each names the key or the place it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The text is not YAML.
    #[error("config is not valid YAML: {0}")]
    Yaml(String),
    /// `${env:NAME}` names a variable that is not set and has no `:-default`.
    #[error(
        "{key}: environment variable {name} is not set (write ${{env:{name}:-default}} to give a default)"
    )]
    MissingEnv { key: String, name: String },
    /// `${env:` without a closing brace, or an empty name.
    #[error("{key}: malformed ${{env:...}} reference in {value:?}")]
    BadEnvRef { key: String, value: String },
    /// Deserialisation failed at `key` (unknown key, wrong type, bad duration...).
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Receivers by name. sieve has one receiver type, `otlp`.
    pub receivers: Receivers,
    /// Processors by name (`type` or `type/name` keys as in the Collector): `probabilistic_sampler`
    /// (consistent head sampling of traces and logs). A processor does nothing until a
    /// pipeline names it.
    #[serde(deserialize_with = "typed_map::deserialize")]
    pub processors: BTreeMap<String, Processor>,
    /// Exporters by name: `<type>` or `<type>/<name>` as in the Collector, with type `otlp`,
    /// `otlphttp`, `debug` or `file`. An exporter does nothing until a pipeline names it.
    #[serde(deserialize_with = "typed_map::deserialize")]
    pub exporters: BTreeMap<String, Exporter>,
    /// Pipelines and the gateway's own telemetry.
    pub service: Service,
    /// The sled store: where data lives, how durable an acknowledgement is, how long data is kept.
    pub storage: Storage,
    /// Limits between the receivers and the store (backpressure).
    pub intake: Intake,
    /// The query gRPC API.
    pub query: Query,
    /// Trace analysis on 100% of spans before sampling: RED span metrics, service graph,
    /// critical paths and bottleneck aggregates.
    pub analysis: Analysis,
    /// Alert rules over the analysis signals, incidents and notifications.
    pub alerting: alerting::Alerting,
}

/// `receivers:` — only `otlp` exists.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Receivers {
    /// The OTLP receiver. Omit it (or set it to null) to run without one.
    pub otlp: Option<OtlpReceiver>,
}

impl Default for Receivers {
    fn default() -> Self {
        Receivers {
            otlp: Some(OtlpReceiver::default()),
        }
    }
}

/// `receivers.otlp`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpReceiver {
    /// Wire protocols.
    pub protocols: Protocols,
    /// Per-item validation limits.
    pub limits: Limits,
}

/// `receivers.otlp.protocols`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Protocols {
    /// OTLP/gRPC (TraceService, LogsService, MetricsService).
    pub grpc: Option<GrpcProtocol>,
}

impl Default for Protocols {
    fn default() -> Self {
        Protocols {
            grpc: Some(GrpcProtocol::default()),
        }
    }
}

/// `receivers.otlp.protocols.grpc`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcProtocol {
    /// Address to listen on. Default `127.0.0.1:4317` (local only, as the Collector since
    /// v0.104); `0.0.0.0:4317` is an explicit choice. Port 0 picks a free port.
    pub endpoint: String,
    /// Largest accepted request, after decompression, in MiB. Default 16. Range 1..=1024.
    pub max_recv_msg_size_mib: u64,
}

impl Default for GrpcProtocol {
    fn default() -> Self {
        GrpcProtocol {
            endpoint: "127.0.0.1:4317".into(),
            max_recv_msg_size_mib: 16,
        }
    }
}

/// `receivers.otlp.limits`: an item over a limit is rejected alone and counted in
/// `partial_success`; the rest of its request is kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most attributes one span, span event, link or log record may carry. Default 128.
    pub max_attributes: usize,
    /// Longest string or bytes attribute value (and log body) in bytes. Default 65536.
    pub max_attribute_value_length: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_attributes: 128,
            max_attribute_value_length: 65536,
        }
    }
}

/// `service:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Service {
    /// Pipelines per signal. Each names receivers, processors and exporters defined above; when a
    /// signal has no pipeline it is still received and stored.
    pub pipelines: BTreeMap<String, Pipeline>,
    /// The gateway's own telemetry.
    pub telemetry: Telemetry,
}

/// `service.pipelines.<traces|logs|metrics>`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pipeline {
    /// Receiver names (`otlp`).
    pub receivers: Vec<String>,
    /// Processor names, in order.
    pub processors: Vec<String>,
    /// Exporter names.
    pub exporters: Vec<String>,
}

/// `service.telemetry`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Telemetry {
    /// Log settings.
    pub logs: LogSettings,
    /// The gateway's own metrics and health endpoints.
    pub metrics: MetricsSettings,
}

/// `service.telemetry.metrics` (the Collector's `service.telemetry.metrics.address`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Where `/metrics` (Prometheus text exposition), `/health/live` and `/health/ready` are
    /// served, as `host:port`. Default `127.0.0.1:8888`, the Collector's own-telemetry port.
    /// `null` turns the endpoint off.
    pub address: Option<String>,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            address: Some("127.0.0.1:8888".into()),
        }
    }
}

/// `service.telemetry.logs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// A `tracing` filter (`info`, `sieve=debug,tonic=warn`). `RUST_LOG`, when set, wins.
    /// Default `info`.
    pub level: String,
    /// `text` (default) or `json`. `--log-format` on the command line wins.
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `storage:` — the sled database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// Data directory. Default `./sieve-data`. One gateway per directory (sled locks it).
    pub path: PathBuf,
    /// `true` (default): a request is acknowledged only after its data is flushed to disk, with
    /// concurrent requests sharing one flush. `false`: acknowledged once written to sled's
    /// memory; sled flushes every `flush_every` in the background, so a crash may lose the last
    /// moments. Exists to measure what durability costs.
    pub sync: bool,
    /// sled's background flush interval when `sync` is false. Default 500ms.
    #[serde(with = "duration")]
    pub flush_every: Duration,
    /// How long data is kept, measured from its own timestamps. Default 72h.
    #[serde(with = "duration")]
    pub retention: Duration,
    /// Width of the time partitions data is written into (one value-log file and index per
    /// partition, dropped whole when it expires). Default 1h. Retention is exact to one partition.
    #[serde(with = "duration")]
    pub partition: Duration,
    /// How often the retention sweeper looks for expired partitions. Default 1m.
    #[serde(with = "duration")]
    pub sweep_interval: Duration,
    /// sled's page cache in MiB. Default 16. sled counts serialised sizes, so its real memory
    /// use is a few times this (measured under the loadgen: 64 gave a 380 MiB process, 16 a
    /// 184 MiB one at the same throughput); chunk bodies are read from the OS page cache anyway.
    pub cache_capacity_mib: u64,
    /// Index entries (chunk keys, posting lists, log index keys) of a partition held in memory
    /// before they are written out as a sorted, compressed run file, MiB. Default 4. The value
    /// log holds the same entries, so a restart rebuilds this much from it. Larger means fewer
    /// run files for a search to merge, and more memory per partition written to.
    pub memtable_mib: u64,
    /// `zstd` (default) or `none`. With `zstd`, once an index run covers a range of a
    /// partition's value log, a background pass rewrites the range as zstd blocks and frees
    /// the raw bytes (the ack path never compresses). About 5× smaller on SDK-shaped traces;
    /// reads decompress a 128 KiB block.
    pub compression: StorageCompression,
    /// Upper bound on the data directory's size on disk (as `du` counts it), e.g. `50GiB`,
    /// beside the time `retention`. Past it the sweeper drops whole partitions, oldest data
    /// first, and logs each; the partitions being written are never dropped. Unset (default):
    /// no bound.
    #[serde(with = "byte_size::option")]
    pub max_disk_size: Option<u64>,
    /// Attribute index bounds.
    pub attribute_index: AttributeIndex,
}

/// `storage.compression`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageCompression {
    #[default]
    Zstd,
    None,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            path: PathBuf::from("./sieve-data"),
            sync: true,
            flush_every: Duration::from_millis(500),
            retention: Duration::from_secs(72 * 3600),
            partition: Duration::from_secs(3600),
            sweep_interval: Duration::from_secs(60),
            cache_capacity_mib: 16,
            memtable_mib: 4,
            compression: StorageCompression::Zstd,
            max_disk_size: None,
            attribute_index: AttributeIndex::default(),
        }
    }
}

/// `storage.attribute_index`: string span attributes are indexed per (service, key, value) so
/// `FindTraces` with attributes does not scan. Past these bounds a value is not indexed (queries
/// still find it by scanning the service's traces).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttributeIndex {
    /// Longest indexed value in bytes. Default 128.
    pub max_value_length: usize,
    /// Distinct values indexed per (service, key) since start. Default 1000.
    pub max_values_per_key: usize,
    /// Distinct (service, key) pairs indexed since start. Default 10000.
    pub max_keys: usize,
}

impl Default for AttributeIndex {
    fn default() -> Self {
        AttributeIndex {
            max_value_length: 128,
            max_values_per_key: 1000,
            max_keys: 10_000,
        }
    }
}

/// `intake:` — bounds between the receivers and the store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Intake {
    /// Encoded bytes of requests being written or waiting for their flush, in MiB. When full,
    /// receivers answer UNAVAILABLE with a RetryInfo delay. Default 64.
    pub max_inflight_mib: u64,
    /// The delay put in RetryInfo when refusing. Default 1s.
    #[serde(with = "duration")]
    pub retry_delay: Duration,
}

impl Default for Intake {
    fn default() -> Self {
        Intake {
            max_inflight_mib: 64,
            retry_delay: Duration::from_secs(1),
        }
    }
}

/// `query:` — sieve's own gRPC API (`proto/sieve/v1/query.proto`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Query {
    /// Address to listen on. Default `127.0.0.1:4320`. Port 0 picks a free port.
    pub endpoint: String,
    /// Most trace candidates one FindTraces inspects before giving up. Default 10000.
    pub search_depth: usize,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            endpoint: "127.0.0.1:4320".into(),
            search_depth: 10_000,
        }
    }
}

/// `analysis:` — what sieve computes from every span before sampling, and how long it keeps
/// it. The figures are time series in sled (tree `analysis`) at three resolutions, 10 s, 1 min
/// and 1 h, each kept for its own retention.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Analysis {
    /// `false` turns span metrics, the service graph and bottlenecks off. Default true.
    pub enabled: bool,
    /// A trace is complete, and its critical path is computed, once no span of it has come for
    /// this long. Default 5s.
    #[serde(with = "duration")]
    pub trace_idle: Duration,
    /// Spans held in memory while their traces assemble. Past it the oldest traces are
    /// analysed early (counted as `early`). Default 500000.
    pub max_spans: usize,
    /// Trace ids remembered after analysis, so that a late span is counted as late instead
    /// of starting a second, partial trace. Default 100000.
    pub decided_cache: usize,
    /// Overlap tolerance of the critical path, a fraction of the parent's duration (CRISP);
    /// 0 is the jaeger-ui walk. Default 0.
    pub tolerance: f64,
    /// Distinct span-metric series (service, operation, kind, status) since start. Past it new
    /// keys are counted under the series `*`/`*`. Default 10000.
    pub max_series: usize,
    /// Distinct operations tracked for bottlenecks since start, and separately distinct call
    /// paths; past it new ones are counted under `*`. Default 10000.
    pub max_operations: usize,
    /// How often the figures in memory are merged into sled. A crash loses at most this much
    /// analysis (never data). Default 5s.
    #[serde(with = "duration")]
    pub flush_interval: Duration,
    /// How long a CLIENT/SERVER or PRODUCER/CONSUMER half waits for its other half.
    /// Default 10s.
    #[serde(with = "duration")]
    pub graph_wait: Duration,
    /// Halves waiting at most; past it the oldest is counted unpaired. Default 100000.
    pub graph_max_pending: usize,
    /// Retention of the 10 s resolution, by the data's own time. Default 24h.
    #[serde(with = "duration")]
    pub retention_10s: Duration,
    /// Retention of the 1 min resolution. Default 7d.
    #[serde(with = "duration")]
    pub retention_1m: Duration,
    /// Retention of the 1 h resolution. Default 30d.
    #[serde(with = "duration")]
    pub retention_1h: Duration,
    /// Log template clustering of every log record (before sampling).
    pub logs: LogClustering,
}

/// `analysis.logs:` — every log record is assigned to a template cluster of its service
/// (`src/analysis/log_cluster`), and gets the cluster's id and template as attributes before
/// it is stored and exported.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogClustering {
    /// `false` turns clustering off (records are stored and exported as they came).
    /// Default true.
    pub enabled: bool,
    /// Clusters per service; past it new kinds of lines join the service's overflow
    /// cluster. Default 2000.
    pub max_clusters: usize,
    /// Services clustered; past it new services share the service `*`. Default 1000.
    pub max_services: usize,
    /// Extra regexes: a token piece matching one is a variable (`<*>`), on top of the
    /// built-in masks (numbers, hex, paths, URLs, e-mails, hosts, timestamps...).
    pub patterns: Vec<String>,
    /// Attribute carrying the cluster id (an integer). Default `log.template.id`.
    pub template_id_attribute: String,
    /// Attribute carrying the template text. Default `log.template`.
    pub template_attribute: String,
}

impl Default for LogClustering {
    fn default() -> Self {
        LogClustering {
            enabled: true,
            max_clusters: 2000,
            max_services: 1000,
            patterns: Vec::new(),
            template_id_attribute: "log.template.id".into(),
            template_attribute: "log.template".into(),
        }
    }
}

impl LogClustering {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| {
            Err(ConfigError::Invalid {
                key: format!("analysis.logs.{key}"),
                reason,
            })
        };
        if self.max_clusters == 0 {
            return invalid("max_clusters", "must be at least 1".into());
        }
        if self.max_services == 0 {
            return invalid("max_services", "must be at least 1".into());
        }
        for (i, p) in self.patterns.iter().enumerate() {
            if let Err(e) = regex::Regex::new(p) {
                return invalid(&format!("patterns[{i}]"), format!("{p:?}: {e}"));
            }
        }
        for (key, v) in [
            ("template_id_attribute", &self.template_id_attribute),
            ("template_attribute", &self.template_attribute),
        ] {
            if v.is_empty() {
                return invalid(key, "must not be empty".into());
            }
        }
        if self.template_id_attribute == self.template_attribute {
            return invalid(
                "template_attribute",
                "must differ from template_id_attribute".into(),
            );
        }
        Ok(())
    }
}

impl Default for Analysis {
    fn default() -> Self {
        Analysis {
            enabled: true,
            trace_idle: Duration::from_secs(5),
            max_spans: 500_000,
            decided_cache: 100_000,
            tolerance: 0.0,
            max_series: 10_000,
            max_operations: 10_000,
            flush_interval: Duration::from_secs(5),
            graph_wait: Duration::from_secs(10),
            graph_max_pending: 100_000,
            retention_10s: Duration::from_secs(24 * 3600),
            retention_1m: Duration::from_secs(7 * 24 * 3600),
            retention_1h: Duration::from_secs(30 * 24 * 3600),
            logs: LogClustering::default(),
        }
    }
}

impl Analysis {
    /// Retention per resolution, finest first.
    pub fn retentions(&self) -> [Duration; 3] {
        [self.retention_10s, self.retention_1m, self.retention_1h]
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| {
            Err(ConfigError::Invalid {
                key: format!("analysis.{key}"),
                reason,
            })
        };
        if !(0.0..1.0).contains(&self.tolerance) {
            return invalid("tolerance", format!("{} is outside [0, 1)", self.tolerance));
        }
        for (key, v) in [
            ("max_spans", self.max_spans),
            ("decided_cache", self.decided_cache),
            ("max_series", self.max_series),
            ("max_operations", self.max_operations),
            ("graph_max_pending", self.graph_max_pending),
        ] {
            if v == 0 {
                return invalid(key, "must be at least 1".into());
            }
        }
        for (key, v) in [
            ("trace_idle", self.trace_idle),
            ("flush_interval", self.flush_interval),
            ("graph_wait", self.graph_wait),
        ] {
            if v.is_zero() {
                return invalid(key, "must be longer than 0".into());
            }
        }
        self.logs.validate()?;
        let r = self.retentions();
        let names = ["retention_10s", "retention_1m", "retention_1h"];
        let steps = [10u64, 60, 3600];
        for i in 0..3 {
            if r[i].as_secs() < steps[i] {
                return invalid(
                    names[i],
                    format!("must be at least one bucket ({}s)", steps[i]),
                );
            }
        }
        Ok(())
    }
}

/// `processors.<type>[/name]`: one processor.
#[derive(Debug, Clone)]
pub enum Processor {
    /// Consistent head sampling by trace id.
    ProbabilisticSampler(ProbabilisticSampler),
    /// Whole-trace decisions from a durable assembly buffer.
    TailSampling(TailSampling),
    /// Per (service, operation) probabilities steered to a target rate.
    AdaptiveSampler(AdaptiveSampler),
}

impl Processor {
    pub const TYPES: [&'static str; 3] =
        ["probabilistic_sampler", "tail_sampling", "adaptive_sampler"];

    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let invalid = |sub: &str, reason: String| {
            Err(ConfigError::Invalid {
                key: format!("{key}.{sub}"),
                reason,
            })
        };
        match self {
            Processor::TailSampling(t) => t.validate(key)?,
            Processor::AdaptiveSampler(a) => {
                if !(a.target_traces_per_second.is_finite() && a.target_traces_per_second > 0.0) {
                    return invalid(
                        "target_traces_per_second",
                        format!("{} must be a positive number", a.target_traces_per_second),
                    );
                }
                if a.interval.is_zero() {
                    return invalid("interval", "must be greater than zero".into());
                }
                if !(a.min_probability >= 1e-5 && a.min_probability <= 1.0) {
                    return invalid(
                        "min_probability",
                        format!("{} is outside [0.00001, 1]", a.min_probability),
                    );
                }
                if !(a.initial_probability >= a.min_probability && a.initial_probability <= 1.0) {
                    return invalid(
                        "initial_probability",
                        format!("{} is outside [min_probability, 1]", a.initial_probability),
                    );
                }
            }
            Processor::ProbabilisticSampler(p) => {
                let pct_ok = |v: f64| v.is_finite() && (0.0..=100.0).contains(&v);
                if !pct_ok(p.sampling_percentage) {
                    return invalid(
                        "sampling_percentage",
                        format!("{} is outside [0, 100]", p.sampling_percentage),
                    );
                }
                if let Some(l) = p.logs.sampling_percentage
                    && !pct_ok(l)
                {
                    return invalid(
                        "logs.sampling_percentage",
                        format!("{l} is outside [0, 100]"),
                    );
                }
                if !(1..=14).contains(&p.sampling_precision) {
                    return invalid(
                        "sampling_precision",
                        format!("{} is outside 1..=14", p.sampling_precision),
                    );
                }
                if p.mode() != SamplerMode::HashSeed
                    && p.sampling_percentage > 0.0
                    && p.sampling_percentage < 100.0 / (1u64 << 56) as f64
                {
                    return invalid(
                        "sampling_percentage",
                        "below the smallest probability a 56-bit threshold can express".into(),
                    );
                }
            }
        }
        Ok(())
    }
}

/// How `probabilistic_sampler` decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerMode {
    /// The Collector's legacy mode: FNV-1a of seed and trace id into 16384 buckets.
    HashSeed,
    /// OpenTelemetry consistent probability sampling (threshold vs. 56-bit randomness); an
    /// incoming `th` is sampled again (probabilities multiply).
    Proportional,
    /// As proportional, but an incoming `th` that is already stricter is kept unchanged.
    Equalizing,
}

/// `processors.probabilistic_sampler[/name]`: keeps a fixed share of traces, decided from the
/// trace id alone so that every instance with this configuration keeps the same traces. In a
/// logs pipeline, records with a trace id follow their trace's decision; records without one
/// are sampled by a hash of `logs.from_attribute` (or the body).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbabilisticSampler {
    /// Share of traces kept, 0–100. Required.
    pub sampling_percentage: f64,
    /// `hash_seed`, `proportional` or `equalizing`. Default as in the Collector: hash_seed
    /// when `hash_seed` is set, else proportional.
    #[serde(default)]
    pub mode: Option<SamplerMode>,
    /// Seed of the hash_seed mode (and of the hash of log records without a trace id).
    /// Instances that must agree need the same seed. Default 0.
    #[serde(default)]
    pub hash_seed: Option<u32>,
    /// Significant hex digits of the threshold written as `th` (proportional modes), 1–14.
    /// Default 4.
    #[serde(default = "default_precision")]
    pub sampling_precision: u8,
    /// Drop items whose tracestate `ot` entry is malformed (default true); false keeps them
    /// unsampled.
    #[serde(default = "default_true")]
    pub fail_closed: bool,
    /// Log records without a trace id.
    #[serde(default)]
    pub logs: LogSampling,
}

/// `processors.probabilistic_sampler.logs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSampling {
    /// Share of records without a trace id kept, 0–100. Default: `sampling_percentage`.
    pub sampling_percentage: Option<f64>,
    /// Attribute whose value is hashed (record attributes, then resource attributes); when
    /// absent, or the record lacks it, the body is hashed.
    pub from_attribute: Option<String>,
}

/// `processors.tail_sampling[/name]`: spans wait in a buffer on disk until their trace is
/// decided, then the whole trace is kept (stored and forwarded) or dropped. Acknowledged spans
/// are in the buffer durably, so a restart resumes every pending decision.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailSampling {
    /// Decide this long after a trace's first span. Default 10s.
    #[serde(default = "default_decision_wait", with = "duration")]
    pub decision_wait: Duration,
    /// Decide early once the root span has arrived and no span came for this long. 0
    /// disables. Default 2s.
    #[serde(default = "default_quiet_period", with = "duration")]
    pub quiet_period: Duration,
    /// Most traces pending at once; past it the oldest is decided early. Default 50000.
    #[serde(default = "default_num_traces")]
    pub num_traces: usize,
    /// Most bytes of spans pending, MiB; past it the oldest is decided early. Default 256.
    #[serde(default = "default_buffer_mib")]
    pub max_buffer_mib: u64,
    /// Decided traces remembered so late spans follow the decision. Default 100000.
    #[serde(default = "default_decision_cache")]
    pub decision_cache: usize,
    /// Add `sampling.policy` = the deciding policy's name to the kept spans. Default false.
    #[serde(default)]
    pub record_policy: bool,
    /// Evaluated in order; the first that keeps decides. A trace none keeps is dropped.
    pub policies: Vec<TailPolicy>,
}

fn default_decision_wait() -> Duration {
    Duration::from_secs(10)
}
fn default_quiet_period() -> Duration {
    Duration::from_secs(2)
}
fn default_num_traces() -> usize {
    50_000
}
fn default_buffer_mib() -> u64 {
    256
}
fn default_decision_cache() -> usize {
    100_000
}

/// The type of a tail policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TailPolicyType {
    AlwaysSample,
    Latency,
    StatusCode,
    StringAttribute,
    NumericAttribute,
    Probabilistic,
    RateLimiting,
    SpanCount,
    And,
    Composite,
}

/// One tail policy, in the Collector's shape: `name`, `type`, and the settings under a key
/// named like the type (`latency: {threshold_ms: 500}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailPolicy {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: TailPolicyType,
    pub latency: Option<LatencyPolicy>,
    pub status_code: Option<StatusCodePolicy>,
    pub string_attribute: Option<StringAttributePolicy>,
    pub numeric_attribute: Option<NumericAttributePolicy>,
    pub probabilistic: Option<ProbabilisticPolicy>,
    pub rate_limiting: Option<RateLimitingPolicy>,
    pub span_count: Option<SpanCountPolicy>,
    pub and: Option<AndPolicy>,
    pub composite: Option<CompositePolicy>,
}

/// Keep traces whose duration (last end − first start) is at least `threshold_ms`, and
/// below `upper_threshold_ms` when set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyPolicy {
    pub threshold_ms: u64,
    #[serde(default)]
    pub upper_threshold_ms: Option<u64>,
}

/// Keep traces with a span whose status is one of `status_codes` (OK, ERROR, UNSET).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusCodePolicy {
    pub status_codes: Vec<String>,
}

/// Keep traces with a span (or resource) whose string attribute `key` is one of `values`
/// (or, with `invert_match`, traces where none is).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringAttributePolicy {
    pub key: String,
    pub values: Vec<String>,
    #[serde(default)]
    pub invert_match: bool,
}

/// Keep traces with a span whose numeric attribute `key` lies in [min_value, max_value].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumericAttributePolicy {
    pub key: String,
    pub min_value: f64,
    pub max_value: f64,
}

/// Keep a share of traces by the hash_seed rule of the probabilistic sampler.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbabilisticPolicy {
    pub sampling_percentage: f64,
    #[serde(default)]
    pub hash_seed: u32,
}

/// Keep traces while the spans kept by this policy in the current second stay under
/// `spans_per_second`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitingPolicy {
    pub spans_per_second: u64,
}

/// Keep traces with at least `min_spans` (and at most `max_spans`) spans.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpanCountPolicy {
    pub min_spans: u64,
    #[serde(default)]
    pub max_spans: Option<u64>,
}

/// Keep traces every sub-policy keeps.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AndPolicy {
    pub and_sub_policy: Vec<TailPolicy>,
}

/// Sub-policies tried in `policy_order`, each allowed `percent` of
/// `max_total_spans_per_second`; a trace is kept by the first that keeps it within its share.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompositePolicy {
    pub max_total_spans_per_second: u64,
    pub policy_order: Vec<String>,
    pub composite_sub_policy: Vec<TailPolicy>,
    pub rate_allocation: Vec<RateAllocation>,
}

/// A composite sub-policy's share.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateAllocation {
    pub policy: String,
    pub percent: f64,
}

impl TailSampling {
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let invalid = |sub: &str, reason: String| {
            Err(ConfigError::Invalid {
                key: format!("{key}.{sub}"),
                reason,
            })
        };
        if self.decision_wait.is_zero() {
            return invalid("decision_wait", "must be greater than zero".into());
        }
        if self.quiet_period > self.decision_wait {
            return invalid("quiet_period", "must not exceed decision_wait".into());
        }
        if self.num_traces == 0 {
            return invalid("num_traces", "must be at least 1".into());
        }
        if self.max_buffer_mib == 0 {
            return invalid("max_buffer_mib", "must be at least 1".into());
        }
        if self.policies.is_empty() {
            return invalid("policies", "at least one policy is needed".into());
        }
        let mut names = std::collections::HashSet::new();
        for (i, p) in self.policies.iter().enumerate() {
            if !names.insert(p.name.as_str()) {
                return invalid(
                    &format!("policies[{i}].name"),
                    format!("{:?} is used twice", p.name),
                );
            }
            p.validate(&format!("{key}.policies[{i}]"))?;
        }
        Ok(())
    }
}

impl TailPolicy {
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let invalid = |sub: &str, reason: String| {
            Err(ConfigError::Invalid {
                key: if sub.is_empty() {
                    key.to_string()
                } else {
                    format!("{key}.{sub}")
                },
                reason,
            })
        };
        if self.name.is_empty() {
            return invalid("name", "must not be empty".into());
        }
        use TailPolicyType as T;
        let present = [
            ("latency", self.latency.is_some(), T::Latency),
            ("status_code", self.status_code.is_some(), T::StatusCode),
            (
                "string_attribute",
                self.string_attribute.is_some(),
                T::StringAttribute,
            ),
            (
                "numeric_attribute",
                self.numeric_attribute.is_some(),
                T::NumericAttribute,
            ),
            (
                "probabilistic",
                self.probabilistic.is_some(),
                T::Probabilistic,
            ),
            (
                "rate_limiting",
                self.rate_limiting.is_some(),
                T::RateLimiting,
            ),
            ("span_count", self.span_count.is_some(), T::SpanCount),
            ("and", self.and.is_some(), T::And),
            ("composite", self.composite.is_some(), T::Composite),
        ];
        for (field, is_there, kind) in present {
            if kind == self.kind && !is_there {
                return invalid(
                    field,
                    format!("a {field} policy needs its `{field}:` settings"),
                );
            }
            if kind != self.kind && is_there {
                return invalid(
                    field,
                    format!(
                        "contradicts type {:?}: remove it or change the type",
                        self.kind
                    ),
                );
            }
        }
        match self.kind {
            T::AlwaysSample => {}
            T::Latency => {
                let l = self
                    .latency
                    .as_ref()
                    .map(|l| (l.threshold_ms, l.upper_threshold_ms));
                if let Some((lo, Some(hi))) = l
                    && hi <= lo
                {
                    return invalid(
                        "latency.upper_threshold_ms",
                        "must exceed threshold_ms".into(),
                    );
                }
            }
            T::StatusCode => {
                let codes = self
                    .status_code
                    .as_ref()
                    .map(|c| c.status_codes.clone())
                    .unwrap_or_default();
                if codes.is_empty() {
                    return invalid(
                        "status_code.status_codes",
                        "at least one code is needed".into(),
                    );
                }
                if let Some(bad) = codes
                    .iter()
                    .find(|c| !["OK", "ERROR", "UNSET"].contains(&c.as_str()))
                {
                    return invalid(
                        "status_code.status_codes",
                        format!("{bad:?} is not OK, ERROR or UNSET"),
                    );
                }
            }
            T::StringAttribute => {
                if let Some(a) = &self.string_attribute
                    && (a.key.is_empty() || a.values.is_empty())
                {
                    return invalid(
                        "string_attribute",
                        "needs a key and at least one value".into(),
                    );
                }
            }
            T::NumericAttribute => {
                if let Some(a) = &self.numeric_attribute
                    && (a.key.is_empty()
                        || a.min_value
                            .partial_cmp(&a.max_value)
                            .is_none_or(|o| o.is_gt()))
                {
                    return invalid(
                        "numeric_attribute",
                        "needs a key and min_value <= max_value".into(),
                    );
                }
            }
            T::Probabilistic => {
                if let Some(p) = &self.probabilistic
                    && !(p.sampling_percentage.is_finite()
                        && (0.0..=100.0).contains(&p.sampling_percentage))
                {
                    return invalid(
                        "probabilistic.sampling_percentage",
                        format!("{} is outside [0, 100]", p.sampling_percentage),
                    );
                }
            }
            T::RateLimiting => {
                if self
                    .rate_limiting
                    .as_ref()
                    .is_some_and(|r| r.spans_per_second == 0)
                {
                    return invalid(
                        "rate_limiting.spans_per_second",
                        "must be at least 1".into(),
                    );
                }
            }
            T::SpanCount => {
                if let Some(c) = &self.span_count
                    && c.max_spans.is_some_and(|m| m < c.min_spans)
                {
                    return invalid("span_count.max_spans", "must be at least min_spans".into());
                }
            }
            T::And => {
                let subs = self
                    .and
                    .as_ref()
                    .map(|a| a.and_sub_policy.as_slice())
                    .unwrap_or_default();
                if subs.is_empty() {
                    return invalid(
                        "and.and_sub_policy",
                        "at least one sub-policy is needed".into(),
                    );
                }
                for (i, p) in subs.iter().enumerate() {
                    if matches!(p.kind, T::And | T::Composite) {
                        return invalid(
                            &format!("and.and_sub_policy[{i}]"),
                            "cannot nest and/composite".into(),
                        );
                    }
                    p.validate(&format!("{key}.and.and_sub_policy[{i}]"))?;
                }
            }
            T::Composite => {
                let Some(c) = &self.composite else {
                    return Ok(());
                };
                if c.max_total_spans_per_second == 0 {
                    return invalid(
                        "composite.max_total_spans_per_second",
                        "must be at least 1".into(),
                    );
                }
                let names: Vec<&str> = c
                    .composite_sub_policy
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect();
                if names.is_empty() {
                    return invalid(
                        "composite.composite_sub_policy",
                        "at least one sub-policy is needed".into(),
                    );
                }
                for (what, list) in [
                    ("composite.composite_sub_policy", names.clone()),
                    (
                        "composite.policy_order",
                        c.policy_order.iter().map(String::as_str).collect(),
                    ),
                    (
                        "composite.rate_allocation",
                        c.rate_allocation
                            .iter()
                            .map(|a| a.policy.as_str())
                            .collect(),
                    ),
                ] {
                    let mut seen = std::collections::HashSet::new();
                    if let Some(dup) = list.iter().find(|n| !seen.insert(**n)) {
                        return invalid(what, format!("{dup:?} is listed twice"));
                    }
                }
                for (i, p) in c.composite_sub_policy.iter().enumerate() {
                    if matches!(p.kind, T::And | T::Composite) {
                        return invalid(
                            &format!("composite.composite_sub_policy[{i}]"),
                            "cannot nest and/composite".into(),
                        );
                    }
                    p.validate(&format!("{key}.composite.composite_sub_policy[{i}]"))?;
                }
                if let Some(n) = c.policy_order.iter().find(|n| !names.contains(&n.as_str())) {
                    return invalid(
                        "composite.policy_order",
                        format!("{n:?} is not a composite_sub_policy"),
                    );
                }
                let mut total = 0.0;
                for a in &c.rate_allocation {
                    if !names.contains(&a.policy.as_str()) {
                        return invalid(
                            "composite.rate_allocation",
                            format!("{:?} is not a composite_sub_policy", a.policy),
                        );
                    }
                    if !(a.percent.is_finite() && a.percent >= 0.0) {
                        return invalid(
                            "composite.rate_allocation",
                            format!("{}: percent must be >= 0", a.policy),
                        );
                    }
                    total += a.percent;
                }
                if total > 100.0 {
                    return invalid(
                        "composite.rate_allocation",
                        format!("shares add up to {total}%, over 100%"),
                    );
                }
            }
        }
        Ok(())
    }
}

/// `processors.adaptive_sampler[/name]`: Jaeger-style adaptive sampling. Each (service,
/// operation) of a trace's root span gets its own probability, re-computed every `interval`
/// as `p × target / observed` (unchanged within ±30% of the target, at most doubled, clamped
/// to `[min_probability, 1]`); decisions within an interval are consistent by trace id.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveSampler {
    /// Kept traces per second wanted for each (service, operation). Required.
    pub target_traces_per_second: f64,
    /// How often probabilities are re-computed. Default 1m.
    #[serde(default = "default_adaptive_interval", with = "duration")]
    pub interval: Duration,
    /// Probability of an operation not seen before. Default 1.
    #[serde(default = "default_one")]
    pub initial_probability: f64,
    /// Floor of every probability. Default 0.00001.
    #[serde(default = "default_min_probability")]
    pub min_probability: f64,
}

fn default_adaptive_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_one() -> f64 {
    1.0
}
fn default_min_probability() -> f64 {
    1e-5
}

impl ProbabilisticSampler {
    /// The mode in effect.
    pub fn mode(&self) -> SamplerMode {
        self.mode.unwrap_or(if self.hash_seed.is_some() {
            SamplerMode::HashSeed
        } else {
            SamplerMode::Proportional
        })
    }

    /// The seed in effect.
    pub fn seed(&self) -> u32 {
        self.hash_seed.unwrap_or(0)
    }
}

fn default_precision() -> u8 {
    4
}

fn default_true() -> bool {
    true
}

/// `exporters.otlp[/name]` etc.: one exporter. Each has its own persistent queue, batching,
/// retry and circuit breaker (the shared sections below), so one dead backend holds up only
/// its own queue.
#[derive(Debug, Clone)]
pub enum Exporter {
    /// OTLP/gRPC.
    Otlp(OtlpExporter),
    /// OTLP/HTTP with protobuf bodies.
    OtlpHttp(OtlpHttpExporter),
    /// Batches to sieve's log (stderr).
    Debug(DebugExporter),
    /// OTLP JSON lines to a file.
    File(FileExporter),
}

/// What every exporter shares: queue, batching, retry and circuit breaker.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub sending_queue: &'a SendingQueue,
    pub batch: &'a Batch,
    pub retry_on_failure: &'a RetryOnFailure,
    pub circuit_breaker: &'a CircuitBreaker,
}

impl Exporter {
    /// The type part of a `type/name` key.
    pub const TYPES: [&'static str; 4] = ["otlp", "otlphttp", "debug", "file"];

    pub fn delivery(&self) -> Delivery<'_> {
        macro_rules! d {
            ($e:expr) => {
                Delivery {
                    sending_queue: &$e.sending_queue,
                    batch: &$e.batch,
                    retry_on_failure: &$e.retry_on_failure,
                    circuit_breaker: &$e.circuit_breaker,
                }
            };
        }
        match self {
            Exporter::Otlp(e) => d!(e),
            Exporter::OtlpHttp(e) => d!(e),
            Exporter::Debug(e) => d!(e),
            Exporter::File(e) => d!(e),
        }
    }

    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let invalid = |sub: &str, reason: String| {
            Err(ConfigError::Invalid {
                key: format!("{key}.{sub}"),
                reason,
            })
        };
        match self {
            Exporter::Otlp(e) => {
                grpc_endpoint_uri(&e.endpoint).map_err(|reason| ConfigError::Invalid {
                    key: format!("{key}.endpoint"),
                    reason,
                })?;
                check_headers(key, &e.headers)?;
                if e.timeout.is_zero() {
                    return invalid("timeout", "must be greater than zero".into());
                }
            }
            Exporter::OtlpHttp(e) => {
                if e.endpoint.is_empty()
                    && [&e.traces_endpoint, &e.logs_endpoint, &e.metrics_endpoint]
                        .iter()
                        .any(|x| x.is_none())
                {
                    return invalid(
                        "endpoint",
                        "required (or all of traces_endpoint, logs_endpoint, metrics_endpoint)"
                            .into(),
                    );
                }
                for (sub, url) in [
                    ("endpoint", Some(&e.endpoint).filter(|u| !u.is_empty())),
                    ("traces_endpoint", e.traces_endpoint.as_ref()),
                    ("logs_endpoint", e.logs_endpoint.as_ref()),
                    ("metrics_endpoint", e.metrics_endpoint.as_ref()),
                ] {
                    if let Some(url) = url {
                        http_url(url).map_err(|reason| ConfigError::Invalid {
                            key: format!("{key}.{sub}"),
                            reason,
                        })?;
                    }
                }
                check_headers(key, &e.headers)?;
                if e.timeout.is_zero() {
                    return invalid("timeout", "must be greater than zero".into());
                }
            }
            Exporter::Debug(_) => {}
            Exporter::File(e) => {
                if e.path.as_os_str().is_empty() {
                    return invalid("path", "required".into());
                }
                if e.rotation.max_megabytes == 0 {
                    return invalid("rotation.max_megabytes", "must be at least 1".into());
                }
            }
        }
        let d = self.delivery();
        if d.sending_queue.queue_size_mib == 0 {
            return invalid("sending_queue.queue_size_mib", "must be at least 1".into());
        }
        if !(1..=64).contains(&d.sending_queue.num_consumers) {
            return invalid(
                "sending_queue.num_consumers",
                format!("{} is outside 1..=64", d.sending_queue.num_consumers),
            );
        }
        if d.batch.send_batch_size == 0 {
            return invalid("batch.send_batch_size", "must be at least 1".into());
        }
        if d.batch.max_request_bytes < 1024 {
            return invalid("batch.max_request_bytes", "must be at least 1024".into());
        }
        let r = d.retry_on_failure;
        if r.initial_interval.is_zero() {
            return invalid(
                "retry_on_failure.initial_interval",
                "must be greater than zero".into(),
            );
        }
        if r.max_interval < r.initial_interval {
            return invalid(
                "retry_on_failure.max_interval",
                "must be at least initial_interval".into(),
            );
        }
        if !(0.0..=1.0).contains(&r.randomization_factor) {
            return invalid(
                "retry_on_failure.randomization_factor",
                format!("{} is outside 0..=1", r.randomization_factor),
            );
        }
        let b = d.circuit_breaker;
        if b.window == 0 {
            return invalid("circuit_breaker.window", "must be at least 1".into());
        }
        if b.min_requests == 0 || b.min_requests > b.window {
            return invalid(
                "circuit_breaker.min_requests",
                format!("{} is outside 1..=window ({})", b.min_requests, b.window),
            );
        }
        if !(b.failure_rate > 0.0 && b.failure_rate <= 1.0) {
            return invalid(
                "circuit_breaker.failure_rate",
                format!("{} is outside (0, 1]", b.failure_rate),
            );
        }
        if b.cool_down.is_zero() {
            return invalid(
                "circuit_breaker.cool_down",
                "must be greater than zero".into(),
            );
        }
        Ok(())
    }
}

fn check_headers(key: &str, headers: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (name, value) in headers {
        let bad_name = http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || name.bytes().any(|b| b.is_ascii_uppercase());
        if bad_name || http::HeaderValue::from_str(value).is_err() {
            return Err(ConfigError::Invalid {
                key: format!("{key}.headers.{name}"),
                reason: "not a valid lowercase HTTP header name and value".into(),
            });
        }
    }
    Ok(())
}

/// An OTLP/gRPC endpoint as a URI: `host:port` means `http://host:port`.
pub fn grpc_endpoint_uri(endpoint: &str) -> Result<http::Uri, String> {
    let text = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    let uri: http::Uri = text
        .parse()
        .map_err(|e| format!("{endpoint:?} is not host:port or a URL ({e})"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "{endpoint:?}: TLS is not supported by this version; use http:// (a local \
                 TLS-terminating proxy can carry it the rest of the way)"
            ));
        }
        _ => return Err(format!("{endpoint:?}: the scheme must be http")),
    }
    if uri.port_u16().is_none() {
        return Err(format!("{endpoint:?} needs a port"));
    }
    Ok(uri)
}

/// An OTLP/HTTP URL.
pub fn http_url(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL ({e})"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "{url:?}: TLS is not supported by this version; use http:// (a local \
                 TLS-terminating proxy can carry it the rest of the way)"
            ));
        }
        _ => return Err(format!("{url:?} must start with http://")),
    }
    if uri.host().is_none() {
        return Err(format!("{url:?} has no host"));
    }
    Ok(uri)
}

/// Request compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip (the Collector's default).
    #[default]
    Gzip,
    Zstd,
    None,
}

/// `exporters.otlp[/name]`: OTLP/gRPC to another gateway, a Collector or a backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpExporter {
    /// `host:port` or `http://host:port`. Required.
    pub endpoint: String,
    /// gRPC metadata sent with every request (lowercase names), e.g. an API key.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `gzip` (default), `zstd` or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// Deadline of one attempt (sent as grpc-timeout too). Default 5s.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    #[serde(default)]
    pub sending_queue: SendingQueue,
    #[serde(default)]
    pub batch: Batch,
    #[serde(default)]
    pub retry_on_failure: RetryOnFailure,
    #[serde(default)]
    pub circuit_breaker: CircuitBreaker,
}

/// `exporters.otlphttp[/name]`: OTLP/HTTP, protobuf bodies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpHttpExporter {
    /// Base URL; `/v1/traces`, `/v1/logs` and `/v1/metrics` are appended per signal.
    #[serde(default)]
    pub endpoint: String,
    /// Full URL for traces, used as is (overrides `endpoint`).
    #[serde(default)]
    pub traces_endpoint: Option<String>,
    /// Full URL for logs.
    #[serde(default)]
    pub logs_endpoint: Option<String>,
    /// Full URL for metrics.
    #[serde(default)]
    pub metrics_endpoint: Option<String>,
    /// HTTP headers sent with every request (lowercase names).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `gzip` (default), `zstd` or `none` (Content-Encoding).
    #[serde(default)]
    pub compression: Compression,
    /// Deadline of one attempt. Default 5s.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    #[serde(default)]
    pub sending_queue: SendingQueue,
    #[serde(default)]
    pub batch: Batch,
    #[serde(default)]
    pub retry_on_failure: RetryOnFailure,
    #[serde(default)]
    pub circuit_breaker: CircuitBreaker,
}

/// How much the debug exporter writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verbosity {
    /// One summary line per batch (the Collector's default).
    #[default]
    Basic,
    /// One line per span, log record or metric.
    Normal,
    /// Every item in full, as OTLP JSON.
    Detailed,
}

/// `exporters.debug[/name]`: batches to sieve's own log on stderr, for trying a pipeline out.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebugExporter {
    /// `basic` (default), `normal` or `detailed`.
    #[serde(default)]
    pub verbosity: Verbosity,
    #[serde(default)]
    pub sending_queue: SendingQueue,
    #[serde(default)]
    pub batch: Batch,
    #[serde(default)]
    pub retry_on_failure: RetryOnFailure,
    #[serde(default)]
    pub circuit_breaker: CircuitBreaker,
}

/// `exporters.file[/name]`: one OTLP JSON object (`{"resourceSpans": [...]}` and so on) per
/// line per batch, as the Collector's file exporter writes; fsynced before the batch leaves
/// the queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileExporter {
    /// The file. Required. Rotated files sit beside it as `<stem>-<unix millis>.<ext>`.
    pub path: PathBuf,
    #[serde(default)]
    pub rotation: Rotation,
    #[serde(default)]
    pub sending_queue: SendingQueue,
    #[serde(default)]
    pub batch: Batch,
    #[serde(default)]
    pub retry_on_failure: RetryOnFailure,
    #[serde(default)]
    pub circuit_breaker: CircuitBreaker,
}

/// `exporters.file.rotation`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rotation {
    /// Rotate when the file reaches this size. Default 100.
    pub max_megabytes: u64,
    /// Rotated files kept; older ones are deleted. 0 keeps all. Default 10.
    pub max_backups: usize,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_megabytes: 100,
            max_backups: 10,
        }
    }
}

/// What to do with a new item when an exporter's queue is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Refuse the request at the receiver with UNAVAILABLE and RetryInfo, so the client keeps
    /// it and retries (the default: nothing is lost).
    #[default]
    Refuse,
    /// Accept it and drop the oldest queued items not being sent (counted and logged).
    DropOldest,
}

/// `exporters.<name>.sending_queue`: the exporter's persistent queue in the store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SendingQueue {
    /// Most bytes of encoded OTLP queued, MiB. Default 256. A soft bound: requests admitted
    /// at the same moment may pass it by up to `intake.max_inflight_mib`.
    pub queue_size_mib: u64,
    /// `refuse` (default) or `drop_oldest`.
    pub when_full: WhenFull,
    /// Batches in flight at once. Default 4.
    pub num_consumers: usize,
    /// On shutdown, how long to keep sending; what is left stays queued on disk. Default 5s.
    #[serde(with = "duration")]
    pub drain_timeout: Duration,
}

impl Default for SendingQueue {
    fn default() -> Self {
        SendingQueue {
            queue_size_mib: 256,
            when_full: WhenFull::Refuse,
            num_consumers: 4,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// `exporters.<name>.batch`: queued requests are sent together (their bytes concatenated,
/// resource and scope grouping kept) once this many items are waiting or the oldest has
/// waited `timeout`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Batch {
    /// Items (spans, log records or metrics) per batch. Default 8192.
    pub send_batch_size: u64,
    /// Longest wait for a batch to fill. Default 200ms.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Largest request sent, in bytes before compression. Default 4194304 (4 MiB, gRPC's
    /// usual receive limit). A larger queued request is split at item boundaries, not
    /// dropped; a downstream that still answers "too large" gets halves.
    pub max_request_bytes: usize,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            send_batch_size: 8192,
            timeout: Duration::from_millis(200),
            max_request_bytes: 4 * 1024 * 1024,
        }
    }
}

/// `exporters.<name>.retry_on_failure`: retryable failures (UNAVAILABLE, DEADLINE_EXCEEDED,
/// RESOURCE_EXHAUSTED with RetryInfo...; HTTP 429, 502, 503, 504) are retried after
/// `min(max_interval, initial_interval · 2^attempt)` plus a random jitter of up to
/// `randomization_factor` of that, or after the server's RetryInfo / Retry-After delay.
/// There is no elapsed-time limit: the queue on disk holds what waits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryOnFailure {
    /// Default 5s.
    #[serde(with = "duration")]
    pub initial_interval: Duration,
    /// Default 30s.
    #[serde(with = "duration")]
    pub max_interval: Duration,
    /// Jitter as a fraction of the delay, 0..=1. Default 0.2.
    pub randomization_factor: f64,
}

impl Default for RetryOnFailure {
    fn default() -> Self {
        RetryOnFailure {
            initial_interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(30),
            randomization_factor: 0.2,
        }
    }
}

/// `exporters.<name>.circuit_breaker`: after `min_requests` of the last `window` attempts,
/// a failure rate of `failure_rate` or more opens the breaker: nothing is sent for
/// `cool_down`, then one probe goes; its success closes the breaker, its failure opens it again.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreaker {
    /// Attempts remembered. Default 20.
    pub window: usize,
    /// Attempts needed before the rate counts. Default 5.
    pub min_requests: usize,
    /// Default 0.5.
    pub failure_rate: f64,
    /// Default 30s.
    #[serde(with = "duration")]
    pub cool_down: Duration,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker {
            window: 20,
            min_requests: 5,
            failure_rate: 0.5,
            cool_down: Duration::from_secs(30),
        }
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// Deserialises `processors:` and `exporters:`: each key's type part (`otlp` of `otlp/b`)
/// picks the struct its value is read into, so errors carry the full path
/// (`exporters.otlp/b.timeout`).
mod typed_map {
    use std::collections::BTreeMap;
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, Visitor};

    /// A component configured by type: `Exporter`, `Processor`.
    pub trait Component: Sized {
        /// What the map holds, for messages.
        const WHAT: &'static str;
        /// Reads the value of a key whose type part is `kind`.
        fn deserialize_kind<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error>;
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Component>(
        d: D,
    ) -> Result<BTreeMap<String, T>, D::Error> {
        d.deserialize_map(MapVisitor(PhantomData))
    }

    struct MapVisitor<T>(PhantomData<T>);

    impl<'de, T: Component> Visitor<'de> for MapVisitor<T> {
        type Value = BTreeMap<String, T>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a map of {} by name", T::WHAT)
        }

        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(name) = map.next_key::<String>()? {
                let kind = name.split('/').next().unwrap_or_default().to_string();
                if name.split('/').nth(1).is_some_and(str::is_empty) {
                    return Err(A::Error::custom(format!(
                        "{name:?}: the name after / must not be empty"
                    )));
                }
                let value = map.next_value_seed(Seed::<T>(kind, PhantomData))?;
                out.insert(name, value);
            }
            Ok(out)
        }
    }

    struct Seed<T>(String, PhantomData<T>);

    impl<'de, T: Component> DeserializeSeed<'de> for Seed<T> {
        type Value = T;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
            T::deserialize_kind(&self.0, d)
        }
    }
}

impl typed_map::Component for Exporter {
    const WHAT: &'static str = "exporters";

    fn deserialize_kind<'de, D: serde::Deserializer<'de>>(
        kind: &str,
        d: D,
    ) -> Result<Self, D::Error> {
        use serde::de::Error;
        match kind {
            "otlp" => Deserialize::deserialize(d).map(Exporter::Otlp),
            "otlphttp" => Deserialize::deserialize(d).map(Exporter::OtlpHttp),
            "debug" => Option::deserialize(d).map(|o| Exporter::Debug(o.unwrap_or_default())),
            "file" => Deserialize::deserialize(d).map(Exporter::File),
            other => Err(D::Error::custom(format!(
                "unknown exporter type {other:?}, expected one of {}",
                Exporter::TYPES.join(", ")
            ))),
        }
    }
}

impl typed_map::Component for Processor {
    const WHAT: &'static str = "processors";

    fn deserialize_kind<'de, D: serde::Deserializer<'de>>(
        kind: &str,
        d: D,
    ) -> Result<Self, D::Error> {
        use serde::de::Error;
        match kind {
            "probabilistic_sampler" => {
                Deserialize::deserialize(d).map(Processor::ProbabilisticSampler)
            }
            "tail_sampling" => Deserialize::deserialize(d).map(Processor::TailSampling),
            "adaptive_sampler" => Deserialize::deserialize(d).map(Processor::AdaptiveSampler),
            "batch" => Err(D::Error::custom(
                "sieve batches in each exporter (see exporters.<name>.batch); remove this processor",
            )),
            other => Err(D::Error::custom(format!(
                "unknown processor type {other:?}, expected one of {}",
                Processor::TYPES.join(", ")
            ))),
        }
    }
}

/// The signals a pipeline can carry.
pub const SIGNALS: [&str; 3] = ["traces", "logs", "metrics"];

impl Config {
    /// Reads and validates a file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_yaml(&text)
    }

    /// Parses, expands `${env:NAME}` with the process environment, and validates.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        Config::from_yaml_with_env(text, &|name| std::env::var(name).ok())
    }

    /// As [`Config::from_yaml`] with a given environment (tests pass a map).
    pub fn from_yaml_with_env(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut value: serde_norway::Value =
            serde_norway::from_str(text).map_err(|e| ConfigError::Yaml(e.to_string()))?;
        if value.is_null() {
            // An empty file means "all defaults".
            value = serde_norway::Value::Mapping(Default::default());
        }
        expand_env(&mut value, "", env)?;
        let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Invalid {
                key: if key == "." {
                    "(top level)".into()
                } else {
                    key
                },
                reason: e.into_inner().to_string(),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types cannot: ranges, addresses, and that pipelines name things that exist.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| {
            Err(ConfigError::Invalid {
                key: key.into(),
                reason,
            })
        };
        if let Some(otlp) = &self.receivers.otlp {
            if let Some(grpc) = &otlp.protocols.grpc {
                parse_addr("receivers.otlp.protocols.grpc.endpoint", &grpc.endpoint)?;
                if !(1..=1024).contains(&grpc.max_recv_msg_size_mib) {
                    return invalid(
                        "receivers.otlp.protocols.grpc.max_recv_msg_size_mib",
                        format!("{} is outside 1..=1024", grpc.max_recv_msg_size_mib),
                    );
                }
            }
            if otlp.limits.max_attributes == 0 {
                return invalid(
                    "receivers.otlp.limits.max_attributes",
                    "must be at least 1".into(),
                );
            }
            if otlp.limits.max_attribute_value_length == 0 {
                return invalid(
                    "receivers.otlp.limits.max_attribute_value_length",
                    "must be at least 1".into(),
                );
            }
        }
        self.analysis.validate()?;
        self.alerting.validate()?;
        for (name, processor) in &self.processors {
            processor.validate(&format!("processors.{name}"))?;
        }
        for (name, exporter) in &self.exporters {
            exporter.validate(&format!("exporters.{name}"))?;
        }
        for (signal, pipeline) in &self.service.pipelines {
            let key = format!("service.pipelines.{signal}");
            if !SIGNALS.contains(&signal.as_str()) {
                return invalid(
                    &key,
                    format!("unknown signal, expected one of {}", SIGNALS.join(", ")),
                );
            }
            if pipeline.receivers.is_empty() {
                return invalid(
                    &format!("{key}.receivers"),
                    "a pipeline needs at least one receiver".into(),
                );
            }
            for r in &pipeline.receivers {
                if r != "otlp" || self.receivers.otlp.is_none() {
                    return invalid(
                        &format!("{key}.receivers"),
                        format!("receiver {r:?} is not defined under receivers"),
                    );
                }
            }
            for (i, p) in pipeline.processors.iter().enumerate() {
                if pipeline.processors[..i].contains(p) {
                    return invalid(
                        &format!("{key}.processors"),
                        format!("processor {p:?} is listed twice"),
                    );
                }
                match self.processors.get(p) {
                    None => {
                        return invalid(
                            &format!("{key}.processors"),
                            format!("processor {p:?} is not defined under processors"),
                        );
                    }
                    Some(Processor::ProbabilisticSampler(_)) if signal == "metrics" => {
                        return invalid(
                            &format!("{key}.processors"),
                            format!("{p:?} samples traces and logs, not metrics"),
                        );
                    }
                    Some(Processor::AdaptiveSampler(_)) if signal != "traces" => {
                        return invalid(
                            &format!("{key}.processors"),
                            format!("{p:?} samples traces: it belongs in the traces pipeline"),
                        );
                    }
                    Some(Processor::TailSampling(_)) if signal != "traces" => {
                        return invalid(
                            &format!("{key}.processors"),
                            format!(
                                "{p:?} samples whole traces: it belongs in the traces pipeline"
                            ),
                        );
                    }
                    Some(Processor::TailSampling(_)) if pipeline.processors.last() != Some(p) => {
                        return invalid(
                            &format!("{key}.processors"),
                            format!(
                                "{p:?} must be the last processor (one tail sampler per pipeline)"
                            ),
                        );
                    }
                    Some(_) => {}
                }
            }
            for (i, x) in pipeline.exporters.iter().enumerate() {
                if !self.exporters.contains_key(x) {
                    return invalid(
                        &format!("{key}.exporters"),
                        format!("exporter {x:?} is not defined under exporters"),
                    );
                }
                if pipeline.exporters[..i].contains(x) {
                    return invalid(
                        &format!("{key}.exporters"),
                        format!("exporter {x:?} is listed twice"),
                    );
                }
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&self.service.telemetry.logs.level).is_err() {
            return invalid(
                "service.telemetry.logs.level",
                format!(
                    "{:?} is not a log filter (try info, debug, or sieve=debug,warn)",
                    self.service.telemetry.logs.level
                ),
            );
        }
        let s = &self.storage;
        if s.path.as_os_str().is_empty() {
            return invalid("storage.path", "must not be empty".into());
        }
        for (key, d) in [
            ("storage.retention", s.retention),
            ("storage.partition", s.partition),
            ("storage.sweep_interval", s.sweep_interval),
            ("storage.flush_every", s.flush_every),
            ("intake.retry_delay", self.intake.retry_delay),
        ] {
            if d.is_zero() {
                return invalid(key, "must be greater than zero".into());
            }
        }
        if s.partition < Duration::from_secs(1) {
            return invalid("storage.partition", "must be at least 1s".into());
        }
        if s.cache_capacity_mib == 0 {
            return invalid("storage.cache_capacity_mib", "must be at least 1".into());
        }
        if s.memtable_mib == 0 {
            return invalid("storage.memtable_mib", "must be at least 1".into());
        }
        if self.intake.max_inflight_mib == 0 {
            return invalid("intake.max_inflight_mib", "must be at least 1".into());
        }
        parse_addr("query.endpoint", &self.query.endpoint)?;
        if let Some(a) = &self.service.telemetry.metrics.address {
            parse_addr("service.telemetry.metrics.address", a)?;
        }
        if self.query.search_depth == 0 {
            return invalid("query.search_depth", "must be at least 1".into());
        }
        Ok(())
    }

    /// `receivers.otlp.protocols.grpc`, if that receiver and protocol are enabled.
    pub fn otlp_grpc(&self) -> Option<&GrpcProtocol> {
        self.receivers.otlp.as_ref()?.protocols.grpc.as_ref()
    }

    /// As [`Config::otlp_grpc`], to change it (tests pick ports and limits).
    pub fn otlp_grpc_mut(&mut self) -> Option<&mut GrpcProtocol> {
        self.receivers.otlp.as_mut()?.protocols.grpc.as_mut()
    }

    /// The OTLP/gRPC listen address, if that receiver is enabled.
    pub fn otlp_grpc_addr(&self) -> Option<SocketAddr> {
        self.otlp_grpc()?.endpoint.parse().ok()
    }

    /// The metrics and health endpoint's address, when it is on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        // validate() has checked it.
        self.service
            .telemetry
            .metrics
            .address
            .as_ref()?
            .parse()
            .ok()
    }

    /// The query API listen address.
    pub fn query_addr(&self) -> SocketAddr {
        // validate() has checked it; the fallback only serves a Config built by hand.
        self.query
            .endpoint
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 4320)))
    }
}

fn parse_addr(key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|e| ConfigError::Invalid {
        key: key.into(),
        reason: format!("{text:?} is not a host:port socket address ({e})"),
    })
}

/// Replaces `${env:NAME}` and `${env:NAME:-default}` in every string scalar. A scalar that is
/// exactly one reference takes the variable's value parsed as a YAML scalar, so
/// `port: ${env:PORT}` yields a number, as in the Collector; inside longer text it is
/// substituted as text. `$$` escapes a dollar sign.
fn expand_env(
    value: &mut serde_norway::Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    use serde_norway::Value;
    match value {
        Value::String(s) => {
            if !s.contains('$') {
                return Ok(());
            }
            let whole = s.starts_with("${env:") && s.ends_with('}') && s.matches("${").count() == 1;
            let expanded = expand_str(s, path, env)?;
            *value = if whole {
                serde_norway::from_str::<Value>(&expanded)
                    .ok()
                    .filter(|v| !matches!(v, Value::Mapping(_) | Value::Sequence(_)))
                    .unwrap_or(Value::String(expanded))
            } else {
                Value::String(expanded)
            };
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = match k {
                    Value::String(s) => s.clone(),
                    other => serde_norway::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                let child = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                expand_env(v, &child, env)?;
            }
        }
        Value::Sequence(seq) => {
            for (i, v) in seq.iter_mut().enumerate() {
                expand_env(v, &format!("{path}[{i}]"), env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand_str(
    s: &str,
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let bad = || ConfigError::BadEnvRef {
        key: key.into(),
        value: s.into(),
    };
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${env:") {
            let end = after.find('}').ok_or_else(bad)?;
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(bad());
            }
            match (env(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(ConfigError::MissingEnv {
                        key: key.into(),
                        name: name.into(),
                    });
                }
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// serde adapter for durations written as `500ms`, `10s`, `72h`, `1h 30m`.
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?} ({e}); write e.g. 500ms, 10s, 72h"
            ))
        })
    }

    /// An optional duration.
    pub mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer};

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(text) => humantime::parse_duration(&text).map(Some).map_err(|e| {
                    serde::de::Error::custom(format!(
                        "invalid duration {text:?} ({e}); write e.g. 500ms, 10s, 72h"
                    ))
                }),
            }
        }
    }
}

/// Byte sizes: a number of bytes, or a number with a unit: `B`, `KB`/`MB`/`GB`/`TB` (powers
/// of 1000) or `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024), e.g. `50GiB`, `1.5 GB`.
pub mod byte_size {
    /// Parses a size; the error says what is accepted.
    pub fn parse(text: &str) -> Result<u64, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let unit = unit.trim();
        let mult: f64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "kb" | "k" => 1e3,
            "mb" | "m" => 1e6,
            "gb" | "g" => 1e9,
            "tb" | "t" => 1e12,
            "kib" => 1024.0,
            "mib" => 1024.0 * 1024.0,
            "gib" => 1024.0 * 1024.0 * 1024.0,
            "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            _ => {
                return Err(format!(
                    "invalid size {text:?}: unknown unit {unit:?}; write e.g. 50GiB, 500MB"
                ));
            }
        };
        let n: f64 = num
            .parse()
            .map_err(|_| format!("invalid size {text:?}; write e.g. 50GiB, 500MB"))?;
        let bytes = n * mult;
        if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
            return Err(format!("invalid size {text:?}: must be at least 1 byte"));
        }
        Ok(bytes as u64)
    }

    /// An optional size: a string as [`parse`] takes it, or a plain number of bytes.
    pub mod option {
        use serde::{Deserialize, Deserializer};

        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
            match Option::<Raw>::deserialize(d)? {
                None => Ok(None),
                Some(Raw::Bytes(0)) => Err(serde::de::Error::custom(
                    "invalid size 0: must be at least 1 byte (leave it unset for no bound)",
                )),
                Some(Raw::Bytes(n)) => Ok(Some(n)),
                Some(Raw::Text(t)) => super::parse(&t).map(Some).map_err(serde::de::Error::custom),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(byte_size::parse("50GiB"), Ok(50 << 30));
        assert_eq!(byte_size::parse("1.5 GB"), Ok(1_500_000_000));
        assert_eq!(byte_size::parse("4096"), Ok(4096));
        assert_eq!(byte_size::parse("10mib"), Ok(10 << 20));
        assert!(byte_size::parse("10 parsecs").is_err());
        assert!(byte_size::parse("GiB").is_err());
        assert!(byte_size::parse("0").is_err());
        let c = parse("storage:\n  max_disk_size: 2GiB\n  compression: none\n").unwrap();
        assert_eq!(c.storage.max_disk_size, Some(2 << 30));
        assert_eq!(c.storage.compression, StorageCompression::None);
        let c = parse("storage:\n  max_disk_size: 123456\n").unwrap();
        assert_eq!(c.storage.max_disk_size, Some(123_456));
        let e = parse("storage:\n  max_disk_size: lots\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid size"), "{e}");
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_yaml_with_env(text, &|name| match name {
            "PORT" => Some("4999".into()),
            "DIR" => Some("/tmp/x".into()),
            _ => None,
        })
    }

    #[test]
    fn embedded_default_parses_and_matches_struct_defaults() {
        let c = Config::from_yaml(DEFAULT_CONFIG_YAML).expect("default config");
        let d = Config::default();
        assert_eq!(c.storage.path, d.storage.path);
        assert_eq!(c.storage.retention, d.storage.retention);
        assert_eq!(c.storage.sync, d.storage.sync);
        assert_eq!(c.query.endpoint, d.query.endpoint);
        assert_eq!(c.otlp_grpc_addr(), d.otlp_grpc_addr());
        assert_eq!(c.intake.max_inflight_mib, d.intake.max_inflight_mib);
        assert_eq!(format!("{:?}", c.analysis), format!("{:?}", d.analysis));
        assert_eq!(format!("{:?}", c.alerting), format!("{:?}", d.alerting));
        assert_eq!(
            c.receivers.otlp.as_ref().map(|o| o.limits.max_attributes),
            Some(128)
        );
    }

    /// The commented exporter example in the embedded default parses, and its values are
    /// the defaults it claims.
    #[test]
    fn commented_exporter_example_is_valid_and_shows_the_defaults() {
        let example: String = DEFAULT_CONFIG_YAML
            .lines()
            .skip_while(|l| !l.starts_with("#   exporters:"))
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{}\n", l.strip_prefix("#   ").unwrap_or("")))
            .collect();
        assert!(example.contains("otlp/backend"), "{example}");
        let yaml = format!(
            "{example}service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp/backend, otlphttp/saas, debug, file/archive]\n"
        );
        let c = parse(&yaml).expect("the example parses");
        let Some(Exporter::Otlp(o)) = c.exporters.get("otlp/backend") else {
            panic!("otlp/backend missing");
        };
        assert_eq!(
            o.sending_queue.queue_size_mib,
            SendingQueue::default().queue_size_mib
        );
        assert_eq!(
            o.sending_queue.num_consumers,
            SendingQueue::default().num_consumers
        );
        assert_eq!(o.batch.send_batch_size, Batch::default().send_batch_size);
        assert_eq!(
            o.batch.max_request_bytes,
            Batch::default().max_request_bytes
        );
        assert_eq!(o.batch.timeout, Batch::default().timeout);
        assert_eq!(
            o.retry_on_failure.initial_interval,
            RetryOnFailure::default().initial_interval
        );
        assert_eq!(
            o.retry_on_failure.max_interval,
            RetryOnFailure::default().max_interval
        );
        assert_eq!(o.circuit_breaker.window, CircuitBreaker::default().window);
        assert_eq!(
            o.circuit_breaker.cool_down,
            CircuitBreaker::default().cool_down
        );
        assert_eq!(o.timeout, default_timeout());
        assert_eq!(o.compression, Compression::Gzip);
        assert!(
            matches!(c.exporters.get("file/archive"), Some(Exporter::File(f)) if f.rotation.max_megabytes == 100 && f.rotation.max_backups == 10)
        );
    }

    /// The commented processor example in the embedded default parses and shows defaults.
    #[test]
    fn commented_processor_example_is_valid() {
        let example: String = DEFAULT_CONFIG_YAML
            .lines()
            .skip_while(|l| !l.starts_with("#   processors:"))
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{}\n", l.strip_prefix("#   ").unwrap_or("")))
            .collect();
        let yaml = format!(
            "{example}service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [probabilistic_sampler, adaptive_sampler, tail_sampling]\n    logs:\n      receivers: [otlp]\n      processors: [probabilistic_sampler]\n"
        );
        let c = parse(&yaml).expect("the example parses");
        let Some(Processor::TailSampling(t)) = c.processors.get("tail_sampling") else {
            panic!("tail_sampling missing");
        };
        assert_eq!(t.decision_wait, default_decision_wait());
        assert_eq!(t.quiet_period, default_quiet_period());
        assert_eq!(t.num_traces, default_num_traces());
        assert_eq!(t.max_buffer_mib, default_buffer_mib());
        assert_eq!(t.decision_cache, default_decision_cache());
        assert_eq!(t.policies.len(), 8);
        let Some(Processor::AdaptiveSampler(a)) = c.processors.get("adaptive_sampler") else {
            panic!("adaptive_sampler missing");
        };
        assert_eq!(a.interval, default_adaptive_interval());
        assert_eq!(a.min_probability, default_min_probability());
        let Some(Processor::ProbabilisticSampler(p)) = c.processors.get("probabilistic_sampler")
        else {
            panic!("probabilistic_sampler missing");
        };
        assert_eq!(p.sampling_precision, default_precision());
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.query.endpoint, "127.0.0.1:4320");
    }

    #[test]
    fn env_expansion_whole_and_embedded() {
        let c = parse(
            "query:\n  endpoint: 127.0.0.1:${env:PORT}\nstorage:\n  path: ${env:DIR}/data\n  cache_capacity_mib: ${env:NOPE:-32}\n",
        )
        .unwrap();
        assert_eq!(c.query.endpoint, "127.0.0.1:4999");
        assert_eq!(c.storage.path, PathBuf::from("/tmp/x/data"));
        assert_eq!(c.storage.cache_capacity_mib, 32);
    }

    #[test]
    fn missing_env_names_key_and_variable() {
        let e = parse("storage:\n  path: ${env:NOT_SET_ANYWHERE}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("storage.path"), "{e}");
        assert!(e.contains("NOT_SET_ANYWHERE"), "{e}");
    }

    #[test]
    fn malformed_env_reference() {
        let e = parse("storage:\n  path: ${env:oops\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("malformed"), "{e}");
    }

    #[test]
    fn unknown_key_is_named() {
        let e = parse("storage:\n  retenton: 1h\n").unwrap_err().to_string();
        assert!(e.contains("storage"), "{e}");
        assert!(e.contains("retenton"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        for (yaml, key) in [
            ("storage:\n  retention: forever\n", "storage.retention"),
            ("storage:\n  retention: 0s\n", "storage.retention"),
            ("query:\n  endpoint: nowhere\n", "query.endpoint"),
            (
                "receivers:\n  otlp:\n    protocols:\n      grpc:\n        max_recv_msg_size_mib: 0\n",
                "max_recv_msg_size_mib",
            ),
            ("storage:\n  sync: maybe\n", "storage.sync"),
            ("exporters:\n  otlp: {}\n", "exporters.otlp"),
            ("processors:\n  batch: {}\n", "processors.batch"),
            (
                "service:\n  pipelines:\n    traces:\n      receivers: [kafka]\n",
                "service.pipelines.traces.receivers",
            ),
            (
                "service:\n  pipelines:\n    profiles:\n      receivers: [otlp]\n",
                "service.pipelines.profiles",
            ),
            (
                "service:\n  telemetry:\n    logs:\n      format: xml\n",
                "service.telemetry.logs.format",
            ),
            (
                "service:\n  telemetry:\n    logs:\n      level: 'sieve=[[['\n",
                "service.telemetry.logs.level",
            ),
            (
                "intake:\n  max_inflight_mib: -1\n",
                "intake.max_inflight_mib",
            ),
            ("analysis:\n  tolerance: 1.5\n", "analysis.tolerance"),
            ("analysis:\n  max_spans: 0\n", "analysis.max_spans"),
            ("analysis:\n  max_series: -3\n", "analysis.max_series"),
            ("analysis:\n  trace_idle: 0s\n", "analysis.trace_idle"),
            (
                "analysis:\n  flush_interval: soon\n",
                "analysis.flush_interval",
            ),
            ("analysis:\n  retention_1h: 30m\n", "analysis.retention_1h"),
            ("analysis:\n  retention_10s: 5s\n", "analysis.retention_10s"),
            (
                "analysis:\n  graph_max_pending: 0\n",
                "analysis.graph_max_pending",
            ),
            ("analysis:\n  sampling: 1\n", "analysis"),
            ("analysis:\n  enabled: sometimes\n", "analysis.enabled"),
            (
                "alerting:\n  evaluation_interval: 0s\n",
                "alerting.evaluation_interval",
            ),
            (
                "alerting:\n  correlation:\n    tau: 2\n",
                "alerting.correlation.tau",
            ),
            (
                "alerting:\n  rules:\n    - {name: a, signal: span.errors, detector: {type: spc, warmup: 5}}\n",
                "alerting.rules[0].signal",
            ),
            (
                "alerting:\n  rules:\n    - {name: a, signal: log.cluster_rate, group_by: [operation], detector: {type: spc, warmup: 5}}\n",
                "alerting.rules[0].group_by",
            ),
            (
                "alerting:\n  rules:\n    - {name: a, signal: apdex, detector: {type: ewma, lambda: 2, l: 3, warmup: 5}}\n",
                "alerting.rules[0].detector",
            ),
            (
                "alerting:\n  rules:\n    - {name: a, signal: apdex, detector: {type: magic}}\n",
                "alerting.rules",
            ),
            (
                "alerting:\n  rules:\n    - {name: a, signal: apdex, detector: {type: static, above: 1}}\n    - {name: a, signal: apdex, detector: {type: static, above: 1}}\n",
                "alerting.rules[1].name",
            ),
            (
                "alerting:\n  receivers:\n    - {name: ops, webhook: {url: 'ftp://x'}}\n  route: {receiver: ops}\n",
                "alerting.receivers[0].url",
            ),
            (
                "alerting:\n  receivers:\n    - {name: ops, webhook: {url: 'http://x'}}\n  route: {receiver: dev}\n",
                "alerting.route.receiver",
            ),
            (
                "alerting:\n  inhibit_rules:\n    - {source_matchers: ['a=~('], target_matchers: []}\n",
                "alerting.inhibit_rules[0].source_matchers",
            ),
            (
                "alerting:\n  silences:\n    - {matchers: [a=b], starts_at: '2026-01-02T00:00:00Z', ends_at: '2026-01-01T00:00:00Z'}\n",
                "alerting.silences[0].ends_at",
            ),
            (
                "alerting:\n  rules:\n    - {name: a, signal: apdex, detector: {type: cusum, k: 0.5, h: 5, warmup: 5, sigma_floor: -1}}\n",
                "alerting.rules[0].detector",
            ),
            (
                "alerting:\n  rules:\n    - {name: a, signal: apdex, detector: {type: cusum, k: 0.5, h: 5, warmup: 5, direction: sideways}}\n",
                "alerting.rules",
            ),
            (
                "alerting:\n  correlation:\n    resolve_after: soon\n",
                "alerting.correlation",
            ),
            (
                "analysis:\n  logs:\n    patterns: ['(']\n",
                "analysis.logs.patterns[0]",
            ),
            (
                "analysis:\n  logs:\n    max_clusters: 0\n",
                "analysis.logs.max_clusters",
            ),
            (
                "analysis:\n  logs:\n    template_attribute: ''\n",
                "analysis.logs.template_attribute",
            ),
        ] {
            let e = parse(yaml).unwrap_err().to_string();
            assert!(e.contains(key), "{yaml:?} gave {e:?}, wanted key {key}");
        }
    }

    #[test]
    fn not_yaml() {
        assert!(matches!(parse("a: [1, 2"), Err(ConfigError::Yaml(_))));
    }
}

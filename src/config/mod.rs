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

#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub mod alerting;
mod analysis;
mod env;
mod exporters;
mod extensions;
mod processors;
mod serde_helpers;
mod storage;
#[cfg(test)]
mod tests;
mod tls;

pub use analysis::*;
use env::expand_env;
pub use exporters::*;
pub use extensions::*;
pub use processors::*;
pub use serde_helpers::byte_size;
use serde_helpers::{duration, parse_error, typed_map};
pub use storage::*;
pub use tls::*;

/// The embedded default configuration (`config/sieve.yaml`), used when no `--config` is given.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("../../config/sieve.yaml");

/// Errors of loading a configuration. Each names the key or the place it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The text is not YAML.
    #[error("config is not valid YAML: {0}")]
    Yaml(String),
    /// `${env:NAME}` names a variable that is not set and has no `:-default`.
    #[error(
        "{key}: environment variable {name} is not set (write ${{env:{name}:-default}} to give a default)"
    )]
    MissingEnv {
        /// The key whose value holds the reference.
        key: String,
        /// The variable.
        name: String,
    },
    /// `${env:` without a closing brace, or an empty name.
    #[error("{key}: malformed ${{env:...}} reference in {value:?}")]
    BadEnvRef {
        /// The key whose value holds the reference.
        key: String,
        /// The value as written.
        value: String,
    },
    /// Deserialisation failed at `key` (unknown key, wrong type, bad duration...).
    #[error("{key}: {reason}")]
    Invalid {
        /// The dotted key, e.g. `exporters.otlp.endpoint` or `processors.tail_sampling.policies[0].latency`.
        key: String,
        /// What is wrong and, where it helps, what would be right.
        reason: String,
    },
}

/// The one way a validation error is built: it names `section.field`, or `section` when
/// `field` is empty.
pub(crate) fn error_at(section: &str, field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: if field.is_empty() {
            section.to_string()
        } else if section.is_empty() {
            field.to_string()
        } else {
            format!("{section}.{field}")
        },
        reason: reason.into(),
    }
}

/// `Err(`[`error_at`]`)`.
pub(crate) fn invalid_at<T>(
    section: &str,
    field: &str,
    reason: impl Into<String>,
) -> Result<T, ConfigError> {
    Err(error_at(section, field, reason))
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
    /// Extensions by name (`type` or `type/name`): `bearertokenauth` (tokens a server accepts)
    /// and `health_check`. One runs only when `service.extensions` lists it.
    #[serde(deserialize_with = "typed_map::deserialize")]
    pub extensions: BTreeMap<String, Extension>,
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

/// `receivers.otlp.protocols`. Without the key both protocols are on; with it, only the
/// ones it lists (as in the Collector: `grpc:` alone turns HTTP off).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocols {
    /// OTLP/gRPC (TraceService, LogsService, MetricsService).
    #[serde(default, deserialize_with = "present")]
    pub grpc: Option<GrpcProtocol>,
    /// OTLP/HTTP (POST of protobuf or JSON to `/v1/traces`, `/v1/logs`, `/v1/metrics`).
    #[serde(default, deserialize_with = "present")]
    pub http: Option<HttpProtocol>,
}

/// A protocol key that is present is on, with its defaults when it has no value (`http:`).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}

impl Default for Protocols {
    fn default() -> Self {
        Protocols {
            grpc: Some(GrpcProtocol::default()),
            http: Some(HttpProtocol::default()),
        }
    }
}

/// `receivers.otlp.protocols.http`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpProtocol {
    /// Address to listen on. Default `127.0.0.1:4318`; port 0 picks a free port.
    pub endpoint: String,
    /// Largest accepted body, after decompression, in bytes (or with a unit, `20MiB`). Default
    /// 20 MiB, as the Collector's. Larger bodies get 413.
    #[serde(with = "byte_size::option")]
    pub max_request_body_size: Option<u64>,
    /// Path of the traces endpoint. Default `/v1/traces`.
    pub traces_url_path: String,
    /// Path of the logs endpoint. Default `/v1/logs`.
    pub logs_url_path: String,
    /// Path of the metrics endpoint. Default `/v1/metrics`.
    pub metrics_url_path: String,
    /// Cross-origin requests from browser SDKs; off unless origins are listed.
    pub cors: Option<Cors>,
    /// How long a client may take to send a request's headers (and its TLS handshake) before
    /// the connection is closed: slow clients cannot hold the connection slots. Default 10s.
    #[serde(with = "duration")]
    pub read_header_timeout: Duration,
    /// Bearer-token authentication: `{authenticator: bearertokenauth}`. Requests without one
    /// of its tokens get 401. Default: none.
    pub auth: Option<Auth>,
    /// TLS, as for grpc. Default: plaintext.
    pub tls: Option<ServerTls>,
}

impl Default for HttpProtocol {
    fn default() -> Self {
        HttpProtocol {
            endpoint: "127.0.0.1:4318".into(),
            max_request_body_size: None,
            traces_url_path: "/v1/traces".into(),
            logs_url_path: "/v1/logs".into(),
            metrics_url_path: "/v1/metrics".into(),
            cors: None,
            read_header_timeout: Duration::from_secs(10),
            auth: None,
            tls: None,
        }
    }
}

impl HttpProtocol {
    /// The body limit in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.max_request_body_size
            .map_or(20 << 20, |n| usize::try_from(n).unwrap_or(usize::MAX))
    }
}

/// `receivers.otlp.protocols.http.cors`, as the Collector's `confighttp`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cors {
    /// Origins allowed to send: exact (`https://app.example.com`), with one `*` wildcard
    /// (`https://*.example.com`), or `*` for any.
    pub allowed_origins: Vec<String>,
    /// Request headers allowed beyond `Content-Type`, `Content-Encoding`, `Accept` and
    /// `X-Requested-With`; `*` allows any.
    pub allowed_headers: Vec<String>,
    /// How long a browser may cache a preflight answer, in seconds. Default: not said.
    pub max_age: Option<u64>,
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
    /// Bearer-token authentication: `{authenticator: bearertokenauth}`. Requests without one
    /// of its tokens get UNAUTHENTICATED. Default: none.
    pub auth: Option<Auth>,
    /// TLS (`cert_file`, `key_file`, optional `client_ca_file` for mTLS). Default: plaintext.
    pub tls: Option<ServerTls>,
    /// How long a client may take from connecting to sending the HTTP/2 connection preface,
    /// its TLS handshake included, before the connection is closed: silent clients cannot
    /// hold the connection slots (at most 1024 connections are open). Default 10s.
    #[serde(with = "duration")]
    pub handshake_timeout: Duration,
}

impl Default for GrpcProtocol {
    fn default() -> Self {
        GrpcProtocol {
            endpoint: "127.0.0.1:4317".into(),
            max_recv_msg_size_mib: 16,
            auth: None,
            tls: None,
            handshake_timeout: Duration::from_secs(10),
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
    /// How far ahead of the gateway's clock a span's start or a log record's time may be
    /// (clock skew); later items are rejected, as expired ones are not stored. Default 1h.
    #[serde(with = "duration")]
    pub max_clock_skew: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_attributes: 128,
            max_attribute_value_length: 65536,
            max_clock_skew: Duration::from_secs(3600),
        }
    }
}

/// `service:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Service {
    /// The extensions to run, by key (`bearertokenauth`, `health_check`, ...).
    pub extensions: Vec<String>,
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
    /// Bearer-token authentication of the query API, separate from the receivers':
    /// `{authenticator: bearertokenauth/query}`; the CLI sends `--token` / `$SIEVE_TOKEN`.
    pub auth: Option<Auth>,
    /// TLS, as for the receivers (the CLI takes `https://` with `--ca-file`). Default:
    /// plaintext.
    pub tls: Option<ServerTls>,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            endpoint: "127.0.0.1:4320".into(),
            search_depth: 10_000,
            auth: None,
            tls: None,
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
        let config: Config =
            serde_path_to_error::deserialize(value.clone()).map_err(|e| parse_error(&value, e))?;
        config.validate()?;
        let mut config = config;
        config.map_batch_processors();
        Ok(config)
    }

    /// A `batch` processor in a pipeline sets `send_batch_size` and `timeout` of that
    /// pipeline's exporters (sieve batches in each exporter, from its queue).
    fn map_batch_processors(&mut self) {
        let mut settings = Vec::new();
        for pipeline in self.service.pipelines.values() {
            for p in &pipeline.processors {
                if let Some(Processor::Batch(b)) = self.processors.get(p) {
                    for x in &pipeline.exporters {
                        settings.push((x.clone(), b.send_batch_size, b.timeout));
                    }
                }
            }
        }
        for (name, size, timeout) in settings {
            if let Some(x) = self.exporters.get_mut(&name) {
                let batch = x.batch_mut();
                batch.send_batch_size = size;
                batch.timeout = timeout;
            }
        }
    }

    /// The process-wide memory limit from the `memory_limiter` processors the pipelines use:
    /// (hard, spike) bytes and the check interval, the lowest soft limit when several.
    pub fn memory_limit(&self, total: Option<u64>) -> Option<(u64, u64, Duration)> {
        self.service
            .pipelines
            .values()
            .flat_map(|p| &p.processors)
            .filter_map(|name| match self.processors.get(name) {
                Some(Processor::MemoryLimiter(m)) => {
                    m.limits(total).map(|(h, s)| (h, s, m.check_interval))
                }
                _ => None,
            })
            .min_by_key(|(h, s, _)| h.saturating_sub(*s))
    }

    /// Checks what types cannot: ranges, addresses, and that pipelines name things that exist.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| invalid_at(key, "", reason);
        self.validate_extensions()?;
        for (key, tls) in [
            (
                "receivers.otlp.protocols.grpc",
                self.otlp_grpc().and_then(|g| g.tls.as_ref()),
            ),
            (
                "receivers.otlp.protocols.http",
                self.otlp_http().and_then(|h| h.tls.as_ref()),
            ),
            ("query", self.query.tls.as_ref()),
        ] {
            if let Some(t) = tls {
                t.validate(key)?;
            }
        }
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
            if let Some(http) = &otlp.protocols.http {
                parse_addr("receivers.otlp.protocols.http.endpoint", &http.endpoint)?;
                for (key, path) in [
                    ("traces_url_path", &http.traces_url_path),
                    ("logs_url_path", &http.logs_url_path),
                    ("metrics_url_path", &http.metrics_url_path),
                ] {
                    if !path.starts_with('/') {
                        return invalid(
                            &format!("receivers.otlp.protocols.http.{key}"),
                            format!("{path:?} must start with /"),
                        );
                    }
                }
                if let Some(addr) = self.otlp_grpc_addr()
                    && http.endpoint.parse::<SocketAddr>().ok() == Some(addr)
                    && addr.port() != 0
                {
                    return invalid(
                        "receivers.otlp.protocols.http.endpoint",
                        format!("{addr} is the grpc endpoint too"),
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

    /// `receivers.otlp.protocols.http`, if on.
    pub fn otlp_http(&self) -> Option<&HttpProtocol> {
        self.receivers.otlp.as_ref()?.protocols.http.as_ref()
    }

    /// Mutable `receivers.otlp.protocols.http`, if on (tests move it to port 0).
    pub fn otlp_http_mut(&mut self) -> Option<&mut HttpProtocol> {
        self.receivers.otlp.as_mut()?.protocols.http.as_mut()
    }

    /// The OTLP/HTTP listen address, if the receiver is on.
    pub fn otlp_http_addr(&self) -> Option<SocketAddr> {
        self.otlp_http()?.endpoint.parse().ok()
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
    text.parse().map_err(|e| {
        error_at(
            key,
            "",
            format!("{text:?} is not a host:port socket address ({e})"),
        )
    })
}

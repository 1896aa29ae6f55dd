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

/// The embedded default configuration (`config/sieve.yaml`), used when no `--config` is given.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("../config/sieve.yaml");

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
    /// Processors by name (`type/name` keys as in the Collector). This version has no processor
    /// types yet, so the map must be empty; sampling processors arrive with the sampling stage.
    pub processors: BTreeMap<String, serde_norway::Value>,
    /// Exporters by name. This version has no exporter types yet, so the map must be empty.
    pub exporters: BTreeMap<String, serde_norway::Value>,
    /// Pipelines and the gateway's own telemetry.
    pub service: Service,
    /// The sled store: where data lives, how durable an acknowledgement is, how long data is kept.
    pub storage: Storage,
    /// Limits between the receivers and the store (backpressure).
    pub intake: Intake,
    /// The query gRPC API.
    pub query: Query,
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
    /// Width of the time partitions data is written into (one set of sled trees per partition,
    /// dropped whole when it expires). Default 1h. Retention is exact to one partition.
    #[serde(with = "duration")]
    pub partition: Duration,
    /// How often the retention sweeper looks for expired partitions. Default 1m.
    #[serde(with = "duration")]
    pub sweep_interval: Duration,
    /// sled's page cache in MiB. Default 16. sled counts serialised sizes, so its real memory
    /// use is a few times this (measured under the loadgen: 64 gave a 380 MiB process, 16 a
    /// 184 MiB one at the same throughput); chunk bodies are read from the OS page cache anyway.
    pub cache_capacity_mib: u64,
    /// Attribute index bounds.
    pub attribute_index: AttributeIndex,
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
        if let Some(name) = self.processors.keys().next() {
            return invalid(
                &format!("processors.{name}"),
                "unknown processor type (this version of sieve has no processors yet)".into(),
            );
        }
        if let Some(name) = self.exporters.keys().next() {
            return invalid(
                &format!("exporters.{name}"),
                "unknown exporter type (this version of sieve has no exporters yet)".into(),
            );
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
            if let Some(p) = pipeline.processors.first() {
                return invalid(
                    &format!("{key}.processors"),
                    format!("processor {p:?} is not defined under processors"),
                );
            }
            if let Some(x) = pipeline.exporters.first() {
                return invalid(
                    &format!("{key}.exporters"),
                    format!("exporter {x:?} is not defined under exporters"),
                );
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
        if self.intake.max_inflight_mib == 0 {
            return invalid("intake.max_inflight_mib", "must be at least 1".into());
        }
        parse_addr("query.endpoint", &self.query.endpoint)?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            c.receivers.otlp.as_ref().map(|o| o.limits.max_attributes),
            Some(128)
        );
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

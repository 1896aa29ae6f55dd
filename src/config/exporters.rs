//! `exporters:` — `otlp`, `otlphttp`, `debug` and `file`, with the persistent queue, batching,
//! retry and circuit breaker every exporter has.

use super::*;

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
    /// `sending_queue`.
    pub sending_queue: &'a SendingQueue,
    /// `batch`.
    pub batch: &'a Batch,
    /// `retry_on_failure`.
    pub retry_on_failure: &'a RetryOnFailure,
    /// `circuit_breaker`.
    pub circuit_breaker: &'a CircuitBreaker,
}

impl Exporter {
    /// The type part of a `type/name` key.
    pub const TYPES: [&'static str; 4] = ["otlp", "otlphttp", "debug", "file"];

    /// The delivery settings of this exporter, whatever its type.
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

    /// This exporter's batching, to change (a `batch` processor sets it).
    pub fn batch_mut(&mut self) -> &mut Batch {
        match self {
            Exporter::Otlp(e) => &mut e.batch,
            Exporter::OtlpHttp(e) => &mut e.batch,
            Exporter::Debug(e) => &mut e.batch,
            Exporter::File(e) => &mut e.batch,
        }
    }

    pub(super) fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let invalid = |sub: &str, reason: String| invalid_at(key, sub, reason);
        match self {
            Exporter::Otlp(e) => {
                e.uri()
                    .map_err(|reason| error_at(key, "endpoint", reason))?;
                check_client_tls(key, e.tls.as_ref())?;
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
                        http_url(url).map_err(|reason| error_at(key, sub, reason))?;
                    }
                }
                check_headers(key, &e.headers)?;
                check_client_tls(key, e.tls.as_ref())?;
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
        if !d.sending_queue.enabled {
            return invalid(
                "sending_queue.enabled",
                "sieve's persistent queue cannot be turned off: it is what keeps an \
                 acknowledged request while the downstream is away"
                    .into(),
            );
        }
        if !d.retry_on_failure.enabled {
            return invalid(
                "retry_on_failure.enabled",
                "sieve always retries from its queue on disk; to drop data, use \
                 sending_queue.when_full: drop_oldest"
                    .into(),
            );
        }
        if !(d.retry_on_failure.multiplier >= 1.0 && d.retry_on_failure.multiplier <= 10.0) {
            return invalid(
                "retry_on_failure.multiplier",
                format!("{} is outside 1..=10", d.retry_on_failure.multiplier),
            );
        }
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

/// The otlp exporter's TLS: files that exist, a key with its certificate, and no
/// `insecure_skip_verify` (a gateway that forwards what it acknowledged checks who it hands
/// it to).
fn check_client_tls(key: &str, tls: Option<&ClientTls>) -> Result<(), ConfigError> {
    let Some(t) = tls else { return Ok(()) };
    let at = format!("{key}.tls");
    if t.insecure_skip_verify {
        return invalid_at(
            &at,
            "insecure_skip_verify",
            "not supported: give the server's CA in ca_file",
        );
    }
    if t.cert_file.is_some() != t.key_file.is_some() {
        return invalid_at(&at, "key_file", "cert_file and key_file go together");
    }
    for (field, path) in [
        ("ca_file", &t.ca_file),
        ("cert_file", &t.cert_file),
        ("key_file", &t.key_file),
    ] {
        if let Some(p) = path
            && !p.is_file()
        {
            return invalid_at(
                &at,
                field,
                format!("{} is not a readable file", p.display()),
            );
        }
    }
    Ok(())
}

fn check_headers(key: &str, headers: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (name, value) in headers {
        let bad_name = http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || name.bytes().any(|b| b.is_ascii_uppercase());
        if bad_name || http::HeaderValue::from_str(value).is_err() {
            return invalid_at(
                &format!("{key}.headers"),
                name,
                "not a valid lowercase HTTP header name and value",
            );
        }
    }
    Ok(())
}

impl OtlpExporter {
    /// Whether this exporter speaks TLS: an `https://` endpoint, or a `tls` section that is
    /// not `insecure: true` (without either, plaintext: sieve's default, where the
    /// Collector's is TLS).
    pub fn uses_tls(&self) -> bool {
        self.endpoint.starts_with("https://") || self.tls.as_ref().is_some_and(|t| !t.insecure)
    }

    /// The endpoint as a URI, `https` when [`OtlpExporter::uses_tls`].
    pub fn uri(&self) -> Result<http::Uri, String> {
        if self.endpoint.starts_with("https://") && self.tls.as_ref().is_some_and(|t| t.insecure) {
            return Err(format!(
                "{:?} is https but tls.insecure is true",
                self.endpoint
            ));
        }
        let bare = self
            .endpoint
            .split_once("://")
            .map_or(&*self.endpoint, |(_, r)| r);
        let scheme = if self.uses_tls() { "https" } else { "http" };
        if self.endpoint.contains("://")
            && !self.endpoint.starts_with("http://")
            && !self.endpoint.starts_with("https://")
        {
            return Err(format!(
                "{:?}: the scheme must be http or https",
                self.endpoint
            ));
        }
        grpc_endpoint_uri(&format!("{scheme}://{bare}"))
    }
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
        Some("http" | "https") => {}
        _ => return Err(format!("{endpoint:?}: the scheme must be http or https")),
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
        Some("http" | "https") => {}
        _ => return Err(format!("{url:?} must start with http:// or https://")),
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
    /// zstd.
    Zstd,
    /// Uncompressed.
    None,
}

/// `exporters.otlp[/name]`: OTLP/gRPC to another gateway, a Collector or a backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpExporter {
    /// `host:port` or `http://host:port`. Required.
    pub endpoint: String,
    /// The Collector's client TLS settings (see [`ClientTls`]); also on with an `https://`
    /// endpoint.
    #[serde(default)]
    pub tls: Option<ClientTls>,
    /// gRPC metadata sent with every request (lowercase names), e.g. an API key.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `gzip` (default), `zstd` or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// Deadline of one attempt (sent as grpc-timeout too). Default 5s.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    /// The persistent queue in front of the downstream (size, what happens when full).
    #[serde(default)]
    pub sending_queue: SendingQueue,
    /// How queued items are batched into requests.
    #[serde(default)]
    pub batch: Batch,
    /// Backoff between attempts that failed in a retryable way.
    #[serde(default)]
    pub retry_on_failure: RetryOnFailure,
    /// Stops sending to a downstream that keeps failing, then probes it.
    #[serde(default)]
    pub circuit_breaker: CircuitBreaker,
}

/// `exporters.otlphttp[/name]`: OTLP/HTTP, protobuf bodies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpHttpExporter {
    /// The Collector's client TLS settings (see [`ClientTls`]): used for `https://` URLs.
    #[serde(default)]
    pub tls: Option<ClientTls>,
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
    /// The persistent queue in front of the downstream (size, what happens when full).
    #[serde(default)]
    pub sending_queue: SendingQueue,
    /// How queued items are batched into requests.
    #[serde(default)]
    pub batch: Batch,
    /// Backoff between attempts that failed in a retryable way.
    #[serde(default)]
    pub retry_on_failure: RetryOnFailure,
    /// Stops sending to a downstream that keeps failing, then probes it.
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
    /// The persistent queue in front of the downstream (size, what happens when full).
    #[serde(default)]
    pub sending_queue: SendingQueue,
    /// How queued items are batched into requests.
    #[serde(default)]
    pub batch: Batch,
    /// Backoff between attempts that failed in a retryable way.
    #[serde(default)]
    pub retry_on_failure: RetryOnFailure,
    /// Stops sending to a downstream that keeps failing, then probes it.
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
    /// When the file is rotated and how many rotated files are kept.
    #[serde(default)]
    pub rotation: Rotation,
    /// The persistent queue in front of the downstream (size, what happens when full).
    #[serde(default)]
    pub sending_queue: SendingQueue,
    /// How queued items are batched into requests.
    #[serde(default)]
    pub batch: Batch,
    /// Backoff between attempts that failed in a retryable way.
    #[serde(default)]
    pub retry_on_failure: RetryOnFailure,
    /// Stops sending to a downstream that keeps failing, then probes it.
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

/// `exporters.<name>.tls`, the Collector's client TLS keys. For `otlp`: TLS unless
/// `insecure: true`; for `otlphttp`: TLS for `https://` URLs. The server is checked against
/// `ca_file` (else the public web roots); `cert_file` + `key_file` is a client certificate
/// (mTLS).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientTls {
    /// Plaintext.
    pub insecure: bool,
    /// Skip the server certificate check: refused (give `ca_file`).
    pub insecure_skip_verify: bool,
    /// CA bundle (PEM) to check the server with.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS.
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM) for mTLS.
    pub key_file: Option<PathBuf>,
}

/// `exporters.<name>.sending_queue`: the exporter's persistent queue in the store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SendingQueue {
    /// Must be true (the Collector's key): the queue is always on.
    pub enabled: bool,
    /// The Collector's bound in requests. Accepted and not used: sieve bounds the queue in
    /// bytes (`queue_size_mib`).
    pub queue_size: Option<u64>,
    /// The Collector's storage extension for a persistent queue. Accepted and not used:
    /// sieve's queue is always persistent, in `storage.path`.
    pub storage: Option<String>,
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
            enabled: true,
            queue_size: None,
            storage: None,
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
    /// Must be true (the Collector's key): retrying from the queue cannot be turned off.
    pub enabled: bool,
    /// Growth of the delay per attempt. Default 2 (the Collector's default is 1.5).
    pub multiplier: f64,
    /// The Collector's limit on retrying one batch. Accepted and not used: queued data
    /// waits on disk until it is sent or the queue bound (`when_full`) drops it.
    #[serde(default, with = "duration::option")]
    pub max_elapsed_time: Option<Duration>,
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
            enabled: true,
            multiplier: 2.0,
            max_elapsed_time: None,
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

pub(super) fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

//! Where a batch goes: the four exporter types and how each classifies a downstream's answer.
//!
//! Each sink sends one encoded OTLP export request (already batched and sized by the worker)
//! and answers with an [`Outcome`]. Classification follows the OTLP specification:
//! - gRPC: OK (a `partial_success` is recorded, never retried); UNAVAILABLE, CANCELLED,
//!   DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE and DATA_LOSS are retryable, with the RetryInfo
//!   delay when one is attached; RESOURCE_EXHAUSTED is retryable only with RetryInfo, and
//!   without it means "too large" (sieve's own receiver and the Collector answer an oversize
//!   request so), so the request is split; everything else is permanent.
//! - HTTP: 2xx is success (a protobuf body's `partial_success` is recorded); 429, 502, 503,
//!   504 are retryable, honouring Retry-After (seconds or an HTTP date); 413 is "too large";
//!   other statuses are permanent. Connection failures and timeouts are retryable.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::BodyExt;
use prost::Message;
use tonic::Code;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic_types::StatusExt;

use crate::config;
use crate::otlp::Signal;

/// How a downstream answered one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Accepted; `rejected` items were refused by the downstream (partial success), with its
    /// message.
    Sent { rejected: u64, message: String },
    /// Try again later; `after` is the downstream's own delay when it gave one.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// The request is too large for the downstream: split it and send the parts.
    TooLarge { reason: String },
    /// The downstream will never accept this request.
    Permanent { reason: String },
}

/// The `partial_success` part of any of the three export responses (they share field
/// numbers), so one decoder serves all signals.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportResponse {
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<PartialSuccess>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PartialSuccess {
    #[prost(int64, tag = "1")]
    pub rejected: i64,
    #[prost(string, tag = "2")]
    pub error_message: String,
}

impl ExportResponse {
    fn outcome(self) -> Outcome {
        let p = self.partial_success.unwrap_or_default();
        Outcome::Sent {
            rejected: p.rejected.max(0) as u64,
            message: p.error_message,
        }
    }
}

/// One exporter's destination.
pub enum Sink {
    Grpc(GrpcSink),
    Http(Box<HttpSink>),
    Debug(DebugSink),
    File(FileSink),
    /// Scripted answers for the delivery tests (tokio's paused clock needs an in-process
    /// downstream; the real ones are tested over loopback in tests/export.rs).
    #[cfg(test)]
    Script(script::Script),
}

/// Why an exporter's sink cannot be built from its config.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The endpoint or a per-signal URL does not parse or uses what is not supported.
    #[error("endpoint: {0}")]
    Endpoint(String),
    /// A header name or value is not valid in HTTP/2 or HTTP/1.1.
    #[error("header {name:?}: {reason}")]
    Header { name: String, reason: String },
    /// A TLS file could not be read or used.
    #[error("tls: {0}")]
    Tls(String),
}

impl Sink {
    /// Builds the sink of exporter `name`.
    pub fn new(name: &str, cfg: &config::Exporter) -> Result<Sink, SinkError> {
        Ok(match cfg {
            config::Exporter::Otlp(c) => Sink::Grpc(GrpcSink::new(c)?),
            config::Exporter::OtlpHttp(c) => Sink::Http(Box::new(HttpSink::new(c)?)),
            config::Exporter::Debug(c) => Sink::Debug(DebugSink {
                name: name.to_string(),
                verbosity: c.verbosity,
            }),
            config::Exporter::File(c) => Sink::File(FileSink::new(c)),
        })
    }

    pub async fn send(&self, signal: Signal, body: Bytes, items: u64) -> Outcome {
        match self {
            Sink::Grpc(s) => s.send(signal, body).await,
            Sink::Http(s) => s.send(signal, body).await,
            Sink::Debug(s) => s.send(signal, body, items),
            Sink::File(s) => s.send(signal, body).await,
            #[cfg(test)]
            Sink::Script(s) => s.send(body).await,
        }
    }
}

/// gRPC status → outcome (see the module docs).
pub fn classify_status(status: &tonic::Status) -> Outcome {
    let reason = format!("{:?}: {}", status.code(), status.message());
    let after = status.get_details_retry_info().and_then(|r| r.retry_delay);
    match status.code() {
        Code::Ok => Outcome::Sent {
            rejected: 0,
            message: String::new(),
        },
        Code::Unavailable
        | Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::DataLoss => Outcome::Retry { reason, after },
        Code::ResourceExhausted if after.is_some() => Outcome::Retry { reason, after },
        Code::ResourceExhausted => Outcome::TooLarge { reason },
        // tonic reports a connection that broke mid-request (reset, EOF, RST_STREAM) as
        // UNKNOWN or INTERNAL with the transport error as its source: the downstream never
        // answered, so it is not its verdict on the data.
        Code::Unknown | Code::Internal if from_transport(status) => {
            Outcome::Retry { reason, after }
        }
        _ => Outcome::Permanent { reason },
    }
}

/// Did tonic make this status from a transport failure rather than receive it?
fn from_transport(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some()
        || status.message().starts_with("h2 protocol error")
        || status.message().contains("Unexpected EOF")
}

/// HTTP status → outcome (see the module docs).
pub fn classify_http(status: u16, retry_after: Option<&str>, body: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    let reason = format!("HTTP {status}: {}", text.trim());
    match status {
        200..=299 => ExportResponse::decode(body)
            .map(ExportResponse::outcome)
            .unwrap_or(Outcome::Sent {
                rejected: 0,
                message: String::new(),
            }),
        429 | 502 | 503 | 504 => Outcome::Retry {
            reason,
            after: retry_after.and_then(parse_retry_after),
        },
        413 => Outcome::TooLarge { reason },
        _ => Outcome::Permanent { reason },
    }
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn grpc_path(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    }
}

/// tonic's client TLS from the exporter's `tls`: its CA (else the public web roots) and
/// client certificate.
fn client_tls(
    t: Option<&config::ClientTls>,
) -> Result<tonic::transport::ClientTlsConfig, SinkError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| SinkError::Tls(format!("{}: {e}", p.display())))
    };
    let mut c = tonic::transport::ClientTlsConfig::new();
    match t.and_then(|t| t.ca_file.as_deref()) {
        Some(ca) => c = c.ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?)),
        None => c = c.with_webpki_roots(),
    }
    if let Some(t) = t
        && let (Some(cert), Some(key)) = (&t.cert_file, &t.key_file)
    {
        c = c.identity(tonic::transport::Identity::from_pem(
            read(cert)?,
            read(key)?,
        ));
    }
    Ok(c)
}

/// `otlp`: OTLP/gRPC.
pub struct GrpcSink {
    channel: tonic::transport::Channel,
    headers: MetadataMap,
    compression: Option<CompressionEncoding>,
    timeout: Duration,
}

impl GrpcSink {
    fn new(c: &config::OtlpExporter) -> Result<GrpcSink, SinkError> {
        let uri = c.uri().map_err(SinkError::Endpoint)?;
        let mut endpoint = tonic::transport::Endpoint::from(uri)
            .connect_timeout(c.timeout)
            .timeout(c.timeout);
        if c.uses_tls() {
            endpoint = endpoint
                .tls_config(client_tls(c.tls.as_ref())?)
                .map_err(|e| SinkError::Tls(e.to_string()))?;
        }
        let channel = endpoint.connect_lazy();
        let mut headers = MetadataMap::new();
        for (k, v) in &c.headers {
            let bad = |e: &dyn std::fmt::Display| SinkError::Header {
                name: k.clone(),
                reason: e.to_string(),
            };
            let key = MetadataKey::from_bytes(k.as_bytes()).map_err(|e| bad(&e))?;
            let value = MetadataValue::try_from(v.as_str()).map_err(|e| bad(&e))?;
            headers.insert(key, value);
        }
        Ok(GrpcSink {
            channel,
            headers,
            compression: match c.compression {
                config::Compression::Gzip => Some(CompressionEncoding::Gzip),
                config::Compression::Zstd => Some(CompressionEncoding::Zstd),
                config::Compression::None => None,
            },
            timeout: c.timeout,
        })
    }

    async fn send(&self, signal: Signal, body: Bytes) -> Outcome {
        let attempt = async {
            let mut grpc = tonic::client::Grpc::new(self.channel.clone())
                .max_decoding_message_size(4 * 1024 * 1024);
            if let Some(c) = self.compression {
                grpc = grpc.send_compressed(c);
            }
            grpc.ready()
                .await
                .map_err(|e| tonic::Status::unavailable(format!("not connected: {e}")))?;
            let mut req = tonic::Request::new(body);
            *req.metadata_mut() = self.headers.clone();
            req.set_timeout(self.timeout);
            grpc.unary(
                req,
                tonic::codegen::http::uri::PathAndQuery::from_static(grpc_path(signal)),
                crate::otlp::PreEncodedCodec::<ExportResponse>::default(),
            )
            .await
            .map(tonic::Response::into_inner)
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Err(_) => Outcome::Retry {
                reason: format!("no answer within {:?}", self.timeout),
                after: None,
            },
            Ok(Ok(resp)) => resp.outcome(),
            Ok(Err(status)) => classify_status(&status),
        }
    }
}

/// The HTTP/1 client of the HTTP sinks (and of alert notifications): http and https.
pub type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<Bytes>,
>;

/// An [`HttpClient`]: https checks the server against `tls.ca_file` (else the public web
/// roots) and presents `tls.cert_file` + `key_file` when given.
pub fn http_client(
    connect_timeout: Duration,
    tls: Option<&config::ClientTls>,
) -> Result<HttpClient, SinkError> {
    use hyper_rustls::ConfigBuilderExt as _;
    use tokio_rustls::rustls;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| SinkError::Tls(e.to_string()))?;
    let builder = match tls.and_then(|t| t.ca_file.as_deref()) {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in config::read_certs(ca).map_err(SinkError::Tls)? {
                roots
                    .add(c)
                    .map_err(|e| SinkError::Tls(format!("{}: {e}", ca.display())))?;
            }
            builder.with_root_certificates(roots)
        }
        None => builder.with_webpki_roots(),
    };
    let client_config =
        match tls.and_then(|t| Some((t.cert_file.as_deref()?, t.key_file.as_deref()?))) {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    config::read_certs(cert).map_err(SinkError::Tls)?,
                    config::read_key(key).map_err(SinkError::Tls)?,
                )
                .map_err(|e| SinkError::Tls(e.to_string()))?,
            None => builder.with_no_client_auth(),
        };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https),
    )
}

/// `otlphttp`: OTLP/HTTP with protobuf bodies.
pub struct HttpSink {
    client: HttpClient,
    urls: [http::Uri; 3],
    headers: http::HeaderMap,
    compression: config::Compression,
    timeout: Duration,
}

impl HttpSink {
    fn new(c: &config::OtlpHttpExporter) -> Result<HttpSink, SinkError> {
        let url = |specific: &Option<String>, path: &str| -> Result<http::Uri, SinkError> {
            match specific {
                Some(u) => config::http_url(u),
                None => config::http_url(&format!("{}{path}", c.endpoint.trim_end_matches('/'))),
            }
            .map_err(SinkError::Endpoint)
        };
        let mut headers = http::HeaderMap::new();
        for (k, v) in &c.headers {
            let bad = |e: &dyn std::fmt::Display| SinkError::Header {
                name: k.clone(),
                reason: e.to_string(),
            };
            headers.insert(
                http::HeaderName::from_bytes(k.as_bytes()).map_err(|e| bad(&e))?,
                http::HeaderValue::from_str(v).map_err(|e| bad(&e))?,
            );
        }
        Ok(HttpSink {
            client: http_client(c.timeout, c.tls.as_ref())?,
            urls: [
                url(&c.traces_endpoint, "/v1/traces")?,
                url(&c.logs_endpoint, "/v1/logs")?,
                url(&c.metrics_endpoint, "/v1/metrics")?,
            ],
            headers,
            compression: c.compression,
            timeout: c.timeout,
        })
    }

    async fn send(&self, signal: Signal, body: Bytes) -> Outcome {
        let (body, encoding) = match compress(self.compression, &body) {
            Ok(x) => x,
            Err(e) => {
                return Outcome::Retry {
                    reason: format!("compressing the request failed: {e}"),
                    after: None,
                };
            }
        };
        let url = &self.urls[match signal {
            Signal::Traces => 0,
            Signal::Logs => 1,
            Signal::Metrics => 2,
        }];
        let mut req = http::Request::post(url.clone())
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .header(
                http::header::USER_AGENT,
                concat!("sieve/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(e) = encoding {
            req = req.header(http::header::CONTENT_ENCODING, e);
        }
        let mut req = match req.body(http_body_util::Full::new(body)) {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Permanent {
                    reason: format!("cannot build the request: {e}"),
                };
            }
        };
        req.headers_mut().extend(self.headers.clone());
        let attempt = async {
            let resp = self.client.request(req).await.map_err(|e| {
                // The source chain says what failed (connection refused, reset...).
                let mut text = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    text.push_str(": ");
                    text.push_str(&s.to_string());
                    src = s.source();
                }
                text
            })?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            // Read at most 64 KiB of the answer.
            let limited = http_body_util::Limited::new(resp.into_body(), 64 * 1024);
            let bytes = limited
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            Ok::<_, String>(classify_http(status, retry_after.as_deref(), &bytes))
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Err(_) => Outcome::Retry {
                reason: format!("no answer within {:?}", self.timeout),
                after: None,
            },
            Ok(Err(e)) => Outcome::Retry {
                reason: format!("request failed: {e}"),
                after: None,
            },
            Ok(Ok(outcome)) => outcome,
        }
    }
}

fn compress(
    c: config::Compression,
    body: &Bytes,
) -> std::io::Result<(Bytes, Option<&'static str>)> {
    Ok(match c {
        config::Compression::None => (body.clone(), None),
        config::Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::fast(),
            );
            enc.write_all(body)?;
            (Bytes::from(enc.finish()?), Some("gzip"))
        }
        config::Compression::Zstd => (Bytes::from(zstd::encode_all(&body[..], 1)?), Some("zstd")),
    })
}

/// Decodes an export request of `signal` into its `*Data` message, for the debug and file
/// exporters (the only ones that look inside).
fn to_json(signal: Signal, body: &Bytes, pretty: bool) -> Result<String, String> {
    use opentelemetry_proto::tonic::{
        logs::v1::LogsData, metrics::v1::MetricsData, trace::v1::TracesData,
    };
    // Each `*Data` message has the same field 1 as its export request, so the request's bytes
    // decode as it.
    let json = |v: &dyn erased::Json| v.to_json(pretty);
    match signal {
        Signal::Traces => json(&TracesData::decode(body.clone()).map_err(|e| e.to_string())?),
        Signal::Logs => json(&LogsData::decode(body.clone()).map_err(|e| e.to_string())?),
        Signal::Metrics => json(&MetricsData::decode(body.clone()).map_err(|e| e.to_string())?),
    }
}

mod erased {
    pub trait Json {
        fn to_json(&self, pretty: bool) -> Result<String, String>;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_json(&self, pretty: bool) -> Result<String, String> {
            if pretty {
                serde_json::to_string_pretty(self)
            } else {
                serde_json::to_string(self)
            }
            .map_err(|e| e.to_string())
        }
    }
}

/// `debug`: batches to sieve's log.
pub struct DebugSink {
    name: String,
    verbosity: config::Verbosity,
}

impl DebugSink {
    fn send(&self, signal: Signal, body: Bytes, items: u64) -> Outcome {
        let resources = super::wire::count_resources(&body).unwrap_or(0);
        tracing::info!(
            target: "sieve::stages::export::debug",
            exporter = %self.name,
            signal = signal.as_str(),
            resources,
            items,
            bytes = body.len(),
            "{}: {items} {} in {resources} resources",
            self.name,
            signal.item()
        );
        match self.verbosity {
            config::Verbosity::Basic => {}
            config::Verbosity::Normal => {
                for line in normal_lines(signal, &body) {
                    tracing::info!(target: "sieve::stages::export::debug", exporter = %self.name, "{line}");
                }
            }
            config::Verbosity::Detailed => match to_json(signal, &body, true) {
                Ok(json) => {
                    tracing::info!(target: "sieve::stages::export::debug", exporter = %self.name, "{json}")
                }
                Err(e) => {
                    return Outcome::Permanent {
                        reason: format!("not a valid OTLP {} request: {e}", signal.as_str()),
                    };
                }
            },
        }
        Outcome::Sent {
            rejected: 0,
            message: String::new(),
        }
    }
}

/// One line per item, as the Collector's debug exporter writes at `normal`.
fn normal_lines(signal: Signal, body: &Bytes) -> Vec<String> {
    use opentelemetry_proto::tonic::{
        logs::v1::LogsData, metrics::v1::MetricsData, trace::v1::TracesData,
    };
    let mut out = Vec::new();
    match signal {
        Signal::Traces => {
            if let Ok(d) = TracesData::decode(body.clone()) {
                for (svc, s) in crate::otlp::spans(&d.resource_spans) {
                    out.push(format!(
                        "{svc} {} {} {} {}ns",
                        hex::encode(&s.trace_id),
                        hex::encode(&s.span_id),
                        s.name,
                        s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano)
                    ));
                }
            }
        }
        Signal::Logs => {
            if let Ok(d) = LogsData::decode(body.clone()) {
                for rl in &d.resource_logs {
                    let svc = crate::otlp::service_name(rl.resource.as_ref());
                    for l in rl.scope_logs.iter().flat_map(|s| &s.log_records) {
                        out.push(format!(
                            "{svc} {} {}",
                            crate::otlp::severity_name(crate::otlp::effective_severity(
                                l.severity_number,
                                &l.severity_text
                            )),
                            crate::otlp::any_value_text(l.body.as_ref())
                        ));
                    }
                }
            }
        }
        Signal::Metrics => {
            if let Ok(d) = MetricsData::decode(body.clone()) {
                for rm in &d.resource_metrics {
                    let svc = crate::otlp::service_name(rm.resource.as_ref());
                    for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                        out.push(format!("{svc} {} {}", m.name, m.unit));
                    }
                }
            }
        }
    }
    out
}

/// `file`: OTLP JSON lines with size-based rotation.
pub struct FileSink {
    path: PathBuf,
    max_bytes: u64,
    max_backups: usize,
    /// The open file and its size; a std lock taken inside `spawn_blocking` only.
    file: Arc<Mutex<Option<(std::fs::File, u64)>>>,
}

impl FileSink {
    fn new(c: &config::FileExporter) -> FileSink {
        FileSink {
            path: c.path.clone(),
            max_bytes: c.rotation.max_megabytes.saturating_mul(1024 * 1024),
            max_backups: c.rotation.max_backups,
            file: Arc::new(Mutex::new(None)),
        }
    }

    async fn send(&self, signal: Signal, body: Bytes) -> Outcome {
        let mut line = match to_json(signal, &body, false) {
            Ok(j) => j,
            Err(e) => {
                return Outcome::Permanent {
                    reason: format!("not a valid OTLP {} request: {e}", signal.as_str()),
                };
            }
        };
        line.push('\n');
        let (path, max, backups, file) = (
            self.path.clone(),
            self.max_bytes,
            self.max_backups,
            self.file.clone(),
        );
        let r = tokio::task::spawn_blocking(move || {
            let mut guard = file.lock().unwrap_or_else(|p| p.into_inner());
            write_line(&mut guard, &path, max, backups, line.as_bytes())
        })
        .await;
        match r {
            Ok(Ok(())) => Outcome::Sent {
                rejected: 0,
                message: String::new(),
            },
            // A full disk or a missing directory may be fixed; the queue keeps the batch.
            Ok(Err(e)) => Outcome::Retry {
                reason: format!("writing {}: {e}", self.path.display()),
                after: None,
            },
            Err(e) => Outcome::Retry {
                reason: format!("file writer task failed: {e}"),
                after: None,
            },
        }
    }
}

fn write_line(
    state: &mut Option<(std::fs::File, u64)>,
    path: &Path,
    max: u64,
    backups: usize,
    line: &[u8],
) -> std::io::Result<()> {
    if let Some((_, size)) = state
        && *size > 0
        && *size + line.len() as u64 > max
    {
        *state = None;
        rotate(path, backups)?;
    }
    if state.is_none() {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let size = f.metadata()?.len();
        *state = Some((f, size));
    }
    let Some((f, size)) = state else {
        return Err(std::io::Error::other("file not open"));
    };
    if let Err(e) = f.write_all(line).and_then(|()| f.sync_data()) {
        // Reopen next time; a partial line may remain, and the batch is written again whole.
        *state = None;
        return Err(e);
    }
    *size += line.len() as u64;
    Ok(())
}

/// Renames the file to `<stem>-<unix millis>[.<ext>]` and deletes the oldest rotated files
/// past `backups`.
fn rotate(path: &Path, backups: usize) -> std::io::Result<()> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let millis = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut target = dir.join(format!("{stem}-{millis:013}{ext}"));
    let mut n = 1;
    while target.exists() {
        target = dir.join(format!("{stem}-{millis:013}.{n}{ext}"));
        n += 1;
    }
    std::fs::rename(path, &target)?;
    if backups > 0 {
        let prefix = format!("{stem}-");
        let mut rotated: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.strip_prefix(&prefix)
                        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
                        && n.ends_with(&ext)
                })
            })
            .collect();
        rotated.sort();
        let excess = rotated.len().saturating_sub(backups);
        for old in &rotated[..excess] {
            std::fs::remove_file(old)?;
        }
    }
    Ok(())
}

#[cfg(test)]
pub mod script {
    //! A downstream that answers from a script and records when it was called.

    use std::collections::VecDeque;
    use std::sync::Mutex;

    use bytes::Bytes;
    use tokio::time::Instant;

    use super::Outcome;

    #[derive(Default)]
    pub struct Script {
        /// Answers in order; when empty, every call succeeds.
        pub answers: Mutex<VecDeque<Outcome>>,
        /// (when, body) per call.
        pub calls: Mutex<Vec<(Instant, Bytes)>>,
    }

    impl Script {
        pub async fn send(&self, body: Bytes) -> Outcome {
            self.calls.lock().unwrap().push((Instant::now(), body));
            self.answers
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Outcome::Sent {
                    rejected: 0,
                    message: String::new(),
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::ErrorDetails;

    #[test]
    fn grpc_statuses_classify_as_the_spec_says() {
        let retry = |s: tonic::Status| matches!(classify_status(&s), Outcome::Retry { .. });
        assert!(retry(tonic::Status::unavailable("down")));
        assert!(retry(tonic::Status::deadline_exceeded("slow")));
        assert!(retry(tonic::Status::aborted("x")));
        assert!(retry(tonic::Status::out_of_range("x")));
        assert!(retry(tonic::Status::data_loss("x")));
        assert!(retry(tonic::Status::cancelled("x")));
        let with_info = tonic::Status::with_error_details(
            Code::ResourceExhausted,
            "busy",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(7))),
        );
        assert_eq!(
            classify_status(&with_info),
            Outcome::Retry {
                reason: "ResourceExhausted: busy".into(),
                after: Some(Duration::from_secs(7))
            }
        );
        assert!(matches!(
            classify_status(&tonic::Status::resource_exhausted("too big")),
            Outcome::TooLarge { .. }
        ));
        // A broken connection surfaces as UNKNOWN/INTERNAL from tonic itself: retried.
        assert!(retry(tonic::Status::from_error(Box::new(
            std::io::Error::other("connection reset")
        ))));
        assert!(retry(tonic::Status::internal(
            "h2 protocol error: stream reset"
        )));
        for s in [
            tonic::Status::invalid_argument("bad"),
            tonic::Status::unauthenticated("who"),
            tonic::Status::permission_denied("no"),
            tonic::Status::unimplemented("no"),
            tonic::Status::internal("bug"),
        ] {
            assert!(
                matches!(classify_status(&s), Outcome::Permanent { .. }),
                "{s:?}"
            );
        }
    }

    #[test]
    fn http_statuses_classify_as_the_spec_says() {
        let partial = ExportResponse {
            partial_success: Some(PartialSuccess {
                rejected: 3,
                error_message: "three bad".into(),
            }),
        }
        .encode_to_vec();
        assert_eq!(
            classify_http(200, None, &partial),
            Outcome::Sent {
                rejected: 3,
                message: "three bad".into()
            }
        );
        assert!(matches!(
            classify_http(204, None, b""),
            Outcome::Sent { rejected: 0, .. }
        ));
        for code in [429, 502, 503, 504] {
            assert!(matches!(
                classify_http(code, None, b""),
                Outcome::Retry { after: None, .. }
            ));
        }
        assert_eq!(
            classify_http(503, Some("12"), b"later"),
            Outcome::Retry {
                reason: "HTTP 503: later".into(),
                after: Some(Duration::from_secs(12))
            }
        );
        assert!(matches!(
            classify_http(413, None, b""),
            Outcome::TooLarge { .. }
        ));
        for code in [400, 401, 403, 404, 500] {
            assert!(matches!(
                classify_http(code, None, b""),
                Outcome::Permanent { .. }
            ));
        }
        // Retry-After as an HTTP date in the past: retry at once; garbage: no delay given.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn file_rotation_keeps_max_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut state = None;
        for i in 0..20 {
            write_line(&mut state, &path, 100, 3, format!("{i:060}\n").as_bytes()).unwrap();
        }
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        // The live file plus three rotated ones.
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(names.contains(&"out.jsonl".to_string()));
        let live = std::fs::read_to_string(&path).unwrap();
        assert_eq!(live, format!("{:060}\n", 19));
    }
}

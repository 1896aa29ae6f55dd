//! OTLP/HTTP: `POST /v1/traces`, `/v1/logs` and `/v1/metrics` with a protobuf
//! (`application/x-protobuf`) or OTLP JSON (`application/json`) body, optionally gzip, zstd or
//! deflate encoded, over HTTP/1.1.
//!
//! The body goes through the same steps as a gRPC request ([`Receiver::accept`]): admitted
//! against the intake budget, decoded, validated item by item, run through the pipeline and
//! answered once durable. The answer is the signal's `Export*ServiceResponse` in the
//! request's encoding, with `partial_success` for rejected items. Errors follow the OTLP/HTTP
//! specification, each with a `google.rpc.Status` body in the request's encoding:
//!
//! | status | when |
//! |---|---|
//! | 400 | the body does not decode (or its compression is corrupt) |
//! | 404 / 405 | another path / another method than POST |
//! | 401 | `auth` is set and the request has no accepted bearer token |
//! | 413 | the body, before or after decompression, is over `max_request_body_size` |
//! | 415 | a content type or content encoding other than the ones above |
//! | 503 + `Retry-After` | the intake is full or a write failed: retry later |
//!
//! CORS is off unless `cors.allowed_origins` lists origins; then allowed origins get
//! `Access-Control-Allow-Origin` on their answers and preflight requests are answered.
//! Connections are bounded ([`MAX_CONNECTIONS`]) and a client must send its headers within
//! `read_header_timeout` (10 s), so slow clients cannot hold every slot. At shutdown each connection
//! finishes the request it is in (which still gets its flush) and closes.

use std::convert::Infallible;
use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use prost::Message;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::auth::Tokens;
use super::counters::Transport;
use super::{OtlpSignal, Receiver};
use crate::config::{Cors, HttpProtocol};
use crate::otlp::Signal;
use crate::stages::intake::pipeline::{Logs, Metrics, PipelineError, Traces};
use crate::telemetry::events;

/// Connections served at once; more wait in the accept queue.
pub const MAX_CONNECTIONS: usize = 1024;

/// Request headers a browser may send without `cors.allowed_headers` saying so.
const CORS_DEFAULT_HEADERS: [&str; 4] = [
    "accept",
    "content-type",
    "content-encoding",
    "x-requested-with",
];

/// The OTLP/HTTP receiver: routes, limits and CORS over the shared [`Receiver`].
pub struct HttpReceiver {
    rx: Arc<Receiver>,
    tokens: Option<Arc<Tokens>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    routes: [(String, Signal); 3],
    max_body: usize,
    header_timeout: Duration,
    cors: Option<Cors>,
}

/// A body's encoding, which is also the answer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl HttpReceiver {
    /// The receiver of `cfg`; with `tokens`, requests must carry one of them; with `tls`,
    /// connections are TLS (HTTP/1.1 over it).
    pub fn new(
        rx: Arc<Receiver>,
        cfg: &HttpProtocol,
        tokens: Option<Arc<Tokens>>,
        tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    ) -> Arc<HttpReceiver> {
        Arc::new(HttpReceiver {
            rx,
            tokens,
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
            routes: [
                (cfg.traces_url_path.clone(), Signal::Traces),
                (cfg.logs_url_path.clone(), Signal::Logs),
                (cfg.metrics_url_path.clone(), Signal::Metrics),
            ],
            max_body: cfg.max_body_bytes(),
            header_timeout: cfg.read_header_timeout,
            cors: cfg.cors.clone().filter(|c| !c.allowed_origins.is_empty()),
        })
    }

    /// Serves `listener` until `stop`, then lets each connection finish its request.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, stop: CancellationToken) {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let connections = TaskTracker::new();
        while let Some((stream, slot)) = super::conn::accept(&listener, &slots, &stop).await {
            let this = self.clone();
            let stop = stop.clone();
            connections.spawn(async move {
                match &this.tls {
                    None => this.clone().serve_connection(stream, stop).await,
                    Some(acceptor) => {
                        // The handshake counts against the header timeout too.
                        let handshake =
                            tokio::time::timeout(this.header_timeout, acceptor.accept(stream))
                                .await;
                        if let Ok(Ok(tls)) = handshake {
                            this.clone().serve_connection(tls, stop).await;
                        }
                    }
                }
                drop(slot);
            });
        }
        drop(listener);
        connections.close();
        connections.wait().await;
    }

    /// Serves one connection until it closes, or until `stop` (then it finishes its request).
    async fn serve_connection<IO>(self: Arc<Self>, io: IO, stop: CancellationToken)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let header_timeout = self.header_timeout;
        let service = hyper::service::service_fn(move |req| {
            let this = self.clone();
            async move { Ok::<_, Infallible>(this.handle(req).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = stop.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        // A preflight answer carries its own (or, refused, none).
        let cors = (req.method() != Method::OPTIONS)
            .then(|| self.cors_headers(req.headers()))
            .flatten();
        let mut response = self.route(req).await;
        if let Some(headers) = cors {
            response.headers_mut().extend(headers);
        }
        response
    }

    async fn route(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path();
        let Some(signal) = self.routes.iter().find(|(p, _)| p == path).map(|(_, s)| *s) else {
            return plain(StatusCode::NOT_FOUND, "no such OTLP/HTTP path");
        };
        if req.method() == Method::OPTIONS && self.cors.is_some() {
            return self.preflight(req.headers());
        }
        if let Some(tokens) = &self.tokens {
            let offered = req
                .headers()
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes());
            if !tokens.check(offered) {
                events::ServerRequestUnauthenticated {
                    listener: "otlp http",
                }
                .emit();
                let encoding = content_type(req.headers()).unwrap_or(Encoding::Json);
                let mut r = status(
                    encoding,
                    StatusCode::UNAUTHORIZED,
                    "missing or wrong bearer token".into(),
                );
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return r;
            }
        }
        if req.method() != Method::POST {
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "OTLP/HTTP takes POST");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return r;
        }
        let encoding = match content_type(req.headers()) {
            Some(e) => e,
            None => {
                let shown = header_text(req.headers(), header::CONTENT_TYPE);
                return status(
                    Encoding::Json,
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!(
                        "content type {shown:?} is not application/x-protobuf or application/json"
                    ),
                );
            }
        };
        let compression = header_text(req.headers(), header::CONTENT_ENCODING);
        let body = match self.read_body(req.into_body(), &compression).await {
            Ok(body) => body,
            Err((code, message)) => return status(encoding, code, message),
        };
        match signal {
            Signal::Traces => self.export::<Traces>(encoding, body).await,
            Signal::Logs => self.export::<Logs>(encoding, body).await,
            Signal::Metrics => self.export::<Metrics>(encoding, body).await,
        }
    }

    /// The body, read within the limit and decompressed within it too.
    async fn read_body(
        &self,
        body: Incoming,
        compression: &str,
    ) -> Result<Bytes, (StatusCode, String)> {
        let raw = Limited::new(body, self.max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    too_large(self.max_body)
                } else {
                    (
                        StatusCode::BAD_REQUEST,
                        format!("cannot read the body: {e}"),
                    )
                }
            })?
            .to_bytes();
        decompress(raw, compression, self.max_body)
    }

    async fn export<S>(&self, encoding: Encoding, body: Bytes) -> Response<Full<Bytes>>
    where
        S: OtlpSignal,
        S::Request: serde::de::DeserializeOwned,
        S::Response: serde::Serialize,
    {
        let rx = &self.rx;
        // The budget holds what the body decodes to: estimated from protobuf bytes, bounded
        // from above for JSON (see crate::otlp::size).
        let admitted = match encoding {
            Encoding::Protobuf => rx.pipeline.admit(S::KIND, &body),
            Encoding::Json => rx.pipeline.admit_json(S::KIND, &body),
        };
        let _reservation = match admitted {
            Ok(r) => r,
            Err(e) => {
                rx.not_admitted(Transport::Http, S::KIND, &e);
                if let PipelineError::TooLarge { .. } = e {
                    return status(encoding, StatusCode::PAYLOAD_TOO_LARGE, e.to_string());
                }
                return unavailable(encoding, &e);
            }
        };
        let decoded = match encoding {
            Encoding::Protobuf => S::Request::decode(body.clone()).map_err(|e| e.to_string()),
            Encoding::Json => serde_json::from_slice(&body).map_err(|e| e.to_string()),
        };
        let req = match decoded {
            Ok(req) => req,
            Err(e) => {
                let message = rx.undecodable(Transport::Http, S::KIND, &e);
                return status(encoding, StatusCode::BAD_REQUEST, message);
            }
        };
        // Protobuf goes on as it came; a JSON request is encoded by the pipeline, once.
        let received = (encoding == Encoding::Protobuf).then_some(body);
        match rx.accept::<S>(Transport::Http, req, received).await {
            Ok(answer) => {
                let bytes = match encoding {
                    Encoding::Protobuf => answer.encode_to_vec(),
                    Encoding::Json => serde_json::to_vec(&answer).unwrap_or_default(),
                };
                with_body(StatusCode::OK, encoding, bytes)
            }
            Err(e) => unavailable(encoding, &e),
        }
    }

    /// CORS headers for an answer to `request`, when its origin is allowed.
    fn cors_headers(&self, request: &HeaderMap) -> Option<HeaderMap> {
        let cors = self.cors.as_ref()?;
        let origin = request.get(header::ORIGIN)?.to_str().ok()?;
        if !cors
            .allowed_origins
            .iter()
            .any(|pattern| origin_matches(pattern, origin))
        {
            return None;
        }
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_str(origin).ok()?,
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        Some(h)
    }

    /// The answer to a preflight `OPTIONS`: what may be sent, when the origin and every
    /// requested header are allowed; without CORS headers (the browser refuses) otherwise.
    fn preflight(&self, request: &HeaderMap) -> Response<Full<Bytes>> {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NO_CONTENT;
        let (Some(cors), Some(mut allowed)) = (&self.cors, self.cors_headers(request)) else {
            return r;
        };
        let requested = header_text(request, header::ACCESS_CONTROL_REQUEST_HEADERS);
        let any = cors.allowed_headers.iter().any(|h| h == "*");
        let ok = requested
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .all(|h| {
                any || CORS_DEFAULT_HEADERS
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(h))
                    || cors
                        .allowed_headers
                        .iter()
                        .any(|a| a.eq_ignore_ascii_case(h))
            });
        if !ok {
            return r;
        }
        allowed.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST"),
        );
        if let Ok(v) = HeaderValue::from_str(&requested)
            && !requested.is_empty()
        {
            allowed.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        if let Some(age) = cors.max_age {
            allowed.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
        }
        r.headers_mut().extend(allowed);
        r
    }
}

/// `application/x-protobuf` or `application/json`, parameters (`; charset=utf-8`) ignored.
fn content_type(h: &HeaderMap) -> Option<Encoding> {
    let text = header_text(h, header::CONTENT_TYPE);
    let mime = text.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/x-protobuf") {
        Some(Encoding::Protobuf)
    } else if mime.eq_ignore_ascii_case("application/json") {
        Some(Encoding::Json)
    } else {
        None
    }
}

fn header_text(h: &HeaderMap, name: header::HeaderName) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// `*`, an exact origin (case-insensitive), or a pattern with one `*` standing for any text.
fn origin_matches(pattern: &str, origin: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let (p, o) = (pattern.to_ascii_lowercase(), origin.to_ascii_lowercase());
    match p.split_once('*') {
        None => p == o,
        Some((prefix, suffix)) => {
            o.len() >= prefix.len() + suffix.len() && o.starts_with(prefix) && o.ends_with(suffix)
        }
    }
}

/// `google.rpc.Status`, the body of every error answer.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// An error answer: `http` with a `Status` body whose gRPC code matches it.
fn status(encoding: Encoding, http: StatusCode, message: String) -> Response<Full<Bytes>> {
    let code = match http {
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            tonic::Code::InvalidArgument
        }
        StatusCode::PAYLOAD_TOO_LARGE => tonic::Code::ResourceExhausted,
        StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable,
        StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
        _ => tonic::Code::Unknown,
    } as i32;
    let bytes = match encoding {
        Encoding::Protobuf => RpcStatus { code, message }.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&serde_json::json!({
            "code": code,
            "message": message,
        }))
        .unwrap_or_default(),
    };
    with_body(http, encoding, bytes)
}

/// 503 with `Retry-After` (whole seconds, at least 1) when the pipeline says when.
fn unavailable(encoding: Encoding, e: &PipelineError) -> Response<Full<Bytes>> {
    let mut r = status(encoding, StatusCode::SERVICE_UNAVAILABLE, e.to_string());
    if let Some(delay) = e.retry_after() {
        let secs = delay.as_secs_f64().ceil().max(1.0) as u64;
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

fn with_body(code: StatusCode, encoding: Encoding, bytes: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = code;
    let mime = match encoding {
        Encoding::Protobuf => "application/x-protobuf",
        Encoding::Json => "application/json",
    };
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    r
}

fn too_large(max_body: usize) -> (StatusCode, String) {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is over {max_body} bytes"),
    )
}

/// `raw` decoded by its `Content-Encoding` (`""`/`identity`, gzip, deflate, zstd), refused
/// past `max_body` bytes once decompressed (413), corrupt (400) or in another encoding (415).
/// Never reads more than `max_body + 1` bytes out of the decoder, whatever the body claims.
pub fn decompress(
    raw: Bytes,
    compression: &str,
    max_body: usize,
) -> Result<Bytes, (StatusCode, String)> {
    let decoder: Box<dyn std::io::Read> = match compression.to_ascii_lowercase().as_str() {
        "" | "identity" => return Ok(raw),
        "gzip" | "x-gzip" => Box::new(flate2::read::GzDecoder::new(&raw[..])),
        "deflate" => Box::new(flate2::read::ZlibDecoder::new(&raw[..])),
        "zstd" => Box::new(
            zstd::stream::read::Decoder::new(&raw[..])
                .map_err(|e| (StatusCode::BAD_REQUEST, format!("corrupt zstd body: {e}")))?,
        ),
        other => {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content encoding {other:?} is not gzip, zstd or deflate"),
            ));
        }
    };
    let mut out = Vec::new();
    decoder
        .take(max_body as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("corrupt {compression} body: {e}"),
            )
        })?;
    if out.len() > max_body {
        return Err(too_large(max_body));
    }
    Ok(Bytes::from(out))
}

fn plain(code: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = code;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_exactly_or_by_one_wildcard() {
        assert!(origin_matches("*", "https://a.example.com"));
        assert!(origin_matches(
            "https://app.example.com",
            "https://APP.example.com"
        ));
        assert!(!origin_matches(
            "https://app.example.com",
            "https://app.example.com.evil"
        ));
        assert!(origin_matches(
            "https://*.example.com",
            "https://a.b.example.com"
        ));
        assert!(!origin_matches(
            "https://*.example.com",
            "https://example.org"
        ));
        assert!(!origin_matches(
            "https://*.example.com",
            "http://a.example.com"
        ));
        // The wildcard does not let prefix and suffix overlap.
        assert!(!origin_matches("https://a*a", "https://a"));
    }

    #[test]
    fn content_types_ignore_parameters_and_case() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/JSON; charset=utf-8"),
        );
        assert_eq!(content_type(&h), Some(Encoding::Json));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        assert_eq!(content_type(&h), Some(Encoding::Protobuf));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(content_type(&h), None);
        assert_eq!(content_type(&HeaderMap::new()), None);
    }
}

//! Shared test helpers: an in-process gateway on ephemeral loopback ports, the gateway binary
//! as a child process, official OpenTelemetry SDK providers pointed at it, and a query client.
#![allow(dead_code)] // each test binary uses a different subset

pub mod otlp;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use sieve::config::Config;
use sieve::proto::query_service_client::QueryServiceClient;
use sieve::proto::{FindTracesRequest, LogEntry, SearchLogsRequest, TraceSummary};
use sieve::server::Gateway;
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// Polls `check` every 100 ms until it returns `Ok`, and returns that value; panics naming
/// `what` and the last `Err` when `timeout` passes first. The one way these tests wait for
/// something the gateway does in the background.
pub async fn eventually<T, E: std::fmt::Debug>(
    timeout: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last: {last:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A gateway running inside the test process.
pub struct TestGateway {
    pub gateway: Option<Gateway>,
    /// `http://127.0.0.1:PORT` of the OTLP receiver.
    pub otlp: String,
    /// `http://127.0.0.1:PORT` of the OTLP/HTTP receiver (empty when it is off).
    pub otlp_http: String,
    /// `http://127.0.0.1:PORT` of the query API.
    pub query: String,
    /// `http://127.0.0.1:PORT` of `/metrics` and the health endpoints.
    pub metrics: String,
    stop: Option<oneshot::Sender<()>>,
    pub dir: tempfile::TempDir,
}

/// A config for tests: ephemeral ports, data in `dir`.
pub fn test_config(dir: &Path) -> Config {
    let mut c = Config::default();
    if let Some(g) = c.otlp_grpc_mut() {
        g.endpoint = "127.0.0.1:0".into();
    }
    if let Some(h) = c.otlp_http_mut() {
        h.endpoint = "127.0.0.1:0".into();
    }
    c.query.endpoint = "127.0.0.1:0".into();
    c.service.telemetry.metrics.address = Some("127.0.0.1:0".into());
    c.storage.path = dir.join("data");
    c
}

/// Replaces the processors, exporters and pipelines of `c` with those of `yaml`.
pub fn apply(c: &mut Config, yaml: &str) {
    let parsed = Config::from_yaml(yaml).unwrap_or_else(|e| panic!("test yaml: {e}\n{yaml}"));
    c.processors = parsed.processors;
    c.exporters = parsed.exporters;
    c.service.pipelines = parsed.service.pipelines;
}

/// Starts a gateway with the test config changed by `mutate`.
pub async fn start(mutate: impl FnOnce(&mut Config)) -> TestGateway {
    start_in(tempfile::tempdir().expect("tempdir"), mutate).await
}

/// Starts a gateway whose data lives in `dir` (a restart reuses the directory).
pub async fn start_in(dir: tempfile::TempDir, mutate: impl FnOnce(&mut Config)) -> TestGateway {
    let mut config = test_config(dir.path());
    mutate(&mut config);
    config.validate().expect("test config is valid");
    let (tx, rx) = oneshot::channel::<()>();
    let gateway = sieve::server::start(config, async {
        let _ = rx.await;
    })
    .await
    .expect("gateway starts");
    TestGateway {
        otlp: format!("http://{}", gateway.otlp_addr.expect("otlp receiver")),
        otlp_http: gateway
            .otlp_http_addr
            .map(|a| format!("http://{a}"))
            .unwrap_or_default(),
        query: format!("http://{}", gateway.query_addr),
        metrics: gateway
            .metrics_addr
            .map(|a| format!("http://{a}"))
            .unwrap_or_default(),
        gateway: Some(gateway),
        stop: Some(tx),
        dir,
    }
}

impl TestGateway {
    /// Stops the gateway and waits until it has flushed and closed.
    pub async fn stop(self) {
        self.stop_keep_dir().await;
    }

    /// Stops the gateway and hands back its data directory.
    pub async fn stop_keep_dir(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(g) = self.gateway.take() {
            g.wait().await.expect("clean stop");
        }
        self.dir
    }

    /// Triggers the shutdown without waiting for it.
    pub fn trigger_stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// What GetStats answers now.
    pub async fn stats(&self) -> sieve::proto::GetStatsResponse {
        self.query_client()
            .await
            .get_stats(sieve::proto::GetStatsRequest {})
            .await
            .expect("GetStats")
            .into_inner()
    }

    pub async fn query_client(&self) -> QueryServiceClient<Channel> {
        query_client(&self.query).await
    }

    pub async fn otlp_channel(&self) -> Channel {
        channel(&self.otlp).await
    }
}

pub async fn channel(url: &str) -> Channel {
    Channel::from_shared(url.to_string())
        .expect("url")
        .connect()
        .await
        .expect("connect")
}

pub async fn query_client(url: &str) -> QueryServiceClient<Channel> {
    QueryServiceClient::new(channel(url).await)
}

/// SearchLogs that must succeed.
pub async fn logs(q: &mut QueryServiceClient<Channel>, r: SearchLogsRequest) -> Vec<LogEntry> {
    q.search_logs(r)
        .await
        .expect("SearchLogs")
        .into_inner()
        .logs
}

/// FindTraces that must succeed.
pub async fn traces(
    q: &mut QueryServiceClient<Channel>,
    r: FindTracesRequest,
) -> Vec<TraceSummary> {
    q.find_traces(r)
        .await
        .expect("FindTraces")
        .into_inner()
        .traces
}

fn resource(service: &str) -> Resource {
    Resource::builder()
        .with_service_name(service.to_string())
        .with_attribute(opentelemetry::KeyValue::new(
            "deployment.environment",
            "test",
        ))
        .build()
}

/// An SDK tracer provider exporting over OTLP/gRPC to `endpoint`.
pub fn tracer_provider(
    endpoint: &str,
    service: &str,
    compression: Option<opentelemetry_otlp::Compression>,
) -> SdkTracerProvider {
    let mut b = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(10));
    if let Some(c) = compression {
        b = b.with_compression(c);
    }
    let exporter = b.build().expect("span exporter");
    SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource(service))
        .build()
}

pub fn logger_provider(endpoint: &str, service: &str) -> SdkLoggerProvider {
    let exporter = opentelemetry_otlp::LogExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .expect("log exporter");
    SdkLoggerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource(service))
        .build()
}

pub fn meter_provider(endpoint: &str, service: &str) -> SdkMeterProvider {
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .expect("metric exporter");
    SdkMeterProvider::builder()
        .with_periodic_exporter(exporter)
        .with_resource(resource(service))
        .build()
}

/// Runs a blocking SDK call (force_flush, shutdown) off the async workers.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// The gateway binary as a child process, with the addresses it logged.
pub struct Proc {
    pub child: Child,
    pub otlp: String,
    /// The OTLP/HTTP receiver's URL, empty when it is off.
    pub otlp_http: String,
    pub query: String,
    pub stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

pub fn sieve_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sieve"))
}

/// Runs the sieve binary with `args`, writing `stdin` to it; returns (success, stdout,
/// stderr). sieve may refuse its arguments and exit before reading: a broken pipe is fine.
pub fn run_sieve(args: &[&str], stdin: &[u8]) -> (bool, String, String) {
    use std::io::Write as _;
    let mut child = Command::new(sieve_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sieve");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin);
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// YAML of `service.telemetry` for tests: the metrics endpoint on an ephemeral port.
pub const TEST_TELEMETRY: &str = "  telemetry:\n    metrics:\n      address: 127.0.0.1:0\n";

/// Writes a config file for a child gateway: ephemeral ports, data in `data`, plus `extra`
/// YAML appended (top-level sections; a `service:` section in it gets [`TEST_TELEMETRY`]).
pub fn write_config(dir: &Path, data: &Path, extra: &str) -> PathBuf {
    let path = dir.join("sieve.yaml");
    let extra = if extra.starts_with("service:\n") || extra.contains("\nservice:\n") {
        extra.replacen("service:\n", &format!("service:\n{TEST_TELEMETRY}"), 1)
    } else {
        format!("{extra}service:\n{TEST_TELEMETRY}")
    };
    let text = format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:0\n      http:\n        endpoint: 127.0.0.1:0\nquery:\n  endpoint: 127.0.0.1:0\nstorage:\n  path: {}\n{extra}",
        data.display()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// Starts `sieve serve --config FILE` (or `args` as given) in `cwd` and waits for both
/// "listening on" lines.
pub fn spawn_sieve(args: &[&str], cwd: &Path) -> Proc {
    spawn_sieve_env(args, cwd, &[])
}

/// [`spawn_sieve`] with `env` set for the child (`RUST_LOG` among them overrides `info`).
pub fn spawn_sieve_env(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Proc {
    let mut child = Command::new(sieve_bin())
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sieve");
    let stderr = child.stderr.take().expect("stderr");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel::<String>();
    let keep = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            keep.lock().expect("lines").push(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut otlp, mut otlp_http, mut query) = (None, None, None);
    while otlp.is_none() || query.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "sieve did not log its listeners; stderr: {:?}",
                    lines.lock().expect("lines")
                );
            }
        };
        if let Some(addr) = listen_addr(&line, "otlp grpc listening on ") {
            otlp = Some(addr);
        }
        if let Some(addr) = listen_addr(&line, "otlp http listening on ") {
            otlp_http = Some(addr);
        }
        if let Some(addr) = listen_addr(&line, "query grpc listening on ") {
            query = Some(addr);
        }
    }
    Proc {
        child,
        otlp: format!("http://{}", otlp.expect("otlp")),
        otlp_http: otlp_http.map(|a| format!("http://{a}")).unwrap_or_default(),
        query: format!("http://{}", query.expect("query")),
        stderr: lines,
    }
}

fn listen_addr(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

impl Proc {
    /// Sends a signal and waits for the exit status.
    pub fn signal_and_wait(&mut self, signal: &str) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("sieve did not exit after {signal}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A child process that is killed when this goes out of scope, a failed assertion included.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the demo shop (`target/<profile>/examples/demo`, next to this test's own binary in
/// `deps/`; `cargo test` builds examples) against `otlp` with `args`, and checks it
/// succeeded.
pub async fn run_demo(otlp: &str, args: &[&str]) {
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>")
        .join("examples")
        .join("demo");
    assert!(
        bin.exists(),
        "{} is missing (cargo test builds examples)",
        bin.display()
    );
    let out = tokio::process::Command::new(&bin)
        .args(["--endpoint", otlp])
        .args(args)
        .output()
        .await
        .expect("run demo");
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `method` `url` over HTTP/1.1 with hyper's client, no body: (status, body).
pub async fn http(method: &str, url: &str) -> (u16, String) {
    let a = http_request(method, url, &[], Vec::new()).await;
    (a.status, String::from_utf8_lossy(&a.body).into_owned())
}

/// An HTTP answer: status, headers, body.
pub struct HttpAnswer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: bytes::Bytes,
}

/// Sends `method` to `url` with `headers` and `body`.
pub async fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> HttpAnswer {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .expect("request");
    let resp = client.request(req).await.expect("http answer");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    HttpAnswer {
        status,
        headers,
        body,
    }
}

/// GET `url`: (status, body), or `None` while nothing answers there.
pub async fn http_get(url: &str) -> Option<(u16, String)> {
    use http_body_util::BodyExt as _;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let resp = client.get(url.parse().ok()?).await.ok()?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The external program a test drives (Alertmanager, Prometheus): `$env_var` or `default`,
/// if it runs `--version`. When it does not, `None` and a SKIPPED line — unless
/// `$require_var` is set (as `.ci/run` does), then the test fails.
pub fn external_program(env_var: &str, default: &str, require_var: &str) -> Option<String> {
    let bin = std::env::var(env_var).unwrap_or_else(|_| default.into());
    let found = Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(bin);
    }
    assert!(
        std::env::var_os(require_var).is_none(),
        "{require_var} is set but {bin} does not run"
    );
    println!("SKIPPED: {bin} not found (apt-get install {default}, or set {env_var})");
    None
}

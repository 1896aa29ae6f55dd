//! Bearer tokens (the Collector's `bearertokenauth` shape): the receivers and the query API
//! each accept only their own tokens, over gRPC and HTTP; the CLI sends `--token` or
//! `$SIEVE_TOKEN`; and no token shows in the logs, in errors or in `config check`.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::otlp;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use sieve::config::{Auth, Config};
use sieve::proto::GetServicesRequest;
use sieve::proto::query_service_client::QueryServiceClient;
use tonic::Code;
use tonic::metadata::MetadataValue;

const RECEIVER_TOKEN: &str = "recv-7f3a9c1e5b";
const QUERY_TOKEN: &str = "query-2d8e4b6a0c";

const EXTENSIONS: &str = "extensions:\n  bearertokenauth:\n    token: recv-7f3a9c1e5b\n  bearertokenauth/query:\n    token: query-2d8e4b6a0c\nservice:\n  extensions: [bearertokenauth, bearertokenauth/query]\n";

fn with_auth(c: &mut Config) {
    let parsed = Config::from_yaml(EXTENSIONS).expect("extensions yaml");
    c.extensions = parsed.extensions;
    c.service.extensions = parsed.service.extensions;
    let auth = |name: &str| {
        Some(Auth {
            authenticator: name.into(),
        })
    };
    c.otlp_grpc_mut().expect("grpc").auth = auth("bearertokenauth");
    c.otlp_http_mut().expect("http").auth = auth("bearertokenauth");
    c.query.auth = auth("bearertokenauth/query");
}

fn bearer(token: &str) -> MetadataValue<tonic::metadata::Ascii> {
    MetadataValue::try_from(format!("Bearer {token}")).expect("header")
}

fn export_request(
    t: u8,
) -> tonic::Request<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest> {
    let now = sieve::store::now_ns();
    tonic::Request::new(otlp::traces_request(
        "authed",
        vec![otlp::span(&[t; 16], &[1; 8], "op", now - 1000, now)],
    ))
}

/// POSTs a protobuf trace to the HTTP receiver with `authorization`; returns the status and
/// the `WWW-Authenticate` header.
async fn http_post(url: &str, authorization: Option<&str>) -> (u16, Option<String>) {
    let mut headers = vec![("content-type", "application/x-protobuf")];
    if let Some(a) = authorization {
        headers.push(("authorization", a));
    }
    let body = export_request(9).into_inner().encode_to_vec();
    let a = common::http_request("POST", url, &headers, body).await;
    let www = a
        .headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or("").to_string());
    (a.status, www)
}

/// Each server takes its own token and only that: a missing, wrong or other server's token
/// is UNAUTHENTICATED (gRPC) or 401 (HTTP), and nothing of such a request is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_and_query_take_their_own_tokens() {
    let gw = common::start(with_auth).await;
    let mut traces = TraceServiceClient::new(gw.otlp_channel().await);
    let err = traces
        .export(export_request(1))
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(!err.message().contains(RECEIVER_TOKEN));
    for wrong in ["nope", QUERY_TOKEN] {
        let mut req = export_request(2);
        req.metadata_mut().insert("authorization", bearer(wrong));
        let err = traces.export(req).await.expect_err("wrong token");
        assert_eq!(err.code(), Code::Unauthenticated, "{wrong}");
    }
    let mut req = export_request(3);
    req.metadata_mut()
        .insert("authorization", bearer(RECEIVER_TOKEN));
    traces.export(req).await.expect("the receiver's token");

    let url = format!("{}/v1/traces", gw.otlp_http);
    let (status, www) = http_post(&url, None).await;
    assert_eq!((status, www.as_deref()), (401, Some("Bearer")));
    let (status, _) = http_post(&url, Some(&format!("Bearer {QUERY_TOKEN}"))).await;
    assert_eq!(status, 401);
    let (status, _) = http_post(&url, Some(&format!("Bearer {RECEIVER_TOKEN}"))).await;
    assert_eq!(status, 200);

    let channel = common::channel(&gw.query).await;
    let mut open = QueryServiceClient::new(channel.clone());
    let err = open
        .get_services(GetServicesRequest {})
        .await
        .expect_err("query without a token");
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut req = tonic::Request::new(GetServicesRequest {});
    req.metadata_mut()
        .insert("authorization", bearer(RECEIVER_TOKEN));
    let err = open.get_services(req).await.expect_err("receiver token");
    assert_eq!(err.code(), Code::Unauthenticated, "the tokens are separate");
    let mut req = tonic::Request::new(GetServicesRequest {});
    req.metadata_mut()
        .insert("authorization", bearer(QUERY_TOKEN));
    let services = open
        .get_services(req)
        .await
        .expect("query token")
        .into_inner();
    assert_eq!(services.services, ["authed"]);
    // Only traces 3 (gRPC) and 9 (HTTP) got in.
    let mut req = tonic::Request::new(sieve::proto::GetStatsRequest {});
    req.metadata_mut()
        .insert("authorization", bearer(QUERY_TOKEN));
    let stats = open.get_stats(req).await.unwrap().into_inner();
    assert_eq!(stats.spans.unwrap_or_default().accepted, 2);
    gw.stop().await;
}

/// The binary: tokens from a file and from the config, the CLI's `--token` and
/// `$SIEVE_TOKEN`, and a debug log, errors and `config check` that never show a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_its_token_and_no_token_is_shown() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("receiver.token");
    std::fs::write(&token_file, format!("{RECEIVER_TOKEN}\n")).unwrap();
    let yaml = format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:0\n        auth: {{authenticator: bearertokenauth}}\n      http:\n        endpoint: 127.0.0.1:0\n        auth: {{authenticator: bearertokenauth}}\nquery:\n  endpoint: 127.0.0.1:0\n  auth: {{authenticator: bearertokenauth/query}}\nstorage:\n  path: {}\nextensions:\n  bearertokenauth:\n    filename: {}\n  bearertokenauth/query:\n    token: {QUERY_TOKEN}\nservice:\n  extensions: [bearertokenauth, bearertokenauth/query]\n{}",
        dir.path().join("data").display(),
        token_file.display(),
        common::TEST_TELEMETRY
    );
    let cfg = dir.path().join("sieve.yaml");
    std::fs::write(&cfg, &yaml).unwrap();
    let cfg_arg = cfg.to_str().unwrap().to_string();

    // config check says ok, and a broken copy's error names the key, not the token.
    let (ok, out, err) = common::run_sieve(&["config", "check", &cfg_arg], b"");
    assert!(ok, "{out}{err}");
    assert!(!out.contains(QUERY_TOKEN) && !err.contains(QUERY_TOKEN));
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        yaml.replace(
            "  bearertokenauth/query:\n",
            "  bearertokenauth/query:\n    sceme: Bearer\n",
        ),
    )
    .unwrap();
    let (ok, out, err) = common::run_sieve(&["config", "check", broken.to_str().unwrap()], b"");
    assert!(!ok);
    assert!(err.contains("sceme"), "{err}");
    assert!(
        !out.contains(QUERY_TOKEN) && !err.contains(QUERY_TOKEN),
        "{err}"
    );

    let gw = common::spawn_sieve_env(
        &["serve", "--config", &cfg_arg],
        dir.path(),
        &[("RUST_LOG", "debug")],
    );
    let mut traces = TraceServiceClient::new(common::channel(&gw.otlp).await);
    let mut req = export_request(4);
    req.metadata_mut()
        .insert("authorization", bearer(RECEIVER_TOKEN));
    traces.export(req).await.expect("the token from the file");
    let mut req = export_request(5);
    req.metadata_mut()
        .insert("authorization", bearer("guess-123"));
    assert_eq!(
        traces.export(req).await.expect_err("wrong").code(),
        Code::Unauthenticated
    );

    let cli = |extra: &[&str], env: Option<&str>| {
        let mut c = Command::new(common::sieve_bin());
        c.args(["query", "services", "--addr", &gw.query])
            .args(extra)
            .env_remove("SIEVE_TOKEN")
            .stdin(Stdio::null());
        if let Some(t) = env {
            c.env("SIEVE_TOKEN", t);
        }
        let out = c.output().expect("run the CLI");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, _, err) = cli(&[], None);
    assert!(!ok);
    assert!(err.contains("Unauthenticated"), "{err}");
    let (ok, out, err) = cli(&["--token", QUERY_TOKEN], None);
    assert!(ok, "{err}");
    assert!(out.contains("authed"), "{out}");
    let (ok, out, err) = cli(&[], Some(QUERY_TOKEN));
    assert!(ok, "{err}");
    assert!(out.contains("authed"), "{out}");
    // --help names the variable but not its value.
    let help = Command::new(common::sieve_bin())
        .args(["query", "--help"])
        .env("SIEVE_TOKEN", QUERY_TOKEN)
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("SIEVE_TOKEN"), "{help}");
    assert!(!help.contains(QUERY_TOKEN), "{help}");

    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut gw = gw;
    assert!(gw.signal_and_wait("TERM").success());
    let log = gw.stderr.lock().unwrap().join("\n");
    assert!(
        log.contains("bearer token"),
        "the refusals are logged:\n{log}"
    );
    for secret in [RECEIVER_TOKEN, QUERY_TOKEN, "guess-123"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

/// An `auth` that names no bearertokenauth extension, or one `service.extensions` does not
/// list, is refused with its key.
#[test]
fn auth_must_name_a_listed_extension() {
    let base = "receivers:\n  otlp:\n    protocols:\n      grpc:\n        auth: {authenticator: bearertokenauth}\n";
    let e = Config::from_yaml(base).unwrap_err().to_string();
    assert!(
        e.contains("receivers.otlp.protocols.grpc.auth.authenticator"),
        "{e}"
    );
    let e = Config::from_yaml(&format!(
        "{base}extensions:\n  bearertokenauth:\n    token: x\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("not listed in service.extensions"), "{e}");
    Config::from_yaml(&format!(
        "{base}extensions:\n  bearertokenauth:\n    token: x\nservice:\n  extensions: [bearertokenauth]\n"
    ))
    .expect("valid");
    let e = Config::from_yaml("extensions:\n  bearertokenauth: {}\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("extensions.bearertokenauth.token"), "{e}");
}

/// A listener on 0.0.0.0 without auth is warned about at start; one with auth is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_interface_without_auth_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 0.0.0.0:0\n        auth: {{authenticator: bearertokenauth}}\nquery:\n  endpoint: 0.0.0.0:0\nstorage:\n  path: {}\nextensions:\n  bearertokenauth:\n    token: {RECEIVER_TOKEN}\nservice:\n  extensions: [bearertokenauth]\n{}",
        dir.path().join("data").display(),
        common::TEST_TELEMETRY
    );
    let cfg = dir.path().join("sieve.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let mut gw = common::spawn_sieve(&["serve", "--config", cfg.to_str().unwrap()], dir.path());
    assert!(gw.signal_and_wait("TERM").success());
    let log = gw.stderr.lock().unwrap().join("\n");
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("every interface") && l.contains("without auth"))
        .collect();
    assert_eq!(warned.len(), 1, "{log}");
    assert!(warned[0].contains("query grpc"), "{log}");
}

//! TLS with certificates made at run time (rcgen): the gRPC and HTTP receivers and the query
//! API over TLS, mTLS that refuses a client without a certificate, a client that trusts
//! another CA refused, plaintext refused on a TLS port, and an exporter through mTLS to a
//! second sieve.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::otlp;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use sieve::config::ServerTls;
use sieve::proto::GetTraceRequest;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// Two CAs, a server certificate for 127.0.0.1 and localhost, and a client certificate, all
/// from the first CA; PEM files in a temporary directory.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-signed");
    (params, key, cert.pem())
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write pem");
        p
    };
    let (ca_params, ca_key, ca_pem) = ca("sieve test CA");
    let (_, _, other_pem) = ca("another CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let mut server = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    server
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let server_key = KeyPair::generate().expect("key");
    let server_cert = server.signed_by(&server_key, &issuer).expect("sign");
    let mut client = CertificateParams::new(Vec::<String>::new()).expect("params");
    client
        .distinguished_name
        .push(DnType::CommonName, "sieve test client");
    let client_key = KeyPair::generate().expect("key");
    let client_cert = client.signed_by(&client_key, &issuer).expect("sign");
    Pki {
        ca: write("ca.pem", &ca_pem),
        other_ca: write("other-ca.pem", &other_pem),
        server_cert: write("server.pem", &server_cert.pem()),
        server_key: write("server.key", &server_key.serialize_pem()),
        client_cert: write("client.pem", &client_cert.pem()),
        client_key: write("client.key", &client_key.serialize_pem()),
        _dir: dir,
    }
}

impl Pki {
    fn server(&self, mtls: bool) -> ServerTls {
        ServerTls {
            cert_file: self.server_cert.clone(),
            key_file: self.server_key.clone(),
            client_ca_file: mtls.then(|| self.ca.clone()),
        }
    }
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).expect("read pem")
}

fn request(t: u8) -> ExportTraceServiceRequest {
    let now = sieve::store::now_ns();
    otlp::traces_request(
        "secure",
        vec![otlp::span(&[t; 16], &[1; 8], "op", now - 1000, now)],
    )
}

/// Exports one request to `https_url` trusting `ca`, with `identity` as client certificate.
async fn export_tls(
    https_url: &str,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
    t: u8,
) -> Result<(), String> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)));
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(read(cert), read(key)));
    }
    let channel = Endpoint::from_shared(https_url.to_string())
        .map_err(|e| e.to_string())?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    TraceServiceClient::new(channel)
        .export(request(t))
        .await
        .map(|_| ())
        .map_err(|s| format!("{s:?}"))
}

async fn stored(gw: &common::TestGateway, query: &str, t: u8) -> bool {
    let _ = gw;
    common::query_client(query)
        .await
        .get_trace(GetTraceRequest {
            trace_id: hex::encode([t; 16]),
        })
        .await
        .is_ok()
}

/// The gRPC receiver with mTLS: plaintext, a client trusting another CA and a client
/// without a certificate are refused; a client with a certificate from the CA gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_receiver_with_mtls() {
    let pki = pki();
    let server = pki.server(true);
    let gw = common::start(|c| c.otlp_grpc_mut().expect("grpc").tls = Some(server)).await;
    let https = gw.otlp.replace("http://", "https://");

    let plain = TraceServiceClient::new(common::channel(&gw.otlp).await)
        .export(request(1))
        .await;
    assert!(plain.is_err(), "plaintext on a TLS port: {plain:?}");
    let wrong_ca = export_tls(
        &https,
        &pki.other_ca,
        Some((&pki.client_cert, &pki.client_key)),
        2,
    )
    .await;
    assert!(
        wrong_ca.is_err(),
        "a server from an untrusted CA: {wrong_ca:?}"
    );
    let no_cert = export_tls(&https, &pki.ca, None, 3).await;
    assert!(
        no_cert.is_err(),
        "mTLS without a client certificate: {no_cert:?}"
    );
    export_tls(
        &https,
        &pki.ca,
        Some((&pki.client_cert, &pki.client_key)),
        4,
    )
    .await
    .expect("a client with a certificate from the CA");

    for (t, kept) in [(1u8, false), (2, false), (3, false), (4, true)] {
        assert_eq!(stored(&gw, &gw.query, t).await, kept, "trace {t}");
    }
    gw.stop().await;
}

/// The HTTP receiver over TLS, with curl: trusted, it answers 200 and stores; with another
/// CA or in plaintext, nothing gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_receiver_over_tls() {
    let pki = pki();
    let server = pki.server(false);
    let gw = common::start(|c| c.otlp_http_mut().expect("http").tls = Some(server)).await;
    let https = format!("{}/v1/traces", gw.otlp_http.replace("http://", "https://"));
    let body = tempfile::NamedTempFile::new().expect("body file");
    std::fs::write(body.path(), request(5).encode_to_vec()).expect("write body");
    let curl = |ca: &Path, url: &str| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(ca)
            .args([
                "-H",
                "Content-Type: application/x-protobuf",
                "--data-binary",
            ])
            .arg(format!("@{}", body.path().display()))
            .arg(url)
            .output()
            .expect("run curl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(curl(&pki.ca, &https), (true, "200".to_string()));
    let (ok, _) = curl(&pki.other_ca, &https);
    assert!(!ok, "an untrusted server certificate");
    let (ok, code) = curl(&pki.ca, &format!("{}/v1/traces", gw.otlp_http));
    assert!(!ok || code != "200", "plaintext to a TLS port got {code}");
    assert!(stored(&gw, &gw.query, 5).await);
    gw.stop().await;
}

/// The query API over TLS with the CLI: `--ca-file` makes it trust the server; without it
/// (public roots only) the handshake fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_api_over_tls_with_the_cli() {
    let pki = pki();
    let server = pki.server(false);
    let gw = common::start(|c| c.query.tls = Some(server)).await;
    TraceServiceClient::new(gw.otlp_channel().await)
        .export(request(6))
        .await
        .expect("plaintext receiver");
    let https = gw.query.replace("http://", "https://");
    let ca = pki.ca.to_str().unwrap().to_string();
    let (ok, out, err) = common::blocking({
        let https = https.clone();
        move || {
            common::run_sieve(
                &["query", "services", "--addr", &https, "--ca-file", &ca],
                b"",
            )
        }
    })
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("secure"), "{out}");
    let (ok, _, err) =
        common::blocking(move || common::run_sieve(&["query", "services", "--addr", &https], b""))
            .await;
    assert!(!ok, "no CA given: the public roots do not know the test CA");
    assert!(!err.is_empty());
    gw.stop().await;
}

/// B asks for client certificates on its `exporter` ("otlp": gRPC, "otlphttp": HTTP)
/// receiver; A forwards trace `t` to it through that exporter over mTLS. Returns when B has it.
async fn forward_through_mtls(exporter: &str, t: u8) {
    let pki = pki();
    let server = pki.server(true);
    let http = exporter == "otlphttp";
    let b = common::start(|c| {
        if http {
            c.otlp_http_mut().expect("http").tls = Some(server);
        } else {
            c.otlp_grpc_mut().expect("grpc").tls = Some(server);
        }
    })
    .await;
    let endpoint = if http { &b.otlp_http } else { &b.otlp };
    let yaml = format!(
        "exporters:\n  {exporter}/b:\n    endpoint: {}\n    tls:\n      ca_file: {}\n      cert_file: {}\n      key_file: {}\n    batch:\n      timeout: 20ms\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [{exporter}/b]\n",
        endpoint.replace("http://", "https://"),
        pki.ca.display(),
        pki.client_cert.display(),
        pki.client_key.display()
    );
    let a = common::start(|c| common::apply(c, &yaml)).await;
    TraceServiceClient::new(a.otlp_channel().await)
        .export(request(t))
        .await
        .expect("A takes it");
    let query = b.query.clone();
    common::eventually(Duration::from_secs(20), "the trace at B", async || {
        if stored(&b, &query, t).await {
            Ok(())
        } else {
            Err("not yet")
        }
    })
    .await;
    a.stop().await;
    b.stop().await;
}

/// A gateway forwards through its otlp exporter, over mTLS, to a second one that asks for
/// client certificates: the spans arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_through_mtls_to_a_second_sieve() {
    forward_through_mtls("otlp", 7).await;
}

/// The otlphttp exporter to a second sieve's HTTP receiver over mTLS (`https://`, the CA and
/// a client certificate from `tls`): the spans arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlphttp_exporter_through_mtls_to_a_second_sieve() {
    forward_through_mtls("otlphttp", 8).await;
}

//! Alert rules in the gateway: replayed traffic (an hour old, ten minutes of it, sent in a
//! burst with the official Rust SDK) fires the default error-rate rule by event time, and a
//! restart keeps the firing alert and its incident.

mod common;

use std::time::{Duration, SystemTime};

use opentelemetry::trace::{Span as _, Status, Tracer as _, TracerProvider as _};
use sieve::proto::{GetIncidentRequest, ListAlertsRequest, ListIncidentsRequest};
use tonic::Code;

/// Sends ten minutes of traffic starting an hour ago, in a burst: cart fails 30% of its
/// spans from minute 5, db never. Returns the start.
async fn replay(endpoint: &str) -> SystemTime {
    let endpoint = endpoint.to_string();
    let t0 = SystemTime::now() - Duration::from_secs(3600);
    common::blocking(move || {
        for (svc, failing) in [("cart", true), ("db", false)] {
            let tp = common::tracer_provider(&endpoint, svc, None);
            let tracer = tp.tracer("replay");
            for sec in (0..600u64).step_by(5) {
                for i in 0..10 {
                    let start = t0 + Duration::from_secs(sec);
                    let mut span = tracer
                        .span_builder("GET /x")
                        .with_start_time(start)
                        .start(&tracer);
                    if failing && sec >= 300 && i < 3 {
                        span.set_status(Status::error("boom"));
                    }
                    span.end_with_timestamp(start + Duration::from_millis(10));
                }
            }
            tp.force_flush().expect("flush");
        }
    })
    .await;
    t0
}

/// The firing alerts, as ListAlerts lists them.
async fn list_firing(
    q: &mut sieve::proto::query_service_client::QueryServiceClient<tonic::transport::Channel>,
) -> sieve::proto::ListAlertsResponse {
    q.list_alerts(ListAlertsRequest {
        state: "firing".into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_errors_fire_the_error_rate_rule() {
    let gw = common::start(|_| {}).await;
    let t0 = replay(&gw.otlp).await;
    let mut q = gw.query_client().await;
    let firing = common::eventually(Duration::from_secs(60), "a firing alert", async || {
        let r = list_firing(&mut q).await;
        if r.alerts.is_empty() { Err(r) } else { Ok(r) }
    })
    .await;
    assert_eq!(firing.alerts.len(), 1, "{firing:?}");
    let a = &firing.alerts[0];
    assert_eq!(a.labels["alertname"], "HighErrorRate");
    assert_eq!(a.labels["service"], "cart");
    assert_eq!(a.labels["severity"], "critical");
    assert_eq!(a.fingerprint.len(), 16);
    assert_eq!(a.annotations["summary"], "cart: 0.3000 of its spans fail");
    // Errors from 300 s; the 1-minute window exceeds 5% within 20 s (10 s buckets of
    // absolute time, t0 is not aligned to them), and the alert fires 60 s (its `for`) later.
    let t0ns = t0
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let fired = (a.fired_at_unix_nano - t0ns) as f64 / 1e9;
    assert!(
        (360.0..=390.0).contains(&fired),
        "fired {fired} s after the start"
    );
    assert_eq!(
        a.fired_at_unix_nano - a.active_since_unix_nano,
        60_000_000_000
    );
    let e = q
        .list_alerts(ListAlertsRequest {
            state: "burning".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let (ok, out, err) = common::run_sieve(
        &["query", "alerts", "--state", "firing", "--addr", &gw.query],
        b"",
    );
    assert!(ok, "{err}");
    let row = out.lines().nth(1).unwrap_or_default();
    assert!(
        row.starts_with("firing") && row.contains("HighErrorRate") && row.contains("service=cart"),
        "{out}"
    );
    // One open incident: cart's alert, cart the root cause.
    let inc = q
        .list_incidents(ListIncidentsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(inc.incidents.len(), 1, "{inc:?}");
    let i = &inc.incidents[0];
    assert_eq!(
        (i.state.as_str(), i.alerts, i.root_cause.as_str()),
        ("open", 1, "cart")
    );
    let one = q
        .get_incident(GetIncidentRequest { id: i.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.alerts.len(), 1);
    assert_eq!(one.alerts[0].fingerprint, a.fingerprint);
    assert!(
        one.root_causes[0]
            .evidence
            .iter()
            .any(|e| e.contains("deepest failing dependency")),
        "{one:?}"
    );
    // A window: the open incident is active from its start on, not before.
    for (start, end, want) in [
        (0, i.started_unix_nano, 0),
        (0, i.started_unix_nano + 1, 1),
        (i.started_unix_nano + 3_600_000_000_000, 0, 1),
    ] {
        let got = q
            .list_incidents(ListIncidentsRequest {
                start_unix_nano: start,
                end_unix_nano: end,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .incidents
            .len();
        assert_eq!(got, want, "[{start}, {end})");
    }
    for (e, code) in [
        (
            q.list_incidents(ListIncidentsRequest {
                state: "closed".into(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
            Code::InvalidArgument,
        ),
        (
            q.list_incidents(ListIncidentsRequest {
                start_unix_nano: 20,
                end_unix_nano: 10,
                ..Default::default()
            })
            .await
            .unwrap_err(),
            Code::InvalidArgument,
        ),
        (
            q.get_incident(GetIncidentRequest { id: 0 })
                .await
                .unwrap_err(),
            Code::InvalidArgument,
        ),
        (
            q.get_incident(GetIncidentRequest { id: 999 })
                .await
                .unwrap_err(),
            Code::NotFound,
        ),
    ] {
        assert_eq!(e.code(), code, "{e:?}");
    }
    let (ok, out, err) = common::run_sieve(
        &["query", "incident", &i.id.to_string(), "--addr", &gw.query],
        b"",
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("1. cart") && out.contains("deepest failing dependency"),
        "{out}"
    );
    let (ok, _, err) = common::run_sieve(
        &[
            "query",
            "incidents",
            "--start",
            "20",
            "--end",
            "10",
            "--addr",
            &gw.query,
        ],
        b"",
    );
    assert!(!ok && err.contains("--start is after --end"), "{err}");
    let (ok, out, err) = common::run_sieve(
        &["query", "incidents", "--since", "2h", "--addr", &gw.query],
        b"",
    );
    assert!(
        ok && out.lines().nth(1).is_some_and(|l| l.contains("cart")),
        "{out}{err}"
    );

    // A restart keeps the firing alert with its start time.
    let dir = gw.stop_keep_dir().await;
    let gw = common::start_in(dir, |_| {}).await;
    let mut q = gw.query_client().await;
    let again = list_firing(&mut q).await;
    assert_eq!(again.alerts.len(), 1, "{again:?}");
    assert_eq!(
        (
            &again.alerts[0].fingerprint,
            again.alerts[0].fired_at_unix_nano
        ),
        (&a.fingerprint, a.fired_at_unix_nano)
    );
    // And its incident, with its id and start.
    let after = q
        .list_incidents(ListIncidentsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.incidents.len(), 1, "{after:?}");
    assert_eq!(
        (after.incidents[0].id, after.incidents[0].started_unix_nano),
        (i.id, i.started_unix_nano)
    );
    gw.stop().await;
}

/// A webhook receiver gets Alertmanager's webhook JSON for the firing alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_gets_alertmanagers_payload() {
    use http_body_util::BodyExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>> = Default::default();
    let server = {
        let seen = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let seen = seen.clone();
                            async move {
                                let body = req
                                    .into_body()
                                    .collect()
                                    .await
                                    .map(|c| c.to_bytes())
                                    .unwrap_or_default();
                                if let Ok(v) = serde_json::from_slice(&body) {
                                    seen.lock().unwrap().push(v);
                                }
                                Ok::<_, std::convert::Infallible>(http::Response::new(
                                    http_body_util::Full::new(bytes::Bytes::new()),
                                ))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        })
    };
    let gw = with_receiver("hook", format!("http://{addr}/hook"), false).await;
    replay(&gw.otlp).await;
    let payload = common::eventually(Duration::from_secs(60), "a firing webhook", async || {
        let got = seen
            .lock()
            .unwrap()
            .iter()
            .find(|v| v["status"] == "firing")
            .cloned();
        got.ok_or(())
    })
    .await;
    assert_eq!(payload["version"], "4");
    assert_eq!(payload["receiver"], "hook");
    assert_eq!(
        payload["groupKey"],
        "{}:{alertname=\"HighErrorRate\", service=\"cart\"}"
    );
    assert_eq!(payload["groupLabels"]["service"], "cart");
    assert_eq!(payload["commonLabels"]["severity"], "critical");
    assert_eq!(payload["externalURL"], "http://127.0.0.1:4320");
    assert_eq!(payload["truncatedAlerts"], 0);
    let alert = &payload["alerts"][0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"]["alertname"], "HighErrorRate");
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        alert["annotations"]["summary"],
        "cart: 0.3000 of its spans fail"
    );
    let mut q = gw.query_client().await;
    let listed = list_firing(&mut q).await;
    assert_eq!(alert["fingerprint"], listed.alerts[0].fingerprint.as_str());
    for k in ["startsAt", "generatorURL", "commonAnnotations"] {
        assert!(!alert[k].is_null() || !payload[k].is_null(), "{k}");
    }
    gw.stop().await;
    server.abort();
}

/// A gateway whose route notifies one receiver: a webhook, or an Alertmanager.
async fn with_receiver(name: &str, url: String, alertmanager: bool) -> common::TestGateway {
    let name = name.to_string();
    common::start(move |c| {
        let ep = Some(sieve::config::alerting::Endpoint { url });
        c.alerting.receivers = vec![sieve::config::alerting::Receiver {
            name: name.clone(),
            webhook: if alertmanager { None } else { ep.clone() },
            alertmanager: if alertmanager { ep } else { None },
        }];
        c.alerting.route.receiver = Some(name);
    })
    .await
}

/// A real Alertmanager (the Debian package's binary) on a loopback port receives sieve's
/// alert, read back from its API v2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_alertmanager_receives_the_alert() {
    let Some(bin) = common::external_program(
        "SIEVE_ALERTMANAGER",
        "prometheus-alertmanager",
        "SIEVE_REQUIRE_ALERTMANAGER",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("alertmanager.yml");
    std::fs::write(
        &cfg,
        "route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let am_url = format!("http://127.0.0.1:{port}");
    let am = common::KillOnDrop(
        std::process::Command::new(&bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start alertmanager"),
    );
    common::eventually(Duration::from_secs(30), "alertmanager ready", async || {
        match common::http_get(&format!("{am_url}/-/ready")).await {
            Some((200, _)) => Ok(()),
            other => Err(other),
        }
    })
    .await;
    let gw = with_receiver("am", am_url.clone(), true).await;
    replay(&gw.otlp).await;
    let alert = common::eventually(
        Duration::from_secs(60),
        "the alert in alertmanager",
        async || {
            let listed: serde_json::Value = common::http_get(&format!("{am_url}/api/v2/alerts"))
                .await
                .and_then(|(_, b)| serde_json::from_str(&b).ok())
                .unwrap_or(serde_json::Value::Null);
            let hit = listed.as_array().and_then(|a| {
                a.iter()
                    .find(|x| x["labels"]["alertname"] == "HighErrorRate")
                    .cloned()
            });
            hit.ok_or(listed)
        },
    )
    .await;
    assert_eq!(alert["labels"]["service"], "cart");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["status"]["state"], "active");
    assert_eq!(
        alert["annotations"]["summary"],
        "cart: 0.3000 of its spans fail"
    );
    let mut q = gw.query_client().await;
    let listed = list_firing(&mut q).await;
    assert_eq!(
        alert["fingerprint"],
        listed.alerts[0].fingerprint.as_str(),
        "same fingerprint as Alertmanager computes"
    );
    gw.stop().await;
    drop(am);
}

//! The fault scenarios: the demo shop (`examples/demo.rs`, official Rust SDK) replays an hour
//! of traffic with synthetic timestamps in seconds, and the gateway's default rules and
//! correlation judge it as if lived through.
//!
//! - One slow dependency deep in the graph (inventory, called by catalog, called by the
//!   frontend) and one failing service (inventory again) each make exactly one incident,
//!   inventory ranked first as root cause, every alert of the services depending on it
//!   suppressed, and the incident resolved once the fault ends.
//! - The same hour without a fault makes no alert at all.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sieve::proto::query_service_client::QueryServiceClient;
use sieve::proto::{
    GetIncidentRequest, GetIncidentResponse, ListAlertsRequest, ListIncidentsRequest,
};
use tonic::transport::Channel;

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64
}

/// Replays an hour of the demo with `fault` (from minute 30, for 15 minutes) into a fresh
/// gateway, waits until its rules have evaluated the whole hour, and returns the gateway
/// and the hour's start (Unix ns).
async fn replay(fault: &[&str], seed: &str) -> (common::TestGateway, u64) {
    let gw = common::start(|c| {
        // Replayed traces arrive whole within a flush; the demo flushes every 5 s of event
        // time, within the lateness.
        c.analysis.trace_idle = Duration::from_secs(2);
        c.analysis.graph_wait = Duration::from_secs(2);
        c.alerting.lateness = Duration::from_secs(10);
    })
    .await;
    let began = SystemTime::now();
    let mut args = vec![
        "--replay",
        "--duration",
        "1h",
        "--rate",
        "2",
        "--seed",
        seed,
    ];
    args.extend_from_slice(&["--fault-after", "30m", "--fault-for", "15m"]);
    args.extend_from_slice(fault);
    common::run_demo(&gw.otlp, &args).await;
    let replayed = began.elapsed().unwrap_or_default();
    // The data ends when the replay began (its hour ends "now"); evaluation reaches it once
    // the watermark, moving with the wall clock after the data stops, gets there. ListAlerts
    // reports the last instant actually evaluated.
    let end = unix(began);
    let mut q = gw.query_client().await;
    common::eventually(
        Duration::from_secs(120),
        "evaluation to reach the end",
        async || {
            let mark = q
                .list_alerts(ListAlertsRequest::default())
                .await
                .unwrap()
                .into_inner()
                .watermark_unix_nano;
            if mark >= end {
                Ok(())
            } else {
                Err(format!("{} s before the end", (end - mark) / 1_000_000_000))
            }
        },
    )
    .await;
    println!(
        "{fault:?}: an hour replayed in {:.1} s, evaluated {:.1} s after it began",
        replayed.as_secs_f64(),
        began.elapsed().unwrap_or_default().as_secs_f64()
    );
    (gw, end - 3_600_000_000_000)
}

/// The one incident, in full.
async fn the_incident(q: &mut QueryServiceClient<Channel>) -> GetIncidentResponse {
    let list = q
        .list_incidents(ListIncidentsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .incidents;
    assert_eq!(list.len(), 1, "exactly one incident: {list:#?}");
    q.get_incident(GetIncidentRequest { id: list[0].id })
        .await
        .unwrap()
        .into_inner()
}

/// Prints an incident's figures; returns its start and end, in minutes into the hour.
fn report(name: &str, s: &sieve::proto::IncidentSummary, t0: u64) -> (f64, f64) {
    let minutes = |ns: u64| ns.saturating_sub(t0) as f64 / 60e9;
    println!(
        "{name}: incident started at minute {:.1}, resolved at {:.1}, MTTR {:.1} min, {} alerts, {} suppressed",
        minutes(s.started_unix_nano),
        minutes(s.resolved_unix_nano),
        s.mttr_nanos as f64 / 60e9,
        s.alerts,
        s.suppressed
    );
    (minutes(s.started_unix_nano), minutes(s.resolved_unix_nano))
}

/// Inventory first; every alert outside inventory suppressed (by an inventory alert), and
/// an inventory alert not suppressed (the one notified).
fn check_cause_and_suppression(inc: &GetIncidentResponse) {
    let rc = &inc.root_causes;
    assert_eq!(rc[0].service, "inventory", "{rc:#?}");
    assert!(rc[0].score > rc[1].score, "{rc:#?}");
    assert!(
        rc[0]
            .evidence
            .iter()
            .any(|e| e.contains("deepest failing dependency")),
        "{rc:#?}"
    );
    let service = |a: &sieve::proto::Alert| a.labels.get("service").cloned().unwrap_or_default();
    assert!(
        inc.alerts.iter().any(|a| service(a) == "inventory"),
        "the cause's alert is not suppressed: {inc:#?}"
    );
    assert!(
        inc.alerts.iter().all(|a| service(a) == "inventory"),
        "every dependent alert is suppressed: {inc:#?}"
    );
    let cause: Vec<&str> = inc.alerts.iter().map(|a| a.fingerprint.as_str()).collect();
    let dependents: Vec<&sieve::proto::SuppressedAlert> = inc
        .suppressed
        .iter()
        .filter(|s| s.alert.as_ref().is_some_and(|a| service(a) != "inventory"))
        .collect();
    assert!(!dependents.is_empty(), "{inc:#?}");
    for s in &dependents {
        assert!(cause.contains(&s.suppressed_by.as_str()), "{s:#?}");
    }
    let summary = inc.incident.as_ref().expect("summary");
    assert_eq!(summary.state, "resolved", "the fault ended: {summary:#?}");
    assert_eq!(summary.root_cause, "inventory");
    assert_eq!(
        summary.suppressed as usize,
        inc.suppressed.len(),
        "{summary:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_dependency_deep_in_the_graph_is_one_incident() {
    let (gw, t0) = replay(&["--slow-service", "inventory", "--slow-ms", "60"], "7").await;
    let mut q = gw.query_client().await;
    let inc = the_incident(&mut q).await;
    check_cause_and_suppression(&inc);
    // Latency alerts on inventory and on its callers (catalog, frontend).
    let services: std::collections::BTreeSet<String> = inc
        .alerts
        .iter()
        .chain(inc.suppressed.iter().filter_map(|s| s.alert.as_ref()))
        .map(|a| {
            assert_eq!(a.labels["alertname"], "LatencyAnomaly", "{a:#?}");
            a.labels["service"].clone()
        })
        .collect();
    assert_eq!(
        services.into_iter().collect::<Vec<_>>(),
        ["catalog", "frontend", "inventory"]
    );
    // The critical path moved to inventory.
    assert!(
        inc.root_causes[0]
            .evidence
            .iter()
            .any(|e| e.contains("critical-path share grew")),
        "{:#?}",
        inc.root_causes
    );
    let s = inc.incident.unwrap();
    let (started, resolved) = report("slow inventory", &s, t0);
    // The fault ran from minute 30 to 45.
    assert!((30.0..35.0).contains(&started), "{s:#?}");
    assert!((45.0..55.0).contains(&resolved), "{s:#?}");
    // The CLI shows the same.
    let (ok, out, err) = common::run_sieve(
        &["query", "incident", &s.id.to_string(), "--addr", &gw.query],
        b"",
    );
    assert!(ok, "{err}");
    assert!(out.contains("1. inventory"), "{out}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_service_is_one_incident() {
    let (gw, t0) = replay(&["--fail-service", "inventory", "--fail-rate", "0.3"], "8").await;
    let mut q = gw.query_client().await;
    let inc = the_incident(&mut q).await;
    check_cause_and_suppression(&inc);
    let names: std::collections::BTreeSet<(String, String)> = inc
        .alerts
        .iter()
        .chain(inc.suppressed.iter().filter_map(|s| s.alert.as_ref()))
        .map(|a| (a.labels["alertname"].clone(), a.labels["service"].clone()))
        .collect();
    // Errors in inventory and, propagated, in catalog and the frontend; inventory's new
    // error log line.
    for want in [
        ("HighErrorRate", "inventory"),
        ("HighErrorRate", "catalog"),
        ("HighErrorRate", "frontend"),
        ("NewErrorLogCluster", "inventory"),
    ] {
        assert!(
            names.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} in {names:?}"
        );
    }
    let rc = &inc.root_causes[0];
    assert!(
        rc.evidence.iter().any(|e| e == "its anomaly started first"),
        "{rc:#?}"
    );
    assert!(
        rc.evidence.iter().any(|e| e.contains("error log clusters")),
        "{rc:#?}"
    );
    let s = inc.incident.unwrap();
    let (started, _) = report("failing inventory", &s, t0);
    assert!((30.0..33.0).contains(&started), "{s:#?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_hour_without_a_fault_makes_no_alert() {
    let (gw, _) = replay(&[], "9").await;
    let mut q = gw.query_client().await;
    let alerts = q
        .list_alerts(ListAlertsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert!(alerts.is_empty(), "{alerts:#?}");
    let incidents = q
        .list_incidents(ListIncidentsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .incidents;
    assert!(incidents.is_empty(), "{incidents:#?}");
    // And it was analysed: 7,200 requests of 11 spans.
    let stats = q
        .get_stats(sieve::proto::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.spans.map(|s| s.accepted), Some(79_200));
    gw.stop().await;
}

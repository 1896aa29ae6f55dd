//! What `sieve query bottlenecks | what-if | graph | metrics` parse and print.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{fmt_duration, fmt_time, kind_name, table};
use crate::proto::{
    Exemplar, GetBottlenecksResponse, GetServiceGraphResponse, GetSpanMetricsResponse, MetricPoint,
    WhatIfResponse,
};

/// Parses a speed-up: `30%` or `0.3`, in (0, 1].
pub fn parse_speedup(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("invalid speed-up {text:?}; write e.g. 30% or 0.3"))?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!(
            "speed-up {text:?} is outside (0%, 100%]; write e.g. 30% or 0.3"
        ))
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn first_exemplar(e: &[Exemplar]) -> String {
    e.first()
        .map(|e| format!("{} ({})", e.trace_id, fmt_duration(e.nanos)))
        .unwrap_or_default()
}

fn exemplars_json(e: &[Exemplar]) -> Value {
    e.iter()
        .map(|e| json!({"trace_id": e.trace_id, "nanos": e.nanos}))
        .collect()
}

pub fn bottlenecks_text(r: &GetBottlenecksResponse) -> String {
    let mut out = format!(
        "{} traces from {} to {}, end-to-end p50 {} p99 {}",
        r.traces,
        fmt_time(r.start_unix_nano),
        fmt_time(r.end_unix_nano),
        fmt_duration(r.end_to_end_p50_nanos),
        fmt_duration(r.end_to_end_p99_nanos),
    );
    if r.bottlenecks.iter().any(|b| b.has_baseline) {
        let _ = write!(out, "; baseline {} traces", r.baseline_traces);
    }
    out.push('\n');
    if r.bottlenecks.is_empty() {
        out.push_str(if r.traces == 0 {
            "no trace in the window\n"
        } else {
            "no operation matches\n"
        });
        return out;
    }
    let by_path = r.bottlenecks.iter().any(|b| !b.call_path.is_empty());
    let rows: Vec<Vec<String>> = r
        .bottlenecks
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let name = if by_path {
                b.call_path.clone()
            } else {
                format!("{}: {}", b.service, b.operation)
            };
            let change = if b.has_baseline {
                format!("{:+.1}pp", b.share_change * 100.0)
            } else {
                "-".into()
            };
            let ratio = if b.mean_ratio > 0.0 {
                format!("{:.2}×", b.mean_ratio)
            } else {
                "new".into()
            };
            vec![
                (i + 1).to_string(),
                pct(b.share),
                change,
                if b.has_baseline { ratio } else { "-".into() },
                fmt_duration(b.critical_path_nanos),
                b.traces.to_string(),
                fmt_duration(b.p50_nanos),
                fmt_duration(b.p95_nanos),
                fmt_duration(b.p99_nanos),
                first_exemplar(&b.exemplars),
                name,
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "#",
            "SHARE",
            "CHANGE",
            "MEAN×",
            "CP TIME",
            "TRACES",
            "P50",
            "P95",
            "P99",
            "SLOWEST TRACE",
            if by_path { "CALL PATH" } else { "OPERATION" },
        ],
        &rows,
    ));
    out
}

pub fn bottlenecks_json(r: &GetBottlenecksResponse) -> Value {
    json!({
        "start_unix_nano": r.start_unix_nano,
        "end_unix_nano": r.end_unix_nano,
        "traces": r.traces,
        "end_to_end_nanos": r.end_to_end_nanos,
        "end_to_end_p50_nanos": r.end_to_end_p50_nanos,
        "end_to_end_p99_nanos": r.end_to_end_p99_nanos,
        "baseline_traces": r.baseline_traces,
        "baseline_end_to_end_nanos": r.baseline_end_to_end_nanos,
        "slowest": exemplars_json(&r.slowest),
        "bottlenecks": r.bottlenecks.iter().map(|b| json!({
            "service": b.service,
            "operation": b.operation,
            "call_path": b.call_path,
            "traces": b.traces,
            "critical_path_nanos": b.critical_path_nanos,
            "share": b.share,
            "p50_nanos": b.p50_nanos,
            "p95_nanos": b.p95_nanos,
            "p99_nanos": b.p99_nanos,
            "baseline_share": b.has_baseline.then_some(b.baseline_share),
            "share_change": b.has_baseline.then_some(b.share_change),
            "mean_ratio": (b.mean_ratio > 0.0).then_some(b.mean_ratio),
            "exemplars": exemplars_json(&b.exemplars),
        })).collect::<Vec<_>>(),
    })
}

pub fn what_if_text(service: &str, operation: &str, speedup: f64, r: &WhatIfResponse) -> String {
    if r.traces == 0 {
        return format!(
            "no trace from {} to {}\n",
            fmt_time(r.start_unix_nano),
            fmt_time(r.end_unix_nano)
        );
    }
    format!(
        "{service}: {operation} {pct} faster, over {traces} traces from {from} to {to}:\n\
         on the critical path of {affected} traces, {cp} of {e2e} end-to-end\n\
         end-to-end {e2e} -> {proj} ({change:+.1}%), mean {mean} -> {pmean}\n\
         (an upper bound: a parallel branch may become critical first)\n",
        pct = pct(speedup),
        traces = r.traces,
        from = fmt_time(r.start_unix_nano),
        to = fmt_time(r.end_unix_nano),
        affected = r.affected_traces,
        cp = fmt_duration(r.operation_critical_path_nanos),
        e2e = fmt_duration(r.end_to_end_nanos),
        proj = fmt_duration(r.projected_end_to_end_nanos),
        change = r.change * 100.0,
        mean = fmt_duration(r.end_to_end_nanos / r.traces),
        pmean = fmt_duration(r.projected_end_to_end_nanos / r.traces),
    )
}

pub fn what_if_json(r: &WhatIfResponse) -> Value {
    json!({
        "start_unix_nano": r.start_unix_nano,
        "end_unix_nano": r.end_unix_nano,
        "traces": r.traces,
        "affected_traces": r.affected_traces,
        "operation_critical_path_nanos": r.operation_critical_path_nanos,
        "end_to_end_nanos": r.end_to_end_nanos,
        "projected_end_to_end_nanos": r.projected_end_to_end_nanos,
        "change": r.change,
    })
}

pub fn graph_text(r: &GetServiceGraphResponse) -> String {
    if r.edges.is_empty() && r.unpaired.is_empty() {
        return "no edge in the window\n".into();
    }
    let server = |e: &crate::proto::ServiceEdge, n: u64| {
        if e.virtual_node {
            "-".to_string()
        } else {
            fmt_duration(n)
        }
    };
    let rows: Vec<Vec<String>> = r
        .edges
        .iter()
        .map(|e| {
            vec![
                e.client.clone(),
                e.server.clone(),
                match (e.virtual_node, e.messaging) {
                    (true, _) => "virtual",
                    (false, true) => "messaging",
                    (false, false) => "request",
                }
                .into(),
                e.requests.to_string(),
                e.failed.to_string(),
                fmt_duration(e.client_p50_nanos),
                fmt_duration(e.client_p99_nanos),
                server(e, e.server_p50_nanos),
                server(e, e.server_p99_nanos),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "CLIENT",
            "SERVER",
            "TYPE",
            "REQUESTS",
            "FAILED",
            "CLIENT P50",
            "CLIENT P99",
            "SERVER P50",
            "SERVER P99",
        ],
        &rows,
    );
    if !r.unpaired.is_empty() {
        out.push_str("\nunpaired spans (no other half within analysis.graph_wait):\n");
        let rows: Vec<Vec<String>> = r
            .unpaired
            .iter()
            .map(|u| {
                vec![
                    u.service.clone(),
                    u.client.to_string(),
                    u.server.to_string(),
                ]
            })
            .collect();
        out.push_str(&table(&["SERVICE", "CLIENT", "SERVER"], &rows));
    }
    out
}

pub fn graph_json(r: &GetServiceGraphResponse) -> Value {
    json!({
        "start_unix_nano": r.start_unix_nano,
        "end_unix_nano": r.end_unix_nano,
        "edges": r.edges.iter().map(|e| json!({
            "client": e.client,
            "server": e.server,
            "messaging": e.messaging,
            "virtual_node": e.virtual_node,
            "requests": e.requests,
            "failed": e.failed,
            "client_p50_nanos": e.client_p50_nanos,
            "client_p95_nanos": e.client_p95_nanos,
            "client_p99_nanos": e.client_p99_nanos,
            "server_p50_nanos": e.server_p50_nanos,
            "server_p95_nanos": e.server_p95_nanos,
            "server_p99_nanos": e.server_p99_nanos,
        })).collect::<Vec<_>>(),
        "unpaired": r.unpaired.iter().map(|u| json!({
            "service": u.service, "client": u.client, "server": u.server,
        })).collect::<Vec<_>>(),
    })
}

fn status_name(code: i32) -> &'static str {
    match code {
        1 => "ok",
        2 => "error",
        _ => "unset",
    }
}

pub fn metrics_text(r: &GetSpanMetricsResponse) -> String {
    if r.series.is_empty() {
        return "no span in the window\n".into();
    }
    let mut out = String::new();
    for s in &r.series {
        let t = s.total.unwrap_or_default();
        let _ = writeln!(
            out,
            "{}: {} ({}, status {}) — {} calls, {} errors, p50 {} p95 {} p99 {}",
            s.service,
            s.operation,
            kind_name(s.kind),
            status_name(s.status_code),
            t.calls,
            t.errors,
            fmt_duration(t.p50_nanos),
            fmt_duration(t.p95_nanos),
            fmt_duration(t.p99_nanos),
        );
        let rows: Vec<Vec<String>> = s
            .points
            .iter()
            .map(|p| {
                vec![
                    fmt_time(p.start_unix_nano),
                    p.calls.to_string(),
                    p.errors.to_string(),
                    fmt_duration(p.p50_nanos),
                    fmt_duration(p.p95_nanos),
                    fmt_duration(p.p99_nanos),
                ]
            })
            .collect();
        out.push_str(&table(
            &["  TIME", "CALLS", "ERRORS", "P50", "P95", "P99"],
            &rows
                .into_iter()
                .map(|mut r| {
                    r[0] = format!("  {}", r[0]);
                    r
                })
                .collect::<Vec<_>>(),
        ));
        out.push('\n');
    }
    out
}

fn point_json(p: &MetricPoint) -> Value {
    json!({
        "start_unix_nano": p.start_unix_nano,
        "calls": p.calls,
        "errors": p.errors,
        "p50_nanos": p.p50_nanos,
        "p95_nanos": p.p95_nanos,
        "p99_nanos": p.p99_nanos,
    })
}

pub fn metrics_json(r: &GetSpanMetricsResponse) -> Value {
    json!({
        "start_unix_nano": r.start_unix_nano,
        "end_unix_nano": r.end_unix_nano,
        "step_nanos": r.step_nanos,
        "series": r.series.iter().map(|s| json!({
            "service": s.service,
            "operation": s.operation,
            "kind": kind_name(s.kind),
            "status": status_name(s.status_code),
            "total": s.total.as_ref().map(point_json),
            "points": s.points.iter().map(point_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// `sieve query alerts`.
pub fn alerts_text(r: &crate::proto::ListAlertsResponse) -> String {
    if r.alerts.is_empty() {
        return format!(
            "no alert (evaluated up to {})\n",
            fmt_time(r.watermark_unix_nano)
        );
    }
    let rows: Vec<Vec<String>> = r
        .alerts
        .iter()
        .map(|a| {
            let since = match a.state.as_str() {
                "firing" => a.fired_at_unix_nano,
                "resolved" => a.resolved_at_unix_nano,
                _ => a.active_since_unix_nano,
            };
            // In name order, as Alertmanager prints label sets.
            let mut others: Vec<String> = a
                .labels
                .iter()
                .filter(|(k, _)| k.as_str() != "alertname" && k.as_str() != "severity")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            others.sort();
            vec![
                a.state.clone(),
                a.labels.get("severity").cloned().unwrap_or_default(),
                format!("{:.2}", a.priority),
                fmt_time(since),
                a.labels.get("alertname").cloned().unwrap_or_default(),
                others.join(","),
                a.annotations.get("summary").cloned().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "STATE", "SEVERITY", "PRIORITY", "SINCE", "ALERT", "LABELS", "SUMMARY",
        ],
        &rows,
    )
}

fn incident_row(i: &crate::proto::IncidentSummary) -> Vec<String> {
    vec![
        i.id.to_string(),
        i.state.clone(),
        fmt_time(i.started_unix_nano),
        if i.mttr_nanos > 0 {
            fmt_duration(i.mttr_nanos)
        } else {
            "-".into()
        },
        i.alerts.to_string(),
        i.suppressed.to_string(),
        if i.root_cause.is_empty() {
            "-".into()
        } else {
            format!("{} ({:.2})", i.root_cause, i.root_cause_score)
        },
    ]
}

const INCIDENT_HEADER: [&str; 7] = [
    "ID",
    "STATE",
    "STARTED",
    "MTTR",
    "ALERTS",
    "SUPPRESSED",
    "ROOT CAUSE",
];

/// `sieve query incidents`.
pub fn incidents_text(r: &crate::proto::ListIncidentsResponse) -> String {
    if r.incidents.is_empty() {
        return "no incident\n".into();
    }
    let rows: Vec<Vec<String>> = r.incidents.iter().map(incident_row).collect();
    table(&INCIDENT_HEADER, &rows)
}

fn incident_value(i: &crate::proto::IncidentSummary) -> Value {
    json!({
        "id": i.id,
        "state": i.state,
        "started_unix_nano": i.started_unix_nano,
        "detected_unix_nano": i.detected_unix_nano,
        "resolved_unix_nano": i.resolved_unix_nano,
        "mttr_nanos": i.mttr_nanos,
        "alerts": i.alerts,
        "suppressed": i.suppressed,
        "root_cause": i.root_cause,
        "root_cause_score": i.root_cause_score,
    })
}

pub fn incidents_json(r: &crate::proto::ListIncidentsResponse) -> Value {
    json!({ "incidents": r.incidents.iter().map(incident_value).collect::<Vec<_>>() })
}

/// `sieve query incident ID`.
pub fn incident_text(r: &crate::proto::GetIncidentResponse) -> String {
    let Some(i) = &r.incident else {
        return "no incident\n".into();
    };
    let mut out = table(&INCIDENT_HEADER, &[incident_row(i)]);
    out.push_str("\nalerts:\n");
    let alerts = crate::proto::ListAlertsResponse {
        alerts: r.alerts.clone(),
        watermark_unix_nano: 0,
    };
    if !r.alerts.is_empty() {
        out.push_str(&alerts_text(&alerts));
    }
    if !r.suppressed.is_empty() {
        out.push_str(
            "\nsuppressed (correlated with an alert of a higher-ranked root cause, or of \
             higher priority):\n",
        );
        for s in &r.suppressed {
            if let Some(a) = &s.alert {
                let mut labels: Vec<String> = a
                    .labels
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "alertname" | "severity"))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                labels.sort();
                out.push_str(&format!(
                    "  {} {} {} by {}\n",
                    a.fingerprint,
                    a.labels.get("alertname").cloned().unwrap_or_default(),
                    labels.join(","),
                    s.suppressed_by
                ));
            }
        }
    }
    out.push_str("\nroot cause, best first:\n");
    for (n, c) in r.root_causes.iter().enumerate() {
        out.push_str(&format!("  {}. {} ({:.2})\n", n + 1, c.service, c.score));
        for e in &c.evidence {
            out.push_str(&format!("       - {e}\n"));
        }
    }
    out
}

pub fn incident_json(r: &crate::proto::GetIncidentResponse) -> Value {
    json!({
        "incident": r.incident.as_ref().map(incident_value),
        "alerts": alerts_json(&crate::proto::ListAlertsResponse { alerts: r.alerts.clone(), watermark_unix_nano: 0 })["alerts"],
        "suppressed": r.suppressed.iter().map(|s| json!({
            "fingerprint": s.alert.as_ref().map(|a| a.fingerprint.clone()),
            "suppressed_by": s.suppressed_by,
        })).collect::<Vec<_>>(),
        "root_causes": r.root_causes.iter().map(|c| json!({
            "service": c.service, "score": c.score, "evidence": c.evidence,
        })).collect::<Vec<_>>(),
    })
}

pub fn alerts_json(r: &crate::proto::ListAlertsResponse) -> Value {
    json!({
        "watermark_unix_nano": r.watermark_unix_nano,
        "alerts": r.alerts.iter().map(|a| json!({
            "fingerprint": a.fingerprint,
            "labels": a.labels,
            "annotations": a.annotations,
            "state": a.state,
            "value": a.has_value.then_some(a.value),
            "priority": a.priority,
            "active_since_unix_nano": a.active_since_unix_nano,
            "fired_at_unix_nano": a.fired_at_unix_nano,
            "resolved_at_unix_nano": a.resolved_at_unix_nano,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Bottleneck;

    #[test]
    fn speedups_parse_or_say_why_not() {
        assert_eq!(parse_speedup("30%"), Ok(0.3));
        assert_eq!(parse_speedup("0.5"), Ok(0.5));
        assert_eq!(parse_speedup("100 %"), Ok(1.0));
        for bad in ["0", "0%", "150%", "-1", "fast", ""] {
            assert!(parse_speedup(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bottleneck_table() {
        let r = GetBottlenecksResponse {
            traces: 10,
            baseline_traces: 40,
            bottlenecks: vec![Bottleneck {
                service: "pricing".into(),
                operation: "GET /price".into(),
                traces: 10,
                critical_path_nanos: 1_500_000_000,
                share: 0.62,
                has_baseline: true,
                baseline_share: 0.2,
                share_change: 0.42,
                mean_ratio: 3.0,
                exemplars: vec![Exemplar {
                    trace_id: "ab".repeat(16),
                    nanos: 250_000_000,
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let t = bottlenecks_text(&r);
        assert!(t.contains("10 traces"), "{t}");
        assert!(t.contains("baseline 40 traces"), "{t}");
        let row = t.lines().nth(2).unwrap();
        for want in [
            "62.0%",
            "+42.0pp",
            "3.00×",
            "1.50s",
            "pricing: GET /price",
            "(250.0ms)",
        ] {
            assert!(row.contains(want), "{want} missing in {row}");
        }
        assert_eq!(bottlenecks_json(&r)["bottlenecks"][0]["share_change"], 0.42);
    }
}

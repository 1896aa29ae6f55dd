//! The analysis stage's RED figures and service graph as Prometheus series with the names and
//! labels of the Collector's `spanmetrics` and `servicegraph` connectors (histogram unit:
//! seconds), so dashboards built for those connectors work on sieve:
//!
//! - `traces_span_metrics_calls_total{service_name, span_name, span_kind, status_code}` and
//!   `traces_span_metrics_duration_seconds_{bucket,sum,count}` with the connector's default
//!   buckets (2 ms … 15 s);
//! - `traces_service_graph_request_total{client, server, connection_type}`,
//!   `traces_service_graph_request_failed_total`, and
//!   `traces_service_graph_request_{client,server}_seconds_{bucket,sum,count}`.
//!
//! Counters run since start (they do not survive a restart, as Prometheus expects of a
//! process's counters). Bucket counts come from sieve's log-linear histograms: an `le` bucket
//! counts the histogram buckets whose upper bound is at most `le`, so a boundary is exact to
//! within 1/32 of its value. `connection_type` is empty for a request edge, as the
//! connector's, `messaging_system` for producer→consumer and `virtual_node` for a peer without
//! a server span.

use super::exposition::Exposition;
use crate::series::histogram::Histogram;
use crate::stages::analysis::{EdgeMetric, SpanMetric};

/// The connectors' default explicit buckets, in seconds.
pub const BUCKETS: [f64; 16] = [
    0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0,
];

fn span_kind(k: i32) -> &'static str {
    match k {
        1 => "SPAN_KIND_INTERNAL",
        2 => "SPAN_KIND_SERVER",
        3 => "SPAN_KIND_CLIENT",
        4 => "SPAN_KIND_PRODUCER",
        5 => "SPAN_KIND_CONSUMER",
        _ => "SPAN_KIND_UNSPECIFIED",
    }
}

fn status_code(s: i32) -> &'static str {
    match s {
        1 => "STATUS_CODE_OK",
        2 => "STATUS_CODE_ERROR",
        _ => "STATUS_CODE_UNSET",
    }
}

fn connection_type(kind: &str) -> &'static str {
    match kind {
        "messaging" => "messaging_system",
        "virtual" => "virtual_node",
        _ => "",
    }
}

/// Writes the `_bucket`, `_sum` and `_count` samples of `h` (nanoseconds) under `name`.
fn histogram(out: &mut Exposition, name: &str, labels: &[(&str, &str)], h: &Histogram) {
    let bucket = format!("{name}_bucket");
    for le in BUCKETS {
        let le_text = le.to_string();
        let mut with_le: Vec<(&str, &str)> = labels.to_vec();
        with_le.push(("le", &le_text));
        out.sample(&bucket, &with_le, h.count_le((le * 1e9) as u64) as f64);
    }
    let mut with_le: Vec<(&str, &str)> = labels.to_vec();
    with_le.push(("le", "+Inf"));
    out.sample(&bucket, &with_le, h.count() as f64);
    out.sample(&format!("{name}_sum"), labels, h.sum() as f64 / 1e9);
    out.sample(&format!("{name}_count"), labels, h.count() as f64);
}

/// Appends the connector series to `out`.
pub(super) fn render(out: &mut Exposition, spans: &[SpanMetric], edges: &[EdgeMetric]) {
    let span_labels = |s: &SpanMetric| {
        [
            ("service_name", s.service.clone()),
            ("span_name", s.operation.clone()),
            ("span_kind", span_kind(s.kind).to_string()),
            ("status_code", status_code(s.status).to_string()),
        ]
    };
    out.family(
        "traces_span_metrics_calls_total",
        "Spans seen before sampling, by service, span name, kind and status (spanmetrics connector).",
        "counter",
    );
    for s in spans {
        let l = span_labels(s);
        let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
        out.sample("traces_span_metrics_calls_total", &l, s.cell.count as f64);
    }
    out.family(
        "traces_span_metrics_duration_seconds",
        "Span durations (spanmetrics connector).",
        "histogram",
    );
    for s in spans {
        let l = span_labels(s);
        let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
        histogram(
            out,
            "traces_span_metrics_duration_seconds",
            &l,
            &s.cell.hist,
        );
    }
    let edge_labels = |e: &EdgeMetric| {
        [
            ("client", e.client.clone()),
            ("server", e.server.clone()),
            ("connection_type", connection_type(&e.kind).to_string()),
        ]
    };
    for (name, help, value) in [
        (
            "traces_service_graph_request_total",
            "Requests between two services (servicegraph connector).",
            (|c: &crate::series::Cell| c.count) as fn(&crate::series::Cell) -> u64,
        ),
        (
            "traces_service_graph_request_failed_total",
            "Failed requests between two services (servicegraph connector).",
            |c| c.errors,
        ),
    ] {
        out.family(name, help, "counter");
        for e in edges {
            let l = edge_labels(e);
            let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
            out.sample(name, &l, value(&e.cell) as f64);
        }
    }
    for (name, help, server) in [
        (
            "traces_service_graph_request_client_seconds",
            "Request time seen by the client (servicegraph connector).",
            false,
        ),
        (
            "traces_service_graph_request_server_seconds",
            "Request time seen by the server (servicegraph connector).",
            true,
        ),
    ] {
        out.family(name, help, "histogram");
        for e in edges {
            let l = edge_labels(e);
            let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let h = if server { &e.cell.hist2 } else { &e.cell.hist };
            histogram(out, name, &l, h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::Cell;

    #[test]
    fn span_metrics_render_with_the_connectors_names_and_buckets() {
        let mut hist = Histogram::default();
        for ms in [1u64, 3, 3, 20, 1900] {
            hist.record(ms * 1_000_000);
        }
        let spans = [SpanMetric {
            service: "cart".into(),
            operation: "GET /cart".into(),
            kind: 2,
            status: 2,
            cell: Cell {
                count: 5,
                errors: 5,
                hist,
                ..Cell::default()
            },
        }];
        let edges = [EdgeMetric {
            client: "web".into(),
            server: "cart".into(),
            kind: "request".into(),
            cell: Cell {
                count: 7,
                errors: 1,
                ..Cell::default()
            },
        }];
        let mut out = Exposition::default();
        render(&mut out, &spans, &edges);
        let text = out.into_text();
        let l = r#"service_name="cart",span_name="GET /cart",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_ERROR""#;
        assert!(
            text.contains(&format!("traces_span_metrics_calls_total{{{l}}} 5\n")),
            "{text}"
        );
        // 1 ms ≤ 2 ms; 3 ms twice ≤ 4 ms; 20 ms ≤ 50 ms; 1.9 s ≤ 2 s (bounds exact to 1/32).
        for (le, n) in [
            ("0.002", 1),
            ("0.004", 3),
            ("0.01", 3),
            ("0.05", 4),
            ("2", 5),
            ("+Inf", 5),
        ] {
            let line =
                format!("traces_span_metrics_duration_seconds_bucket{{{l},le=\"{le}\"}} {n}\n");
            assert!(text.contains(&line), "{line} in\n{text}");
        }
        assert!(text.contains(&format!(
            "traces_span_metrics_duration_seconds_count{{{l}}} 5\n"
        )));
        assert!(text.contains(
            "traces_service_graph_request_total{client=\"web\",server=\"cart\",connection_type=\"\"} 7\n"
        ));
        assert!(text.contains(
            "traces_service_graph_request_failed_total{client=\"web\",server=\"cart\",connection_type=\"\"} 1\n"
        ));
        assert!(text.contains("# TYPE traces_service_graph_request_server_seconds histogram\n"));
    }
}

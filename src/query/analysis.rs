//! The analysis queries: GetBottlenecks, WhatIf, GetServiceGraph, GetSpanMetrics. Argument
//! checking (each malformed field named), then reads from [`Analyzer`] on the blocking pool,
//! then mapping to the API's messages.

use std::sync::Arc;

use crate::proto::{
    AnalysisStats, Bottleneck, GetBottlenecksRequest, GetBottlenecksResponse,
    GetServiceGraphRequest, GetServiceGraphResponse, GetSpanMetricsRequest, GetSpanMetricsResponse,
    MetricPoint, ServiceEdge, SpanSeries, UnpairedSpans, WhatIfRequest, WhatIfResponse,
};
use crate::proto::{
    CountPoint, GetLogClusterRequest, GetLogClusterResponse, ListLogClustersRequest,
    ListLogClustersResponse, LogCluster,
};
use crate::series::histogram::Histogram;
use crate::series::{Cell, Exemplar, Family};
use crate::stages::analysis::logs::{Listed, Order};
use crate::stages::analysis::{Analyzer, AnalyzerError, BottleneckQuery};
use crate::store::now_ns;

use super::{MAX_LIMIT, QueryError, invalid};

/// The window when a request gives no start.
pub const DEFAULT_WINDOW: u64 = 15 * 60 * 1_000_000_000;
/// Most points one span-metrics series may have.
pub const MAX_POINTS: u64 = 10_000;

impl From<AnalyzerError> for QueryError {
    fn from(e: AnalyzerError) -> QueryError {
        match e {
            AnalyzerError::Disabled => QueryError::Unavailable(e.to_string()),
            AnalyzerError::Invalid(m) => QueryError::InvalidArgument(m),
            AnalyzerError::Sled(_) => QueryError::Task(e.to_string()),
        }
    }
}

/// `[start, end)` from a request's fields: end 0 is now, start 0 is end − 15 min.
pub fn window(start: u64, end: u64, now: u64) -> Result<(u64, u64), QueryError> {
    let end = if end == 0 { now } else { end };
    let start = if start == 0 {
        end.saturating_sub(DEFAULT_WINDOW)
    } else {
        start
    };
    if start >= end {
        return Err(invalid(format!(
            "start_unix_nano {start} is not before end_unix_nano {end}"
        )));
    }
    Ok((start, end))
}

fn top_k(k: u32) -> Result<usize, QueryError> {
    match k {
        0 => Ok(10),
        1..=MAX_LIMIT => Ok(k as usize),
        _ => Err(invalid(format!(
            "top_k must be between 1 and {MAX_LIMIT} (0 for 10), got {k}"
        ))),
    }
}

/// Checks a GetBottlenecks request.
pub fn bottleneck_query(
    r: &GetBottlenecksRequest,
    now: u64,
) -> Result<BottleneckQuery, QueryError> {
    let w = window(r.start_unix_nano, r.end_unix_nano, now)?;
    let baseline = match (r.baseline_start_unix_nano, r.baseline_end_unix_nano) {
        (0, 0) => None,
        (s, e) if s == 0 || e == 0 => {
            return Err(invalid(
                "baseline_start_unix_nano and baseline_end_unix_nano go together",
            ));
        }
        (s, e) if s >= e => {
            return Err(invalid(format!(
                "baseline_start_unix_nano {s} is not before baseline_end_unix_nano {e}"
            )));
        }
        (s, e) => Some((s, e)),
    };
    Ok(BottleneckQuery {
        service: (!r.service.is_empty()).then(|| r.service.clone()),
        operation: (!r.operation.is_empty()).then(|| r.operation.clone()),
        window: w,
        baseline,
        top_k: top_k(r.top_k)?,
        by_call_path: r.by_call_path,
    })
}

fn hex(id: &[u8; 16]) -> String {
    hex::encode(id)
}

fn exemplars(e: &[Exemplar]) -> Vec<crate::proto::Exemplar> {
    e.iter()
        .map(|e| crate::proto::Exemplar {
            trace_id: hex(&e.trace_id),
            nanos: e.value,
        })
        .collect()
}

fn q(h: &Histogram, p: f64) -> u64 {
    h.quantile(p).unwrap_or(0)
}

pub async fn get_bottlenecks(
    analyzer: Arc<Analyzer>,
    r: GetBottlenecksRequest,
) -> Result<GetBottlenecksResponse, QueryError> {
    let query = bottleneck_query(&r, now_ns())?;
    let b = blocking(move || analyzer.bottlenecks(&query)).await?;
    Ok(GetBottlenecksResponse {
        start_unix_nano: b.window.0,
        end_unix_nano: b.window.1,
        baseline_start_unix_nano: b.baseline.map(|w| w.0).unwrap_or(0),
        baseline_end_unix_nano: b.baseline.map(|w| w.1).unwrap_or(0),
        traces: b.total.count,
        end_to_end_nanos: b.total.time,
        end_to_end_p50_nanos: q(&b.total.hist, 0.5),
        end_to_end_p99_nanos: q(&b.total.hist, 0.99),
        baseline_traces: b.baseline_total.count,
        baseline_end_to_end_nanos: b.baseline_total.time,
        slowest: exemplars(&b.total.exemplars),
        bottlenecks: b
            .rows
            .into_iter()
            .map(|row| {
                let (service, operation, call_path) = if r.by_call_path {
                    let path = row.labels.first().cloned().unwrap_or_default();
                    let (s, o) = crate::traces::bottleneck::call_path_last(&path);
                    (s.to_string(), o.to_string(), path)
                } else {
                    let mut l = row.labels.into_iter();
                    (
                        l.next().unwrap_or_default(),
                        l.next().unwrap_or_default(),
                        String::new(),
                    )
                };
                Bottleneck {
                    service,
                    operation,
                    call_path,
                    traces: row.cell.count,
                    critical_path_nanos: row.cell.time,
                    share: row.share,
                    p50_nanos: q(&row.cell.hist, 0.5),
                    p95_nanos: q(&row.cell.hist, 0.95),
                    p99_nanos: q(&row.cell.hist, 0.99),
                    has_baseline: row.baseline_share.is_some(),
                    baseline_share: row.baseline_share.unwrap_or(0.0),
                    share_change: row.baseline_share.map(|b| row.share - b).unwrap_or(0.0),
                    mean_ratio: row.mean_ratio.unwrap_or(0.0),
                    exemplars: exemplars(&row.cell.exemplars),
                }
            })
            .collect(),
    })
}

pub async fn what_if(
    analyzer: Arc<Analyzer>,
    r: WhatIfRequest,
) -> Result<WhatIfResponse, QueryError> {
    if r.service.is_empty() {
        return Err(invalid("service is required"));
    }
    if r.operation.is_empty() {
        return Err(invalid("operation is required"));
    }
    if !(r.speedup > 0.0 && r.speedup <= 1.0) {
        return Err(invalid(format!(
            "speedup must be a fraction in (0, 1] (0.3 is 30% faster), got {}",
            r.speedup
        )));
    }
    let w = window(r.start_unix_nano, r.end_unix_nano, now_ns())?;
    let (p, op, read) =
        blocking(move || analyzer.what_if(&r.service, &r.operation, r.speedup, w)).await?;
    Ok(WhatIfResponse {
        traces: p.traces,
        affected_traces: p.affected,
        operation_critical_path_nanos: op.time,
        end_to_end_nanos: p.total,
        projected_end_to_end_nanos: p.projected_total,
        change: p.change,
        start_unix_nano: read.0,
        end_unix_nano: read.1,
    })
}

pub async fn get_service_graph(
    analyzer: Arc<Analyzer>,
    r: GetServiceGraphRequest,
) -> Result<GetServiceGraphResponse, QueryError> {
    let (start, end) = window(r.start_unix_nano, r.end_unix_nano, now_ns())?;
    let (edges, unpaired) = blocking(move || {
        Ok((
            analyzer.window(Family::Edge, (start, end), &|_| true)?,
            analyzer.window(Family::Unpaired, (start, end), &|_| true)?,
        ))
    })
    .await?;
    let (start, end) = (edges.from, edges.to);
    let mut edges: Vec<ServiceEdge> = edges
        .cells
        .into_iter()
        .map(|(l, c)| ServiceEdge {
            client: l.first().cloned().unwrap_or_default(),
            server: l.get(1).cloned().unwrap_or_default(),
            messaging: l.get(2).is_some_and(|k| k == "messaging"),
            virtual_node: l.get(2).is_some_and(|k| k == "virtual"),
            requests: c.count,
            failed: c.errors,
            client_p50_nanos: q(&c.hist, 0.5),
            client_p95_nanos: q(&c.hist, 0.95),
            client_p99_nanos: q(&c.hist, 0.99),
            server_p50_nanos: q(&c.hist2, 0.5),
            server_p95_nanos: q(&c.hist2, 0.95),
            server_p99_nanos: q(&c.hist2, 0.99),
        })
        .collect();
    edges.sort_by(|a, b| (&a.client, &a.server).cmp(&(&b.client, &b.server)));
    let mut unpaired: Vec<UnpairedSpans> = unpaired
        .cells
        .into_iter()
        .map(|(l, c)| UnpairedSpans {
            service: l.first().cloned().unwrap_or_default(),
            client: c.count,
            server: c.errors,
        })
        .collect();
    unpaired.sort_by(|a, b| a.service.cmp(&b.service));
    Ok(GetServiceGraphResponse {
        edges,
        unpaired,
        start_unix_nano: start,
        end_unix_nano: end,
    })
}

/// Checks a GetSpanMetrics request: (window, step). `finest` is the bucket width data from
/// the window's start on is kept at ([`Analyzer::finest_step`]); the step must be a multiple.
pub fn span_metrics_args(
    r: &GetSpanMetricsRequest,
    now: u64,
    finest: impl Fn(u64) -> u64,
) -> Result<((u64, u64), u64), QueryError> {
    if r.service.is_empty() {
        return Err(invalid("service is required"));
    }
    let (start, end) = window(r.start_unix_nano, r.end_unix_nano, now)?;
    let step = points_step((start, end), r.step_nanos, finest(start))?;
    Ok(((start, end), step))
}

/// The step of a series over `[start, end)`: `requested`, or about 60 points when 0; a
/// whole number of `unit` (the buckets data from `start` on is kept in), at most
/// [`MAX_POINTS`] points.
fn points_step((start, end): (u64, u64), requested: u64, unit: u64) -> Result<u64, QueryError> {
    let step = if requested == 0 {
        ((end - start) / 60).div_ceil(unit).max(1) * unit
    } else {
        requested
    };
    if !step.is_multiple_of(unit) {
        return Err(invalid(format!(
            "step_nanos must be a multiple of {} s for a window starting at {start} (data that old is kept in {} s buckets), got {step}",
            unit / 1_000_000_000,
            unit / 1_000_000_000,
        )));
    }
    if (end - start) / step > MAX_POINTS {
        return Err(invalid(format!(
            "the window holds more than {MAX_POINTS} steps of {step} ns; use a wider step"
        )));
    }
    Ok(step)
}

fn point(start: u64, c: &Cell) -> MetricPoint {
    MetricPoint {
        start_unix_nano: start,
        calls: c.count,
        errors: c.errors,
        p50_nanos: q(&c.hist, 0.5),
        p95_nanos: q(&c.hist, 0.95),
        p99_nanos: q(&c.hist, 0.99),
    }
}

pub async fn get_span_metrics(
    analyzer: Arc<Analyzer>,
    r: GetSpanMetricsRequest,
) -> Result<GetSpanMetricsResponse, QueryError> {
    let now = now_ns();
    let ((start, end), step) = span_metrics_args(&r, now, |from| analyzer.finest_step(from, now))?;
    let series = blocking(move || {
        let op = (!r.operation.is_empty()).then_some(r.operation.as_str());
        analyzer.span_metrics(&r.service, op, (start, end), step)
    })
    .await?;
    Ok(GetSpanMetricsResponse {
        step_nanos: step,
        start_unix_nano: start,
        end_unix_nano: end,
        series: series
            .into_iter()
            .map(|(l, s)| SpanSeries {
                service: l.first().cloned().unwrap_or_default(),
                operation: l.get(1).cloned().unwrap_or_default(),
                kind: l.get(2).and_then(|k| k.parse().ok()).unwrap_or(0),
                status_code: l.get(3).and_then(|k| k.parse().ok()).unwrap_or(0),
                total: Some(point(start, &s.window(0, u64::MAX))),
                points: s.points.iter().map(|(t, c)| point(*t, c)).collect(),
            })
            .collect(),
    })
}

fn log_cluster(l: Listed) -> LogCluster {
    let growth = l.growth();
    let r = l.record;
    LogCluster {
        id: r.id,
        template: r.template_text(),
        service: r.service,
        count: l.count,
        previous_count: l.previous,
        growth,
        total: r.count,
        first_seen_unix_nano: r.first_seen,
        last_seen_unix_nano: r.last_seen,
        samples: r.samples,
        trace_ids: r.trace_ids.iter().map(hex::encode).collect(),
    }
}

/// Checks a ListLogClusters request: (window, order, limit).
pub fn list_args(
    r: &ListLogClustersRequest,
    now: u64,
) -> Result<((u64, u64), Order, usize), QueryError> {
    let w = window(r.start_unix_nano, r.end_unix_nano, now)?;
    let order = match r.order.as_str() {
        "" | "count" => Order::Count,
        "newest" => Order::Newest,
        "growth" => Order::Growth,
        other => {
            return Err(invalid(format!(
                "order must be count, newest or growth, got {other:?}"
            )));
        }
    };
    let limit = match r.limit {
        0 => 50,
        1..=MAX_LIMIT => r.limit as usize,
        n => {
            return Err(invalid(format!(
                "limit must be between 1 and {MAX_LIMIT} (0 for 50), got {n}"
            )));
        }
    };
    Ok((w, order, limit))
}

pub async fn list_log_clusters(
    analyzer: Arc<Analyzer>,
    r: ListLogClustersRequest,
) -> Result<ListLogClustersResponse, QueryError> {
    let (w, order, limit) = list_args(&r, now_ns())?;
    let service = (!r.service.is_empty()).then_some(r.service);
    let listed =
        blocking(move || analyzer.list_log_clusters(service.as_deref(), w, order, limit)).await?;
    Ok(ListLogClustersResponse {
        clusters: listed.into_iter().map(log_cluster).collect(),
        start_unix_nano: w.0,
        end_unix_nano: w.1,
    })
}

pub async fn get_log_cluster(
    analyzer: Arc<Analyzer>,
    r: GetLogClusterRequest,
) -> Result<GetLogClusterResponse, QueryError> {
    if r.id == 0 {
        return Err(invalid("id is required"));
    }
    let now = now_ns();
    let (start, end) = window(r.start_unix_nano, r.end_unix_nano, now)?;
    let step = points_step((start, end), r.step_nanos, analyzer.finest_step(start, now))?;
    let id = r.id;
    let found = blocking(move || analyzer.log_cluster(id, (start, end), step)).await?;
    let Some((listed, series)) = found else {
        return Err(QueryError::NotFound(format!("log cluster {id}")));
    };
    Ok(GetLogClusterResponse {
        cluster: Some(log_cluster(listed)),
        points: series
            .points
            .iter()
            .map(|(t, c)| CountPoint {
                start_unix_nano: *t,
                count: c.count,
            })
            .collect(),
        step_nanos: step,
    })
}

/// The analysis counters for GetStats.
pub fn stats(analyzer: &Analyzer) -> Option<AnalysisStats> {
    analyzer.enabled().then(|| {
        let s = analyzer.snapshot();
        let logs = analyzer
            .log_clusters()
            .map(|l| (l.records_seen, l.clusters() as u64, l.new_clusters));
        AnalysisStats {
            spans: s.spans,
            traces: s.traces,
            early_traces: s.early,
            late_spans: s.late_spans,
            out_of_range_spans: s.out_of_range,
            assembling_traces: s.assembling_traces,
            assembling_spans: s.assembling_spans,
            series: s.series,
            operations: s.operations,
            call_paths: s.call_paths,
            log_records: logs.as_ref().map(|l| l.0).unwrap_or(0),
            log_clusters: logs.as_ref().map(|l| l.1).unwrap_or(0),
            new_log_clusters: logs.as_ref().map(|l| l.2).unwrap_or(0),
            graph_pending: s.graph_pending,
        }
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AnalyzerError> + Send + 'static,
) -> Result<T, QueryError> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| QueryError::Task(e.to_string()))??)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::STEPS;

    const NOW: u64 = 1_700_000_000_000_000_000;

    #[test]
    fn windows_default_and_reject_inverted_ranges() {
        assert_eq!(window(0, 0, NOW).unwrap(), (NOW - DEFAULT_WINDOW, NOW));
        assert_eq!(window(5, 10, NOW).unwrap(), (5, 10));
        let e = window(10, 10, NOW).unwrap_err().to_string();
        assert!(
            e.contains("start_unix_nano 10 is not before end_unix_nano 10"),
            "{e}"
        );
    }

    #[test]
    fn bottleneck_arguments() {
        let ok = GetBottlenecksRequest {
            baseline_start_unix_nano: 1,
            baseline_end_unix_nano: 2,
            ..Default::default()
        };
        let q = bottleneck_query(&ok, NOW).unwrap();
        assert_eq!((q.top_k, q.baseline), (10, Some((1, 2))));
        for (r, want) in [
            (
                GetBottlenecksRequest {
                    top_k: 1001,
                    ..Default::default()
                },
                "top_k must be between 1 and 1000",
            ),
            (
                GetBottlenecksRequest {
                    baseline_start_unix_nano: 5,
                    ..Default::default()
                },
                "go together",
            ),
            (
                GetBottlenecksRequest {
                    baseline_start_unix_nano: 5,
                    baseline_end_unix_nano: 4,
                    ..Default::default()
                },
                "baseline_start_unix_nano 5 is not before",
            ),
            (
                GetBottlenecksRequest {
                    start_unix_nano: NOW + 1,
                    end_unix_nano: NOW,
                    ..Default::default()
                },
                "is not before end_unix_nano",
            ),
        ] {
            let e = bottleneck_query(&r, NOW).unwrap_err();
            assert!(matches!(e, QueryError::InvalidArgument(_)));
            assert!(e.to_string().contains(want), "{e} lacks {want}");
        }
    }

    #[test]
    fn span_metrics_arguments() {
        let r = GetSpanMetricsRequest {
            service: "cart".into(),
            start_unix_nano: NOW - 3_600_000_000_000,
            end_unix_nano: NOW,
            ..Default::default()
        };
        // 1 h / 60 = 1 min.
        let ten = |_| STEPS[0];
        assert_eq!(span_metrics_args(&r, NOW, ten).unwrap().1, 60_000_000_000);
        // Data older than the 10 s retention: whole minutes only.
        let minute = |_| STEPS[1];
        assert_eq!(
            span_metrics_args(&r, NOW, minute).unwrap().1,
            60_000_000_000
        );
        let e = span_metrics_args(
            &GetSpanMetricsRequest {
                step_nanos: 30_000_000_000,
                ..r.clone()
            },
            NOW,
            minute,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("multiple of 60 s"), "{e}");
        for (r, want) in [
            (GetSpanMetricsRequest::default(), "service is required"),
            (
                GetSpanMetricsRequest {
                    step_nanos: 15,
                    ..r.clone()
                },
                "multiple of 10 s",
            ),
            (
                GetSpanMetricsRequest {
                    start_unix_nano: 1,
                    step_nanos: STEPS[0],
                    ..r.clone()
                },
                "more than 10000 steps",
            ),
        ] {
            let e = span_metrics_args(&r, NOW, ten).unwrap_err().to_string();
            assert!(e.contains(want), "{e} lacks {want}");
        }
    }
}

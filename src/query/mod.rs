//! The query gRPC service (`proto/sieve/v1/query.proto`): argument checking, then reads from
//! the store on the blocking pool, then mapping to the API's messages.
//!
//! Every malformed argument is INVALID_ARGUMENT with a message naming the field and the
//! problem; an unknown trace is NOT_FOUND; a store failure is INTERNAL. The mapping to
//! `tonic::Status` happens in one place, [`QueryError`]'s `From` impl.

pub mod analysis;
pub mod connectors;
pub mod exposition;
pub mod metrics;

use std::sync::Arc;

use opentelemetry_proto::tonic::trace::v1::TracesData;
use tonic::{Request, Response, Status};

use crate::otlp;
use crate::proto::query_service_server::QueryService;
use crate::proto::{
    FindTracesRequest, FindTracesResponse, GetOperationsRequest, GetOperationsResponse,
    GetServicesRequest, GetServicesResponse, GetStatsRequest, GetStatsResponse, GetTraceRequest,
    LogEntry, Operation, SearchLogsRequest, SearchLogsResponse, SignalStats, TraceSummary,
};
use crate::proto::{
    GetBottlenecksRequest, GetBottlenecksResponse, GetServiceGraphRequest, GetServiceGraphResponse,
    GetSpanMetricsRequest, GetSpanMetricsResponse, WhatIfRequest, WhatIfResponse,
};
use crate::store::{LogQuery, Store, StoreError, TraceQuery};
use crate::telemetry::{SignalCounters, Stats};

/// Largest `limit` a search accepts.
pub const MAX_LIMIT: u32 = 1000;

/// Errors of the query layer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The request is malformed; the message says which field and why.
    #[error("{0}")]
    InvalidArgument(String),
    /// The trace (never received, or expired) or log cluster does not exist.
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blocking read task failed.
    #[error("query task failed: {0}")]
    Task(String),
    /// What the query needs is turned off in the config.
    #[error("{0}")]
    Unavailable(String),
}

impl From<QueryError> for Status {
    fn from(e: QueryError) -> Status {
        match e {
            QueryError::InvalidArgument(m) => Status::invalid_argument(m),
            QueryError::NotFound(_) => Status::not_found(e.to_string()),
            QueryError::Unavailable(m) => Status::failed_precondition(m),
            QueryError::Store(_) | QueryError::Task(_) => Status::internal(e.to_string()),
        }
    }
}

/// The query service over a store and the gateway's counters.
#[derive(Clone)]
pub struct Query {
    store: Store,
    stats: Arc<Stats>,
    exporters: Arc<crate::stages::export::Exporters>,
    sampling: Arc<crate::stages::intake::sampling::Sampling>,
    analyzer: Arc<crate::stages::analysis::Analyzer>,
    alerts: Arc<std::sync::Mutex<crate::stages::alerting::Engine>>,
    search_depth: usize,
}

impl Query {
    /// (pending alerts, firing alerts, open incidents).
    pub fn alert_counts(&self) -> (u64, u64, u64) {
        self.alerts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .counts()
    }

    /// Span metrics and service-graph edges since start (for `/metrics`).
    pub fn analysis_totals(
        &self,
    ) -> (
        Vec<crate::stages::analysis::SpanMetric>,
        Vec<crate::stages::analysis::EdgeMetric>,
    ) {
        self.analyzer.totals()
    }

    pub fn new(
        store: Store,
        stats: Arc<Stats>,
        exporters: Arc<crate::stages::export::Exporters>,
        sampling: Arc<crate::stages::intake::sampling::Sampling>,
        analyzer: Arc<crate::stages::analysis::Analyzer>,
        alerts: Arc<std::sync::Mutex<crate::stages::alerting::Engine>>,
        search_depth: usize,
    ) -> Query {
        Query {
            store,
            stats,
            exporters,
            sampling,
            analyzer,
            alerts,
            search_depth,
        }
    }

    /// What GetStats answers, and `/metrics` shows.
    pub async fn stats(&self) -> GetStatsResponse {
        let st = &self.stats;
        let store = self.store.clone();
        let disk_bytes = tokio::task::spawn_blocking(move || store.size_on_disk())
            .await
            .unwrap_or(0);
        GetStatsResponse {
            spans: Some(signal_stats(&st.spans)),
            log_records: Some(signal_stats(&st.logs)),
            metric_points: Some(signal_stats(&st.metrics)),
            disk_bytes,
            uptime_seconds: st.started.elapsed().as_secs(),
            undecodable_requests: st
                .undecodable_requests
                .load(std::sync::atomic::Ordering::Relaxed),
            exporters: self
                .exporters
                .snapshot()
                .into_iter()
                .map(exporter_stats)
                .collect(),
            analysis: analysis::stats(&self.analyzer),
            storage: Some({
                let b = self.store.background_stats();
                crate::proto::StorageStats {
                    compactions: b.compactions,
                    compacted_raw_bytes: b.compacted_raw_bytes,
                    compacted_bytes: b.compacted_bytes,
                    compaction_micros: b.compaction_micros,
                    dropped_for_size: b.dropped_for_size,
                    max_disk_bytes: self.store.max_disk_size().unwrap_or(0),
                }
            }),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(Store) -> Result<T, QueryError> + Send + 'static,
    ) -> Result<T, QueryError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store))
            .await
            .map_err(|e| QueryError::Task(e.to_string()))?
    }
}

fn invalid(m: impl Into<String>) -> QueryError {
    QueryError::InvalidArgument(m.into())
}

fn check_limit(limit: u32) -> Result<usize, QueryError> {
    if limit == 0 || limit > MAX_LIMIT {
        return Err(invalid(format!(
            "limit must be between 1 and {MAX_LIMIT}, got {limit}"
        )));
    }
    Ok(limit as usize)
}

fn nonzero(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}

fn check_range(what: &str, min: u64, max: u64) -> Result<(), QueryError> {
    if min != 0 && max != 0 && min > max {
        return Err(invalid(format!(
            "{what}: the minimum {min} is greater than the maximum {max}"
        )));
    }
    Ok(())
}

fn parse_id(field: &str, text: &str) -> Result<[u8; 16], QueryError> {
    otlp::parse_trace_id(text).map_err(|e| invalid(format!("{field}: {e}")))
}

/// Checks a FindTraces request and turns it into a store query.
pub fn trace_query(r: FindTracesRequest, search_depth: usize) -> Result<TraceQuery, QueryError> {
    if r.service_name.is_empty() {
        return Err(invalid("service_name is required"));
    }
    let limit = check_limit(r.limit)?;
    check_range(
        "start_time",
        r.start_time_min_unix_nano,
        r.start_time_max_unix_nano,
    )?;
    check_range("duration", r.duration_min_nanos, r.duration_max_nanos)?;
    if let Some(k) = r.attributes.keys().find(|k| k.is_empty()) {
        return Err(invalid(format!("attributes: empty key {k:?}")));
    }
    let mut attributes: Vec<(String, String)> = r.attributes.into_iter().collect();
    attributes.sort();
    Ok(TraceQuery {
        service: r.service_name,
        operation: (!r.operation_name.is_empty()).then_some(r.operation_name),
        attributes,
        start_min: nonzero(r.start_time_min_unix_nano),
        start_max: nonzero(r.start_time_max_unix_nano),
        duration_min: nonzero(r.duration_min_nanos),
        duration_max: nonzero(r.duration_max_nanos),
        limit,
        search_depth,
    })
}

/// Checks a SearchLogs request and turns it into a store query.
pub fn log_query(r: SearchLogsRequest) -> Result<LogQuery, QueryError> {
    let limit = check_limit(r.limit)?;
    check_range(
        "start_time",
        r.start_time_min_unix_nano,
        r.start_time_max_unix_nano,
    )?;
    if !(0..=24).contains(&r.min_severity_number) {
        return Err(invalid(format!(
            "min_severity_number must be within 0..=24, got {}",
            r.min_severity_number
        )));
    }
    let trace_id = if r.trace_id.is_empty() {
        None
    } else {
        Some(parse_id("trace_id", &r.trace_id)?)
    };
    Ok(LogQuery {
        service: (!r.service_name.is_empty()).then_some(r.service_name),
        min_severity: r.min_severity_number,
        trace_id,
        contains: (!r.contains.is_empty()).then_some(r.contains),
        start_min: nonzero(r.start_time_min_unix_nano),
        start_max: nonzero(r.start_time_max_unix_nano),
        limit,
    })
}

fn signal_stats(c: &SignalCounters) -> SignalStats {
    let s = c.snapshot();
    SignalStats {
        received: s.received,
        accepted: s.accepted,
        rejected: s.rejected,
        refused: s.refused,
        stored_bytes: s.stored_bytes,
        requests: s.requests,
        expired: s.expired,
    }
}

#[tonic::async_trait]
impl QueryService for Query {
    async fn get_trace(
        &self,
        request: Request<GetTraceRequest>,
    ) -> Result<Response<TracesData>, Status> {
        let text = request.into_inner().trace_id;
        let id = parse_id("trace_id", &text)?;
        let trace = self.blocking(move |s| Ok(s.get_trace(&id)?)).await?;
        match trace {
            Some(t) => Ok(Response::new(t)),
            None => Err(QueryError::NotFound(format!("trace {}", hex::encode(id))).into()),
        }
    }

    async fn get_critical_path(
        &self,
        request: Request<crate::proto::GetCriticalPathRequest>,
    ) -> Result<Response<crate::proto::GetCriticalPathResponse>, Status> {
        let r = request.into_inner();
        let id = parse_id("trace_id", &r.trace_id)?;
        if !(0.0..=0.5).contains(&r.tolerance) {
            return Err(Status::invalid_argument(format!(
                "tolerance: {} is outside 0..=0.5",
                r.tolerance
            )));
        }
        let trace = self.blocking(move |s| Ok(s.get_trace(&id)?)).await?;
        let Some(trace) = trace else {
            return Err(QueryError::NotFound(format!("trace {}", hex::encode(id))).into());
        };
        let tolerance = r.tolerance;
        let paths = tokio::task::spawn_blocking(move || {
            crate::traces::critical_path::critical_paths(&[trace], tolerance)
        })
        .await
        .map_err(|e| Status::internal(format!("critical path task failed: {e}")))?;
        let Some(t) = paths.into_iter().next() else {
            return Err(QueryError::NotFound(format!("trace {}", hex::encode(id))).into());
        };
        Ok(Response::new(critical_path_response(&t)))
    }

    async fn find_traces(
        &self,
        request: Request<FindTracesRequest>,
    ) -> Result<Response<FindTracesResponse>, Status> {
        let q = trace_query(request.into_inner(), self.search_depth)?;
        let found = self.blocking(move |s| Ok(s.find_traces(&q)?)).await?;
        Ok(Response::new(FindTracesResponse {
            traces: found
                .into_iter()
                .map(|t| TraceSummary {
                    trace_id: hex::encode(t.trace_id),
                    root_service: t.root_service,
                    root_operation: t.root_operation,
                    start_unix_nano: t.start,
                    duration_nanos: t.duration,
                    span_count: t.span_count,
                    error_count: t.error_count,
                })
                .collect(),
        }))
    }

    async fn get_services(
        &self,
        _request: Request<GetServicesRequest>,
    ) -> Result<Response<GetServicesResponse>, Status> {
        Ok(Response::new(GetServicesResponse {
            services: self.store.services(),
        }))
    }

    async fn get_operations(
        &self,
        request: Request<GetOperationsRequest>,
    ) -> Result<Response<GetOperationsResponse>, Status> {
        let service = request.into_inner().service_name;
        if service.is_empty() {
            return Err(invalid("service_name is required").into());
        }
        Ok(Response::new(GetOperationsResponse {
            operations: self
                .store
                .operations(&service)
                .into_iter()
                .map(|(name, span_kind)| Operation { name, span_kind })
                .collect(),
        }))
    }

    async fn search_logs(
        &self,
        request: Request<SearchLogsRequest>,
    ) -> Result<Response<SearchLogsResponse>, Status> {
        let q = log_query(request.into_inner())?;
        let hits = self.blocking(move |s| Ok(s.search_logs(&q)?)).await?;
        Ok(Response::new(SearchLogsResponse {
            logs: hits
                .into_iter()
                .map(|h| LogEntry {
                    resource: h.resource,
                    scope: h.scope,
                    log_record: Some(h.record),
                })
                .collect(),
        }))
    }

    async fn get_sampling_stats(
        &self,
        _request: Request<crate::proto::GetSamplingStatsRequest>,
    ) -> Result<Response<crate::proto::GetSamplingStatsResponse>, Status> {
        let l = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        Ok(Response::new(crate::proto::GetSamplingStatsResponse {
            samplers: self
                .sampling
                .samplers()
                .iter()
                .map(|s| {
                    let c = &s.counters;
                    crate::proto::SamplerStats {
                        name: s.name.clone(),
                        mode: match s.cfg.mode() {
                            crate::config::SamplerMode::HashSeed => "hash_seed",
                            crate::config::SamplerMode::Proportional => "proportional",
                            crate::config::SamplerMode::Equalizing => "equalizing",
                        }
                        .to_string(),
                        sampling_percentage: s.cfg.sampling_percentage,
                        spans_seen: l(&c.spans_seen),
                        spans_kept: l(&c.spans_kept),
                        logs_seen: l(&c.logs_seen),
                        logs_kept: l(&c.logs_kept),
                        errors: l(&c.errors),
                    }
                })
                .collect(),
            adaptive: self
                .sampling
                .adaptive()
                .iter()
                .map(|a| {
                    let c = a.controller.lock().unwrap_or_else(|p| p.into_inner());
                    crate::proto::AdaptiveSamplerStats {
                        name: a.name.clone(),
                        target_traces_per_second: a.cfg.target_traces_per_second,
                        spans_seen: l(&a.counters.spans_seen),
                        spans_kept: l(&a.counters.spans_kept),
                        operations: c
                            .probabilities()
                            .into_iter()
                            .map(|((service, operation), probability)| {
                                let observed = c
                                    .last_observed
                                    .get(&(service.clone(), operation.clone()))
                                    .copied()
                                    .unwrap_or(0.0);
                                crate::proto::OperationProbability {
                                    service,
                                    operation,
                                    probability,
                                    observed_traces_per_second: observed,
                                }
                            })
                            .collect(),
                    }
                })
                .collect(),
            tail: self.sampling.tail().map(|t| {
                let c = &t.counters;
                let (pending_traces, pending_spans, buffered_bytes) = t.occupancy();
                crate::proto::TailSamplerStats {
                    name: t.name.clone(),
                    pending_traces,
                    pending_spans,
                    buffered_bytes,
                    traces_seen: l(&c.traces_seen),
                    traces_kept: l(&c.traces_kept),
                    traces_dropped: l(&c.traces_dropped),
                    early_quiet: l(&c.early_quiet),
                    early_bound: l(&c.early_bound),
                    late_spans_kept: l(&c.late_spans_kept),
                    late_spans_dropped: l(&c.late_spans_dropped),
                    cache_evictions: l(&c.cache_evictions),
                    late_spans_forgotten: l(&c.late_spans_forgotten),
                    policies: t
                        .policies
                        .iter()
                        .map(|p| crate::proto::PolicyCount {
                            name: p.name.clone(),
                            kept: l(&p.kept),
                        })
                        .collect(),
                }
            }),
        }))
    }

    async fn get_stats(
        &self,
        _request: Request<GetStatsRequest>,
    ) -> Result<Response<GetStatsResponse>, Status> {
        Ok(Response::new(self.stats().await))
    }

    async fn get_bottlenecks(
        &self,
        request: Request<GetBottlenecksRequest>,
    ) -> Result<Response<GetBottlenecksResponse>, Status> {
        let r = analysis::get_bottlenecks(self.analyzer.clone(), request.into_inner()).await?;
        Ok(Response::new(r))
    }

    async fn what_if(
        &self,
        request: Request<WhatIfRequest>,
    ) -> Result<Response<WhatIfResponse>, Status> {
        let r = analysis::what_if(self.analyzer.clone(), request.into_inner()).await?;
        Ok(Response::new(r))
    }

    async fn get_service_graph(
        &self,
        request: Request<GetServiceGraphRequest>,
    ) -> Result<Response<GetServiceGraphResponse>, Status> {
        let r = analysis::get_service_graph(self.analyzer.clone(), request.into_inner()).await?;
        Ok(Response::new(r))
    }

    async fn get_span_metrics(
        &self,
        request: Request<GetSpanMetricsRequest>,
    ) -> Result<Response<GetSpanMetricsResponse>, Status> {
        let r = analysis::get_span_metrics(self.analyzer.clone(), request.into_inner()).await?;
        Ok(Response::new(r))
    }

    async fn list_log_clusters(
        &self,
        request: Request<crate::proto::ListLogClustersRequest>,
    ) -> Result<Response<crate::proto::ListLogClustersResponse>, Status> {
        let r = analysis::list_log_clusters(self.analyzer.clone(), request.into_inner()).await?;
        Ok(Response::new(r))
    }

    async fn list_incidents(
        &self,
        request: Request<crate::proto::ListIncidentsRequest>,
    ) -> Result<Response<crate::proto::ListIncidentsResponse>, Status> {
        let r = request.into_inner();
        let (open, resolved) = match r.state.as_str() {
            "" => (true, true),
            "open" => (true, false),
            "resolved" => (false, true),
            other => {
                return Err(
                    invalid(format!("state must be open or resolved, got {other:?}")).into(),
                );
            }
        };
        let (start, end) = (r.start_unix_nano, r.end_unix_nano);
        if end != 0 && start >= end {
            return Err(invalid(format!(
                "start_unix_nano ({start}) must be before end_unix_nano ({end})"
            ))
            .into());
        }
        let active = |i: &&crate::stages::alerting::incidents::Incident| {
            (end == 0 || i.started < end) && i.resolved_at.is_none_or(|r| r >= start)
        };
        let engine = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
        let inc = &engine.incidents;
        let mut incidents: Vec<crate::proto::IncidentSummary> = Vec::new();
        if open {
            incidents.extend(inc.open.iter().filter(active).map(incident_summary));
        }
        if resolved {
            incidents.extend(inc.resolved.iter().filter(active).map(incident_summary));
        }
        incidents.sort_by_key(|i| std::cmp::Reverse(i.started_unix_nano));
        Ok(Response::new(crate::proto::ListIncidentsResponse {
            incidents,
        }))
    }

    async fn get_incident(
        &self,
        request: Request<crate::proto::GetIncidentRequest>,
    ) -> Result<Response<crate::proto::GetIncidentResponse>, Status> {
        let id = request.into_inner().id;
        if id == 0 {
            return Err(invalid("id is required").into());
        }
        let engine = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
        let Some(inc) = engine.incidents.get(id) else {
            return Err(QueryError::NotFound(format!("incident {id}")).into());
        };
        let suppressed_by: std::collections::HashMap<u64, u64> =
            inc.suppressed.iter().copied().collect();
        let mut alerts = Vec::new();
        let mut suppressed = Vec::new();
        for fp in &inc.alerts {
            let Some(a) = engine.alert(*fp) else { continue };
            match suppressed_by.get(fp) {
                Some(by) => suppressed.push(crate::proto::SuppressedAlert {
                    alert: Some(alert_proto(a)),
                    suppressed_by: format!("{by:016x}"),
                }),
                None => alerts.push(alert_proto(a)),
            }
        }
        alerts.sort_by(|a, b| b.priority.total_cmp(&a.priority));
        Ok(Response::new(crate::proto::GetIncidentResponse {
            incident: Some(incident_summary(inc)),
            alerts,
            suppressed,
            root_causes: inc
                .root_causes
                .iter()
                .map(|c| crate::proto::RootCause {
                    service: c.service.clone(),
                    score: c.score,
                    evidence: c.evidence.clone(),
                })
                .collect(),
        }))
    }

    async fn list_alerts(
        &self,
        request: Request<crate::proto::ListAlertsRequest>,
    ) -> Result<Response<crate::proto::ListAlertsResponse>, Status> {
        use crate::alerts::alert::State;
        let r = request.into_inner();
        let state = match r.state.as_str() {
            "" => None,
            "pending" => Some(State::Pending),
            "firing" => Some(State::Firing),
            "resolved" => Some(State::Resolved),
            other => {
                return Err(invalid(format!(
                    "state must be pending, firing or resolved, got {other:?}"
                ))
                .into());
            }
        };
        let service = (!r.service.is_empty()).then_some(r.service.as_str());
        let engine = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
        let alerts = engine
            .alerts(state, service)
            .into_iter()
            .map(alert_proto)
            .collect();
        Ok(Response::new(crate::proto::ListAlertsResponse {
            alerts,
            watermark_unix_nano: engine.evaluated_until(),
        }))
    }

    async fn get_log_cluster(
        &self,
        request: Request<crate::proto::GetLogClusterRequest>,
    ) -> Result<Response<crate::proto::GetLogClusterResponse>, Status> {
        let r = analysis::get_log_cluster(self.analyzer.clone(), request.into_inner()).await?;
        Ok(Response::new(r))
    }
}

/// An exporter's snapshot as GetStats reports it.
fn exporter_stats(e: crate::stages::export::ExporterSnapshot) -> crate::proto::ExporterStats {
    crate::proto::ExporterStats {
        name: e.name,
        breaker: e.breaker.to_string(),
        queue_entries: e.queue_entries,
        queue_items: e.queue_items,
        queue_bytes: e.queue_bytes,
        sent_items: e.sent_items,
        sent_requests: e.sent_requests,
        failed_items: e.failed_items,
        rejected_items: e.rejected_items,
        dropped_items: e.dropped_items,
        lost_items: e.lost_items,
        retries: e.retries,
    }
}

fn alert_proto(a: crate::stages::alerting::AlertView) -> crate::proto::Alert {
    crate::proto::Alert {
        fingerprint: format!("{:016x}", a.fingerprint),
        labels: a.labels.into_iter().collect(),
        annotations: a.annotations.into_iter().collect(),
        state: a.state.as_str().into(),
        has_value: a.value.is_some(),
        value: a.value.unwrap_or(0.0),
        priority: a.priority,
        active_since_unix_nano: a.active_since.unwrap_or(0),
        fired_at_unix_nano: a.fired_at.unwrap_or(0),
        resolved_at_unix_nano: a.resolved_at.unwrap_or(0),
    }
}

fn incident_summary(
    i: &crate::stages::alerting::incidents::Incident,
) -> crate::proto::IncidentSummary {
    let top = i.root_causes.first();
    crate::proto::IncidentSummary {
        id: i.id,
        state: if i.resolved_at.is_some() {
            "resolved"
        } else {
            "open"
        }
        .into(),
        started_unix_nano: i.started,
        detected_unix_nano: i.detected_at,
        resolved_unix_nano: i.resolved_at.unwrap_or(0),
        mttr_nanos: i.mttr().unwrap_or(0),
        alerts: i.alerts.len() as u32,
        suppressed: i.suppressed.len() as u32,
        root_cause: top.map(|c| c.service.clone()).unwrap_or_default(),
        root_cause_score: top.map(|c| c.score).unwrap_or(0.0),
    }
}

/// A computed critical path in the API's shape (also what `sieve analyze critical-path` prints).
pub fn critical_path_response(
    t: &crate::traces::critical_path::TracePath,
) -> crate::proto::GetCriticalPathResponse {
    let span = |i: usize| {
        let (service, operation, id) = &t.spans[i];
        Some(crate::proto::PathSpan {
            span_id: hex::encode(id),
            service: service.clone(),
            operation: operation.clone(),
        })
    };
    crate::proto::GetCriticalPathResponse {
        trace_id: hex::encode(&t.trace_id),
        sections: t
            .path
            .sections()
            .iter()
            .map(|s| crate::proto::PathSection {
                span: span(s.span),
                start_unix_nano: s.start,
                end_unix_nano: s.end,
            })
            .collect(),
        exclusive: t
            .path
            .exclusive
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| crate::proto::ExclusiveTime {
                span: span(i),
                nanos: *n,
            })
            .collect(),
        warnings: t.path.warnings.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_traces_arguments() {
        let ok = FindTracesRequest {
            service_name: "s".into(),
            limit: 10,
            ..Default::default()
        };
        assert!(trace_query(ok.clone(), 10).is_ok());
        for (r, want) in [
            (
                FindTracesRequest {
                    service_name: String::new(),
                    ..ok.clone()
                },
                "service_name",
            ),
            (
                FindTracesRequest {
                    limit: 0,
                    ..ok.clone()
                },
                "limit",
            ),
            (
                FindTracesRequest {
                    limit: 5000,
                    ..ok.clone()
                },
                "limit",
            ),
            (
                FindTracesRequest {
                    start_time_min_unix_nano: 9,
                    start_time_max_unix_nano: 3,
                    ..ok.clone()
                },
                "start_time",
            ),
            (
                FindTracesRequest {
                    duration_min_nanos: 9,
                    duration_max_nanos: 3,
                    ..ok.clone()
                },
                "duration",
            ),
        ] {
            let e = trace_query(r, 10).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn search_logs_arguments() {
        let ok = SearchLogsRequest {
            limit: 5,
            ..Default::default()
        };
        assert!(log_query(ok.clone()).is_ok());
        for (r, want) in [
            (
                SearchLogsRequest {
                    trace_id: "zz".into(),
                    ..ok.clone()
                },
                "trace_id",
            ),
            (
                SearchLogsRequest {
                    min_severity_number: 30,
                    ..ok.clone()
                },
                "min_severity",
            ),
            (
                SearchLogsRequest {
                    limit: 0,
                    ..ok.clone()
                },
                "limit",
            ),
        ] {
            let e = log_query(r).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}

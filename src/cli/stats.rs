//! The tables and JSON of `sieve query stats` and `sieve query sampling`: the gateway's
//! counters per signal, store, exporters and analysis, and what each sampler saw and kept.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::table;
use crate::proto::{GetStatsResponse, SignalStats};

fn stats_row(name: &str, s: Option<&SignalStats>) -> Vec<String> {
    let s = s.cloned().unwrap_or_default();
    vec![
        name.to_string(),
        s.received.to_string(),
        s.accepted.to_string(),
        s.rejected.to_string(),
        s.refused.to_string(),
        s.stored_bytes.to_string(),
        s.requests.to_string(),
        s.expired.to_string(),
    ]
}

pub fn stats_text(s: &GetStatsResponse) -> String {
    let rows = vec![
        stats_row("spans", s.spans.as_ref()),
        stats_row("log records", s.log_records.as_ref()),
        stats_row("metric points", s.metric_points.as_ref()),
    ];
    let mut out = table(
        &[
            "SIGNAL",
            "RECEIVED",
            "ACCEPTED",
            "REJECTED",
            "REFUSED REQS",
            "STORED BYTES",
            "REQUESTS",
            "EXPIRED",
        ],
        &rows,
    );
    let _ = writeln!(
        out,
        "\ndisk bytes: {}\nundecodable requests: {}\nuptime: {}s",
        s.disk_bytes, s.undecodable_requests, s.uptime_seconds
    );
    if let Some(g) = &s.storage {
        let ratio = if g.compacted_bytes > 0 {
            format!(
                " ({:.1}x smaller)",
                g.compacted_raw_bytes as f64 / g.compacted_bytes as f64
            )
        } else {
            String::new()
        };
        let bound = if g.max_disk_bytes > 0 {
            format!(
                "max disk size {} bytes, {} partitions dropped for size",
                g.max_disk_bytes, g.dropped_for_size
            )
        } else {
            "no max disk size".to_string()
        };
        let _ = writeln!(
            out,
            "compaction: {} ranges, {} raw bytes -> {} bytes{ratio}, {:.1}s; {bound}",
            g.compactions,
            g.compacted_raw_bytes,
            g.compacted_bytes,
            g.compaction_micros as f64 / 1e6,
        );
    }
    if let Some(a) = &s.analysis {
        let _ = writeln!(
            out,
            "\nanalysis: {} spans, {} traces analysed ({} early), {} late spans, {} out of range; assembling {} traces / {} spans; {} series, {} operations, {} call paths; {} graph halves waiting",
            a.spans,
            a.traces,
            a.early_traces,
            a.late_spans,
            a.out_of_range_spans,
            a.assembling_traces,
            a.assembling_spans,
            a.series,
            a.operations,
            a.call_paths,
            a.graph_pending
        );
        let _ = writeln!(
            out,
            "log templates: {} records clustered, {} clusters ({} new since start)",
            a.log_records, a.log_clusters, a.new_log_clusters
        );
    }
    if !s.exporters.is_empty() {
        let rows: Vec<Vec<String>> = s
            .exporters
            .iter()
            .map(|e| {
                vec![
                    e.name.clone(),
                    e.breaker.clone(),
                    e.queue_items.to_string(),
                    e.queue_bytes.to_string(),
                    e.sent_items.to_string(),
                    e.failed_items.to_string(),
                    e.rejected_items.to_string(),
                    e.dropped_items.to_string(),
                    e.retries.to_string(),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(
            &[
                "EXPORTER",
                "BREAKER",
                "QUEUED",
                "QUEUED BYTES",
                "SENT",
                "FAILED",
                "REJECTED",
                "DROPPED",
                "RETRIES",
            ],
            &rows,
        ));
    }
    out
}

/// `sieve query sampling`: one row per sampler.
pub fn sampling_text(r: &crate::proto::GetSamplingStatsResponse) -> String {
    if r.samplers.is_empty() && r.tail.is_none() && r.adaptive.is_empty() {
        return "no sampler in any pipeline: everything accepted is kept\n".into();
    }
    let mut out = String::new();
    for a in &r.adaptive {
        let _ = writeln!(
            out,
            "adaptive sampler {}: target {} traces/s per operation; spans seen {}, kept {}",
            a.name, a.target_traces_per_second, a.spans_seen, a.spans_kept
        );
        let rows: Vec<Vec<String>> = a
            .operations
            .iter()
            .map(|o| {
                vec![
                    o.service.clone(),
                    o.operation.clone(),
                    format!("{:.6}", o.probability),
                    format!("{:.2}", o.observed_traces_per_second),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "SERVICE",
                "OPERATION",
                "PROBABILITY",
                "KEPT TRACES/S (LAST INTERVAL)",
            ],
            &rows,
        ));
        out.push('\n');
    }
    if r.samplers.is_empty() && r.tail.is_none() {
        return out;
    }
    if let Some(t) = &r.tail {
        let _ = writeln!(
            out,
            "tail sampler {}: {} traces pending ({} spans, {} bytes on disk)\n\
             seen {}  kept {}  dropped {}  early (quiet) {}  early (buffer bound) {}\n\
             late spans kept {}  dropped {}  of forgotten traces {}  decision cache evictions {}",
            t.name,
            t.pending_traces,
            t.pending_spans,
            t.buffered_bytes,
            t.traces_seen,
            t.traces_kept,
            t.traces_dropped,
            t.early_quiet,
            t.early_bound,
            t.late_spans_kept,
            t.late_spans_dropped,
            t.late_spans_forgotten,
            t.cache_evictions
        );
        let rows: Vec<Vec<String>> = t
            .policies
            .iter()
            .map(|p| vec![p.name.clone(), p.kept.to_string()])
            .collect();
        out.push_str(&table(&["POLICY", "TRACES KEPT"], &rows));
        if r.samplers.is_empty() {
            return out;
        }
        out.push('\n');
    }
    let pct = |kept: u64, seen: u64| {
        if seen == 0 {
            "-".to_string()
        } else {
            format!("{:.2}%", kept as f64 * 100.0 / seen as f64)
        }
    };
    let rows: Vec<Vec<String>> = r
        .samplers
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.mode.clone(),
                format!("{}%", s.sampling_percentage),
                s.spans_seen.to_string(),
                s.spans_kept.to_string(),
                pct(s.spans_kept, s.spans_seen),
                s.logs_seen.to_string(),
                s.logs_kept.to_string(),
                s.errors.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "SAMPLER",
            "MODE",
            "TARGET",
            "SPANS SEEN",
            "KEPT",
            "KEPT %",
            "LOGS SEEN",
            "KEPT",
            "ERRORS",
        ],
        &rows,
    ));
    out
}

pub fn sampling_json(r: &crate::proto::GetSamplingStatsResponse) -> Value {
    json!({
        "samplers": r.samplers.iter().map(|s| json!({
            "name": s.name,
            "mode": s.mode,
            "sampling_percentage": s.sampling_percentage,
            "spans_seen": s.spans_seen,
            "spans_kept": s.spans_kept,
            "logs_seen": s.logs_seen,
            "logs_kept": s.logs_kept,
            "errors": s.errors,
        })).collect::<Vec<_>>(),
        "adaptive": r.adaptive.iter().map(|a| json!({
            "name": a.name,
            "target_traces_per_second": a.target_traces_per_second,
            "spans_seen": a.spans_seen,
            "spans_kept": a.spans_kept,
            "operations": a.operations.iter().map(|o| json!({
                "service": o.service,
                "operation": o.operation,
                "probability": o.probability,
                "observed_traces_per_second": o.observed_traces_per_second,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "tail": r.tail.as_ref().map(|t| json!({
            "name": t.name,
            "pending_traces": t.pending_traces,
            "pending_spans": t.pending_spans,
            "buffered_bytes": t.buffered_bytes,
            "traces_seen": t.traces_seen,
            "traces_kept": t.traces_kept,
            "traces_dropped": t.traces_dropped,
            "early_quiet": t.early_quiet,
            "early_bound": t.early_bound,
            "late_spans_kept": t.late_spans_kept,
            "late_spans_dropped": t.late_spans_dropped,
            "cache_evictions": t.cache_evictions,
            "late_spans_forgotten": t.late_spans_forgotten,
            "policies": t.policies.iter().map(|p| json!({"name": p.name, "kept": p.kept})).collect::<Vec<_>>(),
        })),
    })
}

fn signal_json(s: Option<&SignalStats>) -> Value {
    let s = s.cloned().unwrap_or_default();
    json!({
        "received": s.received,
        "accepted": s.accepted,
        "rejected": s.rejected,
        "refused": s.refused,
        "stored_bytes": s.stored_bytes,
        "requests": s.requests,
        "expired": s.expired,
    })
}

pub fn stats_json(s: &GetStatsResponse) -> Value {
    json!({
        "spans": signal_json(s.spans.as_ref()),
        "log_records": signal_json(s.log_records.as_ref()),
        "metric_points": signal_json(s.metric_points.as_ref()),
        "disk_bytes": s.disk_bytes,
        "undecodable_requests": s.undecodable_requests,
        "uptime_seconds": s.uptime_seconds,
        "storage": s.storage.as_ref().map(|g| json!({
            "compactions": g.compactions,
            "compacted_raw_bytes": g.compacted_raw_bytes,
            "compacted_bytes": g.compacted_bytes,
            "compaction_seconds": g.compaction_micros as f64 / 1e6,
            "dropped_for_size": g.dropped_for_size,
            "max_disk_bytes": g.max_disk_bytes,
        })),
        "analysis": s.analysis.as_ref().map(|a| json!({
            "spans": a.spans,
            "traces": a.traces,
            "early_traces": a.early_traces,
            "late_spans": a.late_spans,
            "out_of_range_spans": a.out_of_range_spans,
            "assembling_traces": a.assembling_traces,
            "assembling_spans": a.assembling_spans,
            "series": a.series,
            "operations": a.operations,
            "call_paths": a.call_paths,
            "log_records": a.log_records,
            "log_clusters": a.log_clusters,
            "new_log_clusters": a.new_log_clusters,
            "graph_pending": a.graph_pending,
        })),
        "exporters": s.exporters.iter().map(|e| json!({
            "name": e.name,
            "breaker": e.breaker,
            "queue_entries": e.queue_entries,
            "queue_items": e.queue_items,
            "queue_bytes": e.queue_bytes,
            "sent_items": e.sent_items,
            "sent_requests": e.sent_requests,
            "failed_items": e.failed_items,
            "rejected_items": e.rejected_items,
            "dropped_items": e.dropped_items,
            "lost_items": e.lost_items,
            "retries": e.retries,
        })).collect::<Vec<_>>(),
    })
}

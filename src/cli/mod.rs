//! What the `sieve query` commands parse and print: argument parsers for times, durations and
//! attributes, and the tables, span tree and JSON forms of the query API's answers.
//! Pure functions over the API's messages, so they are tested without a server.

pub mod analysis;
pub mod logs;
mod stats;

pub use stats::{sampling_json, sampling_text, stats_json, stats_text};

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use opentelemetry_proto::tonic::trace::v1::{Span, TracesData, span::SpanKind, status::StatusCode};
use serde_json::{Value, json};

use crate::otlp;
use crate::proto::{LogEntry, Operation, TraceSummary};

/// Parses `50ms`, `2s`, `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("invalid duration {text:?} ({e}); write e.g. 50ms, 2s, 1h"))
}

/// Parses an RFC 3339 time (`2026-11-28T10:00:00Z`) or unix nanoseconds into unix nanoseconds.
pub fn parse_time(text: &str) -> Result<u64, String> {
    if let Ok(n) = text.parse::<u64>() {
        return Ok(n);
    }
    let t = humantime::parse_rfc3339_weak(text).map_err(|e| {
        format!("invalid time {text:?} ({e}); write RFC 3339 like 2026-11-28T10:00:00Z, or unix nanoseconds")
    })?;
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(u64::MAX as u128) as u64)
        .map_err(|_| format!("time {text:?} is before 1970"))
}

/// Parses `key=value`.
pub fn parse_attr(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("invalid attribute {text:?}; write key=value")),
    }
}

/// Parses a severity name or number for `--severity`.
pub fn parse_severity(text: &str) -> Result<i32, String> {
    otlp::parse_severity(text).ok_or_else(|| {
        format!("invalid severity {text:?}; use TRACE, DEBUG, INFO, WARN, ERROR, FATAL or 0..=24")
    })
}

/// `12.3ms`, `1.20s`, `850µs`, `3m05s`.
pub fn fmt_duration(nanos: u64) -> String {
    let n = nanos as f64;
    if nanos < 1_000 {
        format!("{nanos}ns")
    } else if nanos < 1_000_000 {
        format!("{:.1}µs", n / 1e3)
    } else if nanos < 1_000_000_000 {
        format!("{:.1}ms", n / 1e6)
    } else if nanos < 60_000_000_000 {
        format!("{:.2}s", n / 1e9)
    } else {
        let s = nanos / 1_000_000_000;
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// RFC 3339 with milliseconds, UTC.
pub fn fmt_time(unix_nanos: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_nanos(unix_nanos);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == last {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

fn kind_name(kind: i32) -> &'static str {
    match SpanKind::try_from(kind) {
        Ok(SpanKind::Internal) => "internal",
        Ok(SpanKind::Server) => "server",
        Ok(SpanKind::Client) => "client",
        Ok(SpanKind::Producer) => "producer",
        Ok(SpanKind::Consumer) => "consumer",
        _ => "unspecified",
    }
}

pub fn services_text(services: &[String]) -> String {
    let mut out = String::new();
    for s in services {
        out.push_str(s);
        out.push('\n');
    }
    out
}

pub fn operations_text(ops: &[Operation]) -> String {
    let rows: Vec<Vec<String>> = ops
        .iter()
        .map(|o| vec![o.name.clone(), kind_name(o.span_kind).into()])
        .collect();
    table(&["OPERATION", "KIND"], &rows)
}

pub fn operations_json(ops: &[Operation]) -> Value {
    Value::Array(
        ops.iter()
            .map(|o| json!({"name": o.name, "span_kind": kind_name(o.span_kind)}))
            .collect(),
    )
}

pub fn traces_text(traces: &[TraceSummary]) -> String {
    let rows: Vec<Vec<String>> = traces
        .iter()
        .map(|t| {
            vec![
                t.trace_id.clone(),
                fmt_time(t.start_unix_nano),
                fmt_duration(t.duration_nanos),
                t.span_count.to_string(),
                t.error_count.to_string(),
                format!("{}: {}", t.root_service, t.root_operation),
            ]
        })
        .collect();
    table(
        &["TRACE ID", "START", "DURATION", "SPANS", "ERRORS", "ROOT"],
        &rows,
    )
}

pub fn traces_json(traces: &[TraceSummary]) -> Value {
    Value::Array(
        traces
            .iter()
            .map(|t| {
                json!({
                    "trace_id": t.trace_id,
                    "root_service": t.root_service,
                    "root_operation": t.root_operation,
                    "start_unix_nano": t.start_unix_nano,
                    "duration_nanos": t.duration_nanos,
                    "span_count": t.span_count,
                    "error_count": t.error_count,
                })
            })
            .collect(),
    )
}

/// The trace as an indented span tree: offset from the trace's start, duration, service,
/// name, status. Children sorted by start; spans whose parent is missing are roots; a parent
/// cycle or a duplicate span id never prints a span twice.
pub fn trace_tree_text(trace: &TracesData) -> String {
    let spans: Vec<(&str, &Span)> = otlp::spans(&trace.resource_spans).collect();
    let start = spans
        .iter()
        .map(|(_, s)| s.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    let ids: HashSet<&[u8]> = spans.iter().map(|(_, s)| s.span_id.as_slice()).collect();
    let mut children: HashMap<&[u8], Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, (_, s)) in spans.iter().enumerate() {
        if s.parent_span_id.is_empty()
            || !ids.contains(s.parent_span_id.as_slice())
            || s.parent_span_id == s.span_id
        {
            roots.push(i);
        } else {
            children
                .entry(s.parent_span_id.as_slice())
                .or_default()
                .push(i);
        }
    }
    let by_start = |v: &mut Vec<usize>| v.sort_by_key(|&i| (spans[i].1.start_time_unix_nano, i));
    by_start(&mut roots);
    for v in children.values_mut() {
        by_start(v);
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut printed = vec![false; spans.len()];
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&i| (i, 0)).collect();
    let emit = |i: usize, depth: usize, rows: &mut Vec<Vec<String>>| {
        let (svc, s) = spans[i];
        let status = match s.status.as_ref().map(|st| st.code) {
            Some(c) if c == StatusCode::Error as i32 => {
                let msg = s
                    .status
                    .as_ref()
                    .map(|st| st.message.as_str())
                    .unwrap_or("");
                if msg.is_empty() {
                    "ERROR".to_string()
                } else {
                    format!("ERROR: {msg}")
                }
            }
            Some(c) if c == StatusCode::Ok as i32 => "OK".into(),
            _ => String::new(),
        };
        rows.push(vec![
            format!(
                "+{}",
                fmt_duration(s.start_time_unix_nano.saturating_sub(start))
            ),
            fmt_duration(s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano)),
            format!("{}{svc}: {}", "  ".repeat(depth), s.name),
            status,
        ]);
    };
    loop {
        while let Some((i, depth)) = stack.pop() {
            if printed[i] {
                continue;
            }
            printed[i] = true;
            emit(i, depth, &mut rows);
            if let Some(kids) = children.get(spans[i].1.span_id.as_slice()) {
                for &k in kids.iter().rev() {
                    stack.push((k, depth + 1));
                }
            }
        }
        // Spans only reachable through a parent cycle: print them as roots.
        match printed.iter().position(|p| !p) {
            Some(i) => stack.push((i, 0)),
            None => break,
        }
    }
    let mut out = format!(
        "trace {} — {} spans, {}\n",
        spans
            .first()
            .map(|(_, s)| hex::encode(&s.trace_id))
            .unwrap_or_default(),
        spans.len(),
        fmt_duration(
            spans
                .iter()
                .map(|(_, s)| s.end_time_unix_nano)
                .max()
                .unwrap_or(start)
                .saturating_sub(start)
        )
    );
    out.push_str(&table(&["OFFSET", "DURATION", "SPAN", "STATUS"], &rows));
    out
}

/// OTLP/JSON of a trace (ids in hex, camelCase fields).
pub fn trace_json(trace: &TracesData) -> Value {
    serde_json::to_value(trace).unwrap_or(Value::Null)
}

fn entry_time(e: &LogEntry) -> u64 {
    e.log_record
        .as_ref()
        .map(|r| {
            if r.time_unix_nano != 0 {
                r.time_unix_nano
            } else {
                r.observed_time_unix_nano
            }
        })
        .unwrap_or(0)
}

pub fn logs_text(logs: &[LogEntry]) -> String {
    let rows: Vec<Vec<String>> = logs
        .iter()
        .map(|e| {
            let r = e.log_record.clone().unwrap_or_default();
            let sev = otlp::effective_severity(r.severity_number, &r.severity_text);
            vec![
                fmt_time(entry_time(e)),
                otlp::severity_name(sev).to_string(),
                otlp::service_name(e.resource.as_ref()).to_string(),
                if r.trace_id.is_empty() {
                    "-".into()
                } else {
                    hex::encode(&r.trace_id)
                },
                otlp::any_value_text(r.body.as_ref()).replace('\n', "\\n"),
            ]
        })
        .collect();
    table(&["TIME", "SEVERITY", "SERVICE", "TRACE ID", "BODY"], &rows)
}

pub fn logs_json(logs: &[LogEntry]) -> Value {
    Value::Array(
        logs.iter()
            .map(|e| {
                json!({
                    "resource": serde_json::to_value(&e.resource).unwrap_or(Value::Null),
                    "scope": serde_json::to_value(&e.scope).unwrap_or(Value::Null),
                    "logRecord": serde_json::to_value(&e.log_record).unwrap_or(Value::Null),
                })
            })
            .collect(),
    )
}

/// Reads OTLP JSON `TracesData`: one object, or one object per line (the Collector's file
/// exporter format). Errors name the line.
pub fn parse_traces_json(
    text: &str,
) -> Result<Vec<opentelemetry_proto::tonic::trace::v1::TracesData>, String> {
    use opentelemetry_proto::tonic::trace::v1::TracesData;
    if let Ok(one) = serde_json::from_str::<TracesData>(text) {
        return Ok(vec![one]);
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let d: TracesData = serde_json::from_str(line).map_err(|e| {
            format!(
                "line {}: not OTLP JSON TracesData ({e}); expected one object, or one per line",
                i + 1
            )
        })?;
        out.push(d);
    }
    if out.is_empty() {
        return Err("no traces in the input".into());
    }
    Ok(out)
}

pub use crate::traces::critical_path::{TracePath, critical_paths};

/// `sieve query critical-path` and `sieve analyze critical-path`: the table of one trace.
pub fn critical_path_response_text(r: &crate::proto::GetCriticalPathResponse) -> String {
    let total: u64 = r
        .sections
        .iter()
        .map(|s| s.end_unix_nano - s.start_unix_nano)
        .sum();
    let origin = r
        .sections
        .iter()
        .map(|s| s.start_unix_nano)
        .min()
        .unwrap_or(0);
    let mut out = format!("trace {}: critical path {}\n", r.trace_id, ms(total));
    for w in &r.warnings {
        let _ = writeln!(out, "  warning: {w}");
    }
    let rows: Vec<Vec<String>> = r
        .sections
        .iter()
        .map(|s| {
            let sp = s.span.clone().unwrap_or_default();
            let len = s.end_unix_nano - s.start_unix_nano;
            vec![
                sp.service,
                sp.operation,
                sp.span_id,
                format!("+{}", ms(s.start_unix_nano - origin)),
                ms(len),
                format!("{:.1}%", len as f64 * 100.0 / total.max(1) as f64),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "SERVICE",
            "OPERATION",
            "SPAN ID",
            "START",
            "LENGTH",
            "SHARE",
        ],
        &rows,
    ));
    out
}

/// `sieve query critical-path --json`: the shape of `analyze critical-path --json`.
pub fn critical_path_response_json(r: &crate::proto::GetCriticalPathResponse) -> Value {
    let id = |s: &Option<crate::proto::PathSpan>| {
        s.as_ref().map(|s| s.span_id.clone()).unwrap_or_default()
    };
    json!({
        "trace_id": r.trace_id,
        "sections": r.sections.iter().map(|s| json!({
            "span_id": id(&s.span),
            "start_unix_nano": s.start_unix_nano,
            "end_unix_nano": s.end_unix_nano,
        })).collect::<Vec<_>>(),
        "exclusive": r.exclusive.iter().map(|e| json!({
            "span_id": id(&e.span),
            "nanos": e.nanos,
        })).collect::<Vec<_>>(),
        "warnings": r.warnings,
    })
}

fn ms(nanos: u64) -> String {
    format!("{:.3} ms", nanos as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    fn span(id: u8, parent: u8, name: &str, start: u64, end: u64) -> Span {
        Span {
            trace_id: vec![9; 16],
            span_id: vec![id; 8],
            parent_span_id: if parent == 0 { vec![] } else { vec![parent; 8] },
            name: name.into(),
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            ..Default::default()
        }
    }

    fn trace(spans: Vec<Span>) -> TracesData {
        TracesData {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![otlp::string_kv("service.name", "web")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
        }
    }

    #[test]
    fn tree_indents_children_in_start_order() {
        let t = trace(vec![
            span(1, 0, "root", 0, 10_000_000),
            span(3, 1, "second", 5_000_000, 6_000_000),
            span(2, 1, "first", 1_000_000, 2_000_000),
            span(4, 2, "grandchild", 1_100_000, 1_500_000),
        ]);
        let text = trace_tree_text(&t);
        let want = "trace 09090909090909090909090909090909 — 4 spans, 10.0ms\n\
OFFSET  DURATION  SPAN                 STATUS\n\
+0ns    10.0ms    web: root\n\
+1.0ms  1.0ms       web: first\n\
+1.1ms  400.0µs       web: grandchild\n\
+5.0ms  1.0ms       web: second\n";
        assert_eq!(text, want);
    }

    #[test]
    fn tree_survives_cycles_and_orphans() {
        let t = trace(vec![
            span(1, 2, "a", 0, 10),
            span(2, 1, "b", 1, 5),
            span(5, 7, "orphan", 2, 3),
        ]);
        let text = trace_tree_text(&t);
        for n in ["web: a", "web: b", "web: orphan"] {
            assert_eq!(text.matches(n).count(), 1, "{text}");
        }
    }

    #[test]
    fn argument_parsers() {
        assert_eq!(parse_duration("50ms"), Ok(Duration::from_millis(50)));
        assert!(parse_duration("fast").is_err());
        assert_eq!(parse_time("1000"), Ok(1000));
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(1_000_000_000));
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_attr("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_attr("=x").is_err());
        assert!(parse_attr("novalue").is_err());
        assert_eq!(parse_severity("warn"), Ok(13));
        assert!(parse_severity("loud").is_err());
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_duration(999), "999ns");
        assert_eq!(fmt_duration(1_500), "1.5µs");
        assert_eq!(fmt_duration(12_300_000), "12.3ms");
        assert_eq!(fmt_duration(1_200_000_000), "1.20s");
        assert_eq!(fmt_duration(185_000_000_000), "3m05s");
    }

    #[test]
    fn table_aligns() {
        let t = table(&["A", "B"], &[vec!["long".into(), "x".into()]]);
        assert_eq!(t, "A     B\nlong  x\n");
    }
}

//! `sieve logs cluster` and `sieve logs evaluate`: the clusterer offline, and its accuracy on
//! the labelled Loghub-2k systems.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;

use serde_json::{Value, json};

use super::{fmt_time, table};
use crate::log_templates::{Clusterer, Masker, Params};
use crate::proto::{GetLogClusterResponse, ListLogClustersResponse, LogCluster};

/// The 16 Loghub-2k systems.
pub const SYSTEMS: [&str; 16] = [
    "Android",
    "Apache",
    "BGL",
    "HDFS",
    "HPC",
    "Hadoop",
    "HealthApp",
    "Linux",
    "Mac",
    "OpenSSH",
    "OpenStack",
    "Proxifier",
    "Spark",
    "Thunderbird",
    "Windows",
    "Zookeeper",
];

/// Clusters `input` line by line, writing `LineId,ClusterId,EventTemplate` CSV to `out`.
/// Returns (lines, clusters).
pub fn cluster_lines(
    input: impl BufRead,
    out: impl Write,
    params: Params,
) -> anyhow::Result<(u64, usize)> {
    let mut c = Clusterer::new(params, Masker::default());
    let mut w = csv::Writer::from_writer(out);
    // Templates are written once every line is in, so each row shows its cluster's final
    // template (a cluster generalises as members arrive).
    w.write_record(["LineId", "ClusterId", "EventTemplate"])?;
    let mut n = 0u64;
    let mut assigned = Vec::new();
    for line in input.split(b'\n') {
        let line = line?;
        let text = String::from_utf8_lossy(&line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        n += 1;
        assigned.push(c.add(text));
    }
    for (i, a) in assigned.iter().enumerate() {
        let cl = &c.clusters[c.resolve(*a)];
        w.write_record([(i + 1).to_string(), cl.id.to_string(), cl.template_text()])?;
    }
    w.flush()?;
    Ok((
        n,
        c.clusters
            .iter()
            .filter(|c| c.merged_into.is_none())
            .count(),
    ))
}

/// One system's scores.
#[derive(Debug, Clone, Default)]
pub struct Score {
    pub system: String,
    pub lines: usize,
    pub truth_groups: usize,
    pub clusters: usize,
    pub ga: f64,
    pub pa: f64,
    pub lines_per_sec: f64,
}

/// Grouping accuracy: the share of lines whose predicted group has exactly the members of
/// their true group.
pub fn grouping_accuracy(truth: &[String], pred: &[usize]) -> f64 {
    let mut tg: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut pg: HashMap<usize, usize> = HashMap::new();
    for (i, (t, p)) in truth.iter().zip(pred).enumerate() {
        tg.entry(t).or_default().push(i);
        *pg.entry(*p).or_default() += 1;
    }
    let mut correct = 0;
    for members in tg.values() {
        let p = pred[members[0]];
        if pg[&p] == members.len() && members.iter().all(|i| pred[*i] == p) {
            correct += members.len();
        }
    }
    correct as f64 / truth.len().max(1) as f64
}

/// Scores one system's `<dir>/<system>/<system>_2k.log_structured.csv`.
pub fn evaluate(dir: &Path, system: &str, params: &Params) -> anyhow::Result<Score> {
    let path = dir
        .join(system)
        .join(format!("{system}_2k.log_structured.csv"));
    let mut r =
        csv::Reader::from_path(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let h = r.headers()?.clone();
    let col = |name: &str| {
        h.iter()
            .position(|c| c == name)
            .ok_or_else(|| anyhow::anyhow!("{}: no column {name}", path.display()))
    };
    let (content, event, template) = (col("Content")?, col("EventId")?, col("EventTemplate")?);
    let mut lines = Vec::new();
    let mut truth = Vec::new();
    let mut truth_templates = Vec::new();
    for rec in r.records() {
        let rec = rec?;
        lines.push(rec.get(content).unwrap_or("").to_string());
        truth.push(rec.get(event).unwrap_or("").to_string());
        truth_templates.push(rec.get(template).unwrap_or("").to_string());
    }
    let mut c = Clusterer::new(params.clone(), Masker::default());
    let t = std::time::Instant::now();
    let pred: Vec<usize> = lines.iter().map(|l| c.add(l)).collect();
    // Clusters merged after a line was assigned count as the cluster they merged into.
    let pred: Vec<usize> = pred.into_iter().map(|p| c.resolve(p)).collect();
    let secs = t.elapsed().as_secs_f64();
    let pa = pred
        .iter()
        .zip(&truth_templates)
        .filter(|(p, t)| c.clusters[**p].template_text() == **t)
        .count() as f64
        / lines.len().max(1) as f64;
    let mut groups: Vec<&String> = truth.iter().collect();
    groups.sort();
    groups.dedup();
    Ok(Score {
        system: system.to_string(),
        lines: lines.len(),
        truth_groups: groups.len(),
        clusters: c
            .clusters
            .iter()
            .filter(|c| c.merged_into.is_none())
            .count(),
        ga: grouping_accuracy(&truth, &pred),
        pa,
        lines_per_sec: lines.len() as f64 / secs.max(1e-9),
    })
}

/// The table `sieve logs evaluate` prints.
pub fn scores_text(scores: &[Score]) -> String {
    let mut rows: Vec<Vec<String>> = scores
        .iter()
        .map(|s| {
            vec![
                s.system.clone(),
                s.lines.to_string(),
                s.truth_groups.to_string(),
                s.clusters.to_string(),
                format!("{:.3}", s.ga),
                format!("{:.3}", s.pa),
            ]
        })
        .collect();
    let n = scores.len().max(1) as f64;
    rows.push(vec![
        "average".into(),
        String::new(),
        String::new(),
        String::new(),
        format!("{:.3}", scores.iter().map(|s| s.ga).sum::<f64>() / n),
        format!("{:.3}", scores.iter().map(|s| s.pa).sum::<f64>() / n),
    ]);
    super::table(
        &["SYSTEM", "LINES", "GROUPS", "CLUSTERS", "GA", "PA"],
        &rows,
    )
}

/// `sieve query clusters`.
pub fn clusters_text(r: &ListLogClustersResponse) -> String {
    if r.clusters.is_empty() {
        return format!(
            "no log record from {} to {}\n",
            fmt_time(r.start_unix_nano),
            fmt_time(r.end_unix_nano)
        );
    }
    let rows: Vec<Vec<String>> = r
        .clusters
        .iter()
        .map(|c| {
            vec![
                c.id.to_string(),
                c.service.clone(),
                c.count.to_string(),
                format!("{:.2}×", c.growth),
                c.total.to_string(),
                fmt_time(c.first_seen_unix_nano),
                fmt_time(c.last_seen_unix_nano),
                c.template.clone(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "SERVICE",
            "COUNT",
            "GROWTH",
            "TOTAL",
            "FIRST SEEN",
            "LAST SEEN",
            "TEMPLATE",
        ],
        &rows,
    )
}

fn cluster_value(c: &LogCluster) -> Value {
    json!({
        "id": c.id,
        "service": c.service,
        "template": c.template,
        "count": c.count,
        "previous_count": c.previous_count,
        "growth": c.growth,
        "total": c.total,
        "first_seen_unix_nano": c.first_seen_unix_nano,
        "last_seen_unix_nano": c.last_seen_unix_nano,
        "samples": c.samples,
        "trace_ids": c.trace_ids,
    })
}

pub fn clusters_json(r: &ListLogClustersResponse) -> Value {
    json!({
        "start_unix_nano": r.start_unix_nano,
        "end_unix_nano": r.end_unix_nano,
        "clusters": r.clusters.iter().map(cluster_value).collect::<Vec<_>>(),
    })
}

/// `sieve query cluster ID`.
pub fn cluster_text(r: &GetLogClusterResponse) -> String {
    let Some(c) = &r.cluster else {
        return "no cluster\n".into();
    };
    let mut out = format!(
        "cluster {} of {}: {}\n{} records in the window ({} in the one before, {:.2}×), {} since {}; last {}\n",
        c.id,
        c.service,
        c.template,
        c.count,
        c.previous_count,
        c.growth,
        c.total,
        fmt_time(c.first_seen_unix_nano),
        fmt_time(c.last_seen_unix_nano),
    );
    for s in &c.samples {
        out.push_str(&format!("  sample: {s}\n"));
    }
    for t in &c.trace_ids {
        out.push_str(&format!("  trace:  {t}\n"));
    }
    let rows: Vec<Vec<String>> = r
        .points
        .iter()
        .map(|p| vec![fmt_time(p.start_unix_nano), p.count.to_string()])
        .collect();
    if !rows.is_empty() {
        out.push('\n');
        out.push_str(&table(&["TIME", "COUNT"], &rows));
    }
    out
}

pub fn cluster_json(r: &GetLogClusterResponse) -> Value {
    json!({
        "cluster": r.cluster.as_ref().map(cluster_value),
        "step_nanos": r.step_nanos,
        "points": r.points.iter().map(|p| json!({"start_unix_nano": p.start_unix_nano, "count": p.count})).collect::<Vec<_>>(),
    })
}

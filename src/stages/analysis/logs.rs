//! Log template clusters at intake: every log record (before sampling) is assigned to a
//! cluster of its service ([`crate::log_templates`]) and gets the cluster's id and
//! template as attributes, before it is stored and exported.
//!
//! Ids are global (one sequence for all services) and stable: each cluster is a record in the
//! sled tree `log_clusters` (template, counts, first and last seen, a few sample lines and
//! trace ids, the cluster it merged into), written at each analysis checkpoint and read back
//! at start, when each service's clusterer is seeded with its live templates. A cluster that
//! merges into another keeps its id as an alias. The first line of a new cluster emits the
//! `LogClusterNew` event.
//!
//! The message clustered is the body: a string as it is; for a map body its `message`, `msg`
//! or `body` string field, else the map's text; bytes as lossy UTF-8; anything else as text;
//! no body is the empty message (it gets a cluster too).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use prost::Message;

use std::sync::MutexGuard;

use super::AnalyzerError;
use crate::config::LogClustering;
use crate::log_templates::{Clusterer, Masker, Params};
use crate::series::{Cell, Family, STEPS};
use crate::telemetry::events;

/// Sample lines and trace ids kept per cluster.
pub const SAMPLES: usize = 3;
/// Longest sample line kept, in bytes.
const SAMPLE_BYTES: usize = 512;

/// One cluster as stored and queried.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClusterRecord {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(string, tag = "2")]
    pub service: String,
    #[prost(string, repeated, tag = "3")]
    pub template: Vec<String>,
    #[prost(uint64, tag = "4")]
    pub count: u64,
    #[prost(uint64, tag = "5")]
    pub first_seen: u64,
    #[prost(uint64, tag = "6")]
    pub last_seen: u64,
    #[prost(string, repeated, tag = "7")]
    pub samples: Vec<String>,
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub trace_ids: Vec<Vec<u8>>,
    /// The cluster this one merged into (0: live).
    #[prost(uint64, tag = "9")]
    pub merged_into: u64,
    /// Its template has wildcards learnt from members that differed.
    #[prost(bool, tag = "10")]
    pub generalised: bool,
    /// The service's overflow cluster.
    #[prost(bool, tag = "11")]
    pub overflow: bool,
    /// The highest severity number of its records (OTLP numbering, 17 = ERROR).
    #[prost(int32, tag = "12")]
    pub max_severity: i32,
}

/// The key of the reserved id bound (cluster records have 8-byte keys).
const NEXT_ID_KEY: &[u8] = b"next_id";
/// Ids reserved at a time: a crash skips at most this many, never reuses one.
const ID_BLOCK: u64 = 1000;

impl ClusterRecord {
    pub fn template_text(&self) -> String {
        self.template.join(" ")
    }
}

struct Service {
    clusterer: Clusterer,
    /// Clusterer index → global id (0: none yet).
    ids: Vec<u64>,
}

/// The clustering state of every service.
pub struct LogState {
    cfg: LogClustering,
    masker: Masker,
    services: HashMap<Arc<str>, Service>,
    records: HashMap<u64, ClusterRecord>,
    dirty: HashSet<u64>,
    next_id: u64,
    /// Ids below this are reserved on disk.
    reserved: u64,
    tree: sled::Tree,
    pub new_clusters: u64,
    pub records_seen: u64,
}

/// What one record was assigned: (service, cluster id, time).
pub type Assigned = (Arc<str>, u64, u64);

impl LogState {
    /// Rebuilds the state from the stored clusters.
    pub fn load(cfg: &LogClustering, tree: &sled::Tree) -> Result<LogState, String> {
        let masker = Masker::with_patterns(&cfg.patterns).map_err(|e| e.to_string())?;
        let mut st = LogState {
            cfg: cfg.clone(),
            masker,
            services: HashMap::new(),
            records: HashMap::new(),
            dirty: HashSet::new(),
            next_id: 1,
            reserved: 1,
            tree: tree.clone(),
            new_clusters: 0,
            records_seen: 0,
        };
        let mut loaded: Vec<ClusterRecord> = Vec::new();
        for kv in tree.iter() {
            let (k, v) = kv.map_err(|e| e.to_string())?;
            if k.as_ref() == NEXT_ID_KEY {
                let mut b = [0u8; 8];
                if v.len() == 8 {
                    b.copy_from_slice(&v);
                    st.reserved = u64::from_be_bytes(b);
                }
                continue;
            }
            match ClusterRecord::decode(v.as_ref()) {
                Ok(r) => loaded.push(r),
                Err(e) => events::AnalysisValueCorrupt { error: &e }.emit(),
            }
        }
        loaded.sort_by_key(|r| r.id);
        for r in loaded {
            st.next_id = st.next_id.max(r.id + 1);
            if r.merged_into == 0 {
                let name = st.kept_name(&r.service);
                let Some(svc) = st.services.get_mut(&name) else {
                    continue;
                };
                let i = svc
                    .clusterer
                    .seed(r.template.clone(), r.generalised, r.overflow);
                if svc.ids.len() <= i {
                    svc.ids.resize(i + 1, 0);
                }
                svc.ids[i] = r.id;
            }
            st.records.insert(r.id, r);
        }
        // Ids handed out after the last checkpoint are above it: never reuse them.
        st.next_id = st.next_id.max(st.reserved);
        st.reserved = st.next_id;
        Ok(st)
    }

    /// The next cluster id, reserving a block on disk when the reservation runs out.
    fn take_id(&mut self) -> u64 {
        if self.next_id >= self.reserved {
            let bound = self.next_id + ID_BLOCK;
            let written = self
                .tree
                .insert(NEXT_ID_KEY, &bound.to_be_bytes())
                .and_then(|_| self.tree.flush());
            match written {
                Ok(_) => self.reserved = bound,
                Err(e) => events::AnalysisCheckpointFailed { error: &e }.emit(),
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The name a service's records are clustered under: its own, or `*` once
    /// `max_services` are clustered (looked up once per resource, not per record).
    fn kept_name(&mut self, name: &str) -> Arc<str> {
        if let Some((k, _)) = self.services.get_key_value(name) {
            return k.clone();
        }
        let name = if self.services.len() < self.cfg.max_services {
            name
        } else {
            "*"
        };
        let key: Arc<str> = Arc::from(name);
        let (cfg, masker) = (&self.cfg, &self.masker);
        self.services.entry(key.clone()).or_insert_with(|| Service {
            clusterer: Clusterer::new(
                Params {
                    max_clusters: cfg.max_clusters,
                    ..Params::default()
                },
                masker.clone(),
            ),
            ids: Vec::new(),
        });
        key
    }

    /// Clusters every record, adds the attributes; returns what each was assigned.
    pub fn observe(&mut self, resource_logs: &mut [ResourceLogs], now: u64) -> Vec<Assigned> {
        let mut out = Vec::new();
        for rl in resource_logs.iter_mut() {
            let service = self.kept_name(crate::otlp::service_name(rl.resource.as_ref()));
            for sl in rl.scope_logs.iter_mut() {
                for rec in sl.log_records.iter_mut() {
                    let text = body_text(rec.body.as_ref());
                    // The time the store files it under, bounded as the analysis is.
                    let t = crate::store::write::record_time(
                        rec.time_unix_nano,
                        rec.observed_time_unix_nano,
                        now,
                    )
                    .min(now.saturating_add(super::MAX_FUTURE));
                    let severity =
                        crate::otlp::effective_severity(rec.severity_number, &rec.severity_text);
                    let (id, template) = self.assign(&service, &text, &rec.trace_id, t, severity);
                    set_attr(
                        &mut rec.attributes,
                        &self.cfg.template_id_attribute,
                        any_value::Value::IntValue(id as i64),
                    );
                    set_attr(
                        &mut rec.attributes,
                        &self.cfg.template_attribute,
                        any_value::Value::StringValue(template),
                    );
                    out.push((service.clone(), id, t));
                }
            }
        }
        self.records_seen += out.len() as u64;
        out
    }

    /// The cluster of one message of `service` (a name from [`LogState::kept_name`]): (id,
    /// template).
    fn assign(
        &mut self,
        service: &Arc<str>,
        text: &str,
        trace_id: &[u8],
        t: u64,
        severity: i32,
    ) -> (u64, String) {
        let Some(svc) = self.services.get_mut(service) else {
            return (0, String::new());
        };
        let before = svc.clusterer.live();
        let i = svc.clusterer.add(text);
        let i = svc.clusterer.resolve(i);
        if svc.ids.len() < svc.clusterer.clusters.len() {
            svc.ids.resize(svc.clusterer.clusters.len(), 0);
        }
        let generalised = svc.clusterer.clusters[i].generalised;
        let overflow = svc.clusterer.is_overflow(i);
        let fresh = svc.ids[i] == 0;
        let merges = svc.clusterer.live() < before + usize::from(fresh);
        if fresh {
            let id = self.take_id();
            if let Some(svc) = self.services.get_mut(service) {
                svc.ids[i] = id;
            }
        }
        let Some(svc) = self.services.get_mut(service) else {
            return (0, String::new());
        };
        let id = svc.ids[i];
        let template = &svc.clusterer.clusters[i].template;
        // Clusters that merged since: their records point at the one they joined.
        let merged: Vec<u64> = if merges {
            (0..svc.clusterer.clusters.len())
                .filter(|&j| svc.ids[j] != 0 && svc.clusterer.clusters[j].merged_into.is_some())
                .map(|j| (svc.ids[j], svc.ids[svc.clusterer.resolve(j)]))
                .filter(|(a, b)| a != b)
                .map(|(a, _)| a)
                .collect()
        } else {
            Vec::new()
        };
        for m in merged {
            let Some(r) = self.records.get_mut(&m) else {
                continue;
            };
            if r.merged_into != 0 {
                continue;
            }
            r.merged_into = id;
            let r = r.clone();
            self.dirty.insert(m);
            // The cluster it joined takes over its figures.
            if let Some(t) = self.records.get_mut(&id) {
                t.count += r.count;
                t.first_seen = t.first_seen.min(r.first_seen);
                t.last_seen = t.last_seen.max(r.last_seen);
                for x in r.samples {
                    if t.samples.len() < SAMPLES && !t.samples.contains(&x) {
                        t.samples.push(x);
                    }
                }
                for x in r.trace_ids {
                    if t.trace_ids.len() < SAMPLES && !t.trace_ids.contains(&x) {
                        t.trace_ids.push(x);
                    }
                }
            }
        }
        if fresh {
            self.new_clusters += 1;
            events::LogClusterNew {
                service,
                id,
                template: &template.join(" "),
            }
            .emit();
        }
        let r = self.records.entry(id).or_insert_with(|| ClusterRecord {
            id,
            service: service.to_string(),
            first_seen: t,
            ..ClusterRecord::default()
        });
        // Copied only when it changed (a template is learnt rarely, matched often).
        if r.template != *template {
            r.template = template.clone();
        }
        r.generalised = generalised;
        r.overflow = overflow;
        r.max_severity = r.max_severity.max(severity);
        r.count += 1;
        r.first_seen = r.first_seen.min(t);
        r.last_seen = r.last_seen.max(t);
        if r.samples.len() < SAMPLES && !r.samples.iter().any(|s| s == text) {
            r.samples
                .push(crate::traces::bottleneck::cut(text, SAMPLE_BYTES).into_owned());
        }
        if trace_id.len() == 16
            && r.trace_ids.len() < SAMPLES
            && !r.trace_ids.iter().any(|x| x == trace_id)
        {
            r.trace_ids.push(trace_id.to_vec());
        }
        self.dirty.insert(id);
        (id, r.template_text())
    }

    /// The clusters changed since the last call, encoded, and their ids (written by the
    /// caller outside the lock; given back with [`LogState::unwritten`] on failure).
    pub fn take_dirty(&mut self) -> (Vec<u64>, sled::Batch) {
        let dirty: Vec<u64> = self.dirty.drain().collect();
        let mut batch = sled::Batch::default();
        for id in &dirty {
            if let Some(r) = self.records.get(id) {
                batch.insert(&id.to_be_bytes(), r.encode_to_vec());
            }
        }
        (dirty, batch)
    }

    /// Marks clusters whose write failed, for the next checkpoint.
    pub fn unwritten(&mut self, ids: Vec<u64>) {
        self.dirty.extend(ids);
    }

    /// Writes the clusters changed since the last call, under the caller's lock (tests; the
    /// analyzer's checkpoint writes outside the lock with the two calls above).
    #[cfg(test)]
    pub fn checkpoint(&mut self, tree: &sled::Tree) -> Result<(), sled::Error> {
        let (ids, batch) = self.take_dirty();
        if let Err(e) = tree.apply_batch(batch) {
            self.unwritten(ids);
            return Err(e);
        }
        Ok(())
    }

    /// A cluster by id, following merges to the live one.
    pub fn get(&self, mut id: u64) -> Option<&ClusterRecord> {
        for _ in 0..=self.records.len() {
            let r = self.records.get(&id)?;
            if r.merged_into == 0 || r.merged_into == id {
                return Some(r);
            }
            id = r.merged_into;
        }
        None
    }

    /// Live clusters (not merged into another), by reference.
    pub fn live_records(&self) -> impl Iterator<Item = &ClusterRecord> {
        self.records.values().filter(|r| r.merged_into == 0)
    }

    /// Live clusters, of one service or all.
    pub fn live(&self, service: Option<&str>) -> Vec<ClusterRecord> {
        self.live_records()
            .filter(|r| service.is_none_or(|s| r.service == s))
            .cloned()
            .collect()
    }

    pub fn clusters(&self) -> usize {
        self.services.values().map(|s| s.clusterer.live()).sum()
    }
}

/// The text a record is clustered on.
pub fn body_text(body: Option<&AnyValue>) -> Cow<'_, str> {
    match body.and_then(|b| b.value.as_ref()) {
        None => Cow::Borrowed(""),
        Some(any_value::Value::StringValue(s)) => Cow::Borrowed(s),
        Some(any_value::Value::BytesValue(b)) => String::from_utf8_lossy(b),
        Some(any_value::Value::KvlistValue(kv)) => {
            for k in ["message", "msg", "body"] {
                if let Some(any_value::Value::StringValue(s)) = kv
                    .values
                    .iter()
                    .find(|x| x.key == k)
                    .and_then(|x| x.value.as_ref())
                    .and_then(|v| v.value.as_ref())
                {
                    return Cow::Borrowed(s);
                }
            }
            Cow::Owned(crate::otlp::any_value_text(body))
        }
        Some(_) => Cow::Owned(crate::otlp::any_value_text(body)),
    }
}

/// Sets `key` to `value`, replacing an attribute of that name.
fn set_attr(attrs: &mut Vec<KeyValue>, key: &str, value: any_value::Value) {
    let v = Some(AnyValue { value: Some(value) });
    match attrs.iter_mut().find(|a| a.key == key) {
        Some(a) => a.value = v,
        None => attrs.push(KeyValue {
            key: key.to_string(),
            value: v,
            ..Default::default()
        }),
    }
}

/// How ListLogClusters orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Count,
    Newest,
    Growth,
}

/// A cluster with its counts in a window.
#[derive(Debug, Clone)]
pub struct Listed {
    pub record: ClusterRecord,
    pub count: u64,
    pub previous: u64,
}

impl Listed {
    pub fn growth(&self) -> f64 {
        (self.count as f64 + 1.0) / (self.previous as f64 + 1.0)
    }
}

impl LogState {
    /// The live id an id stands for now.
    pub fn resolve_id(&self, id: u64) -> u64 {
        self.get(id).map(|r| r.id).unwrap_or(id)
    }
}

impl super::Analyzer {
    fn log_state(&self) -> Result<MutexGuard<'_, LogState>, AnalyzerError> {
        if !self.cfg.enabled {
            return Err(AnalyzerError::Disabled);
        }
        self.log_clusters().ok_or_else(|| {
            AnalyzerError::Invalid(
                "log clustering is disabled (analysis.logs.enabled: false)".into(),
            )
        })
    }

    /// Record counts per live cluster id over `[from, to)`.
    fn log_counts(
        &self,
        service: Option<&str>,
        (from, to): (u64, u64),
    ) -> Result<HashMap<u64, u64>, AnalyzerError> {
        let keep = |l: &[String]| service.is_none_or(|s| l.first().map(String::as_str) == Some(s));
        let read = self.window(Family::LogCluster, (from, to), &keep)?;
        let st = self.log_state()?;
        let mut out: HashMap<u64, u64> = HashMap::new();
        for (labels, c) in read.cells {
            if let Some(id) = labels.get(1).and_then(|i| i.parse::<u64>().ok()) {
                *out.entry(st.resolve_id(id)).or_default() += c.count;
            }
        }
        Ok(out)
    }

    /// Live clusters with records in `[from, to)`, ordered, at most `limit`.
    pub fn list_log_clusters(
        &self,
        service: Option<&str>,
        (from, to): (u64, u64),
        order: Order,
        limit: usize,
    ) -> Result<Vec<Listed>, AnalyzerError> {
        let now = self.log_counts(service, (from, to))?;
        let len = to - from;
        let before = self.log_counts(service, (from.saturating_sub(len), from))?;
        let st = self.log_state()?;
        let mut out: Vec<Listed> = st
            .live(service)
            .into_iter()
            .filter_map(|r| {
                let count = now.get(&r.id).copied().unwrap_or(0);
                (count > 0).then(|| Listed {
                    previous: before.get(&r.id).copied().unwrap_or(0),
                    record: r,
                    count,
                })
            })
            .collect();
        match order {
            Order::Count => {
                out.sort_by(|a, b| b.count.cmp(&a.count).then(a.record.id.cmp(&b.record.id)))
            }
            Order::Newest => out.sort_by(|a, b| {
                b.record
                    .first_seen
                    .cmp(&a.record.first_seen)
                    .then(b.record.id.cmp(&a.record.id))
            }),
            Order::Growth => out.sort_by(|a, b| {
                b.growth()
                    .total_cmp(&a.growth())
                    .then(b.count.cmp(&a.count))
                    .then(a.record.id.cmp(&b.record.id))
            }),
        }
        out.truncate(limit);
        Ok(out)
    }

    /// One cluster (following merges) with its counts over `[from, to)` at `step` (a
    /// multiple of the resolution data from `from` on is kept at), and the window's counts.
    pub fn log_cluster(
        &self,
        id: u64,
        (from, to): (u64, u64),
        step: u64,
    ) -> Result<Option<(Listed, crate::series::Series)>, AnalyzerError> {
        let record = match self.log_state()?.get(id) {
            Some(r) => r.clone(),
            None => return Ok(None),
        };
        let res = self.resolution(from, from, crate::store::now_ns(), u64::MAX);
        if step == 0 || !step.is_multiple_of(STEPS[res]) {
            return Err(AnalyzerError::Invalid(format!(
                "step {step} is not a multiple of {}, the resolution data from {from} on is kept at",
                STEPS[res]
            )));
        }
        let svc = record.service.clone();
        let keep = |l: &[String]| l.first() == Some(&svc);
        let mut points = crate::series::Series::new(step);
        let mut cells = Vec::new();
        self.scan(
            Family::LogCluster,
            res,
            (from, to),
            &keep,
            &mut |b, l, c| {
                cells.push((b, l.get(1).and_then(|i| i.parse::<u64>().ok()), c.count));
            },
        )?;
        {
            let st = self.log_state()?;
            for (b, i, n) in cells {
                if i.map(|i| st.resolve_id(i)) == Some(record.id) {
                    points.add(
                        b,
                        &Cell {
                            count: n,
                            ..Cell::default()
                        },
                    );
                }
            }
        }
        let count = points.points.values().map(|c| c.count).sum();
        let len = to - from;
        let previous = self
            .log_counts(Some(&record.service), (from.saturating_sub(len), from))?
            .get(&record.id)
            .copied()
            .unwrap_or(0);
        Ok(Some((
            Listed {
                record,
                count,
                previous,
            },
            points,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn request(service: &str, bodies: Vec<Option<any_value::Value>>) -> Vec<ResourceLogs> {
        vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![crate::otlp::string_kv("service.name", service)],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: bodies
                    .into_iter()
                    .map(|b| LogRecord {
                        body: b.map(|v| AnyValue { value: Some(v) }),
                        time_unix_nano: 1,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }]
    }

    fn s(x: &str) -> Option<any_value::Value> {
        Some(any_value::Value::StringValue(x.into()))
    }

    #[test]
    fn every_body_gets_a_cluster_and_the_attributes() {
        let map = any_value::Value::KvlistValue(KeyValueList {
            values: vec![crate::otlp::string_kv("message", "user 7 logged in")],
        });
        let array = any_value::Value::ArrayValue(ArrayValue {
            values: vec![AnyValue { value: s("a") }],
        });
        let bytes = any_value::Value::BytesValue(vec![0xff, 0x00, b'x']);
        let mut req = request(
            "api",
            vec![
                s("user 8 logged in"),
                Some(map),
                Some(array),
                Some(bytes),
                None,
                s(""),
            ],
        );
        let dir = tempfile::tempdir().unwrap();
        let tree = sled::open(dir.path()).unwrap().open_tree("t").unwrap();
        let mut st = LogState::load(&LogClustering::default(), &tree).unwrap();
        let got = st.observe(&mut req, 5);
        assert_eq!(got.len(), 6);
        // The map's message field clusters with the plain string.
        assert_eq!(got[0].1, got[1].1);
        for rec in &req[0].scope_logs[0].log_records {
            let keys: Vec<&str> = rec.attributes.iter().map(|a| a.key.as_str()).collect();
            assert_eq!(keys, ["log.template.id", "log.template"]);
        }
        // No body and an empty one: the empty template.
        assert_eq!(got[4].1, got[5].1);
        assert_eq!(st.get(got[4].1).unwrap().template_text(), "");
    }

    #[test]
    fn the_bound_makes_a_visible_overflow_cluster_and_ids_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("t").unwrap();
        let cfg = LogClustering {
            max_clusters: 2,
            ..LogClustering::default()
        };
        let mut st = LogState::load(&cfg, &tree).unwrap();
        let mut req = request(
            "api",
            vec![
                s("alpha one"),
                s("beta two"),
                s("gamma three"),
                s("delta four"),
            ],
        );
        let got = st.observe(&mut req, 5);
        assert_eq!(got[2].1, got[3].1, "past the bound: one overflow cluster");
        assert_eq!(st.get(got[2].1).unwrap().template_text(), "<overflow>");
        assert_eq!(st.get(got[2].1).unwrap().count, 2);
        st.checkpoint(&tree).unwrap();
        let mut again = LogState::load(&cfg, &tree).unwrap();
        let mut req = request("api", vec![s("beta two"), s("epsilon five")]);
        let got2 = again.observe(&mut req, 6);
        assert_eq!(got2[0].1, got[1].1, "the same id after a reload");
        assert_eq!(got2[1].1, got[2].1, "the overflow cluster too");
        assert_eq!(again.new_clusters, 0);
    }

    #[test]
    fn merged_aliases_and_learnt_wildcards_survive_a_reload_and_ids_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("t").unwrap();
        let cfg = LogClustering::default();
        let mut st = LogState::load(&cfg, &tree).unwrap();
        let users = ["cyrus", "news", "test", "root"];
        let lines: Vec<Option<any_value::Value>> = users
            .iter()
            .map(|u| s(&format!("session closed for user {u} now")))
            .chain([s("ok 5")])
            .collect();
        let got = st.observe(&mut request("mail", lines), 5);
        let live = got[3].1;
        // The oldest cluster takes the others in: the second user's is an alias now.
        assert_eq!(got[0].1, live);
        assert_ne!(got[1].1, live);
        assert_eq!(st.get(got[1].1).unwrap().id, live);
        assert_eq!(st.get(live).unwrap().count, 4);
        st.checkpoint(&tree).unwrap();
        // Handed out after the checkpoint, then a crash: never handed out again.
        let lost = st.observe(&mut request("mail", vec![s("brand new kind of line")]), 6)[0].1;
        let mut again = LogState::load(&cfg, &tree).unwrap();
        assert_eq!(again.get(got[1].1).unwrap().id, live, "the alias survives");
        let got2 = again.observe(
            &mut request(
                "mail",
                vec![
                    s("session closed for user guest now"),
                    s("ok 7"),
                    s("another brand new kind"),
                ],
            ),
            7,
        );
        assert_eq!(got2[0].1, live, "the learnt wildcard covers a new name");
        assert_eq!(got2[1].1, got[4].1, "a two-word template holding a value");
        assert!(got2[2].1 > lost, "{} reused after {lost}", got2[2].1);
    }
}

//! The alerting engine: evaluates every rule at each evaluation time up to the event-time
//! watermark, over the analysis series, and tracks each alert's lifecycle
//! ([`crate::alerts::rules`]).
//!
//! Evaluation times are multiples of `evaluation_interval` of the data's own time; the
//! watermark is the newest analysed event time minus `lateness`, moved on by the wall clock
//! when data stops ([`crate::alerts::alert::Watermark`]), and not past the start of traces
//! still being analysed ([`Analyzer::pending_floor`]) — but held back only as far as the data
//! seen `trace_idle` + 2 s of wall time ago, which is analysed by now. So replaying an hour
//! of data evaluates the same instants, with the same windows and complete traces, as living
//! through it, and a straggling sender delays evaluation by seconds, not by its lag.
//!
//! The gateway runs it ([`run`]) once a second while analysis and alerting are enabled, and
//! serves its alerts (ListAlerts, `sieve query alerts`). Alert lifecycles are kept in the
//! sled tree `alerts` (written when they change), with where evaluation stood, so a restart
//! keeps firing alerts with their start times and resumes evaluating where it was (moving on
//! with the wall clock when no data comes, so alerts still resolve). After each evaluation
//! step the firing alerts are correlated into incidents ([`incidents`]) and notifications
//! planned ([`notifier`]: webhook or Alertmanager, with Alertmanager's grouping, silences
//! and inhibition). Incidents are kept in the tree `incidents` ([`incidents`]).

use std::collections::{BTreeMap, HashMap};

use prost::Message;

use crate::alerts::alert::{Labels, Lifecycle, State, Watermark};
use crate::alerts::correlate::{FiringAlert, ServiceEvidence, Topology};
use crate::alerts::rules::{Change, RuleSet};
use crate::alerts::signal::{self, Signal, SignalParams};
use crate::config::alerting::{Alerting, Rule};
use crate::series::{Cell, Family, STEPS};
use crate::stages::analysis::{Analyzer, AnalyzerError};

mod evidence;
pub mod incidents;
pub mod notifier;
mod values;

use values::RedReads;

/// Errors of the alerting engine.
#[derive(Debug, thiserror::Error)]
pub enum AlertingError {
    /// Alert, incident or position records could not be read or written.
    #[error("alerting state: {0}")]
    State(#[from] sled::Error),
    /// The analysis series the rules watch could not be read.
    #[error(transparent)]
    Analysis(#[from] AnalyzerError),
}

/// The engine's state.
pub struct Engine {
    cfg: Alerting,
    pub rules: RuleSet,
    pub incidents: incidents::Incidents,
    notifier: notifier::Notifier,
    /// Notifications planned and not yet handed to the sender.
    pub outbox: Vec<notifier::Outgoing>,
    pub watermark: Watermark,
    next_eval: Option<u64>,
    /// Where alerts are kept across restarts (tree `alerts`), when given.
    tree: Option<sled::Tree>,
    /// Where incidents are kept (tree `incidents`), when given.
    incident_tree: Option<sled::Tree>,
    /// (wall time, newest event time) as the newest event time grew, over the last
    /// `trace_idle` + [`FLOOR_SLACK`].
    seen: std::collections::VecDeque<(u64, u64)>,
    /// The topology for correlation and the evaluation time it was read at.
    topology: Option<(u64, Topology)>,
    /// Critical-path shares by range, read during one [`Engine::run_until`]: an incident's
    /// baseline hour, and its onset window once complete, are the same every step.
    shares: Shares,
}

/// Each service's critical-path share, by the range it was read over.
type Shares = HashMap<(u64, u64), HashMap<String, f64>>;

/// Event time after which the topology is read again.
const TOPOLOGY_REFRESH: u64 = 300_000_000_000;

/// Evaluation steps per hold of the engine's lock: a catch-up runs in short turns, so
/// queries waiting for the engine (ListAlerts, ListIncidents) wait for one turn at most.
const STEPS_PER_TURN: usize = 30;

/// Evaluation steps per round (one round a second).
const STEPS_PER_ROUND: usize = 360;

/// Wall time beyond `trace_idle` within which a trace is analysed (the analysis task's tick
/// and the work itself).
const FLOOR_SLACK: std::time::Duration = std::time::Duration::from_secs(2);

/// An alert as stored: its rule, group and lifecycle (the detector's learnt baseline is not
/// kept: it warms up again after a restart).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AlertRecord {
    #[prost(string, tag = "1")]
    pub rule: String,
    #[prost(map = "string, string", tag = "2")]
    pub group: std::collections::HashMap<String, String>,
    /// 0 inactive, 1 pending, 2 firing, 3 resolved.
    #[prost(uint32, tag = "3")]
    pub state: u32,
    #[prost(uint64, optional, tag = "4")]
    pub active_since: Option<u64>,
    #[prost(uint64, optional, tag = "5")]
    pub fired_at: Option<u64>,
    #[prost(uint64, optional, tag = "6")]
    pub resolved_at: Option<u64>,
    #[prost(uint64, optional, tag = "7")]
    pub false_since: Option<u64>,
    #[prost(uint64, repeated, tag = "8")]
    pub firings: Vec<u64>,
    #[prost(double, optional, tag = "9")]
    pub value: Option<f64>,
    /// Its onset series (for correlation): evaluation times and values.
    #[prost(uint64, repeated, tag = "10")]
    pub onset_t: Vec<u64>,
    #[prost(double, repeated, tag = "11")]
    pub onset_v: Vec<f64>,
}

/// The key of the evaluation position (alert records have 8-byte fingerprint keys).
const ENGINE_KEY: &[u8] = b"engine";

fn state_code(s: State) -> u32 {
    match s {
        State::Inactive => 0,
        State::Pending => 1,
        State::Firing => 2,
        State::Resolved => 3,
    }
}

fn state_of(c: u32) -> State {
    match c {
        1 => State::Pending,
        2 => State::Firing,
        3 => State::Resolved,
        _ => State::Inactive,
    }
}

impl Engine {
    /// An engine whose first evaluation is at `start` (event time), or at the oldest event
    /// time analysed when None.
    pub fn new(cfg: &Alerting, start: Option<u64>) -> Engine {
        let step = cfg.evaluation_interval.as_nanos() as u64;
        Engine {
            cfg: cfg.clone(),
            rules: cfg.rule_set(),
            incidents: incidents::Incidents::new(cfg.correlation.resolve_after.as_nanos() as u64),
            notifier: notifier::Notifier::new(cfg),
            outbox: Vec::new(),
            watermark: Watermark::new(cfg.lateness.as_nanos() as u64),
            next_eval: start.map(|s| s - s % step.max(1)),
            tree: None,
            incident_tree: None,
            seen: std::collections::VecDeque::new(),
            topology: None,
            shares: Shares::new(),
        }
    }

    /// An engine keeping its alerts in `tree` and its incidents in `incident_tree` (the
    /// store's `StateTree::Alerts` and `StateTree::Incidents`), with what is stored there
    /// restored: a restart keeps firing alerts with their start times, and open and
    /// resolved incidents. Records that do not decode, or whose rule is gone, are skipped
    /// (and logged).
    pub fn open(
        cfg: &Alerting,
        tree: sled::Tree,
        incident_tree: sled::Tree,
    ) -> Result<Engine, AlertingError> {
        let mut e = Engine::new(cfg, None);
        for kv in incident_tree.iter() {
            let (k, v) = kv?;
            match incidents::Incident::decode(v.as_ref()) {
                // A record must be stored under its own id (a value that happens to decode,
                // such as an empty one, is not an incident).
                Ok(i) if i.id != 0 && k.as_ref() == i.id.to_be_bytes() => e.incidents.restore(i),
                Ok(i) => tracing::warn!(id = i.id, "incident record under a foreign key: skipped"),
                Err(err) => crate::telemetry::events::AnalysisValueCorrupt { error: &err }.emit(),
            }
        }
        e.incidents.restored();
        e.incident_tree = Some(incident_tree);
        for kv in tree.iter() {
            let (k, v) = kv?;
            if k.as_ref() == ENGINE_KEY {
                // Where evaluation stood: it resumes there, and the watermark moves on with
                // the wall clock even if no data comes (so alerts resolve).
                if v.len() == 16 {
                    let mut a = [0u8; 8];
                    let mut b = [0u8; 8];
                    a.copy_from_slice(&v[..8]);
                    b.copy_from_slice(&v[8..]);
                    let (next, max_event) = (u64::from_be_bytes(a), u64::from_be_bytes(b));
                    if next > 0 {
                        e.next_eval = Some(next);
                    }
                    e.watermark.observe(max_event, crate::store::now_ns());
                }
                continue;
            }
            let r = match AlertRecord::decode(v.as_ref()) {
                Ok(r) => r,
                Err(err) => {
                    crate::telemetry::events::AnalysisValueCorrupt { error: &err }.emit();
                    continue;
                }
            };
            let life = Lifecycle {
                state: state_of(r.state),
                active_since: r.active_since,
                fired_at: r.fired_at,
                resolved_at: r.resolved_at,
                false_since: r.false_since,
                firings: r.firings.into_iter().collect(),
            };
            let group: Labels = r.group.into_iter().collect();
            let onset = r.onset_t.into_iter().zip(r.onset_v).collect();
            if !e.rules.restore(&r.rule, group, life, r.value, onset) {
                tracing::warn!(rule = %r.rule, "stored alert of a rule no longer configured: dropped");
            }
        }
        e.tree = Some(tree);
        Ok(e)
    }

    /// Writes the alerts that changed state or whose onset series grew (by fingerprint).
    fn persist(&mut self, changed: &[Change]) -> Result<(), AlertingError> {
        let grown = self.rules.take_grown_onsets();
        let Some(tree) = &self.tree else {
            return Ok(());
        };
        let mut fps: Vec<u64> = changed.iter().map(|c| c.fingerprint).chain(grown).collect();
        fps.sort_unstable();
        fps.dedup();
        if fps.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for fp in fps {
            let Some(a) = self.rules.get(fp) else {
                continue;
            };
            let rule = self.rules.name(a.rule).unwrap_or_default().to_string();
            let group = a
                .labels
                .iter()
                .filter(|(k, _)| k.as_str() != "alertname" && k.as_str() != "severity")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let rec = AlertRecord {
                rule,
                group,
                state: state_code(a.life.state),
                active_since: a.life.active_since,
                fired_at: a.life.fired_at,
                resolved_at: a.life.resolved_at,
                false_since: a.life.false_since,
                firings: a.life.firings.iter().copied().collect(),
                value: a.value,
                onset_t: a.onset.iter().map(|p| p.0).collect(),
                onset_v: a.onset.iter().map(|p| p.1).collect(),
            };
            batch.insert(&a.fingerprint.to_be_bytes(), rec.encode_to_vec());
        }
        tree.apply_batch(batch)?;
        tree.flush()?;
        Ok(())
    }

    /// Writes the incidents that changed, and forgets the ones dropped from memory.
    fn persist_incidents(&mut self) -> Result<(), AlertingError> {
        let Some(tree) = &self.incident_tree else {
            return Ok(());
        };
        let (changed, dropped) = self.incidents.take_changes();
        if changed.is_empty() && dropped.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for i in changed {
            batch.insert(&i.id.to_be_bytes(), i.encode());
        }
        for id in dropped {
            batch.remove(&id.to_be_bytes());
        }
        tree.apply_batch(batch)?;
        tree.flush()?;
        Ok(())
    }

    /// The last evaluation time evaluated (0 before the first).
    pub fn evaluated_until(&self) -> u64 {
        let step = (self.cfg.evaluation_interval.as_nanos() as u64).max(1);
        self.next_eval.map_or(0, |t| t.saturating_sub(step))
    }

    /// Writes where evaluation stands (once per call).
    fn persist_position(&self) -> Result<(), AlertingError> {
        let (Some(tree), Some(next)) = (&self.tree, self.next_eval) else {
            return Ok(());
        };
        let mut v = next.to_be_bytes().to_vec();
        v.extend_from_slice(&self.watermark.max_event().to_be_bytes());
        tree.insert(ENGINE_KEY, v)?;
        Ok(())
    }

    /// Evaluates every rule at each evaluation time up to the watermark at wall time `wall`,
    /// at most `max_steps` of them; returns the state changes in order.
    pub fn run_until(
        &mut self,
        analyzer: &Analyzer,
        wall: u64,
        max_steps: usize,
    ) -> Result<Vec<Change>, AlertingError> {
        let newest = analyzer
            .counters
            .max_event_time
            .load(std::sync::atomic::Ordering::Relaxed);
        if newest > 0 {
            self.watermark.observe(newest, wall);
        }
        // Not past traces still waiting for their analysis, but only as far back as the
        // data seen `trace_idle` + [`FLOOR_SLACK`] of wall time ago: those traces are
        // analysed by now. So a replay waits for its traces, while a straggler (a sender
        // draining a backlog, a clock 20 minutes slow) delays evaluation by seconds, not by
        // its lag.
        if newest > 0 && self.seen.back().is_none_or(|s| s.1 < newest) {
            self.seen.push_back((wall, newest));
        }
        let hold = (analyzer.trace_idle() + FLOOR_SLACK).as_nanos() as u64;
        let cutoff = wall.saturating_sub(hold);
        while self.seen.len() > 1 && self.seen[1].0 <= cutoff {
            self.seen.pop_front();
        }
        let settled = self
            .seen
            .front()
            .filter(|s| s.0 <= cutoff)
            .map_or(0, |s| s.1);
        let mut mark = self.watermark.at(wall);
        if let Some(floor) = analyzer.pending_floor() {
            mark = mark.min(floor.max(settled));
        }
        let step = (self.cfg.evaluation_interval.as_nanos() as u64).max(1);
        // Without a start, evaluation begins at the oldest data analysed: a replay is
        // evaluated from its beginning.
        let oldest = analyzer
            .counters
            .min_event_time
            .load(std::sync::atomic::Ordering::Relaxed);
        let mut t = match self.next_eval {
            Some(t) => t,
            None if mark > 0 && oldest > 0 => oldest - oldest % step,
            None => return Ok(Vec::new()),
        };
        let mut changes = Vec::new();
        self.shares.clear();
        let mut steps = 0;
        while t <= mark && steps < max_steps {
            // Rules over the same RED window (the default error-rate and latency rules)
            // share one read per step.
            let mut reds = RedReads::new();
            for i in 0..self.rules.len() {
                let values = self.values_reading(analyzer, i, t, &mut reds)?;
                changes.extend(self.rules.evaluate(i, t, &values));
            }
            // Incidents follow every step while anything fires or is open.
            let firing = self
                .rules
                .alerts
                .values()
                .any(|a| a.life.state == State::Firing);
            if firing || !self.incidents.open.is_empty() {
                self.correlate(analyzer, t)?;
            }
            if self.notifier.active() {
                let views = self.alerts(None, None);
                let suppressed: std::collections::HashSet<u64> = self
                    .incidents
                    .open
                    .iter()
                    .flat_map(|i| i.suppressed.iter().map(|s| s.0))
                    .collect();
                let out = self.notifier.plan(t, &views, &suppressed);
                self.outbox.extend(out);
            }
            t += step;
            steps += 1;
        }
        self.next_eval = Some(t);
        self.persist(&changes)?;
        self.persist_incidents()?;
        if steps > 0 {
            self.persist_position()?;
        }
        Ok(changes)
    }
}

/// An alert as ListAlerts shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertView {
    pub fingerprint: u64,
    pub labels: Labels,
    pub annotations: Labels,
    pub state: crate::alerts::alert::State,
    pub value: Option<f64>,
    pub priority: f64,
    pub active_since: Option<u64>,
    pub fired_at: Option<u64>,
    pub resolved_at: Option<u64>,
}

impl Engine {
    /// Alerts other than inactive ones, optionally of one state and service, highest
    /// priority first.
    /// (pending alerts, firing alerts, open incidents), for `/metrics`.
    pub fn counts(&self) -> (u64, u64, u64) {
        use crate::alerts::alert::State;
        let (mut pending, mut firing) = (0, 0);
        for a in self.rules.alerts.values() {
            match a.life.state {
                State::Pending => pending += 1,
                State::Firing => firing += 1,
                _ => {}
            }
        }
        (pending, firing, self.incidents.open.len() as u64)
    }

    pub fn alerts(
        &self,
        state: Option<crate::alerts::alert::State>,
        service: Option<&str>,
    ) -> Vec<AlertView> {
        use crate::alerts::alert::State;
        let mut out: Vec<AlertView> = self
            .rules
            .alerts
            .values()
            .filter(|a| a.life.state != State::Inactive)
            .filter(|a| state.is_none_or(|s| a.life.state == s))
            .filter(|a| {
                service.is_none_or(|s| a.labels.get("service").map(String::as_str) == Some(s))
            })
            .map(|a| self.view(a))
            .collect();
        out.sort_by(|a, b| {
            b.priority
                .total_cmp(&a.priority)
                .then(a.fingerprint.cmp(&b.fingerprint))
        });
        out
    }
}

impl Engine {
    /// One alert by fingerprint, whatever its state.
    pub fn alert(&self, fingerprint: u64) -> Option<AlertView> {
        self.rules.get(fingerprint).map(|a| self.view(a))
    }

    fn view(&self, a: &crate::alerts::rules::AlertState) -> AlertView {
        AlertView {
            fingerprint: a.fingerprint,
            annotations: self.rules.annotations(a),
            labels: a.labels.clone(),
            state: a.life.state,
            value: a.value,
            priority: a.priority,
            active_since: a.life.active_since,
            fired_at: a.life.fired_at,
            resolved_at: a.life.resolved_at,
        }
    }
}

/// Evaluates once a second until `stop`, catching up at most an hour of evaluation steps per
/// round (a replay), and logs each alert that fires or resolves.
pub struct AlertingStage {
    pub engine: std::sync::Arc<std::sync::Mutex<Engine>>,
    pub analyzer: std::sync::Arc<Analyzer>,
}

impl crate::stages::Stage for AlertingStage {
    async fn run(self, stop: tokio_util::sync::CancellationToken) {
        run(self.engine, self.analyzer, stop).await
    }
}

async fn run(
    engine: std::sync::Arc<std::sync::Mutex<Engine>>,
    analyzer: std::sync::Arc<Analyzer>,
    stop: tokio_util::sync::CancellationToken,
) {
    // Without a client (TLS set-up failed, which the ring provider does not do) alerts are
    // still evaluated and shown; notifications are logged as not sent.
    let client = notifier::client()
        .inspect_err(|e| tracing::error!(error = %e, "cannot build the notification client"))
        .ok();
    // Notifications in flight: at most MAX_SENDS (a full set holds evaluation back rather
    // than dropping one), drained for at most SEND_DRAIN at shutdown.
    let mut sends = tokio::task::JoinSet::new();
    loop {
        while sends.try_join_next().is_some() {}
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stop.cancelled() => break,
        }
        let (e, a) = (engine.clone(), analyzer.clone());
        let r = tokio::task::spawn_blocking(move || {
            let (mut named, mut outbox) = (Vec::new(), Vec::new());
            let mut steps = 0;
            while steps < STEPS_PER_ROUND {
                let mut e = e.lock().unwrap_or_else(|p| p.into_inner());
                let before = e.next_eval;
                let changes = e.run_until(&a, crate::store::now_ns(), STEPS_PER_TURN)?;
                outbox.append(&mut e.outbox);
                named.extend(changes.iter().filter_map(|c| {
                    e.rules
                        .get(c.fingerprint)
                        .map(|a| (format!("{:?}", a.labels), c.state))
                }));
                if e.next_eval == before {
                    break;
                }
                steps += STEPS_PER_TURN;
            }
            Ok::<_, AlertingError>((named, outbox))
        })
        .await;
        match r {
            Ok(Ok((named, outbox))) => {
                for out in outbox {
                    while sends.len() >= MAX_SENDS {
                        sends.join_next().await;
                    }
                    match &client {
                        Some(c) => {
                            sends.spawn(notifier::send(c.clone(), out));
                        }
                        None => tracing::warn!("notification not sent: no HTTP client"),
                    }
                }
                for (labels, state) in named {
                    tracing::info!(alert = %labels, state = state.as_str(), "alert {}", state.as_str());
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "alert evaluation failed"),
            Err(e) => tracing::error!(error = %e, "alert evaluation task failed"),
        }
    }
    let drained = tokio::time::timeout(SEND_DRAIN, async {
        while sends.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        crate::telemetry::events::NotificationsAbandoned {
            count: sends.len(),
            after: SEND_DRAIN,
        }
        .emit();
        sends.abort_all();
    }
}

/// Notifications sent at once, at most.
pub const MAX_SENDS: usize = 64;
/// How long shutdown waits for notifications still being sent.
pub const SEND_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::now_ns;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

    const S: u64 = 1_000_000_000;

    fn spans(service: &str, t: u64, n: u8, errors: u8) -> Vec<ResourceSpans> {
        vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![crate::otlp::string_kv("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..n)
                    .map(|i| {
                        let mut id = [0u8; 16];
                        id[..8].copy_from_slice(&t.to_be_bytes());
                        id[8] = i;
                        Span {
                            trace_id: id.to_vec(),
                            span_id: vec![i + 1; 8],
                            name: "GET /x".into(),
                            kind: 2,
                            start_time_unix_nano: t,
                            end_time_unix_nano: t + 10_000_000,
                            status: (i < errors).then(|| Status {
                                code: 2,
                                ..Default::default()
                            }),
                            ..Default::default()
                        }
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }]
    }

    /// A fresh analyzer, and a minute boundary an hour ago to replay from.
    /// An engine over its two trees in `db`.
    fn engine(cfg: &Alerting, db: &sled::Db) -> Engine {
        use crate::store::keys::StateTree;
        Engine::open(
            cfg,
            db.open_tree(StateTree::Alerts.name()).unwrap(),
            db.open_tree(StateTree::Incidents.name()).unwrap(),
        )
        .unwrap()
    }

    fn analyzer() -> (tempfile::TempDir, sled::Db, std::sync::Arc<Analyzer>, u64) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let (series, logs) = crate::stages::analysis::tests::trees(&db);
        let analyzer = Analyzer::open(&crate::config::Analysis::default(), series, logs).unwrap();
        let t = now_ns() - 3600 * S;
        (dir, db, analyzer, t - t % (60 * S))
    }

    /// Ten minutes of replayed traffic: cart fails from minute 5, db never. The error-rate
    /// rule fires for cart a minute after its errors start (its `for`), by event time, and not
    /// for db; replayed in one call, as fast as the series read.
    #[test]
    fn replayed_errors_fire_the_default_rule_by_event_time() {
        let (_dir, _db, analyzer, t0) = analyzer();
        for sec in (0..600u64).step_by(5) {
            let t = t0 + sec * S;
            analyzer.observe(&spans("db", t, 10, 0));
            analyzer.observe(&spans("cart", t, 10, if sec >= 300 { 3 } else { 0 }));
        }
        let mut engine = Engine::new(&Alerting::default(), Some(t0));
        // Rules wait for traces still being analysed.
        assert!(
            engine
                .run_until(&analyzer, now_ns(), 10_000)
                .unwrap()
                .is_empty()
        );
        // (The first trace ends 10 ms after t0: only t0 itself is evaluated.)
        assert_eq!(engine.next_eval, Some(t0 + 10 * S));
        analyzer.tick(true);
        assert_eq!(analyzer.pending_floor(), None);
        let changes = engine.run_until(&analyzer, now_ns(), 10_000).unwrap();
        let fired: Vec<&Change> = changes
            .iter()
            .filter(|c| c.state == State::Firing)
            .collect();
        assert_eq!(fired.len(), 1, "{changes:?}");
        let cart = &engine.rules.alerts[&(0, [("service".to_string(), "cart".to_string())].into())];
        assert_eq!(fired[0].fingerprint, cart.fingerprint);
        // Errors (30% of cart's spans) from 300 s: the 1-minute window [250 s, 310 s) holds one
        // errored bucket of six (5%, not above), [260 s, 320 s) two (10%): pending at 320 s,
        // firing 60 s later.
        let started = cart.life.active_since.unwrap_or(0);
        assert!(
            (t0 + 300 * S..=t0 + 320 * S).contains(&started),
            "{}",
            (started - t0) / S
        );
        assert_eq!(cart.life.fired_at, Some(started + 60 * S));
        assert_eq!(cart.value, Some(0.3));
    }

    /// The multi-window burn signal by hand: 30% errors for the last 5 of 10 minutes.
    #[test]
    fn multiwindow_burn_level_by_hand() {
        let (_dir, _db, analyzer, t0) = analyzer();
        for sec in (0..600u64).step_by(5) {
            let t = t0 + sec * S;
            analyzer.observe(&spans("db", t, 10, 0));
            analyzer.observe(&spans("cart", t, 10, if sec >= 300 { 3 } else { 0 }));
        }
        let mut cfg = Alerting::default();
        let mut rule = cfg.rules[0].clone();
        rule.name = "ErrorBudgetBurn".into();
        rule.signal = Signal::SloBurnMultiWindow;
        cfg.rules = vec![rule];
        let engine = Engine::new(&cfg, None);
        let v = engine.values(&analyzer, 0, t0 + 600 * S).unwrap();
        let of = |svc: &str| v[&Labels::from([("service".to_string(), svc.to_string())])];
        // cart against 99.9%: 30% bad over the last 5 min → 300×; 180 bad of 1,200 over
        // 30 min, 1 h and 6 h → 150×. max(min(150, 300) / 14.4, min(150, 150) / 6) = 25.
        assert!((of("cart") - 25.0).abs() < 1e-9, "{v:?}");
        assert_eq!(of("db"), 0.0);
    }

    /// Records counted under cluster ids that later merged count for the live cluster.
    #[test]
    fn log_rates_follow_merged_clusters() {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
        use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
        let (_dir, _db, analyzer, t0) = analyzer();
        let records: Vec<LogRecord> = ["cyrus", "news", "test", "root", "guest", "admin"]
            .iter()
            .map(|u| LogRecord {
                time_unix_nano: t0 + 5 * S,
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(format!(
                        "session opened for user {u} by root"
                    ))),
                }),
                ..Default::default()
            })
            .collect();
        let mut req = vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![crate::otlp::string_kv("service.name", "mail")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }];
        assert!(analyzer.observe_logs(&mut req));
        let engine = Engine::new(&Alerting::default(), None);
        let rule = engine
            .cfg
            .rules
            .iter()
            .position(|r| r.name == "LogSurge")
            .unwrap();
        // The rule's 10 s window [t0, t0 + 10 s) began before the cluster existed: no rate.
        assert!(
            engine
                .values(&analyzer, rule, t0 + 10 * S)
                .unwrap()
                .is_empty()
        );
        let values = engine.values(&analyzer, rule, t0 + 15 * S).unwrap();
        // Six records in one live cluster over [t0 + 5 s, t0 + 15 s): 0.6 per second.
        assert_eq!(values.len(), 1, "{values:?}");
        assert!(
            (values.values().next().unwrap() - 0.6).abs() < 1e-12,
            "{values:?}"
        );
    }

    /// Traces still being analysed hold evaluation back only for `trace_idle` + 2 s of wall
    /// time: a straggling (or, here, never analysed) trace does not stop alerting.
    #[test]
    fn a_pending_trace_holds_evaluation_only_briefly() {
        let (_dir, _db, analyzer, t0) = analyzer();
        for sec in (0..300u64).step_by(5) {
            analyzer.observe(&spans("cart", t0 + sec * S, 10, 0));
        }
        assert_eq!(analyzer.pending_floor(), Some(t0));
        let mut engine = Engine::new(&Alerting::default(), Some(t0));
        let wall = now_ns();
        engine.run_until(&analyzer, wall, 10_000).unwrap();
        assert_eq!(engine.next_eval, Some(t0 + 10 * S));
        engine.run_until(&analyzer, wall + 6 * S, 10_000).unwrap();
        assert_eq!(
            engine.next_eval,
            Some(t0 + 10 * S),
            "5 s + 2 s not yet passed"
        );
        // The data seen 7 s ago counts as analysed: on to the watermark (newest − 30 s).
        engine.run_until(&analyzer, wall + 8 * S, 10_000).unwrap();
        assert!(
            engine.next_eval.unwrap() > t0 + 250 * S,
            "{:?}",
            engine.next_eval
        );
        assert_eq!(engine.evaluated_until(), engine.next_eval.unwrap() - 10 * S);
    }

    #[test]
    fn firing_alerts_survive_a_restart() {
        let (_dir, db, analyzer, t0) = analyzer();
        for sec in (0..300u64).step_by(5) {
            analyzer.observe(&spans("cart", t0 + sec * S, 10, 5));
        }
        let cfg = Alerting::default();
        let fired = {
            let mut e = engine(&cfg, &db);
            analyzer.tick(true);
            e.run_until(&analyzer, now_ns(), 10_000).unwrap();
            let firing = e.alerts(Some(State::Firing), None);
            assert_eq!(firing.len(), 1);
            assert_eq!(e.incidents.open.len(), 1);
            let onset = e.rules.get(firing[0].fingerprint).unwrap().onset.clone();
            (firing[0].clone(), e.incidents.open[0].clone(), onset)
        };
        let (fired, incident, onset_before) = fired;
        // A new engine over the same trees: the alert is firing, with its times, and its
        // incident is open.
        let mut cfg2 = cfg.clone();
        let e = engine(&cfg2, &db);
        assert_eq!(e.incidents.open, vec![incident.clone()]);
        // Its onset series (for correlation) too: the minute of pending and what came before.
        // (stored as it grew after firing, not only when the state changed).
        let onset = &e.rules.get(fired.fingerprint).unwrap().onset;
        assert!(onset.len() >= 7, "{onset:?}");
        assert_eq!(onset, &onset_before);
        let again = e.alerts(Some(State::Firing), None);
        assert_eq!(again.len(), 1);
        assert_eq!(
            (
                again[0].fingerprint,
                again[0].fired_at,
                again[0].active_since
            ),
            (fired.fingerprint, fired.fired_at, fired.active_since)
        );
        // A rule no longer configured drops its stored alerts.
        cfg2.rules.retain(|r| r.name != "HighErrorRate");
        let e = engine(&cfg2, &db);
        assert!(e.alerts(None, None).is_empty());
        // Damaged records are skipped.
        db.open_tree(crate::store::keys::StateTree::Alerts.name())
            .unwrap()
            .insert(b"bad", &b"\xff\xff"[..])
            .unwrap();
        let incidents = db
            .open_tree(crate::store::keys::StateTree::Incidents.name())
            .unwrap();
        incidents.insert(b"bad", &b"\xff\xff"[..]).unwrap();
        // Decodable, but not an incident stored under its id.
        incidents.insert(b"", &b""[..]).unwrap();
        incidents
            .insert(7u64.to_be_bytes(), {
                let mut moved = incident.clone();
                moved.id = 99;
                moved.encode()
            })
            .unwrap();
        let e = engine(&cfg, &db);
        assert_eq!(e.alerts(Some(State::Firing), None).len(), 1);
        assert_eq!(e.incidents.open.len(), 1);
    }
}

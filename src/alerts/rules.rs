//! Rule evaluation: per rule and label group, a detector judges each evaluation's signal value
//! and the alert's lifecycle follows (pure; the engine feeds it values at the watermark).
//!
//! An alert's labels are the rule's name (`alertname`), its `severity`, and the group's
//! labels; its fingerprint is theirs ([`super::alert::fingerprint`]). Priority is
//! `w_severity·severity + w_impact·business_impact + w_urgency·urgency`. Annotations replace
//! `{{ $value }}` (rounded to 4 significant digits) and `{{ $labels.NAME }}`.
//!
//! A group that gets no value in an evaluation (no data in the window) is judged not
//! anomalous, so its alert resolves when its data stops; its detector keeps its baseline.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::alert::{Labels, Lifecycle, State, Timing, fingerprint};
use super::detect::Detector;

/// One rule as evaluation needs it. The config layer builds these from `alerting.rules`
/// (`config::alerting::Alerting::rule_set`).
pub struct RuleParams {
    /// The alert's `alertname`.
    pub name: String,
    /// The `severity` label.
    pub severity: &'static str,
    /// The severity's term in the priority, 0..=1.
    pub severity_weight: f64,
    /// 0..=1.
    pub business_impact: f64,
    /// 0..=1.
    pub urgency: f64,
    /// How long the detector must say anomalous before the alert fires, ns.
    pub for_ns: u64,
    /// Templates with `{{ $value }}` and `{{ $labels.NAME }}`.
    pub annotations: BTreeMap<String, String>,
    /// A fresh detector, one per label group.
    pub detector: Box<dyn Fn() -> Box<dyn Detector> + Send>,
}

/// The weights of the priority's three terms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    pub severity: f64,
    pub business_impact: f64,
    pub urgency: f64,
}

/// One alert: a rule and a label group.
pub struct AlertState {
    pub rule: usize,
    pub labels: Labels,
    pub fingerprint: u64,
    pub priority: f64,
    pub life: Lifecycle,
    pub value: Option<f64>,
    /// Recent values (evaluation time, value), oldest first, at most [`RECENT`].
    pub recent: VecDeque<(u64, f64)>,
    /// The values around its onset, for correlation: the [`RECENT`] values up to when it
    /// fired and up to [`ONSET_AFTER`] more while it fires. Correlating the alerts of a
    /// long incident on their latest values would compare noise around two plateaus; their
    /// onsets are what they share.
    pub onset: Vec<(u64, f64)>,
    /// The onset's length once complete (its length at firing + [`ONSET_AFTER`]).
    onset_limit: usize,
    /// The onset grew since [`RuleSet::take_grown_onsets`].
    onset_grown: bool,
    detector: Box<dyn Detector>,
}

impl AlertState {
    /// The series it is correlated on: its onset once it has fired, else its recent values.
    pub fn correlation_series(&self) -> Vec<(u64, f64)> {
        if self.onset.is_empty() {
            self.recent.iter().copied().collect()
        } else {
            self.onset.clone()
        }
    }
}

/// A state change of one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub fingerprint: u64,
    pub state: State,
    pub at: u64,
}

/// Points of recent values kept per alert.
pub const RECENT: usize = 60;

/// Points added to an alert's onset series after it fires.
pub const ONSET_AFTER: usize = 30;

/// Every rule's alerts.
pub struct RuleSet {
    rules: Vec<RuleParams>,
    timings: Vec<Timing>,
    weights: Weights,
    pub alerts: HashMap<(usize, Labels), AlertState>,
    /// Fingerprint → key in `alerts`.
    by_fingerprint: HashMap<u64, (usize, Labels)>,
}

impl RuleSet {
    /// Rule `i` of `rules` is rule `i` of [`RuleSet::evaluate`].
    pub fn new(rules: Vec<RuleParams>, weights: Weights) -> RuleSet {
        RuleSet {
            timings: rules
                .iter()
                .map(|r| Timing {
                    for_: r.for_ns,
                    ..Timing::default()
                })
                .collect(),
            rules,
            weights,
            alerts: HashMap::new(),
            by_fingerprint: HashMap::new(),
        }
    }

    /// How many rules there are.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The `alertname` of rule `i`.
    pub fn name(&self, i: usize) -> Option<&str> {
        self.rules.get(i).map(|r| r.name.as_str())
    }

    fn new_alert(&self, rule: usize, group: &Labels) -> AlertState {
        let r = &self.rules[rule];
        let mut labels = group.clone();
        labels.insert("alertname".into(), r.name.clone());
        labels.insert("severity".into(), r.severity.into());
        AlertState {
            fingerprint: fingerprint(&labels),
            priority: self.weights.severity * r.severity_weight
                + self.weights.business_impact * r.business_impact
                + self.weights.urgency * r.urgency,
            labels,
            rule,
            life: Lifecycle::default(),
            value: None,
            recent: VecDeque::new(),
            onset: Vec::new(),
            onset_limit: 0,
            onset_grown: false,
            detector: (r.detector)(),
        }
    }

    /// Evaluates rule `rule` at event time `t` (ns) with a value per label group; groups seen
    /// before and missing now are judged not anomalous. Returns the state changes.
    pub fn evaluate(&mut self, rule: usize, t: u64, values: &BTreeMap<Labels, f64>) -> Vec<Change> {
        if rule >= self.rules.len() {
            return Vec::new();
        }
        let mut changes = Vec::new();
        let secs = t as f64 / 1e9;
        for (group, v) in values {
            let key = (rule, group.clone());
            if !self.alerts.contains_key(&key) {
                let a = self.new_alert(rule, group);
                self.alerts.insert(key.clone(), a);
            }
            let index = &mut self.by_fingerprint;
            let Some(a) = self.alerts.get_mut(&key) else {
                continue;
            };
            index.entry(a.fingerprint).or_insert(key);
            let verdict = a.detector.observe(secs, *v);
            a.value = Some(*v);
            a.recent.push_back((t, *v));
            if a.recent.len() > RECENT {
                a.recent.pop_front();
            }
            let change = a.life.step(t, verdict.anomalous, &self.timings[rule]);
            if change == Some(State::Firing) {
                a.onset = a.recent.iter().copied().collect();
                a.onset_limit = a.onset.len() + ONSET_AFTER;
            } else if a.life.state == State::Firing && a.onset.len() < a.onset_limit {
                a.onset.push((t, *v));
                a.onset_grown = true;
            }
            if let Some(state) = change {
                changes.push(Change {
                    fingerprint: a.fingerprint,
                    state,
                    at: t,
                });
            }
        }
        for ((ru, group), a) in self.alerts.iter_mut() {
            if *ru == rule && !values.contains_key(group) {
                a.value = None;
                if let Some(state) = a.life.step(t, false, &self.timings[rule]) {
                    changes.push(Change {
                        fingerprint: a.fingerprint,
                        state,
                        at: t,
                    });
                }
            }
        }
        changes.sort_by_key(|c| c.fingerprint);
        changes
    }

    /// Fingerprints of the alerts whose onset grew since the last call (to be stored).
    pub fn take_grown_onsets(&mut self) -> Vec<u64> {
        self.alerts
            .values_mut()
            .filter_map(|a| std::mem::take(&mut a.onset_grown).then_some(a.fingerprint))
            .collect()
    }

    /// Restores an alert's lifecycle (state reloaded at start) for the rule named `rule`
    /// and its group's labels; its detector starts afresh (warming up). False when no rule
    /// has that name any more.
    pub fn restore(
        &mut self,
        rule: &str,
        group: Labels,
        life: Lifecycle,
        value: Option<f64>,
        onset: Vec<(u64, f64)>,
    ) -> bool {
        let Some(i) = self.rules.iter().position(|r| r.name == rule) else {
            return false;
        };
        let a = AlertState {
            life,
            value,
            onset_limit: onset.len(),
            onset,
            ..self.new_alert(i, &group)
        };
        self.by_fingerprint
            .insert(a.fingerprint, (i, group.clone()));
        self.alerts.insert((i, group), a);
        true
    }

    /// An alert by fingerprint.
    pub fn get(&self, fingerprint: u64) -> Option<&AlertState> {
        self.by_fingerprint
            .get(&fingerprint)
            .and_then(|k| self.alerts.get(k))
    }

    /// The annotations of an alert with its value and labels filled in.
    pub fn annotations(&self, a: &AlertState) -> Labels {
        let Some(r) = self.rules.get(a.rule) else {
            return Labels::new();
        };
        r.annotations
            .iter()
            .map(|(k, tpl)| (k.clone(), fill(tpl, a.value, &a.labels)))
            .collect()
    }
}

/// `{{ $value }}` and `{{ $labels.NAME }}` replaced.
pub fn fill(template: &str, value: Option<f64>, labels: &Labels) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let expr = rest[open + 2..open + close].trim();
        if expr == "$value" {
            out.push_str(&value.map(short).unwrap_or_else(|| "n/a".into()));
        } else if let Some(name) = expr.strip_prefix("$labels.") {
            out.push_str(labels.get(name).map(String::as_str).unwrap_or(""));
        } else {
            out.push_str(&rest[open..open + close + 2]);
        }
        rest = &rest[open + close + 2..];
    }
    out.push_str(rest);
    out
}

/// A number with 4 significant digits.
fn short(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
    format!("{v:.digits$}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::alerting::{Alerting, Rule, Severity, default_rules};

    fn cfg(rules: Vec<Rule>) -> Alerting {
        Alerting {
            rules,
            ..Alerting::default()
        }
    }

    impl RuleSet {
        fn from(cfg: &Alerting) -> RuleSet {
            cfg.rule_set()
        }
    }

    fn group(service: &str) -> Labels {
        [("service".to_string(), service.to_string())].into()
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn the_error_rate_rule_fires_after_its_for_and_resolves() {
        // HighErrorRate: above 5% for 1 minute, evaluated every 10 s.
        let mut rs = RuleSet::from(&cfg(default_rules()));
        let mut fired = None;
        for i in 0..20u64 {
            let rate = if (3..12).contains(&i) { 0.2 } else { 0.01 };
            let values: BTreeMap<Labels, f64> = [(group("cart"), rate), (group("db"), 0.0)].into();
            for c in rs.evaluate(0, i * 10 * S, &values) {
                if c.state == State::Firing {
                    fired = Some(c.at);
                }
            }
        }
        // Anomalous from 30 s: pending, firing once 60 s have passed (90 s).
        assert_eq!(fired, Some(90 * S));
        let a = &rs.alerts[&(0, group("cart"))];
        assert_eq!(a.life.state, State::Resolved);
        assert_eq!(a.life.resolved_at, Some(120 * S));
        assert_eq!(a.labels["alertname"], "HighErrorRate");
        assert_eq!(a.labels["severity"], "critical");
        // priority = 0.5·1.0 + 0.3·0.5 + 0.2·0.5
        assert!((a.priority - 0.75).abs() < 1e-12);
        assert_eq!(rs.alerts[&(0, group("db"))].life.fired_at, None);
    }

    #[test]
    fn silent_groups_resolve() {
        let mut r = default_rules().remove(0);
        r.for_ = std::time::Duration::ZERO;
        let mut rs = RuleSet::from(&cfg(vec![r]));
        let changes = rs.evaluate(0, 0, &[(group("cart"), 0.5)].into());
        assert_eq!(changes[0].state, State::Firing);
        // No data for cart: judged normal, resolved at once (resolve_after 0).
        let changes = rs.evaluate(0, 10 * S, &BTreeMap::new());
        assert_eq!(changes[0].state, State::Resolved);
    }

    #[test]
    fn annotations_are_filled() {
        let mut labels = group("cart");
        labels.insert("operation".into(), "GET /cart".into());
        assert_eq!(
            fill(
                "{{ $labels.service }} {{$labels.operation}}: {{ $value }} ({{ $labels.none }}) {{ x }}",
                Some(0.123456),
                &labels
            ),
            "cart GET /cart: 0.1235 () {{ x }}"
        );
        assert_eq!(
            fill("p99 {{ $value }}s", Some(1234.5678), &labels),
            "p99 1235s"
        );
        assert_eq!(
            fill("{{ $value }} {{ unclosed", None, &labels),
            "n/a {{ unclosed"
        );
        let mut rs = RuleSet::from(&cfg(default_rules()));
        rs.evaluate(0, 0, &[(group("cart"), 0.25)].into());
        let a = &rs.alerts[&(0, group("cart"))];
        assert_eq!(
            rs.annotations(a)["summary"],
            "cart: 0.2500 of its spans fail"
        );
        assert_eq!(Severity::Critical.weight(), 1.0);
    }
}

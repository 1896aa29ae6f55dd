//! `alerting:` — rules over the analysis signals, their lifecycle, correlation into
//! incidents, and notification (Alertmanager's route, receivers, inhibition and silences).
//!
//! The structs are the reference of every option; `config/sieve.yaml` shows them with the
//! default rule set. Rules are evaluated, and alerts notified, by [`crate::stages::alerting`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, duration, error_at, invalid_at};
use crate::alerts::detect::{
    Cusum, Detector, Direction, Dynamic, Ewma, PageHinkley, Percentile, RateOfChange, Seasonal,
    Spc, Static,
};
use crate::alerts::notify::Matcher;
use crate::alerts::rules::{RuleParams, RuleSet, Weights};
use crate::alerts::signal::Signal;

/// `alerting:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alerting {
    /// `false` turns rule evaluation and notification off. Default true.
    pub enabled: bool,
    /// Event time between evaluations of every rule. Default 10s.
    #[serde(with = "duration")]
    pub evaluation_interval: Duration,
    /// How late data may arrive: evaluation runs this far behind the newest data's time.
    /// Default 30s.
    #[serde(with = "duration")]
    pub lateness: Duration,
    /// Where links in notifications point (the query API). Default `http://127.0.0.1:4320`.
    pub external_url: String,
    /// How firing alerts are grouped into incidents.
    pub correlation: Correlation,
    /// priority = severity·w_severity + business_impact·w_impact + urgency·w_urgency.
    pub priority_weights: PriorityWeights,
    /// The rules. Default: error rate, latency anomaly (EWMA), log surge (CUSUM), new
    /// error-level log cluster.
    pub rules: Vec<Rule>,
    /// Where notifications go.
    pub receivers: Vec<Receiver>,
    /// How alerts are grouped into notifications.
    pub route: Route,
    /// Alertmanager-style inhibition.
    pub inhibit_rules: Vec<InhibitRule>,
    /// Silences: matching alerts are not notified between `starts_at` and `ends_at`.
    pub silences: Vec<SilenceConfig>,
}

impl Default for Alerting {
    fn default() -> Self {
        Alerting {
            enabled: true,
            evaluation_interval: Duration::from_secs(10),
            lateness: Duration::from_secs(30),
            external_url: "http://127.0.0.1:4320".into(),
            correlation: Correlation::default(),
            priority_weights: PriorityWeights::default(),
            rules: default_rules(),
            receivers: Vec::new(),
            route: Route::default(),
            inhibit_rules: Vec::new(),
            silences: Vec::new(),
        }
    }
}

/// `alerting.correlation:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Correlation {
    /// Alerts starting within this of each other may share an incident. Default 10m.
    #[serde(with = "duration")]
    pub window: Duration,
    /// An incident takes no alert starting later than this after its first. Default 4h.
    #[serde(with = "duration")]
    pub max_span: Duration,
    /// Pearson correlation of two alerts' signals that relates them (and lets an alert that
    /// outranks another suppress it). Default 0.8.
    pub tau: f64,
    /// An incident none of whose alerts fires resolves after this long (as of when its
    /// last alert stopped); a related alert firing before then continues it. Default 5m.
    #[serde(with = "duration")]
    pub resolve_after: Duration,
}

impl Default for Correlation {
    fn default() -> Self {
        Correlation {
            window: Duration::from_secs(600),
            max_span: Duration::from_secs(4 * 3600),
            tau: 0.8,
            resolve_after: Duration::from_secs(300),
        }
    }
}

/// `alerting.priority_weights:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PriorityWeights {
    /// Weight of the severity term (critical 1.0, warning 0.6, info 0.3). Default 0.5.
    pub severity: f64,
    /// Weight of a rule's `business_impact`. Default 0.3.
    pub business_impact: f64,
    /// Weight of a rule's `urgency`. Default 0.2.
    pub urgency: f64,
}

impl Default for PriorityWeights {
    fn default() -> Self {
        PriorityWeights {
            severity: 0.5,
            business_impact: 0.3,
            urgency: 0.2,
        }
    }
}

/// How bad an alert is.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Pages someone.
    Critical,
    /// Needs a look soon (the default).
    #[default]
    Warning,
    /// For the record.
    Info,
}

impl Severity {
    /// Its weight in the priority.
    pub fn weight(self) -> f64 {
        match self {
            Severity::Critical => 1.0,
            Severity::Warning => 0.6,
            Severity::Info => 0.3,
        }
    }

    /// The `severity` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// A detector and its parameters (`type:` picks it).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DetectorConfig {
    /// `x > above` or `x < below`.
    Static {
        /// Anomalous above this value.
        above: Option<f64>,
        /// Anomalous below this value.
        below: Option<f64>,
    },
    /// |x − μ| > k·σ over the last `window` evaluations.
    Dynamic {
        /// Evaluations in the moving baseline.
        window: usize,
        /// Width of the band, in σ.
        k: f64,
    },
    /// baseline(t mod period) ± k·σ.
    Seasonal {
        /// The season, e.g. `1d` or `1w`.
        #[serde(with = "duration")]
        period: Duration,
        /// Width of the band around the seasonal baseline, in σ.
        k: f64,
    },
    /// Above the `q` quantile of the last `window` evaluations.
    Percentile {
        /// Evaluations the quantile is taken over.
        window: usize,
        /// The quantile, 0..1.
        q: f64,
    },
    /// |dx/dt| above `max_per_second`.
    RateOfChange {
        /// The largest |dx/dt| that is normal.
        max_per_second: f64,
    },
    /// Outside μ ± 3σ of the warm-up. `sigma_floor` (default 0.1): σ is taken as at least
    /// this fraction of |μ|, so shifts under about that share of the baseline never alert
    /// (a series nearly flat while learnt, such as a percentile read from histogram buckets,
    /// would otherwise alert on its next bucket).
    Spc {
        /// Evaluations learnt from before it judges.
        warmup: usize,
        /// σ is taken as at least this fraction of |μ| (default 0.1).
        #[serde(default = "default_sigma_floor")]
        sigma_floor: f64,
    },
    /// EWMA chart with smoothing `lambda` and width `l` (σ), after `warmup` evaluations;
    /// `sigma_floor` as for `spc`.
    Ewma {
        /// Smoothing, 0..=1 (weight of the newest value).
        lambda: f64,
        /// Control-limit width, in σ.
        l: f64,
        /// Evaluations learnt from before it judges.
        warmup: usize,
        /// σ is taken as at least this fraction of |μ| (default 0.1).
        #[serde(default = "default_sigma_floor")]
        sigma_floor: f64,
    },
    /// CUSUM with reference `k` and decision interval `h` (σ), after `warmup`;
    /// `sigma_floor` as for `spc`; `direction`: both (default), up or down.
    Cusum {
        /// Reference value (allowed slack), in σ.
        k: f64,
        /// Decision interval, in σ.
        h: f64,
        /// Evaluations learnt from before it judges.
        warmup: usize,
        /// σ is taken as at least this fraction of |μ| (default 0.1).
        #[serde(default = "default_sigma_floor")]
        sigma_floor: f64,
        /// `both` (default), `up` or `down`.
        #[serde(default)]
        direction: Direction,
    },
    /// Page-Hinkley with tolerance `delta` and threshold `lambda`, after `warmup`.
    PageHinkley {
        /// Tolerated drift per evaluation.
        delta: f64,
        /// The alarm threshold on the cumulative deviation.
        lambda: f64,
        /// Evaluations learnt from before it judges.
        warmup: usize,
    },
}

impl DetectorConfig {
    /// The detector it configures (`step`: the evaluation interval, seconds).
    pub fn build(&self, step: f64) -> Box<dyn Detector> {
        match self {
            DetectorConfig::Static { above, below } => Box::new(Static::new(*above, *below, 0)),
            DetectorConfig::Dynamic { window, k } => Box::new(Dynamic::new(*window, *k)),
            DetectorConfig::Seasonal { period, k } => {
                Box::new(Seasonal::new(period.as_secs_f64(), step.max(1e-9), *k, 2))
            }
            DetectorConfig::Percentile { window, q } => {
                Box::new(Percentile::new(*window, *q, false))
            }
            DetectorConfig::RateOfChange { max_per_second } => {
                Box::new(RateOfChange::new(*max_per_second))
            }
            DetectorConfig::Spc {
                warmup,
                sigma_floor,
            } => Box::new(Spc::new(*warmup).with_sigma_floor(*sigma_floor)),
            DetectorConfig::Ewma {
                lambda,
                l,
                warmup,
                sigma_floor,
            } => Box::new(Ewma::new(*lambda, *l, *warmup).with_sigma_floor(*sigma_floor)),
            DetectorConfig::Cusum {
                k,
                h,
                warmup,
                sigma_floor,
                direction,
            } => Box::new(
                Cusum::new(*k, *h, *warmup)
                    .with_sigma_floor(*sigma_floor)
                    .with_direction(*direction),
            ),
            DetectorConfig::PageHinkley {
                delta,
                lambda,
                warmup,
            } => Box::new(PageHinkley::new(*delta, *lambda, *warmup)),
        }
    }
}

/// One rule: a signal per group, judged by a detector, held `for` before it fires.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The alert's `alertname`.
    pub name: String,
    /// span.error_rate, span.latency_p95, span.latency_p99, span.calls, apdex,
    /// slo.burn_rate, slo.burn_multiwindow, log.cluster_rate, log.new_cluster or
    /// bottleneck.share_change.
    #[serde(deserialize_with = "signal")]
    pub signal: Signal,
    /// Labels an alert is kept per: `service`, `operation` (span and bottleneck signals) or
    /// `cluster` (log signals). Default `[service]`.
    #[serde(default = "default_group_by")]
    pub group_by: Vec<String>,
    /// The window each evaluation computes the signal over. Default 1m.
    #[serde(default = "default_window", with = "duration")]
    pub window: Duration,
    /// The detector that judges each evaluation's value (`type:` picks it).
    pub detector: DetectorConfig,
    /// How long the detector must say anomalous before the alert fires. Default 0s.
    #[serde(default, rename = "for", with = "duration")]
    pub for_: Duration,
    /// `critical`, `warning` (default) or `info`: the `severity` label and the priority.
    #[serde(default)]
    pub severity: Severity,
    /// 0..=1; enters the priority. Default 0.5.
    #[serde(default = "half")]
    pub business_impact: f64,
    /// 0..=1; enters the priority. Default 0.5.
    #[serde(default = "half")]
    pub urgency: f64,
    /// `summary`, `description`...; `{{ $value }}` and `{{ $labels.NAME }}` are replaced.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// For `apdex`: the target T. Default 500ms.
    #[serde(default = "default_apdex", with = "duration")]
    pub apdex_target: Duration,
    /// For `slo.burn_rate` and `slo.burn_multiwindow`: the objective. Default 0.999.
    #[serde(default = "default_objective")]
    pub objective: f64,
    /// For a latency SLO (`slo.burn_rate`, `slo.burn_multiwindow`): calls slower than this
    /// are bad (errors otherwise).
    #[serde(default, with = "duration::option")]
    pub latency_threshold: Option<Duration>,
    /// For log signals: only clusters whose records reach this severity (`error`, `warn`...).
    #[serde(default)]
    pub min_log_severity: Option<String>,
}

fn default_sigma_floor() -> f64 {
    0.1
}

/// A rule's `signal:`, parsed once when the file is read.
fn signal<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Signal, D::Error> {
    let name = String::deserialize(d)?;
    Signal::parse(&name).ok_or_else(|| {
        let known: Vec<&str> = Signal::ALL.iter().map(|s| s.as_str()).collect();
        serde::de::Error::custom(format!(
            "unknown signal {name:?}, expected one of {}",
            known.join(", ")
        ))
    })
}

fn default_group_by() -> Vec<String> {
    vec!["service".into()]
}
fn default_window() -> Duration {
    Duration::from_secs(60)
}
fn half() -> f64 {
    0.5
}
fn default_apdex() -> Duration {
    Duration::from_millis(500)
}
fn default_objective() -> f64 {
    0.999
}

fn rule(name: &str, signal: Signal, group_by: &[&str], detector: DetectorConfig) -> Rule {
    Rule {
        name: name.into(),
        signal,
        group_by: group_by.iter().map(|s| s.to_string()).collect(),
        window: default_window(),
        detector,
        for_: Duration::ZERO,
        severity: Severity::Warning,
        business_impact: 0.5,
        urgency: 0.5,
        annotations: BTreeMap::new(),
        apdex_target: default_apdex(),
        objective: default_objective(),
        latency_threshold: None,
        min_log_severity: None,
    }
}

/// The rules that ship enabled.
pub fn default_rules() -> Vec<Rule> {
    let mut errors = rule(
        "HighErrorRate",
        Signal::SpanErrorRate,
        &["service"],
        DetectorConfig::Static {
            above: Some(0.05),
            below: None,
        },
    );
    errors.for_ = Duration::from_secs(60);
    errors.severity = Severity::Critical;
    errors.annotations.insert(
        "summary".into(),
        "{{ $labels.service }}: {{ $value }} of its spans fail".into(),
    );
    let mut latency = rule(
        "LatencyAnomaly",
        Signal::SpanLatencyP99,
        &["service", "operation"],
        DetectorConfig::Ewma {
            lambda: 0.2,
            l: 3.0,
            warmup: 30,
            sigma_floor: default_sigma_floor(),
        },
    );
    latency.for_ = Duration::from_secs(120);
    latency.annotations.insert(
        "summary".into(),
        "{{ $labels.service }} {{ $labels.operation }}: p99 {{ $value }}s, out of its usual range"
            .into(),
    );
    // CUSUM assumes independent points: windows no longer than the evaluation interval,
    // or each deviation is counted once per overlapping window.
    let mut surge = rule(
        "LogSurge",
        Signal::LogClusterRate,
        &["service", "cluster"],
        DetectorConfig::Cusum {
            k: 0.5,
            h: 8.0,
            warmup: 30,
            sigma_floor: default_sigma_floor(),
            direction: Direction::Up,
        },
    );
    surge.window = Duration::from_secs(10);
    surge.for_ = Duration::from_secs(60);
    surge.annotations.insert(
        "summary".into(),
        "{{ $labels.service }}: log cluster {{ $labels.cluster }} surges ({{ $value }}/s)".into(),
    );
    let mut new_errors = rule(
        "NewErrorLogCluster",
        Signal::LogNewCluster,
        &["service", "cluster"],
        DetectorConfig::Static {
            above: Some(0.5),
            below: None,
        },
    );
    new_errors.min_log_severity = Some("error".into());
    new_errors.annotations.insert(
        "summary".into(),
        "{{ $labels.service }}: a new kind of error log line (cluster {{ $labels.cluster }})"
            .into(),
    );
    vec![errors, latency, surge, new_errors]
}

/// A notification target: exactly one of `webhook` and `alertmanager`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receiver {
    /// The name the route refers to.
    pub name: String,
    /// POSTs Alertmanager's webhook JSON (version "4") to `url`.
    pub webhook: Option<Endpoint>,
    /// POSTs alerts to Alertmanager's `url` + `/api/v2/alerts`, re-sent while firing.
    pub alertmanager: Option<Endpoint>,
}

/// Where a receiver sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// `http://host:port/path`.
    pub url: String,
}

/// `alerting.route:` — Alertmanager's root route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Route {
    /// The receiver every group goes to (needed once receivers exist).
    pub receiver: Option<String>,
    /// Default `[alertname, service]`.
    pub group_by: Vec<String>,
    /// Default 30s.
    #[serde(with = "duration")]
    pub group_wait: Duration,
    /// Default 5m.
    #[serde(with = "duration")]
    pub group_interval: Duration,
    /// Default 4h.
    #[serde(with = "duration")]
    pub repeat_interval: Duration,
}

impl Default for Route {
    fn default() -> Self {
        Route {
            receiver: None,
            group_by: vec!["alertname".into(), "service".into()],
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
        }
    }
}

/// `alerting.inhibit_rules[]`: while an alert matching `source_matchers` fires, alerts
/// matching `target_matchers` with equal values of the `equal` labels are muted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRule {
    /// Matchers (`label="value"`, `!=`, `=~`, `!~`) an inhibiting alert satisfies.
    pub source_matchers: Vec<String>,
    /// Matchers an inhibited alert satisfies.
    pub target_matchers: Vec<String>,
    /// Labels whose values must be equal in both. Default none.
    #[serde(default)]
    pub equal: Vec<String>,
}

/// `alerting.silences[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceConfig {
    /// Matchers the silenced alerts satisfy (all of them).
    pub matchers: Vec<String>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339.
    pub ends_at: String,
    /// Why; shown with the silence.
    #[serde(default)]
    pub comment: String,
}

/// An RFC 3339 time as unix nanoseconds.
pub fn parse_rfc3339(text: &str) -> Result<u64, String> {
    humantime::parse_rfc3339_weak(text)
        .map_err(|e| format!("{text:?}: {e}"))
        .and_then(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .map_err(|_| format!("{text:?} is before 1970"))
        })
}

impl Alerting {
    /// The rules ready to evaluate, in order.
    pub fn rule_set(&self) -> RuleSet {
        let step = self.evaluation_interval.as_secs_f64();
        let rules = self
            .rules
            .iter()
            .map(|r| {
                let detector = r.detector.clone();
                RuleParams {
                    name: r.name.clone(),
                    severity: r.severity.as_str(),
                    severity_weight: r.severity.weight(),
                    business_impact: r.business_impact,
                    urgency: r.urgency,
                    for_ns: r.for_.as_nanos().min(u64::MAX as u128) as u64,
                    annotations: r.annotations.clone(),
                    detector: Box::new(move || detector.build(step)),
                }
            })
            .collect();
        RuleSet::new(
            rules,
            Weights {
                severity: self.priority_weights.severity,
                business_impact: self.priority_weights.business_impact,
                urgency: self.priority_weights.urgency,
            },
        )
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: String, reason: String| invalid_at(&key, "", reason);
        if self.evaluation_interval.is_zero() {
            return invalid(
                "alerting.evaluation_interval".into(),
                "must be longer than 0".into(),
            );
        }
        let c = &self.correlation;
        if c.window.is_zero() || c.max_span < c.window {
            return invalid(
                "alerting.correlation".into(),
                "window must be > 0 and max_span at least window".into(),
            );
        }
        if !(-1.0..=1.0).contains(&c.tau) {
            return invalid(
                "alerting.correlation.tau".into(),
                format!("{} is outside [-1, 1]", c.tau),
            );
        }
        for (i, r) in self.rules.iter().enumerate() {
            r.validate(&format!("alerting.rules[{i}]"))?;
            if self.rules[..i].iter().any(|o| o.name == r.name) {
                return invalid(
                    format!("alerting.rules[{i}].name"),
                    format!("{:?} is used by another rule", r.name),
                );
            }
        }
        for (i, r) in self.receivers.iter().enumerate() {
            let key = format!("alerting.receivers[{i}]");
            if r.name.is_empty() || self.receivers[..i].iter().any(|o| o.name == r.name) {
                return invalid(
                    format!("{key}.name"),
                    format!("{:?} is empty or used twice", r.name),
                );
            }
            let url = match (&r.webhook, &r.alertmanager) {
                (Some(e), None) | (None, Some(e)) => &e.url,
                _ => {
                    return invalid(key, "needs exactly one of webhook and alertmanager".into());
                }
            };
            if let Err(e) = super::http_url(url) {
                return invalid(format!("{key}.url"), e);
            }
        }
        match &self.route.receiver {
            Some(name) if !self.receivers.iter().any(|r| &r.name == name) => {
                return invalid(
                    "alerting.route.receiver".into(),
                    format!("{name:?} is not defined under alerting.receivers"),
                );
            }
            None if !self.receivers.is_empty() => {
                return invalid(
                    "alerting.route.receiver".into(),
                    "receivers are defined but the route names none".into(),
                );
            }
            _ => {}
        }
        for (i, r) in self.inhibit_rules.iter().enumerate() {
            for (side, ms) in [
                ("source_matchers", &r.source_matchers),
                ("target_matchers", &r.target_matchers),
            ] {
                for m in ms {
                    Matcher::parse(m)
                        .map_err(|e| error_at(&format!("alerting.inhibit_rules[{i}]"), side, e))?;
                }
            }
        }
        for (i, s) in self.silences.iter().enumerate() {
            let key = format!("alerting.silences[{i}]");
            for m in &s.matchers {
                Matcher::parse(m).map_err(|e| error_at(&key, "matchers", e))?;
            }
            let starts = parse_rfc3339(&s.starts_at).map_err(|e| error_at(&key, "starts_at", e))?;
            let ends = parse_rfc3339(&s.ends_at).map_err(|e| error_at(&key, "ends_at", e))?;
            if ends <= starts {
                return invalid(format!("{key}.ends_at"), "is not after starts_at".into());
            }
        }
        Ok(())
    }
}

impl Rule {
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let invalid = |k: &str, reason: String| invalid_at(key, k, reason);
        if self.name.is_empty() {
            return invalid("name", "must not be empty".into());
        }
        let signal = self.signal;
        for l in &self.group_by {
            if !signal.labels().contains(&l.as_str()) {
                return invalid(
                    "group_by",
                    format!(
                        "{l:?} is not a label of {}: use {}",
                        signal.as_str(),
                        signal.labels().join(" or ")
                    ),
                );
            }
        }
        if self.window.is_zero() {
            return invalid("window", "must be longer than 0".into());
        }
        for (k, v) in [
            ("business_impact", self.business_impact),
            ("urgency", self.urgency),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return invalid(k, format!("{v} is outside [0, 1]"));
            }
        }
        if !(self.objective > 0.0 && self.objective < 1.0) {
            return invalid("objective", format!("{} is outside (0, 1)", self.objective));
        }
        if let Some(s) = &self.min_log_severity
            && crate::otlp::parse_severity(s).is_none()
        {
            return invalid("min_log_severity", format!("unknown severity {s:?}"));
        }
        let bad = |what: &str| invalid("detector", what.to_string());
        match &self.detector {
            DetectorConfig::Static { above, below } => {
                if above.is_none() && below.is_none() {
                    return bad("a static detector needs above or below");
                }
            }
            DetectorConfig::Dynamic { window, k } => {
                if *window < 2 || *k <= 0.0 {
                    return bad("dynamic: window ≥ 2 and k > 0");
                }
            }
            DetectorConfig::Seasonal { period, k } => {
                if period.as_secs_f64() < 2.0 * self.window.as_secs_f64() || *k <= 0.0 {
                    return bad("seasonal: period at least two windows and k > 0");
                }
            }
            DetectorConfig::Percentile { window, q } => {
                if *window < 2 || !(*q > 0.0 && *q < 1.0) {
                    return bad("percentile: window ≥ 2 and q in (0, 1)");
                }
            }
            DetectorConfig::RateOfChange { max_per_second } => {
                if *max_per_second <= 0.0 {
                    return bad("rate_of_change: max_per_second > 0");
                }
            }
            DetectorConfig::Spc {
                warmup,
                sigma_floor,
            } => {
                if *warmup < 2 || !(*sigma_floor >= 0.0 && sigma_floor.is_finite()) {
                    return bad("spc: warmup ≥ 2, sigma_floor ≥ 0");
                }
            }
            DetectorConfig::Ewma {
                lambda,
                l,
                warmup,
                sigma_floor,
            } => {
                if !(*lambda > 0.0 && *lambda <= 1.0)
                    || *l <= 0.0
                    || *warmup < 2
                    || !(*sigma_floor >= 0.0 && sigma_floor.is_finite())
                {
                    return bad("ewma: lambda in (0, 1], l > 0, warmup ≥ 2, sigma_floor ≥ 0");
                }
            }
            DetectorConfig::Cusum {
                k,
                h,
                warmup,
                sigma_floor,
                direction: _,
            } => {
                if *k < 0.0
                    || *h <= 0.0
                    || *warmup < 2
                    || !(*sigma_floor >= 0.0 && sigma_floor.is_finite())
                {
                    return bad("cusum: k ≥ 0, h > 0, warmup ≥ 2, sigma_floor ≥ 0");
                }
            }
            DetectorConfig::PageHinkley {
                delta,
                lambda,
                warmup: _,
            } => {
                if *delta < 0.0 || *lambda <= 0.0 {
                    return bad("page_hinkley: delta ≥ 0, lambda > 0");
                }
            }
        }
        Ok(())
    }
}

//! `analysis:` — span metrics, the service graph, bottlenecks and log clustering, and how long
//! their figures are kept.

use super::*;

/// `analysis:` — what sieve computes from every span before sampling, and how long it keeps
/// it. The figures are time series in sled (tree `analysis`) at three resolutions, 10 s, 1 min
/// and 1 h, each kept for its own retention.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Analysis {
    /// `false` turns span metrics, the service graph and bottlenecks off. Default true.
    pub enabled: bool,
    /// A trace is complete, and its critical path is computed, once no span of it has come for
    /// this long. Default 5s.
    #[serde(with = "duration")]
    pub trace_idle: Duration,
    /// Spans held in memory while their traces assemble. Past it the oldest traces are
    /// analysed early (counted as `early`). Default 500000.
    pub max_spans: usize,
    /// Trace ids remembered after analysis, so that a late span is counted as late instead
    /// of starting a second, partial trace. Default 100000.
    pub decided_cache: usize,
    /// Overlap tolerance of the critical path, a fraction of the parent's duration (CRISP);
    /// 0 is the jaeger-ui walk. Default 0.
    pub tolerance: f64,
    /// Distinct span-metric series (service, operation, kind, status) since start. Past it new
    /// keys are counted under the series `*`/`*`. Default 10000.
    pub max_series: usize,
    /// Distinct operations tracked for bottlenecks since start, and separately distinct call
    /// paths; past it new ones are counted under `*`. Default 10000.
    pub max_operations: usize,
    /// How often the figures in memory are merged into sled. A crash loses at most this much
    /// analysis (never data). Default 5s.
    #[serde(with = "duration")]
    pub flush_interval: Duration,
    /// How long a CLIENT/SERVER or PRODUCER/CONSUMER half waits for its other half.
    /// Default 10s.
    #[serde(with = "duration")]
    pub graph_wait: Duration,
    /// Halves waiting at most; past it the oldest is counted unpaired. Default 100000.
    pub graph_max_pending: usize,
    /// Retention of the 10 s resolution, by the data's own time. Default 24h.
    #[serde(with = "duration")]
    pub retention_10s: Duration,
    /// Retention of the 1 min resolution. Default 7d.
    #[serde(with = "duration")]
    pub retention_1m: Duration,
    /// Retention of the 1 h resolution. Default 30d.
    #[serde(with = "duration")]
    pub retention_1h: Duration,
    /// Log template clustering of every log record (before sampling).
    pub logs: LogClustering,
}

/// `analysis.logs:` — every log record is assigned to a template cluster of its service
/// (`src/log_templates`), and gets the cluster's id and template as attributes before
/// it is stored and exported.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogClustering {
    /// `false` turns clustering off (records are stored and exported as they came).
    /// Default true.
    pub enabled: bool,
    /// Clusters per service; past it new kinds of lines join the service's overflow
    /// cluster. Default 2000.
    pub max_clusters: usize,
    /// Services clustered; past it new services share the service `*`. Default 1000.
    pub max_services: usize,
    /// Extra regexes: a token piece matching one is a variable (`<*>`), on top of the
    /// built-in masks (numbers, hex, paths, URLs, e-mails, hosts, timestamps...).
    pub patterns: Vec<String>,
    /// Attribute carrying the cluster id (an integer). Default `log.template.id`.
    pub template_id_attribute: String,
    /// Attribute carrying the template text. Default `log.template`.
    pub template_attribute: String,
}

impl Default for LogClustering {
    fn default() -> Self {
        LogClustering {
            enabled: true,
            max_clusters: 2000,
            max_services: 1000,
            patterns: Vec::new(),
            template_id_attribute: "log.template.id".into(),
            template_attribute: "log.template".into(),
        }
    }
}

impl LogClustering {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| invalid_at("analysis.logs", key, reason);
        if self.max_clusters == 0 {
            return invalid("max_clusters", "must be at least 1".into());
        }
        if self.max_services == 0 {
            return invalid("max_services", "must be at least 1".into());
        }
        for (i, p) in self.patterns.iter().enumerate() {
            if let Err(e) = regex::Regex::new(p) {
                return invalid(&format!("patterns[{i}]"), format!("{p:?}: {e}"));
            }
        }
        for (key, v) in [
            ("template_id_attribute", &self.template_id_attribute),
            ("template_attribute", &self.template_attribute),
        ] {
            if v.is_empty() {
                return invalid(key, "must not be empty".into());
            }
        }
        if self.template_id_attribute == self.template_attribute {
            return invalid(
                "template_attribute",
                "must differ from template_id_attribute".into(),
            );
        }
        Ok(())
    }
}

impl Default for Analysis {
    fn default() -> Self {
        Analysis {
            enabled: true,
            trace_idle: Duration::from_secs(5),
            max_spans: 500_000,
            decided_cache: 100_000,
            tolerance: 0.0,
            max_series: 10_000,
            max_operations: 10_000,
            flush_interval: Duration::from_secs(5),
            graph_wait: Duration::from_secs(10),
            graph_max_pending: 100_000,
            retention_10s: Duration::from_secs(24 * 3600),
            retention_1m: Duration::from_secs(7 * 24 * 3600),
            retention_1h: Duration::from_secs(30 * 24 * 3600),
            logs: LogClustering::default(),
        }
    }
}

impl Analysis {
    /// Retention per resolution, finest first.
    pub fn retentions(&self) -> [Duration; 3] {
        [self.retention_10s, self.retention_1m, self.retention_1h]
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| invalid_at("analysis", key, reason);
        if !(0.0..1.0).contains(&self.tolerance) {
            return invalid("tolerance", format!("{} is outside [0, 1)", self.tolerance));
        }
        for (key, v) in [
            ("max_spans", self.max_spans),
            ("decided_cache", self.decided_cache),
            ("max_series", self.max_series),
            ("max_operations", self.max_operations),
            ("graph_max_pending", self.graph_max_pending),
        ] {
            if v == 0 {
                return invalid(key, "must be at least 1".into());
            }
        }
        for (key, v) in [
            ("trace_idle", self.trace_idle),
            ("flush_interval", self.flush_interval),
            ("graph_wait", self.graph_wait),
        ] {
            if v.is_zero() {
                return invalid(key, "must be longer than 0".into());
            }
        }
        self.logs.validate()?;
        let r = self.retentions();
        let names = ["retention_10s", "retention_1m", "retention_1h"];
        let steps = [10u64, 60, 3600];
        for i in 0..3 {
            if r[i].as_secs() < steps[i] {
                return invalid(
                    names[i],
                    format!("must be at least one bucket ({}s)", steps[i]),
                );
            }
        }
        Ok(())
    }
}

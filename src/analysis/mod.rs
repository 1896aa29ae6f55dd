//! Pure analysis over telemetry: no I/O, no tokio. Each module documents its algorithm and
//! invariants and is tested against hand-computed vectors and proptest. The pipeline wires
//! them to the intake and to sled in [`crate::analyzer`].
//!
//! - [`alert`]: alert lifecycle (pending, firing, resolved, flap damping), Alertmanager
//!   fingerprints, the event-time watermark.
//! - [`correlate`]: firing alerts into incidents (time, topology, signal correlation),
//!   suppression, root-cause ranking with evidence.
//! - [`critical_path`]: the critical path of one trace (jaeger-ui's walk, CRISP's tolerance).
//! - [`bottleneck`]: folding critical paths into per-operation and per-call-path
//!   contributions, ranking against a baseline, what-if projection.
//! - [`detect`]: anomaly detectors over a series (static, dynamic, seasonal, percentile,
//!   rate of change, SPC, EWMA, CUSUM, Page-Hinkley) and SLO signals (Apdex, burn rates).
//! - [`histogram`]: mergeable log-linear duration histograms (percentiles, downsampling).
//! - [`log_cluster`]: log template clustering (masking, signatures, distinct-word slots,
//!   alignment of variable-length templates).
//! - [`notify`]: Alertmanager's matchers, silences, inhibition, grouping intervals and
//!   webhook payload.
//! - [`rules`]: rule evaluation: a detector and a lifecycle per rule and label group,
//!   priorities, annotation templates.
//! - [`series`]: the mergeable cells every analysis time series is made of, and their keys.
//! - [`signal`]: the values alert rules watch (error rate, latency percentiles, calls,
//!   Apdex, burn rate, log cluster rates, bottleneck share change) from series cells.
//! - [`service_graph`]: edges between services from CLIENT/SERVER and PRODUCER/CONSUMER pairs.

pub mod alert;
pub mod bottleneck;
pub mod correlate;
pub mod critical_path;
pub mod detect;
pub mod histogram;
pub mod log_cluster;
pub mod notify;
pub mod rules;
pub mod series;
pub mod service_graph;
pub mod signal;

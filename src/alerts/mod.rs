//! What alerting computes, as pure functions over series cells and alert states: no I/O, no
//! clock (times are arguments), no tokio. The alerting engine ([`crate::stages::alerting`])
//! drives them at the event-time watermark.
//!
//! - [`signal`]: the values alert rules watch (error rate, latency percentiles, calls,
//!   Apdex, burn rate, log cluster rates, bottleneck share change) from series cells.
//! - [`detect`]: anomaly detectors over a series (static, dynamic, seasonal, percentile,
//!   rate of change, SPC, EWMA, CUSUM, Page-Hinkley) and SLO signals (Apdex, burn rates).
//! - [`rules`]: rule evaluation: a detector and a lifecycle per rule and label group,
//!   priorities, annotation templates.
//! - [`alert`]: alert lifecycle (pending, firing, resolved, flap damping), Alertmanager
//!   fingerprints, the event-time watermark.
//! - [`correlate`]: firing alerts into incidents (time, topology, signal correlation),
//!   suppression, root-cause ranking with evidence.
//! - [`notify`]: Alertmanager's matchers, silences, inhibition, grouping intervals and
//!   webhook payload.

pub mod alert;
pub mod correlate;
pub mod detect;
pub mod notify;
pub mod rules;
pub mod signal;

//! The receiver's own counters per transport (`grpc`, `http`) and signal, exposed on
//! `/metrics` with the Collector's own-telemetry names (`otelcol_receiver_accepted_spans_total`
//! and so on, labels `receiver="otlp"`, `transport`), so a dashboard built for the
//! Collector's receivers reads sieve unchanged.
//!
//! What each counts, per item (span, log record, metric data point):
//! - **accepted**: stored and acknowledged;
//! - **refused**: in a decoded request the pipeline refused retryably (full intake, memory
//!   limiter, a full queue or buffer, a store error): the client sends it again;
//! - **failed**: rejected by validation or already past retention (in `partial_success`):
//!   not stored and not to be retried.
//!
//! A request refused before it is decoded has no item count; it is counted per request
//! (`sieve_receiver_transport_requests_total{outcome="refused"}`), as are undecodable and
//! too-large ones (`outcome="invalid"`) and answered ones (`outcome="ok"`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::otlp::Signal;

/// The wire a request came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    Http,
}

impl Transport {
    pub const ALL: [Transport; 2] = [Transport::Grpc, Transport::Http];

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Http => "http",
        }
    }
}

/// How a request ended, for the per-request counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Refused,
    Invalid,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Ok, Outcome::Refused, Outcome::Invalid];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Invalid => "invalid",
        }
    }
}

#[derive(Default)]
struct Cell {
    accepted: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    requests: [AtomicU64; 3],
}

/// One snapshot of a transport × signal cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub accepted: u64,
    pub refused: u64,
    pub failed: u64,
    /// Requests by [`Outcome`], in [`Outcome::ALL`] order.
    pub requests: [u64; 3],
}

/// Counters per transport × signal.
#[derive(Default)]
pub struct ReceiverCounters {
    cells: [[Cell; 3]; 2],
}

fn signal_index(s: Signal) -> usize {
    match s {
        Signal::Traces => 0,
        Signal::Logs => 1,
        Signal::Metrics => 2,
    }
}

impl ReceiverCounters {
    fn cell(&self, t: Transport, s: Signal) -> &Cell {
        &self.cells[t as usize][signal_index(s)]
    }

    /// A request answered: `accepted` items stored, `failed` rejected or expired.
    pub fn answered(&self, t: Transport, s: Signal, accepted: u64, failed: u64) {
        let c = self.cell(t, s);
        c.accepted.fetch_add(accepted, Relaxed);
        c.failed.fetch_add(failed, Relaxed);
        c.requests[Outcome::Ok as usize].fetch_add(1, Relaxed);
    }

    /// A decoded request refused retryably: `refused` items to be sent again, `failed`
    /// rejected by validation before the refusal.
    pub fn refused(&self, t: Transport, s: Signal, refused: u64, failed: u64) {
        let c = self.cell(t, s);
        c.refused.fetch_add(refused, Relaxed);
        c.failed.fetch_add(failed, Relaxed);
        c.requests[Outcome::Refused as usize].fetch_add(1, Relaxed);
    }

    /// A request that ended before decoding: refused retryably, or invalid.
    pub fn request(&self, t: Transport, s: Signal, outcome: Outcome) {
        self.cell(t, s).requests[outcome as usize].fetch_add(1, Relaxed);
    }

    pub fn get(&self, t: Transport, s: Signal) -> Counts {
        let c = self.cell(t, s);
        Counts {
            accepted: c.accepted.load(Relaxed),
            refused: c.refused.load(Relaxed),
            failed: c.failed.load(Relaxed),
            requests: [
                c.requests[0].load(Relaxed),
                c.requests[1].load(Relaxed),
                c.requests[2].load(Relaxed),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_separate_per_transport_and_signal() {
        let c = ReceiverCounters::default();
        c.answered(Transport::Grpc, Signal::Traces, 5, 1);
        c.refused(Transport::Http, Signal::Traces, 3, 0);
        c.request(Transport::Http, Signal::Logs, Outcome::Invalid);
        assert_eq!(
            c.get(Transport::Grpc, Signal::Traces),
            Counts {
                accepted: 5,
                refused: 0,
                failed: 1,
                requests: [1, 0, 0]
            }
        );
        assert_eq!(
            c.get(Transport::Http, Signal::Traces),
            Counts {
                accepted: 0,
                refused: 3,
                failed: 0,
                requests: [0, 1, 0]
            }
        );
        assert_eq!(c.get(Transport::Http, Signal::Logs).requests, [0, 0, 1]);
        assert_eq!(c.get(Transport::Grpc, Signal::Metrics), Counts::default());
    }
}

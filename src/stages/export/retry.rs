//! When to try again: the backoff formula and the circuit breaker. Pure state machines over
//! `tokio::time::Instant`, so tests drive them with tokio's paused clock.
//!
//! **Backoff.** Attempt `n` (0-based) of a batch waits `d = min(max_interval,
//! initial_interval · multiplier^n)` (multiplier 2 by default) plus a jitter drawn uniformly from `[0, randomization_factor · d]`,
//! unless the downstream named a delay (gRPC RetryInfo, HTTP Retry-After), which is honoured
//! as given. There is no elapsed-time limit.
//!
//! **Circuit breaker**, per exporter, count-based sliding window:
//! - *closed*: everything is sent; outcomes go into a window of the last `window` attempts.
//!   Once it holds `min_requests` outcomes and the share of failures is `failure_rate` or
//!   more, the breaker *opens*.
//! - *open*: nothing is sent until `cool_down` has passed; then *half-open*.
//! - *half-open*: one probe is let through, the other senders wait. Its success closes the
//!   breaker with an empty window; its failure opens it for another `cool_down`.
//!
//! Only retryable failures count as failures: a permanent rejection is the data's fault, not
//! the downstream's health.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::config;

/// The delay before retry `attempt` (0 = the first retry), with `unit` a uniform draw from
/// [0, 1) for the jitter.
pub fn backoff(cfg: &config::RetryOnFailure, attempt: u32, unit: f64) -> Duration {
    let growth = cfg.multiplier.max(1.0).powi(attempt.min(1000) as i32);
    let secs = cfg.initial_interval.as_secs_f64() * growth;
    let base = if secs.is_finite() && secs < cfg.max_interval.as_secs_f64() {
        Duration::from_secs_f64(secs)
    } else {
        cfg.max_interval
    };
    base + base.mul_f64(cfg.randomization_factor * unit.clamp(0.0, 1.0))
}

/// The breaker's state, as GetStats and the log show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// Recent outcomes, `true` = failure.
    window: VecDeque<bool>,
    /// While open: when the cool-down ends.
    open_until: Instant,
    /// While half-open: the probe is out.
    probing: bool,
}

/// One exporter's circuit breaker.
#[derive(Debug)]
pub struct Breaker {
    cfg: config::CircuitBreaker,
    inner: Mutex<Inner>,
}

/// Permission to send, from [`Breaker::try_acquire`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// This request is the half-open probe: its outcome decides the state.
    pub probe: bool,
    /// The state change that granting it made (open → half-open).
    pub transition: Option<Transition>,
}

/// A state change, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    /// Failures in the window when it opened.
    pub failures: usize,
    pub window: usize,
}

impl Breaker {
    pub fn new(cfg: config::CircuitBreaker) -> Breaker {
        Breaker {
            cfg,
            inner: Mutex::new(Inner {
                state: State::Closed,
                window: VecDeque::new(),
                open_until: Instant::now(),
                probing: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self) -> State {
        self.lock().state
    }

    /// May a request go now? `Ok(pass)` lets it go (`pass.probe` when it is the half-open
    /// probe, with the open → half-open change); `Err(wait)` says how long to wait before
    /// asking again.
    pub fn try_acquire(&self, now: Instant) -> Result<Pass, Duration> {
        let mut s = self.lock();
        match s.state {
            State::Closed => Ok(Pass::default()),
            State::Open if now >= s.open_until => {
                s.state = State::HalfOpen;
                s.probing = true;
                Ok(Pass {
                    probe: true,
                    transition: Some(Transition {
                        from: State::Open,
                        to: State::HalfOpen,
                        failures: 0,
                        window: 0,
                    }),
                })
            }
            State::Open => Err(s.open_until - now),
            State::HalfOpen if !s.probing => {
                s.probing = true;
                Ok(Pass {
                    probe: true,
                    transition: None,
                })
            }
            // The probe is out: ask again shortly.
            State::HalfOpen => Err(Duration::from_millis(50).min(self.cfg.cool_down)),
        }
    }

    /// Records an attempt's outcome (`failed` = a retryable failure; `probe` = it went with
    /// the half-open probe's pass); returns a state change. While half-open only the probe's
    /// outcome counts: a late answer to a request sent before the breaker opened says nothing
    /// about the downstream now.
    pub fn record(&self, failed: bool, probe: bool, now: Instant) -> Option<Transition> {
        let mut s = self.lock();
        match s.state {
            State::HalfOpen if !probe => None,
            State::HalfOpen => {
                s.probing = false;
                s.window.clear();
                if failed {
                    s.state = State::Open;
                    s.open_until = now + self.cfg.cool_down;
                    Some(Transition {
                        from: State::HalfOpen,
                        to: State::Open,
                        failures: 1,
                        window: 1,
                    })
                } else {
                    s.state = State::Closed;
                    Some(Transition {
                        from: State::HalfOpen,
                        to: State::Closed,
                        failures: 0,
                        window: 1,
                    })
                }
            }
            // A late outcome of a request sent before the breaker opened.
            State::Open => None,
            State::Closed => {
                s.window.push_back(failed);
                while s.window.len() > self.cfg.window {
                    s.window.pop_front();
                }
                let failures = s.window.iter().filter(|f| **f).count();
                let n = s.window.len();
                if n >= self.cfg.min_requests && failures as f64 >= self.cfg.failure_rate * n as f64
                {
                    s.state = State::Open;
                    s.open_until = now + self.cfg.cool_down;
                    s.window.clear();
                    Some(Transition {
                        from: State::Closed,
                        to: State::Open,
                        failures,
                        window: n,
                    })
                } else {
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(initial: u64, max: u64, factor: f64) -> config::RetryOnFailure {
        config::RetryOnFailure {
            initial_interval: Duration::from_secs(initial),
            max_interval: Duration::from_secs(max),
            randomization_factor: factor,
            ..Default::default()
        }
    }

    #[test]
    fn backoff_doubles_to_the_cap_plus_jitter() {
        let c = retry(5, 30, 0.2);
        let secs = |a, u| backoff(&c, a, u).as_secs_f64();
        assert_eq!(secs(0, 0.0), 5.0);
        assert_eq!(secs(1, 0.0), 10.0);
        assert_eq!(secs(2, 0.0), 20.0);
        assert_eq!(secs(3, 0.0), 30.0);
        assert_eq!(secs(200, 0.0), 30.0);
        assert!((secs(1, 0.5) - 11.0).abs() < 1e-9);
        assert!((secs(9, 0.999) - 35.994).abs() < 1e-6);
        // No jitter configured: exact.
        assert_eq!(backoff(&retry(1, 8, 0.0), 2, 0.9), Duration::from_secs(4));
        // The Collector's multiplier: 5s, 7.5s, 11.25s, ...
        let c = config::RetryOnFailure {
            multiplier: 1.5,
            ..retry(5, 30, 0.0)
        };
        assert_eq!(backoff(&c, 1, 0.0), Duration::from_millis(7500));
        assert_eq!(backoff(&c, 2, 0.0), Duration::from_millis(11250));
        assert_eq!(backoff(&c, 10, 0.0), Duration::from_secs(30));
    }

    fn breaker() -> Breaker {
        Breaker::new(config::CircuitBreaker {
            window: 4,
            min_requests: 3,
            failure_rate: 0.5,
            cool_down: Duration::from_secs(10),
        })
    }

    #[test]
    fn opens_on_failure_rate_and_recovers_through_one_probe() {
        let b = breaker();
        let t0 = Instant::now();
        assert_eq!(b.record(true, false, t0), None);
        assert_eq!(b.record(false, false, t0), None);
        // 2 failures of 3 ≥ 50%: open.
        let t = b.record(true, false, t0).expect("opens");
        assert_eq!(
            (t.from, t.to, t.failures, t.window),
            (State::Closed, State::Open, 2, 3)
        );
        assert_eq!(
            b.try_acquire(t0 + Duration::from_secs(4)),
            Err(Duration::from_secs(6))
        );
        // Cool-down over: one probe, others wait.
        let probe = b.try_acquire(t0 + Duration::from_secs(10)).expect("probe");
        assert!(probe.probe);
        assert_eq!(probe.transition.map(|t| t.to), Some(State::HalfOpen));
        assert!(b.try_acquire(t0 + Duration::from_secs(10)).is_err());
        // A late answer to a request sent while closed does not decide the probe.
        assert_eq!(b.record(false, false, t0 + Duration::from_secs(10)), None);
        assert_eq!(b.state(), State::HalfOpen);
        // The probe fails: open again for a whole cool-down.
        let t = b
            .record(true, true, t0 + Duration::from_secs(11))
            .expect("reopens");
        assert_eq!(t.to, State::Open);
        assert!(b.try_acquire(t0 + Duration::from_secs(20)).is_err());
        assert!(b.try_acquire(t0 + Duration::from_secs(21)).is_ok());
        let t = b
            .record(false, true, t0 + Duration::from_secs(21))
            .expect("closes");
        assert_eq!((t.from, t.to), (State::HalfOpen, State::Closed));
        assert_eq!(
            b.try_acquire(t0 + Duration::from_secs(21)),
            Ok(Pass::default())
        );
    }

    #[test]
    fn stays_closed_below_the_rate_and_the_minimum() {
        let b = breaker();
        let t0 = Instant::now();
        // One failure alone is under min_requests.
        assert_eq!(b.record(true, false, t0), None);
        // The window slides: old failures leave it.
        for _ in 0..10 {
            assert_eq!(b.record(false, false, t0), None);
        }
        assert_eq!(b.record(true, false, t0), None);
        assert_eq!(b.state(), State::Closed);
    }
}

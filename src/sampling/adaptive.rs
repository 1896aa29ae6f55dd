//! Adaptive sampling, after Jaeger's adaptive sampler: a probability per (service,
//! operation) steered towards a target of kept traces per second.
//!
//! Each `interval`, for every (service, operation) seen:
//! `p_new = p_old × target / observed`, where `observed` is the kept traces per second over
//! the interval; no change while `observed` is within ±30% of the target; an increase is
//! capped at +100% per interval (`p_new ≤ 2·p_old`); the result is clamped to
//! `[min_probability, 1]`. An operation with no kept traces in an interval doubles (capped).
//!
//! Within an interval the probability is fixed and decisions are the consistent threshold
//! rule of [`super::head`] (keep iff the trace id's 56-bit randomness ≥ T(p)), so instances
//! with the same probabilities decide alike and kept spans carry `ot=th:` for adjusted counts.
//! The (service, operation) of a trace is its root span's when the root is in the request,
//! else that of its first span whose parent is not in the request (the local entry point).
//!
//! The controller is a pure state machine over an explicit clock ([`Controller::observe`],
//! [`Controller::roll`]); the processor wraps it in a mutex.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Most (service, operation) pairs with their own probability.
pub const MAX_KEYS: usize = 10_000;

fn overflow_key() -> (String, String) {
    ("*".to_string(), "*".to_string())
}

/// Tolerance band around the target within which the probability is left alone.
pub const TOLERANCE: f64 = 0.3;
/// Largest increase per interval, as a factor.
pub const MAX_INCREASE: f64 = 2.0;

/// One step of the rule.
pub fn next_probability(p_old: f64, target: f64, observed: f64, min_p: f64) -> f64 {
    let p = if observed <= 0.0 {
        p_old * MAX_INCREASE
    } else if (observed - target).abs() <= TOLERANCE * target {
        p_old
    } else {
        (p_old * target / observed).min(p_old * MAX_INCREASE)
    };
    p.clamp(min_p, 1.0)
}

/// Per-key probabilities and the kept-trace counts of the current interval.
#[derive(Debug)]
pub struct Controller {
    target: f64,
    interval: Duration,
    initial: f64,
    min_p: f64,
    started: Instant,
    probs: HashMap<(String, String), f64>,
    kept: HashMap<(String, String), u64>,
    /// Observed kept traces per second of the last completed interval, per key.
    pub last_observed: HashMap<(String, String), f64>,
}

impl Controller {
    pub fn new(
        target: f64,
        interval: Duration,
        initial: f64,
        min_p: f64,
        now: Instant,
    ) -> Controller {
        Controller {
            target,
            interval,
            initial,
            min_p,
            started: now,
            probs: HashMap::new(),
            kept: HashMap::new(),
            last_observed: HashMap::new(),
        }
    }

    /// The probability for a key now.
    pub fn probability(&self, key: &(String, String)) -> f64 {
        match self.probs.get(key) {
            Some(p) => *p,
            None if self.probs.len() >= MAX_KEYS => self
                .probs
                .get(&overflow_key())
                .copied()
                .unwrap_or(self.initial),
            None => self.initial,
        }
    }

    /// Records a kept trace for `key`. Past [`MAX_KEYS`] (service, operation) pairs, new
    /// ones share the key `("*", "*")` (an id in span names must not grow this without end).
    pub fn observe(&mut self, key: (String, String)) {
        let key = if self.probs.contains_key(&key) || self.probs.len() < MAX_KEYS {
            key
        } else {
            overflow_key()
        };
        self.probs.entry(key.clone()).or_insert(self.initial);
        *self.kept.entry(key).or_default() += 1;
    }

    /// Ends the interval if it is over: recomputes every probability. Returns whether it did.
    pub fn roll(&mut self, now: Instant) -> bool {
        let elapsed = now.duration_since(self.started);
        if elapsed < self.interval {
            return false;
        }
        let secs = elapsed.as_secs_f64().max(1e-9);
        let keys: Vec<_> = self.probs.keys().cloned().collect();
        for k in keys {
            let observed = self.kept.get(&k).copied().unwrap_or(0) as f64 / secs;
            let p = self.probability(&k);
            self.probs.insert(
                k.clone(),
                next_probability(p, self.target, observed, self.min_p),
            );
            self.last_observed.insert(k, observed);
        }
        self.kept.clear();
        self.started = now;
        true
    }

    /// Every key with its probability, sorted.
    pub fn probabilities(&self) -> Vec<((String, String), f64)> {
        let mut v: Vec<_> = self.probs.iter().map(|(k, p)| (k.clone(), *p)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_by_hand() {
        // Too many: 1.0 × 10 / 100 = 0.1.
        assert!((next_probability(1.0, 10.0, 100.0, 1e-5) - 0.1).abs() < 1e-12);
        // Within ±30% of the target: unchanged.
        assert_eq!(next_probability(0.2, 10.0, 12.9, 1e-5), 0.2);
        assert_eq!(next_probability(0.2, 10.0, 7.1, 1e-5), 0.2);
        // Too few: 0.2 × 10 / 4 = 0.5, capped at +100% → 0.4.
        assert!((next_probability(0.2, 10.0, 4.0, 1e-5) - 0.4).abs() < 1e-12);
        // 0.2 × 10 / 6 = 0.333 (under the cap).
        assert!((next_probability(0.2, 10.0, 6.0, 1e-5) - 0.2 * 10.0 / 6.0).abs() < 1e-12);
        // Nothing kept: doubles; clamped to [min, 1].
        assert_eq!(next_probability(0.3, 10.0, 0.0, 1e-5), 0.6);
        assert_eq!(next_probability(0.8, 10.0, 0.0, 1e-5), 1.0);
        assert_eq!(next_probability(1e-5, 1.0, 1e6, 1e-5), 1e-5);
    }

    #[test]
    fn controller_steps_per_interval() {
        let t0 = Instant::now();
        let mut c = Controller::new(5.0, Duration::from_secs(10), 1.0, 1e-5, t0);
        let k = ("cart".to_string(), "GET /cart".to_string());
        for _ in 0..500 {
            c.observe(k.clone()); // 50 traces/s kept at p = 1
        }
        assert!(!c.roll(t0 + Duration::from_secs(9)));
        assert_eq!(c.probability(&k), 1.0);
        assert!(c.roll(t0 + Duration::from_secs(10)));
        assert!((c.probability(&k) - 0.1).abs() < 1e-12);
        assert_eq!(c.last_observed[&k], 50.0);
        // Next interval at p = 0.1: 5.5 traces/s kept, within 30%: stays.
        for _ in 0..55 {
            c.observe(k.clone());
        }
        c.roll(t0 + Duration::from_secs(20));
        assert!((c.probability(&k) - 0.1).abs() < 1e-12);
        // Traffic stops: doubles each interval.
        c.roll(t0 + Duration::from_secs(30));
        assert!((c.probability(&k) - 0.2).abs() < 1e-12);
        // Unknown keys start at the initial probability.
        assert_eq!(c.probability(&("x".into(), "y".into())), 1.0);
    }
}

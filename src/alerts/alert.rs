//! Alert lifecycle, fingerprints and the event-time watermark.
//!
//! **Lifecycle** of one alert (one label set of one rule), driven by the rule's condition at
//! each evaluation time `t` (event time, see [`Watermark`]):
//!
//! ```text
//!   inactive ──cond──> pending ──cond held `for`──> firing ──¬cond held `resolve_after`──> resolved
//!      ^                  │                            ^                                      │
//!      └──────¬cond───────┘                            └──────────────cond────────────────────┘
//! ```
//!
//! With `for` = 0 a true condition fires at once. A firing alert resolves only after its
//! condition has been false for `resolve_after` (hysteresis); an alert that flapped (fired
//! `flap_count` times within `flap_window`) waits `flap_factor` times longer before it
//! resolves, so a condition that toggles yields one long alert instead of a notification
//! storm (the damping Alertmanager users build by hand with `keep_firing_for`). A resolved
//! alert whose condition comes back fires again at once if it resolved less than
//! `resolve_after` ago, else goes through pending.
//!
//! **Fingerprint**: Alertmanager's (Prometheus `labelSetToFingerprint`): FNV-1a 64 over the
//! label names and values sorted by name, each followed by the byte 0xff; printed as 16 hex
//! digits.
//!
//! **Watermark**: evaluation follows the data's own time, so replaying an hour takes seconds
//! and yields the alerts living through it would. The watermark is the largest event time
//! seen minus the allowed lateness; when no data comes, it advances with the wall clock from
//! where the data left it (so alerts still resolve when a service goes silent).

use std::collections::{BTreeMap, VecDeque};

/// Labels of an alert, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// Alertmanager's label-set fingerprint.
pub fn fingerprint(labels: &Labels) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (k, v) in labels {
        eat(k.as_bytes());
        eat(&[0xff]);
        eat(v.as_bytes());
        eat(&[0xff]);
    }
    h
}

/// Where an alert is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Inactive,
    Pending,
    Firing,
    Resolved,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Inactive => "inactive",
            State::Pending => "pending",
            State::Firing => "firing",
            State::Resolved => "resolved",
        }
    }
}

/// Timing of a rule's alerts (nanoseconds of event time).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub for_: u64,
    pub resolve_after: u64,
    pub flap_window: u64,
    pub flap_count: usize,
    pub flap_factor: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            for_: 0,
            resolve_after: 0,
            flap_window: 3_600_000_000_000,
            flap_count: 3,
            flap_factor: 4,
        }
    }
}

/// One alert's lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Lifecycle {
    pub state: State,
    /// When the condition became true (pending since).
    pub active_since: Option<u64>,
    /// When it last started firing (the alert's startsAt).
    pub fired_at: Option<u64>,
    /// When it resolved (endsAt).
    pub resolved_at: Option<u64>,
    /// When the condition last became false while firing.
    pub false_since: Option<u64>,
    /// Start times of recent firings (flap detection).
    pub firings: VecDeque<u64>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            state: State::Inactive,
            active_since: None,
            fired_at: None,
            resolved_at: None,
            false_since: None,
            firings: VecDeque::new(),
        }
    }
}

impl Lifecycle {
    /// Is the alert flapping at `t`?
    pub fn flapping(&self, t: u64, timing: &Timing) -> bool {
        self.firings
            .iter()
            .filter(|f| t.saturating_sub(**f) <= timing.flap_window)
            .count()
            >= timing.flap_count
    }

    fn fire(&mut self, t: u64, timing: &Timing) {
        self.state = State::Firing;
        self.fired_at = Some(t);
        self.resolved_at = None;
        self.false_since = None;
        self.firings.push_back(t);
        while self
            .firings
            .front()
            .is_some_and(|f| t.saturating_sub(*f) > timing.flap_window)
        {
            self.firings.pop_front();
        }
    }

    /// Applies the condition at event time `t`; returns the new state when it changed.
    pub fn step(&mut self, t: u64, cond: bool, timing: &Timing) -> Option<State> {
        let before = self.state;
        match (self.state, cond) {
            (State::Inactive, true) => {
                self.active_since = Some(t);
                if timing.for_ == 0 {
                    self.fire(t, timing);
                } else {
                    self.state = State::Pending;
                }
            }
            (State::Pending, true) => {
                let since = self.active_since.unwrap_or(t);
                if t.saturating_sub(since) >= timing.for_ {
                    self.fire(t, timing);
                }
            }
            (State::Pending, false) => {
                self.state = State::Inactive;
                self.active_since = None;
            }
            (State::Firing, true) => self.false_since = None,
            (State::Firing, false) => {
                let since = *self.false_since.get_or_insert(t);
                let mut hold = timing.resolve_after;
                if self.flapping(t, timing) {
                    hold = hold.max(1).saturating_mul(timing.flap_factor);
                }
                if t.saturating_sub(since) >= hold {
                    self.state = State::Resolved;
                    self.resolved_at = Some(t);
                    self.active_since = None;
                    self.false_since = None;
                }
            }
            (State::Resolved, true) => {
                let recent = self
                    .resolved_at
                    .is_some_and(|r| t.saturating_sub(r) < timing.resolve_after);
                self.active_since = Some(t);
                if timing.for_ == 0 || recent {
                    self.fire(t, timing);
                } else {
                    self.state = State::Pending;
                }
            }
            (State::Inactive | State::Resolved, false) => {}
        }
        (self.state != before).then_some(self.state)
    }
}

/// Event-time clock: the largest event time seen minus `lateness`, advanced by the wall clock
/// while no data comes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Watermark {
    pub lateness: u64,
    max_event: u64,
    wall_at_max: u64,
}

impl Watermark {
    pub fn new(lateness: u64) -> Watermark {
        Watermark {
            lateness,
            ..Watermark::default()
        }
    }

    /// Data with event time `event` arrived at wall time `wall`.
    pub fn observe(&mut self, event: u64, wall: u64) {
        if event > self.max_event {
            self.max_event = event;
            self.wall_at_max = wall;
        }
    }

    /// The largest event time seen.
    pub fn max_event(&self) -> u64 {
        self.max_event
    }

    /// The watermark at wall time `wall`: never behind the data, and moving on with the
    /// wall clock once the data stops.
    pub fn at(&self, wall: u64) -> u64 {
        if self.max_event == 0 {
            return 0;
        }
        let idle = wall.saturating_sub(self.wall_at_max);
        self.max_event
            .saturating_sub(self.lateness)
            .saturating_add(idle.saturating_sub(self.lateness))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fingerprint_is_alertmanagers() {
        // Prometheus' labelSetToFingerprint, in Python:
        // h = 0xcbf29ce484222325; for b in b"alertname\xffx\xff": h = ((h ^ b) * 0x100000001b3) % 2**64
        assert_eq!(
            format!("{:016x}", fingerprint(&labels(&[("alertname", "x")]))),
            "d240efc3896bf266"
        );
        // Order of insertion does not matter; values do.
        let a = labels(&[("service", "cart"), ("alertname", "HighErrors")]);
        let b = labels(&[("alertname", "HighErrors"), ("service", "cart")]);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(
            fingerprint(&a),
            fingerprint(&labels(&[("alertname", "HighErrors"), ("service", "cars")]))
        );
        assert_eq!(fingerprint(&Labels::new()), 0xcbf2_9ce4_8422_2325);
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn pending_then_firing_after_for_then_resolved_after_hysteresis() {
        let timing = Timing {
            for_: 60 * S,
            resolve_after: 30 * S,
            ..Timing::default()
        };
        let mut a = Lifecycle::default();
        let steps = [
            (0, true, Some(State::Pending)),
            (30, true, None),
            (60, true, Some(State::Firing)),
            (90, false, None),
            (100, true, None), // back before the hysteresis ran out: still firing
            (110, false, None),
            (140, false, Some(State::Resolved)),
            (150, true, Some(State::Firing)), // back within resolve_after of resolving
        ];
        for (t, cond, want) in steps {
            assert_eq!(a.step(t * S, cond, &timing), want, "at {t}s");
        }
        assert_eq!(a.fired_at, Some(150 * S));
        // A blip shorter than `for` never fires.
        let mut b = Lifecycle::default();
        assert_eq!(b.step(0, true, &timing), Some(State::Pending));
        assert_eq!(b.step(10 * S, false, &timing), Some(State::Inactive));
        assert_eq!(b.fired_at, None);
    }

    #[test]
    fn flapping_alerts_hold_longer() {
        let timing = Timing {
            for_: 0,
            resolve_after: 10 * S,
            flap_window: 1000 * S,
            flap_count: 3,
            flap_factor: 4,
        };
        let mut a = Lifecycle::default();
        let mut t = 0;
        // Fires and resolves twice: 10 s of false resolve it.
        for _ in 0..2 {
            assert_eq!(a.step(t * S, true, &timing), Some(State::Firing));
            a.step((t + 1) * S, false, &timing);
            assert_eq!(a.step((t + 11) * S, false, &timing), Some(State::Resolved));
            t += 100;
        }
        // The third firing makes it flap: 10 s no longer resolve it, 40 s do.
        assert_eq!(a.step(t * S, true, &timing), Some(State::Firing));
        assert!(a.flapping(t * S, &timing));
        a.step((t + 1) * S, false, &timing);
        assert_eq!(a.step((t + 11) * S, false, &timing), None);
        assert_eq!(a.step((t + 41) * S, false, &timing), Some(State::Resolved));
    }

    #[test]
    fn the_watermark_follows_data_then_the_wall_clock() {
        let mut w = Watermark::new(5 * S);
        assert_eq!(w.at(1000 * S), 0, "no data, no time");
        // An hour of data replayed in ten wall seconds: the watermark follows the data.
        for i in 0..=3600u64 {
            w.observe((1_000_000 + i) * S, (50 + i / 360) * S);
        }
        assert_eq!(w.at(60 * S), (1_000_000 + 3600 - 5) * S);
        // Late data does not move it back.
        w.observe(1_000_000 * S, 61 * S);
        assert_eq!(w.at(60 * S), (1_000_000 + 3595) * S);
        // Silence: after the lateness has passed, wall time moves it on.
        assert_eq!(w.at(64 * S), (1_000_000 + 3595) * S);
        assert_eq!(w.at(80 * S), (1_000_000 + 3595 + 15) * S);
    }
}

//! Anomaly detectors over one metric series, and the derived SLO signals.
//!
//! Every detector takes points `(t, x)` in time order ([`Detector::observe`]) and answers a
//! [`Verdict`]: whether `x` is anomalous, the limits it was judged against, and whether the
//! detector is still warming up. During warm-up (`warmup` points, at least what the method
//! needs to estimate its baseline) a detector learns and **never** alerts. Statistics come from
//! points *before* the one judged, so a spike does not widen its own limits.
//!
//! | detector | alerts when |
//! |---|---|
//! | [`Static`] | `x > above` or `x < below` |
//! | [`Dynamic`] | `|x − μ| > k·σ`, μ and σ of the last `window` points |
//! | [`Seasonal`] | `|x − μ_p| > k·σ_p`, μ_p and σ_p of past points in the same phase `p = ⌊(t mod period) / step⌋` |
//! | [`Percentile`] | `x` above the `q` quantile (or below the `1 − q` one) of the last `window` points |
//! | [`RateOfChange`] | `|x − x_prev| / Δt > max_per_second` |
//! | [`Spc`] | outside `μ ± 3σ`, μ and σ fixed from the warm-up (Shewhart chart, phase I then II) |
//! | [`Ewma`] | `Z_i = λX_i + (1−λ)Z_{i−1}`, `Z_0 = μ`, outside `μ ± Lσ·√(λ/(2−λ)·(1−(1−λ)^{2i}))` |
//! | [`Cusum`] | `C⁺_i = max(0, C⁺_{i−1} + (X_i − μ0) − k)` or `C⁻_i = max(0, C⁻_{i−1} + (μ0 − X_i) − k)` exceeds `h` (`k`, `h` in σ) |
//! | [`PageHinkley`] | `m_T − min_t m_t > λ` (increase) or `max_t n_t − n_T > λ` (decrease), `m_T = Σ(x_t − x̄_t − δ)`, `n_T = Σ(x_t − x̄_t + δ)` |
//!
//! Derived signals: [`apdex`] `(satisfied + tolerating/2) / total`, and the error-budget
//! [`burn_rate`] `error_ratio / (1 − objective)` with the SRE workbook's multi-window rules
//! ([`burn_alert`]: 1 h and 5 min above 14.4 pages, 6 h and 30 min above 6 pages;
//! [`burn_level`] puts both in one number, the `slo.burn_multiwindow` signal).

use std::collections::VecDeque;

/// What a detector says of one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub anomalous: bool,
    /// Still learning: never anomalous.
    pub warming_up: bool,
    /// The statistic judged (x itself, Z_i, C, PH, |dx/dt|).
    pub value: f64,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

impl Verdict {
    fn warming(value: f64) -> Verdict {
        Verdict {
            anomalous: false,
            warming_up: true,
            value,
            lower: None,
            upper: None,
        }
    }

    fn judged(value: f64, lower: Option<f64>, upper: Option<f64>) -> Verdict {
        let anomalous = lower.is_some_and(|l| value < l) || upper.is_some_and(|u| value > u);
        Verdict {
            anomalous,
            warming_up: false,
            value,
            lower,
            upper,
        }
    }
}

/// A detector over one series; `t` in seconds (any monotonic unit for most; rates use it).
pub trait Detector: Send {
    fn observe(&mut self, t: f64, x: f64) -> Verdict;
}

/// Mean and population standard deviation, the deviation floored at a billionth of the
/// mean (so that rounding in a flat series is not an anomaly, while any real change is).
fn mean_sd(xs: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = xs.clone().count() as f64;
    if n == 0.0 {
        return (0.0, 0.0);
    }
    let mean = xs.clone().sum::<f64>() / n;
    let var = xs.map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, floor_sd(var.sqrt(), mean))
}

fn floor_sd(sd: f64, mean: f64) -> f64 {
    sd.max(mean.abs() * 1e-9).max(1e-12)
}

/// Fixed bounds, after `warmup` points.
#[derive(Debug, Clone)]
pub struct Static {
    pub above: Option<f64>,
    pub below: Option<f64>,
    pub warmup: usize,
    seen: usize,
}

impl Static {
    pub fn new(above: Option<f64>, below: Option<f64>, warmup: usize) -> Static {
        Static {
            above,
            below,
            warmup,
            seen: 0,
        }
    }
}

impl Detector for Static {
    fn observe(&mut self, _t: f64, x: f64) -> Verdict {
        self.seen += 1;
        if self.seen <= self.warmup {
            return Verdict::warming(x);
        }
        Verdict::judged(x, self.below, self.above)
    }
}

/// μ ± kσ of the last `window` points.
#[derive(Debug, Clone)]
pub struct Dynamic {
    pub window: usize,
    pub k: f64,
    past: VecDeque<f64>,
}

impl Dynamic {
    pub fn new(window: usize, k: f64) -> Dynamic {
        Dynamic {
            window: window.max(2),
            k,
            past: VecDeque::new(),
        }
    }
}

impl Detector for Dynamic {
    fn observe(&mut self, _t: f64, x: f64) -> Verdict {
        let v = if self.past.len() < self.window {
            Verdict::warming(x)
        } else {
            let (m, sd) = mean_sd(self.past.iter().copied());
            Verdict::judged(x, Some(m - self.k * sd), Some(m + self.k * sd))
        };
        self.past.push_back(x);
        if self.past.len() > self.window {
            self.past.pop_front();
        }
        v
    }
}

/// Running mean and variance (Welford).
#[derive(Debug, Clone, Copy, Default)]
struct Welford {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Welford {
    fn add(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }
    fn sd(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            floor_sd((self.m2 / self.n as f64).max(0.0).sqrt(), self.mean)
        }
    }
}

/// baseline(t mod period) ± kσ: one running mean and deviation per phase of the period.
#[derive(Debug, Clone)]
pub struct Seasonal {
    pub period: f64,
    pub step: f64,
    pub k: f64,
    /// Points a phase needs before it judges (its warm-up).
    pub min_per_phase: u64,
    phases: Vec<Welford>,
}

impl Seasonal {
    pub fn new(period: f64, step: f64, k: f64, min_per_phase: u64) -> Seasonal {
        let n = ((period / step).round() as usize).max(1);
        Seasonal {
            period,
            step,
            k,
            min_per_phase: min_per_phase.max(2),
            phases: vec![Welford::default(); n],
        }
    }
}

impl Detector for Seasonal {
    fn observe(&mut self, t: f64, x: f64) -> Verdict {
        let p = ((t.rem_euclid(self.period) / self.step) as usize).min(self.phases.len() - 1);
        let ph = self.phases[p];
        let v = if ph.n < self.min_per_phase {
            Verdict::warming(x)
        } else {
            let sd = ph.sd();
            Verdict::judged(x, Some(ph.mean - self.k * sd), Some(ph.mean + self.k * sd))
        };
        self.phases[p].add(x);
        v
    }
}

/// Above the `q` quantile (or below the `1 − q` quantile, when `two_sided`) of the last
/// `window` points; nearest-rank quantiles.
#[derive(Debug, Clone)]
pub struct Percentile {
    pub window: usize,
    pub q: f64,
    pub two_sided: bool,
    past: VecDeque<f64>,
}

impl Percentile {
    pub fn new(window: usize, q: f64, two_sided: bool) -> Percentile {
        Percentile {
            window: window.max(1),
            q: q.clamp(0.0, 1.0),
            two_sided,
            past: VecDeque::new(),
        }
    }
}

/// The nearest-rank `q` quantile of `xs` (sorted copy).
pub fn quantile(xs: &[f64], q: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1));
    v.get(rank - 1).copied().unwrap_or(0.0)
}

impl Detector for Percentile {
    fn observe(&mut self, _t: f64, x: f64) -> Verdict {
        let v = if self.past.len() < self.window {
            Verdict::warming(x)
        } else {
            let past: Vec<f64> = self.past.iter().copied().collect();
            let upper = quantile(&past, self.q);
            let lower = self.two_sided.then(|| quantile(&past, 1.0 - self.q));
            Verdict::judged(x, lower, Some(upper))
        };
        self.past.push_back(x);
        if self.past.len() > self.window {
            self.past.pop_front();
        }
        v
    }
}

/// |dx/dt| above `max_per_second` (t in seconds).
#[derive(Debug, Clone)]
pub struct RateOfChange {
    pub max_per_second: f64,
    prev: Option<(f64, f64)>,
}

impl RateOfChange {
    pub fn new(max_per_second: f64) -> RateOfChange {
        RateOfChange {
            max_per_second,
            prev: None,
        }
    }
}

impl Detector for RateOfChange {
    fn observe(&mut self, t: f64, x: f64) -> Verdict {
        let v = match self.prev {
            Some((t0, x0)) if t > t0 => {
                let rate = (x - x0).abs() / (t - t0);
                Verdict::judged(rate, None, Some(self.max_per_second))
            }
            _ => Verdict::warming(0.0),
        };
        self.prev = Some((t, x));
        v
    }
}

/// The deviation a learning detector judges with: at least `floor`·|μ|. A series that barely
/// moved while it was learnt (a percentile read from histogram buckets 3% apart, a steady
/// rate) would otherwise alert on its next bucket; with a floor of 0.1 a shift under about
/// a tenth of the baseline never alerts.
fn floored(mean: f64, sd: f64, floor: f64) -> f64 {
    sd.max(floor * mean.abs())
}

/// Shewhart chart: μ and σ from the first `warmup` points, then μ ± 3σ.
#[derive(Debug, Clone)]
pub struct Spc {
    pub warmup: usize,
    /// σ is at least this fraction of |μ| ([`floored`]).
    pub sigma_floor: f64,
    learn: Vec<f64>,
    limits: Option<(f64, f64)>,
}

impl Spc {
    pub fn new(warmup: usize) -> Spc {
        Spc {
            warmup: warmup.max(2),
            sigma_floor: 0.0,
            learn: Vec::new(),
            limits: None,
        }
    }

    pub fn with_sigma_floor(mut self, floor: f64) -> Spc {
        self.sigma_floor = floor.max(0.0);
        self
    }
}

impl Detector for Spc {
    fn observe(&mut self, _t: f64, x: f64) -> Verdict {
        match self.limits {
            Some((lo, hi)) => Verdict::judged(x, Some(lo), Some(hi)),
            None => {
                self.learn.push(x);
                if self.learn.len() >= self.warmup {
                    let (m, sd) = mean_sd(self.learn.iter().copied());
                    let sd = floored(m, sd, self.sigma_floor);
                    self.limits = Some((m - 3.0 * sd, m + 3.0 * sd));
                }
                Verdict::warming(x)
            }
        }
    }
}

/// EWMA chart: μ and σ from the first `warmup` points; then Z_i = λX_i + (1−λ)Z_{i−1} with
/// Z_0 = μ, judged against μ ± Lσ·√(λ/(2−λ)·(1−(1−λ)^{2i})).
#[derive(Debug, Clone)]
pub struct Ewma {
    pub lambda: f64,
    pub l: f64,
    pub warmup: usize,
    /// σ is at least this fraction of |μ| ([`floored`]).
    pub sigma_floor: f64,
    learn: Vec<f64>,
    /// (μ, σ, Z, i)
    state: Option<(f64, f64, f64, i32)>,
}

impl Ewma {
    pub fn new(lambda: f64, l: f64, warmup: usize) -> Ewma {
        Ewma {
            lambda: lambda.clamp(1e-6, 1.0),
            l,
            warmup: warmup.max(2),
            sigma_floor: 0.0,
            learn: Vec::new(),
            state: None,
        }
    }

    pub fn with_sigma_floor(mut self, floor: f64) -> Ewma {
        self.sigma_floor = floor.max(0.0);
        self
    }
}

impl Detector for Ewma {
    fn observe(&mut self, _t: f64, x: f64) -> Verdict {
        let Some((mu, sd, z, i)) = self.state else {
            self.learn.push(x);
            if self.learn.len() >= self.warmup {
                let (m, s) = mean_sd(self.learn.iter().copied());
                self.state = Some((m, floored(m, s, self.sigma_floor), m, 0));
            }
            return Verdict::warming(x);
        };
        let (lam, i) = (self.lambda, i + 1);
        let z = lam * x + (1.0 - lam) * z;
        let width = self.l * sd * (lam / (2.0 - lam) * (1.0 - (1.0 - lam).powi(2 * i))).sqrt();
        self.state = Some((mu, sd, z, i));
        Verdict::judged(z, Some(mu - width), Some(mu + width))
    }
}

/// Which way a shift must go to alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Both,
    Up,
    Down,
}

/// CUSUM with reference value `k` and decision interval `h`, both in units of the σ learnt
/// (with μ0) from the first `warmup` points; two-sided, or one side (`direction`).
#[derive(Debug, Clone)]
pub struct Cusum {
    pub k: f64,
    pub h: f64,
    pub warmup: usize,
    /// σ is at least this fraction of |μ0| ([`floored`]).
    pub sigma_floor: f64,
    pub direction: Direction,
    learn: Vec<f64>,
    /// (μ0, σ, C⁺, C⁻)
    state: Option<(f64, f64, f64, f64)>,
}

impl Cusum {
    pub fn new(k: f64, h: f64, warmup: usize) -> Cusum {
        Cusum {
            k,
            h,
            warmup: warmup.max(2),
            sigma_floor: 0.0,
            direction: Direction::Both,
            learn: Vec::new(),
            state: None,
        }
    }

    pub fn with_sigma_floor(mut self, floor: f64) -> Cusum {
        self.sigma_floor = floor.max(0.0);
        self
    }

    pub fn with_direction(mut self, d: Direction) -> Cusum {
        self.direction = d;
        self
    }

    /// With μ0 and σ given: no learning, judging from the first point.
    pub fn with_baseline(k: f64, h: f64, mu0: f64, sigma: f64) -> Cusum {
        Cusum {
            k,
            h,
            warmup: 0,
            sigma_floor: 0.0,
            direction: Direction::Both,
            learn: Vec::new(),
            state: Some((mu0, sigma, 0.0, 0.0)),
        }
    }
}

impl Detector for Cusum {
    fn observe(&mut self, _t: f64, x: f64) -> Verdict {
        let Some((mu, sd, cp, cm)) = self.state else {
            self.learn.push(x);
            if self.learn.len() >= self.warmup {
                let (m, s) = mean_sd(self.learn.iter().copied());
                self.state = Some((m, floored(m, s, self.sigma_floor), 0.0, 0.0));
            }
            return Verdict::warming(0.0);
        };
        // A flat warm-up has σ = 0: fall back to 1 so k and h stay meaningful.
        let unit = if sd > 0.0 { sd } else { 1.0 };
        let (k, h) = (self.k * unit, self.h * unit);
        let cp = (cp + (x - mu) - k).max(0.0);
        let cm = (cm + (mu - x) - k).max(0.0);
        self.state = Some((mu, sd, cp, cm));
        let value = match self.direction {
            Direction::Both => cp.max(cm),
            Direction::Up => cp,
            Direction::Down => cm,
        };
        Verdict::judged(value, None, Some(h))
    }
}

/// Page-Hinkley test with tolerance `delta` and threshold `lambda`, both directions.
#[derive(Debug, Clone)]
pub struct PageHinkley {
    pub delta: f64,
    pub lambda: f64,
    pub warmup: usize,
    n: u64,
    mean: f64,
    m_up: f64,
    min_up: f64,
    m_down: f64,
    max_down: f64,
}

impl PageHinkley {
    pub fn new(delta: f64, lambda: f64, warmup: usize) -> PageHinkley {
        PageHinkley {
            delta,
            lambda,
            warmup,
            n: 0,
            mean: 0.0,
            m_up: 0.0,
            min_up: 0.0,
            m_down: 0.0,
            max_down: 0.0,
        }
    }
}

impl Detector for PageHinkley {
    fn observe(&mut self, _t: f64, x: f64) -> Verdict {
        self.n += 1;
        self.mean += (x - self.mean) / self.n as f64;
        self.m_up += x - self.mean - self.delta;
        self.min_up = self.min_up.min(self.m_up);
        self.m_down += x - self.mean + self.delta;
        self.max_down = self.max_down.max(self.m_down);
        let ph = (self.m_up - self.min_up).max(self.max_down - self.m_down);
        if (self.n as usize) <= self.warmup {
            return Verdict::warming(ph);
        }
        Verdict::judged(ph, None, Some(self.lambda))
    }
}

/// Apdex: (satisfied + tolerating / 2) / total; None without requests.
pub fn apdex(satisfied: u64, tolerating: u64, total: u64) -> Option<f64> {
    (total > 0).then(|| (satisfied as f64 + tolerating as f64 / 2.0) / total as f64)
}

/// How fast the error budget burns: the bad-event ratio over the budget `1 − objective`
/// (1.0 spends exactly the budget over the SLO period). None without events.
pub fn burn_rate(bad: u64, total: u64, objective: f64) -> Option<f64> {
    let budget = 1.0 - objective;
    (total > 0 && budget > 0.0).then(|| (bad as f64 / total as f64) / budget)
}

/// Burn rates over the four windows of the multi-window rule.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BurnWindows {
    pub h1: f64,
    pub m5: f64,
    pub h6: f64,
    pub m30: f64,
}

/// The fast pair's threshold: 2% of a 30-day budget in an hour.
pub const BURN_FAST: f64 = 14.4;
/// The slow pair's threshold: 5% of a 30-day budget in six hours.
pub const BURN_SLOW: f64 = 6.0;

/// Which multi-window rule fires, if any: [`BURN_FAST`]× over both 1 h and 5 min, else
/// [`BURN_SLOW`]× over both 6 h and 30 min.
pub fn burn_alert(b: BurnWindows) -> Option<(&'static str, f64)> {
    if b.h1 > BURN_FAST && b.m5 > BURN_FAST {
        Some(("1h/5m", BURN_FAST))
    } else if b.h6 > BURN_SLOW && b.m30 > BURN_SLOW {
        Some(("6h/30m", 6.0))
    } else {
        None
    }
}

/// How close the multi-window rules are to paging, as one number:
/// `max(min(1h, 5m) / 14.4, min(6h, 30m) / 6)`. Above 1 exactly when [`burn_alert`] fires,
/// so a static detector `above: 1` on it is the SRE workbook's page.
pub fn burn_level(b: BurnWindows) -> f64 {
    (b.h1.min(b.m5) / BURN_FAST).max(b.h6.min(b.m30) / BURN_SLOW)
}

/// Apdex of a latency histogram with target `t`: satisfied at most `t`, tolerating at most
/// `4t`, by whole histogram buckets (a bucket counts as at most a value when its upper bound
/// is; buckets are 1/32 of an octave wide).
pub fn apdex_of(h: &crate::series::histogram::Histogram, t: u64) -> Option<f64> {
    let satisfied = h.count_le(t);
    let tolerating = h.count_le(t.saturating_mul(4)) - satisfied;
    apdex(satisfied, tolerating, h.count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(d: &mut dyn Detector, xs: &[f64]) -> Vec<Verdict> {
        xs.iter()
            .enumerate()
            .map(|(i, x)| d.observe(i as f64, *x))
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn static_bounds_after_warmup() {
        let v = run(
            &mut Static::new(Some(10.0), Some(1.0), 1),
            &[50.0, 5.0, 11.0, 0.5, 10.0],
        );
        assert!(
            v[0].warming_up && !v[0].anomalous,
            "the warm-up never alerts"
        );
        let a: Vec<bool> = v[1..].iter().map(|v| v.anomalous).collect();
        assert_eq!(a, [false, true, true, false]);
    }

    #[test]
    fn dynamic_by_hand() {
        // Window 4 of [2, 4, 4, 6]: μ 4, σ √2; k 2 → [1.17, 6.83].
        let mut d = Dynamic::new(4, 2.0);
        let v = run(&mut d, &[2.0, 4.0, 4.0, 6.0, 6.5, 7.0]);
        assert!(v[..4].iter().all(|v| v.warming_up && !v.anomalous));
        assert!(close(v[4].upper.unwrap(), 4.0 + 2.0 * 2f64.sqrt()));
        assert!(!v[4].anomalous);
        // Window now [4, 4, 6, 6.5]: μ 5.125, σ² = (1.265625·2 + 0.765625 + 1.890625)/4.
        let sd = ((1.265625f64 * 2.0 + 0.765625 + 1.890625) / 4.0).sqrt();
        assert!(close(v[5].upper.unwrap(), 5.125 + 2.0 * sd));
        assert!(v[5].anomalous == (7.0 > 5.125 + 2.0 * sd));
    }

    #[test]
    fn seasonal_by_phase() {
        // Period 4, step 1: phase 0 sees 10, 12, then 30; phase 1 sees 1, 1, then 1.
        let mut d = Seasonal::new(4.0, 1.0, 3.0, 2);
        let mut out = Vec::new();
        for (t, x) in [
            (0.0, 10.0),
            (1.0, 1.0),
            (4.0, 12.0),
            (5.0, 1.0),
            (8.0, 30.0),
            (9.0, 1.0),
        ] {
            out.push(d.observe(t, x));
        }
        assert!(out[..4].iter().all(|v| v.warming_up));
        // Phase 0: μ 11, σ 1 → [8, 14]; 30 is anomalous.
        assert!(close(out[4].upper.unwrap(), 14.0) && out[4].anomalous);
        // Phase 1: μ 1, σ 0: 1 is not.
        assert!(!out[5].anomalous);
    }

    #[test]
    fn percentile_of_history() {
        let mut d = Percentile::new(5, 0.8, true);
        let v = run(&mut d, &[1.0, 2.0, 3.0, 4.0, 5.0, 4.5, 0.5, 9.0]);
        assert!(v[..5].iter().all(|v| v.warming_up));
        // History [1..5]: q0.8 = 4 (rank 4), q0.2 = 1 → 4.5 above.
        assert_eq!((v[5].lower, v[5].upper), (Some(1.0), Some(4.0)));
        assert!(v[5].anomalous);
        // [2, 3, 4, 5, 4.5]: q0.2 = 2 → 0.5 below.
        assert!(v[6].anomalous && v[6].lower == Some(2.0));
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), 2.0);
    }

    #[test]
    fn rate_of_change_per_second() {
        let mut d = RateOfChange::new(2.0);
        let v: Vec<Verdict> = [(0.0, 10.0), (10.0, 20.0), (15.0, 35.0)]
            .iter()
            .map(|(t, x)| d.observe(*t, *x))
            .collect();
        assert!(v[0].warming_up);
        assert!(close(v[1].value, 1.0) && !v[1].anomalous);
        assert!(close(v[2].value, 3.0) && v[2].anomalous);
    }

    #[test]
    fn spc_three_sigma_from_phase_one() {
        let mut d = Spc::new(4);
        let v = run(&mut d, &[9.0, 11.0, 9.0, 11.0, 12.9, 13.1, 6.9]);
        assert!(v[..4].iter().all(|v| v.warming_up && !v.anomalous));
        // μ 10, σ 1 → [7, 13].
        assert_eq!((v[4].lower, v[4].upper), (Some(7.0), Some(13.0)));
        let a: Vec<bool> = v[4..].iter().map(|v| v.anomalous).collect();
        assert_eq!(a, [false, true, true]);
    }

    #[test]
    fn ewma_by_hand() {
        // Warm-up [9, 11]: μ 10, σ 1. λ 0.5, L 3.
        let mut d = Ewma::new(0.5, 3.0, 2);
        let v = run(&mut d, &[9.0, 11.0, 12.0, 14.0]);
        // i=1: Z = 0.5·12 + 0.5·10 = 11; width = 3·√(0.5/1.5·(1 − 0.25)) = 3·0.5 = 1.5.
        assert!(close(v[2].value, 11.0));
        assert!(close(v[2].upper.unwrap(), 11.5) && !v[2].anomalous);
        // i=2: Z = 0.5·14 + 0.5·11 = 12.5; width = 3·√(1/3·(1 − 0.0625)) = 3·0.5590…
        let w = 3.0 * (1.0f64 / 3.0 * (1.0 - 0.0625)).sqrt();
        assert!(close(v[3].value, 12.5));
        assert!(close(v[3].upper.unwrap(), 10.0 + w) && v[3].anomalous);
    }

    #[test]
    fn sigma_floor_by_hand() {
        // A p99 learnt flat at 22.8 ms (σ ≈ 0): the next histogram bucket, 23.3, is 2% up.
        let flat = [22.8; 4];
        let series: Vec<f64> = flat.iter().copied().chain([23.3, 23.3, 23.3]).collect();
        // Without a floor, Shewhart and EWMA alert on it; CUSUM too.
        assert!(run(&mut Spc::new(4), &series)[4].anomalous);
        assert!(run(&mut Ewma::new(0.5, 3.0, 4), &series)[6].anomalous);
        assert!(run(&mut Cusum::new(0.5, 5.0, 4), &series)[6].anomalous);
        // With 0.1: σ = 2.28, Shewhart's limits are 22.8 ± 6.84.
        let v = run(&mut Spc::new(4).with_sigma_floor(0.1), &series);
        assert!(close(v[4].upper.unwrap(), 22.8 + 3.0 * 2.28));
        assert!(v.iter().all(|v| !v.anomalous));
        assert!(
            run(&mut Ewma::new(0.5, 3.0, 4).with_sigma_floor(0.1), &series)
                .iter()
                .all(|v| !v.anomalous)
        );
        // CUSUM: k = 1.14, h = 11.4; a step of 0.5 never accumulates.
        assert!(
            run(&mut Cusum::new(0.5, 5.0, 4).with_sigma_floor(0.1), &series)
                .iter()
                .all(|v| !v.anomalous)
        );
        // A doubling still alerts through the floor: EWMA λ 0.5, L 3, σ 2.28,
        // Z₁ = 0.5·45.6 + 0.5·22.8 = 34.2 > 22.8 + 3·2.28·√(1/3·(1 − 0.25)) = 26.22.
        let doubled: Vec<f64> = flat.iter().copied().chain([45.6]).collect();
        let v = run(&mut Ewma::new(0.5, 3.0, 4).with_sigma_floor(0.1), &doubled);
        assert!(close(v[4].value, 34.2) && close(v[4].upper.unwrap(), 26.22));
        assert!(v[4].anomalous);
    }

    #[test]
    fn cusum_one_sided() {
        // μ0 10, σ 1, k 0.5, h 2: a drop to 7 alerts two-sided and downward, not upward.
        let drop = [7.0, 7.0];
        let up = Cusum::with_baseline(0.5, 2.0, 10.0, 1.0).with_direction(Direction::Up);
        let down = Cusum::with_baseline(0.5, 2.0, 10.0, 1.0).with_direction(Direction::Down);
        let both = Cusum::with_baseline(0.5, 2.0, 10.0, 1.0);
        let last = |mut d: Cusum, xs: &[f64]| *run(&mut d, xs).last().unwrap();
        assert!(!last(up.clone(), &drop).anomalous);
        assert!(close(last(down.clone(), &drop).value, 5.0));
        assert!(last(down.clone(), &drop).anomalous && last(both.clone(), &drop).anomalous);
        // A rise to 13: C⁺ = 2.5, then 5.
        assert!(last(up, &[13.0, 13.0]).anomalous && !last(down, &[13.0, 13.0]).anomalous);
    }

    #[test]
    fn cusum_by_hand() {
        // μ0 10, σ 1, k 0.5, h 2.
        let mut d = Cusum::with_baseline(0.5, 2.0, 10.0, 1.0);
        let v = run(&mut d, &[11.0, 11.0, 11.0, 11.0, 10.0, 7.0, 7.0]);
        // C⁺: 0.5, 1.0, 1.5, 2.0, 1.5 → never > 2; then C⁻: 2.5 > 2.
        let c: Vec<f64> = v.iter().map(|v| v.value).collect();
        for (got, want) in c.iter().zip([0.5, 1.0, 1.5, 2.0, 1.5, 2.5, 5.0]) {
            assert!(close(*got, want), "{c:?}");
        }
        let a: Vec<bool> = v.iter().map(|v| v.anomalous).collect();
        assert_eq!(a, [false, false, false, false, false, true, true]);
        // Learnt baseline: the warm-up never alerts.
        let v = run(&mut Cusum::new(0.5, 2.0, 3), &[100.0, 0.0, 50.0, 50.0]);
        assert!(v[..3].iter().all(|v| v.warming_up && !v.anomalous));
    }

    #[test]
    fn page_hinkley_by_hand() {
        // δ 0, λ 3: x = 0, 0, 0, 6.
        let mut d = PageHinkley::new(0.0, 3.0, 2);
        let v = run(&mut d, &[0.0, 0.0, 0.0, 6.0, 6.0]);
        assert!(v[..2].iter().all(|v| v.warming_up && !v.anomalous));
        // After 6: mean 1.5, m_up = 0 + (6 − 1.5) = 4.5 (earlier terms 0), min 0 → 4.5 > 3.
        assert!(close(v[3].value, 4.5) && v[3].anomalous);
        assert!(!v[2].anomalous);
    }

    fn all(warmup: usize) -> Vec<Box<dyn Detector>> {
        vec![
            Box::new(Static::new(Some(0.0), None, warmup)),
            Box::new(Dynamic::new(warmup, 3.0)),
            Box::new(Seasonal::new(10.0, 1.0, 3.0, 2)),
            Box::new(Percentile::new(warmup, 0.99, true)),
            Box::new(Spc::new(warmup)),
            Box::new(Ewma::new(0.2, 3.0, warmup)),
            Box::new(Cusum::new(0.5, 5.0, warmup)),
            Box::new(PageHinkley::new(0.1, 10.0, warmup)),
        ]
    }

    proptest! {
        /// Whatever the series, nothing alerts while warming up, and a detector warms up
        /// for at most its stated points (seasonal: two per phase).
        #[test]
        fn the_warm_up_never_alerts(xs in prop::collection::vec(-1e6f64..1e6, 1..60), warmup in 2usize..10) {
            for mut d in all(warmup) {
                for (i, x) in xs.iter().enumerate() {
                    let v = d.observe(i as f64, *x);
                    prop_assert!(!(v.warming_up && v.anomalous));
                }
            }
        }

        /// A constant series never alerts, before or after the warm-up.
        #[test]
        fn a_flat_series_is_never_anomalous(c in -1e6f64..1e6, n in 1usize..80) {
            for (j, mut d) in all(5).into_iter().enumerate().skip(1) {
                for i in 0..n {
                    let v = d.observe(i as f64, c);
                    prop_assert!(!v.anomalous, "detector {} at {}: {:?}", j, i, v);
                }
            }
        }
    }

    #[test]
    fn apdex_of_a_histogram() {
        let mut h = crate::series::histogram::Histogram::default();
        for v in [10, 20, 30, 100, 150, 1000] {
            h.record(v);
        }
        // t = 30: satisfied 10, 20, 30; tolerating (≤ 120) 100; frustrated 150, 1000.
        assert_eq!(apdex_of(&h, 30), Some((3.0 + 0.5) / 6.0));
        assert_eq!(
            apdex_of(&crate::series::histogram::Histogram::default(), 30),
            None
        );
    }

    #[test]
    fn apdex_and_burn_rates() {
        assert_eq!(apdex(60, 30, 100), Some(0.75));
        assert_eq!(apdex(0, 0, 0), None);
        // 0.5% errors against a 99.9% objective burn the budget 5× as fast.
        assert!(close(burn_rate(5, 1000, 0.999).unwrap(), 5.0));
        assert_eq!(burn_rate(1, 0, 0.999), None);
        let page = BurnWindows {
            h1: 15.0,
            m5: 20.0,
            h6: 2.0,
            m30: 2.0,
        };
        assert_eq!(burn_alert(page), Some(("1h/5m", 14.4)));
        // A spike that is over in the 5-minute window does not page.
        assert_eq!(burn_alert(BurnWindows { m5: 3.0, ..page }), None);
        let slow = BurnWindows {
            h1: 7.0,
            m5: 7.0,
            h6: 6.5,
            m30: 8.0,
        };
        assert_eq!(burn_alert(slow), Some(("6h/30m", 6.0)));
        // The level: min(15, 20) / 14.4 = 1.0417 for the page; min(6.5, 8) / 6 = 1.0833 for
        // the slow burn; the spike min(15, 3) / 14.4 and min(2, 2) / 6 stay under 1.
        assert!(close(burn_level(page), 15.0 / 14.4));
        assert!(close(burn_level(slow), 6.5 / 6.0));
        assert!(burn_level(BurnWindows { m5: 3.0, ..page }) < 1.0);
    }
}

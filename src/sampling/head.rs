//! Consistent head sampling: the decision for a trace is a pure function of its trace id (and
//! its W3C tracestate), so every sieve instance with the same configuration decides the same.
//!
//! **hash_seed** — bit-exact with the OpenTelemetry Collector's probabilisticsamplerprocessor
//! in its legacy mode: `h = FNV-1a-32(seed as 4 little-endian bytes ‖ 16 trace-id bytes)`; keep
//! iff `(h & 0x3FFF) < uint32(percentage × 16384 / 100)` with the product taken in 32-bit float
//! as Go does (the Collector's percentage is a float32). Known values: seed 0 and no trace
//! id bytes mask to 0x3515; seed 0 and 16 zero bytes to 0x2455.
//!
//! **proportional** — the OpenTelemetry specification's consistent probability sampling:
//! randomness `R` is `rv` from the `ot` entry of the tracestate (14 hex digits) when present,
//! else the low 56 bits of the trace id. The rejection threshold for probability `p` is
//! `T = (1 − p)·2^56`, rounded to `sampling_precision` significant hex digits (plus one digit
//! per leading zero of `1 − p`, as the Collector's `ProbabilityToThresholdWithPrecision`); keep
//! iff `R ≥ T`. An incoming `th` (the item was sampled upstream with probability `p_in`) makes
//! the effective probability `p_in · p`. The kept item's tracestate gets `ot=th:<T as 14 hex
//! digits, trailing zeros dropped>` (`th:0` at 100%), other entries and `ot` sub-keys kept, the
//! `ot` entry moved to the front as W3C asks of an updated entry. Adjusted count:
//! `2^56 / (2^56 − T)`.
//!
//! **equalizing** — as proportional, but the threshold is `max(T_in, T)`: an incoming `th`
//! that is already stricter is kept unchanged.
//!
//! Everything here is pure (no I/O, no clock).

/// 2^56: thresholds and randomness are 56-bit.
pub const MAX_ADJUSTED: u64 = 1 << 56;
const HASH_BUCKETS_MASK: u32 = 0x3FFF;

/// FNV-1a, 32-bit.
pub fn fnv1a32(parts: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for p in parts {
        for b in *p {
            h ^= u32::from(*b);
            h = h.wrapping_mul(16_777_619);
        }
    }
    h
}

/// FNV-1a, 64-bit (randomness for items without a trace id).
pub fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The hash_seed mode's bucket of a trace id.
pub fn hash_seed_bucket(seed: u32, trace_id: &[u8]) -> u32 {
    fnv1a32(&[&seed.to_le_bytes(), trace_id]) & HASH_BUCKETS_MASK
}

/// The hash_seed mode's bucket bound for a percentage (float32 arithmetic, as the Collector).
pub fn hash_seed_bound(percentage: f64) -> u32 {
    let scaled = (percentage as f32) * (16384.0f32 / 100.0f32);
    scaled as u32
}

/// A 56-bit rejection threshold: keep iff randomness ≥ threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Threshold(pub u64);

impl Threshold {
    /// Keeps everything.
    pub const ALWAYS: Threshold = Threshold(0);

    /// The threshold for probability `p` in (0, 1], with `precision` significant hex digits
    /// (0 = full precision). `None` for p outside [2^-56, 1].
    pub fn from_probability(p: f64, precision: u8) -> Option<Threshold> {
        let min = 1.0 / MAX_ADJUSTED as f64;
        if !(min..=1.0).contains(&p) {
            return None;
        }
        if p == 1.0 {
            return Some(Threshold::ALWAYS);
        }
        let scaled = (p * MAX_ADJUSTED as f64).round() as u64;
        let mut t = MAX_ADJUSTED - scaled.min(MAX_ADJUSTED);
        if precision > 0 {
            let mut prec = u32::from(precision);
            let mut reject = 1.0 - p;
            while reject * 16.0 < 1.0 {
                reject *= 16.0;
                prec += 1;
            }
            if prec < 14 {
                let shift = 4 * (14 - prec);
                let half = 1u64 << (shift - 1);
                t = ((t + half) >> shift) << shift;
            }
        }
        // Rounding up can reach 2^56: nothing is kept then, as in the Collector.
        (t < MAX_ADJUSTED).then_some(Threshold(t))
    }

    /// The probability this threshold keeps.
    pub fn probability(self) -> f64 {
        (MAX_ADJUSTED - self.0) as f64 / MAX_ADJUSTED as f64
    }

    /// `2^56 / (2^56 − T)`: how many items one kept item stands for.
    pub fn adjusted_count(self) -> f64 {
        MAX_ADJUSTED as f64 / (MAX_ADJUSTED - self.0) as f64
    }

    /// The `th` value: 14 hex digits, trailing zeros dropped (`0` for ALWAYS).
    pub fn encode(self) -> String {
        if self.0 == 0 {
            return "0".into();
        }
        let s = format!("{:014x}", self.0);
        s.trim_end_matches('0').to_string()
    }

    /// Parses a `th` value (1–14 hex digits, right-padded with zeros).
    pub fn decode(s: &str) -> Option<Threshold> {
        if s.is_empty() || s.len() > 14 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let v = u64::from_str_radix(s, 16).ok()?;
        Some(Threshold(v << (4 * (14 - s.len()))))
    }
}

/// The low 56 bits of a trace id (bytes 9..16, big-endian).
pub fn trace_id_randomness(trace_id: &[u8]) -> u64 {
    let mut v = 0u64;
    for b in trace_id.iter().skip(trace_id.len().saturating_sub(7)) {
        v = v << 8 | u64::from(*b);
    }
    v
}

/// The `ot` entry of a W3C tracestate, taken apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtState {
    pub th: Option<Threshold>,
    pub rv: Option<u64>,
    /// Other `key:value` sub-keys, in order.
    pub rest: Vec<String>,
}

/// A tracestate with a malformed `ot` entry (the sampler fails closed on it by default).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed tracestate ot entry: {0}")]
pub struct TraceStateError(pub String);

/// Finds and parses the `ot` entry of `tracestate`.
pub fn parse_ot(tracestate: &str) -> Result<OtState, TraceStateError> {
    let mut st = OtState::default();
    for member in tracestate.split(',') {
        let member = member.trim();
        let Some(value) = member.strip_prefix("ot=") else {
            continue;
        };
        for sub in value.split(';').filter(|s| !s.is_empty()) {
            let (k, v) = sub
                .split_once(':')
                .ok_or_else(|| TraceStateError(sub.to_string()))?;
            match k {
                "th" => {
                    st.th = Some(Threshold::decode(v).ok_or_else(|| TraceStateError(sub.into()))?)
                }
                "rv" => {
                    if v.len() != 14 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(TraceStateError(sub.into()));
                    }
                    st.rv =
                        Some(u64::from_str_radix(v, 16).map_err(|_| TraceStateError(sub.into()))?);
                }
                _ => st.rest.push(sub.to_string()),
            }
        }
    }
    Ok(st)
}

/// `tracestate` with its `ot` entry replaced by `ot` (moved to the front), other members kept
/// in order.
pub fn write_ot(tracestate: &str, ot: &OtState) -> String {
    let mut subs = Vec::new();
    if let Some(th) = ot.th {
        subs.push(format!("th:{}", th.encode()));
    }
    if let Some(rv) = ot.rv {
        subs.push(format!("rv:{rv:014x}"));
    }
    subs.extend(ot.rest.iter().cloned());
    let mut out = format!("ot={}", subs.join(";"));
    for member in tracestate.split(',').map(str::trim) {
        if member.is_empty() || member.starts_with("ot=") {
            continue;
        }
        out.push(',');
        out.push_str(member);
    }
    out
}

/// How the proportional modes treat an incoming threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistent {
    /// Multiply: sample the incoming sample again.
    Proportional,
    /// Keep the stricter of incoming and configured.
    Equalizing,
}

/// The outcome of a proportional/equalizing decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub keep: bool,
    /// The threshold the kept item now carries.
    pub threshold: Threshold,
    /// The new tracestate when kept (None when dropped).
    pub tracestate: Option<String>,
}

/// A percentage as the Collector sees it: a float32, then widened.
pub fn ratio(percentage: f64) -> f64 {
    f64::from(percentage as f32) / 100.0
}

/// Decides one span (or anything with a trace id and a tracestate) in a proportional mode,
/// at probability `p` with `precision` hex digits. An incoming `th` composes by probability
/// (proportional: `p_in · p`, rounded again to `precision`) or by the stricter threshold
/// (equalizing). An incoming `th` its own randomness does not pass is inconsistent: an error.
pub fn decide_consistent(
    mode: Consistent,
    p: f64,
    precision: u8,
    trace_id: &[u8],
    tracestate: &str,
) -> Result<Decision, TraceStateError> {
    let mut ot = parse_ot(tracestate)?;
    let r = ot.rv.unwrap_or_else(|| trace_id_randomness(trace_id));
    if let Some(t_in) = ot.th
        && r < t_in.0
    {
        return Err(TraceStateError(format!(
            "th:{} with randomness {r:014x} could not have been sampled",
            t_in.encode()
        )));
    }
    let t = match (mode, ot.th) {
        (_, None) => Threshold::from_probability(p, precision),
        (Consistent::Proportional, Some(t_in)) => {
            Threshold::from_probability(t_in.probability() * p, precision)
        }
        (Consistent::Equalizing, Some(t_in)) => {
            Threshold::from_probability(p, precision).map(|t| t.max(t_in))
        }
    };
    let Some(t) = t else {
        return Ok(Decision {
            keep: false,
            threshold: Threshold(MAX_ADJUSTED),
            tracestate: None,
        });
    };
    let keep = r >= t.0;
    Ok(Decision {
        keep,
        threshold: t,
        tracestate: keep.then(|| {
            ot.th = Some(t);
            write_ot(tracestate, &ot)
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(hex: &str) -> Vec<u8> {
        hex::decode(hex).unwrap()
    }

    #[test]
    fn fnv_known_values() {
        // The and the Collector's reference values.
        assert_eq!(hash_seed_bucket(0, &[]), 0x3515);
        assert_eq!(hash_seed_bucket(0, &[0; 16]), 0x2455);
        // FNV-1a test vectors.
        assert_eq!(fnv1a32(&[b""]), 0x811c9dc5);
        assert_eq!(fnv1a32(&[b"a"]), 0xe40c292c);
        assert_eq!(fnv1a64(&[b"a"]), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn hash_seed_decisions_by_hand() {
        // Bounds: float32(pct) × 163.84 truncated.
        assert_eq!(hash_seed_bound(100.0), 16384);
        assert_eq!(hash_seed_bound(50.0), 8192);
        assert_eq!(hash_seed_bound(25.0), 4096);
        assert_eq!(hash_seed_bound(1.0), 163);
        assert_eq!(hash_seed_bound(0.0), 0);
        // Buckets computed by hand (python: fnv1a32(seed_le + id) & 0x3fff).
        let zero = [0u8; 16];
        assert_eq!(hash_seed_bucket(0, &zero), 0x2455); // 9301: kept at 57%+, dropped at 50%
        assert!(hash_seed_bucket(0, &zero) >= hash_seed_bound(50.0));
        assert!(hash_seed_bucket(0, &zero) < hash_seed_bound(57.0));
        let a = id("0102030405060708090a0b0c0d0e0f10");
        assert_eq!(hash_seed_bucket(0, &a), 0x1a25); // 6693: kept at 41% (bound 6717), not 40% (6553)
        assert!(hash_seed_bucket(0, &a) < hash_seed_bound(41.0));
        assert!(hash_seed_bucket(0, &a) >= hash_seed_bound(40.0));
        assert_eq!(hash_seed_bucket(22, &a), 0x3443);
        assert_eq!(hash_seed_bucket(1, &zero), 0x3f04);
    }

    #[test]
    fn th_strings_for_common_probabilities() {
        let th = |p, prec| Threshold::from_probability(p, prec).unwrap().encode();
        assert_eq!(th(1.0, 4), "0");
        assert_eq!(th(0.5, 4), "8");
        assert_eq!(th(0.25, 4), "c");
        // 1 − 0.01 = 0.99 → 0xfd70a3d70a3d71 at full precision.
        assert_eq!(th(0.01, 0), "fd70a3d70a3d71");
        assert_eq!(th(0.01, 4), "fd71");
        assert_eq!(th(0.01, 6), "fd70a4");
        // A leading zero of 1 − p adds a digit: p = 0.99 → 1 − p = 0.01 → 0x028f5c...
        assert_eq!(th(0.99, 2), "029");
        assert_eq!(
            Threshold::decode("fd70a4"),
            Some(Threshold(0xfd70a400000000))
        );
        assert_eq!(Threshold::decode("8"), Some(Threshold(0x80000000000000)));
        assert_eq!(Threshold::decode("0"), Some(Threshold::ALWAYS));
        assert_eq!(Threshold::decode(""), None);
        assert_eq!(Threshold::decode("xyz"), None);
        assert_eq!(Threshold::decode("123456789012345"), None);
        assert_eq!(Threshold(0x80000000000000).adjusted_count(), 2.0);
        assert_eq!(Threshold(0xc0000000000000).adjusted_count(), 4.0);
        assert!(Threshold::from_probability(0.0, 4).is_none());
        assert!(Threshold::from_probability(1.5, 4).is_none());
    }

    #[test]
    fn proportional_decisions_by_hand() {
        let dc = |mode, p, id: &[u8], ts: &str| decide_consistent(mode, p, 4, id, ts);
        // R = low 56 bits of the trace id.
        let keep = id("00000000000000000080000000000000");
        assert_eq!(trace_id_randomness(&keep), 0x80000000000000);
        let d = dc(Consistent::Proportional, 0.5, &keep, "").unwrap();
        assert!(d.keep);
        assert_eq!(d.tracestate.as_deref(), Some("ot=th:8"));
        let drop = id("ffffffffffffffffff7fffffffffffff");
        assert_eq!(trace_id_randomness(&drop), 0x7fffffffffffff);
        assert!(!dc(Consistent::Proportional, 0.5, &drop, "").unwrap().keep);
        // rv overrides the trace id, other members and sub-keys survive, ot moves first.
        let d = dc(
            Consistent::Proportional,
            0.5,
            &drop,
            "vendor=a,ot=rv:c0000000000000;x:y,other=b",
        )
        .unwrap();
        assert!(d.keep);
        assert_eq!(
            d.tracestate.as_deref(),
            Some("ot=th:8;rv:c0000000000000;x:y,vendor=a,other=b")
        );
        // Proportional composes probabilities: 50% upstream, 50% here → 25% (th:c).
        let d = dc(
            Consistent::Proportional,
            0.5,
            &id("000000000000000000e0000000000000"),
            "ot=th:8",
        )
        .unwrap();
        assert_eq!(d.threshold.encode(), "c");
        assert!(d.keep);
        // ...and rounds the product again, as the Collector: 50% · 1% = 0.5% → th:feb8.
        let d = dc(
            Consistent::Proportional,
            0.01,
            &id("000000000000000000ff000000000000"),
            "ot=th:8",
        )
        .unwrap();
        assert_eq!(d.threshold.encode(), "feb8");
        // Equalizing keeps a stricter incoming th unchanged (25% upstream, 50% here).
        let d = dc(
            Consistent::Equalizing,
            0.5,
            &id("000000000000000000d0000000000000"),
            "ot=th:c",
        )
        .unwrap();
        assert_eq!(d.threshold.encode(), "c");
        assert_eq!(d.tracestate.as_deref(), Some("ot=th:c"));
        // ...and raises a laxer one (75% upstream → 50%).
        let d = dc(
            Consistent::Equalizing,
            0.5,
            &id("00000000000000000070000000000000"),
            "ot=th:4",
        )
        .unwrap();
        assert_eq!(d.threshold.encode(), "8");
        assert!(!d.keep);
        // 0% keeps nothing.
        assert!(!dc(Consistent::Proportional, 0.0, &keep, "").unwrap().keep);
        // Malformed ot entries, and a th the randomness could not have passed, are errors.
        for bad in [
            "ot=th:xyz",
            "ot=rv:123",
            "ot=th",
            "ot=rv:zzzzzzzzzzzzzz",
            "ot=th:c",
        ] {
            assert!(
                dc(Consistent::Proportional, 0.5, &keep, bad).is_err(),
                "{bad}"
            );
        }
        // The Collector's view of a percentage: float32 first.
        assert_eq!(ratio(25.0), 0.25);
        assert_eq!(ratio(33.3), f64::from(33.3f32) / 100.0);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn mode() -> impl Strategy<Value = Consistent> {
            prop_oneof![Just(Consistent::Proportional), Just(Consistent::Equalizing)]
        }

        /// Tracestate members of other vendors (any key but `ot`): they carry no sampling
        /// information.
        fn foreign_tracestate() -> impl Strategy<Value = String> {
            let member =
                "[a-z]{1,6}=[a-z0-9]{0,8}".prop_filter("not ot", |m| !m.starts_with("ot="));
            prop::collection::vec(member, 0..4).prop_map(|m| m.join(","))
        }

        proptest! {
            /// A head decision depends only on the trace id and the rate: deciding again, or
            /// with other vendors' tracestate members present, gives the same answer.
            #[test]
            fn the_decision_depends_only_on_trace_id_and_rate(
                trace_id in any::<[u8; 16]>(),
                seed in any::<u32>(),
                percentage in 0.0f64..=100.0,
                precision in 1u8..=14,
                mode in mode(),
                other in foreign_tracestate(),
            ) {
                let bucket = hash_seed_bucket(seed, &trace_id);
                prop_assert_eq!(bucket, hash_seed_bucket(seed, &trace_id));
                prop_assert!(bucket <= HASH_BUCKETS_MASK);
                let p = ratio(percentage);
                let alone = decide_consistent(mode, p, precision, &trace_id, "").unwrap();
                let again = decide_consistent(mode, p, precision, &trace_id, "").unwrap();
                let with_other = decide_consistent(mode, p, precision, &trace_id, &other).unwrap();
                prop_assert_eq!(alone.keep, again.keep);
                prop_assert_eq!(alone.keep, with_other.keep);
                prop_assert_eq!(alone.threshold, with_other.threshold);
                // Only the low 56 bits are randomness: the high byte does not matter.
                let mut high = trace_id;
                high[..9].iter_mut().for_each(|b| *b = !*b);
                let d = decide_consistent(mode, p, precision, &high, "").unwrap();
                prop_assert_eq!(d.keep, alone.keep);
                // Keep iff R >= T, with T from the rate.
                let t = Threshold::from_probability(p, precision);
                let r = trace_id_randomness(&trace_id);
                prop_assert_eq!(alone.keep, t.is_some_and(|t| r >= t.0));
            }

            /// A trace kept at one rate is kept at every higher rate, in both families: what
            /// a stricter instance keeps, a laxer one keeps too.
            #[test]
            fn a_higher_rate_keeps_a_superset(
                trace_id in any::<[u8; 16]>(),
                seed in any::<u32>(),
                low in 0.0f64..=100.0,
                extra in 0.0f64..=100.0,
                precision in 1u8..=14,
            ) {
                let high = (low + extra).min(100.0);
                let bucket = hash_seed_bucket(seed, &trace_id);
                if bucket < hash_seed_bound(low) {
                    prop_assert!(bucket < hash_seed_bound(high));
                }
                let at = |pct: f64| {
                    decide_consistent(Consistent::Proportional, ratio(pct), precision, &trace_id, "")
                        .unwrap()
                        .keep
                };
                if at(low) {
                    prop_assert!(at(high), "kept at {low}% but not at {high}%");
                }
            }
        }
    }
}

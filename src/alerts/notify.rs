//! What Alertmanager does between alerts and receivers, as pure functions: label matchers,
//! silences, inhibition, grouping with `group_wait` / `group_interval` / `repeat_interval`,
//! and the webhook payload (version "4").
//!
//! - **Matchers**: `name=value`, `name!=value`, `name=~regex`, `name!~regex` (regexes anchored
//!   as Alertmanager anchors them); a missing label has the empty value.
//! - **Silence**: every matcher matches and `starts ≤ t < ends`.
//! - **Inhibition**: a target alert is muted while a *firing* source alert has equal values for
//!   the `equal` labels (missing = empty); an alert matching both sides is not inhibited by
//!   another that matches both sides.
//! - **Grouping**: alerts with the same values of `group_by` form a group, keyed
//!   `{}:{name="value", ...}`. A group's first notification goes out `group_wait` after its
//!   first alert; later ones when its alerts or their statuses changed and `group_interval`
//!   has passed since the last, or, unchanged but still firing, after `repeat_interval`.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use serde_json::{Value, json};

use super::alert::{Labels, fingerprint};

/// One label matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    Eq(String),
    Ne(String),
    Re(Regex),
    NotRe(Regex),
}

impl Matcher {
    /// Parses `name=value`, `name!=value`, `name=~re` or `name!~re` (value may be quoted).
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let (name, op, value) = ["=~", "!~", "!=", "="]
            .iter()
            .find_map(|op| text.split_once(op).map(|(n, v)| (n.trim(), *op, v.trim())))
            .ok_or_else(|| format!("matcher {text:?}: expected name=value, !=, =~ or !~"))?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(format!("matcher {text:?}: invalid label name {name:?}"));
        }
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value)
            .to_string();
        let re = |v: &str| {
            Regex::new(&format!("^(?:{v})$")).map_err(|e| format!("matcher {text:?}: {e}"))
        };
        let op = match op {
            "=" => Op::Eq(value),
            "!=" => Op::Ne(value),
            "=~" => Op::Re(re(&value)?),
            _ => Op::NotRe(re(&value)?),
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
        })
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.name).map(String::as_str).unwrap_or("");
        match &self.op {
            Op::Eq(x) => v == x,
            Op::Ne(x) => v != x,
            Op::Re(r) => r.is_match(v),
            Op::NotRe(r) => !r.is_match(v),
        }
    }
}

fn all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

/// A silence.
#[derive(Debug, Clone)]
pub struct Silence {
    pub matchers: Vec<Matcher>,
    pub starts: u64,
    pub ends: u64,
}

impl Silence {
    pub fn silences(&self, labels: &Labels, t: u64) -> bool {
        self.starts <= t && t < self.ends && all(&self.matchers, labels)
    }
}

/// An inhibition rule.
#[derive(Debug, Clone)]
pub struct InhibitRule {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<String>,
}

impl InhibitRule {
    /// Is `target` muted by one of the `firing` alerts?
    pub fn inhibits(&self, target: &Labels, firing: &[Labels]) -> bool {
        if !all(&self.target, target) {
            return false;
        }
        let both = all(&self.source, target);
        let get = |l: &Labels, k: &str| l.get(k).cloned().unwrap_or_default();
        firing.iter().any(|s| {
            s != target
                && all(&self.source, s)
                && !(both && all(&self.target, s))
                && self.equal.iter().all(|k| get(s, k) == get(target, k))
        })
    }
}

/// The group an alert belongs to: the values of `group_by` (missing labels left out).
pub fn group_labels(labels: &Labels, group_by: &[String]) -> Labels {
    group_by
        .iter()
        .filter_map(|k| labels.get(k).map(|v| (k.clone(), v.clone())))
        .collect()
}

/// Alertmanager's group key of the root route.
pub fn group_key(group: &Labels) -> String {
    let inner: Vec<String> = group.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{}}:{{{}}}", inner.join(", "))
}

/// Grouping intervals (nanoseconds).
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    pub group_wait: u64,
    pub group_interval: u64,
    pub repeat_interval: u64,
}

impl Default for Intervals {
    fn default() -> Self {
        Intervals {
            group_wait: 30_000_000_000,
            group_interval: 300_000_000_000,
            repeat_interval: 4 * 3_600_000_000_000,
        }
    }
}

/// One group's notification state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupState {
    pub first_seen: Option<u64>,
    pub last_sent: Option<u64>,
    /// (fingerprint, firing) of what the last notification said.
    pub last_content: BTreeSet<(u64, bool)>,
}

impl GroupState {
    /// Should the group be notified at `t`, its alerts now being `content`? Records the
    /// notification when it says yes.
    pub fn due(&mut self, t: u64, content: &BTreeSet<(u64, bool)>, iv: &Intervals) -> bool {
        if content.is_empty() {
            return false;
        }
        let first = *self.first_seen.get_or_insert(t);
        let send = match self.last_sent {
            None => t.saturating_sub(first) >= iv.group_wait,
            Some(last) => {
                let elapsed = t.saturating_sub(last);
                if *content != self.last_content {
                    elapsed >= iv.group_interval
                } else {
                    content.iter().any(|(_, firing)| *firing) && elapsed >= iv.repeat_interval
                }
            }
        };
        if send {
            self.last_sent = Some(t);
            self.last_content = content.clone();
        }
        send
    }
}

/// An alert as notifications carry it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notified {
    pub labels: Labels,
    pub annotations: Labels,
    pub starts_at: u64,
    /// None while firing.
    pub ends_at: Option<u64>,
    pub generator_url: String,
}

impl Notified {
    pub fn firing(&self) -> bool {
        self.ends_at.is_none()
    }
}

/// RFC 3339 with milliseconds; Alertmanager's zero time for "not set".
pub fn rfc3339(t: Option<u64>) -> String {
    match t {
        Some(ns) => humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns),
        )
        .to_string(),
        None => "0001-01-01T00:00:00Z".into(),
    }
}

fn common(maps: impl Iterator<Item = Labels>) -> Labels {
    let mut it = maps;
    let Some(mut acc) = it.next() else {
        return Labels::new();
    };
    for m in it {
        acc.retain(|k, v| m.get(k) == Some(v));
    }
    acc
}

/// The Alertmanager webhook body (version "4") for one group.
pub fn webhook_payload(
    receiver: &str,
    group: &Labels,
    alerts: &[Notified],
    external_url: &str,
) -> Value {
    let status = if alerts.iter().any(Notified::firing) {
        "firing"
    } else {
        "resolved"
    };
    let to_map = |l: &Labels| -> BTreeMap<String, String> { l.clone() };
    json!({
        "version": "4",
        "groupKey": group_key(group),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": to_map(group),
        "commonLabels": common(alerts.iter().map(|a| a.labels.clone())),
        "commonAnnotations": common(alerts.iter().map(|a| a.annotations.clone())),
        "externalURL": external_url,
        "alerts": alerts.iter().map(|a| json!({
            "status": if a.firing() { "firing" } else { "resolved" },
            "labels": a.labels,
            "annotations": a.annotations,
            "startsAt": rfc3339(Some(a.starts_at)),
            "endsAt": rfc3339(a.ends_at),
            "generatorURL": a.generator_url,
            "fingerprint": format!("{:016x}", fingerprint(&a.labels)),
        })).collect::<Vec<_>>(),
    })
}

/// The body of Alertmanager's `POST /api/v2/alerts` for these alerts.
pub fn alertmanager_post(alerts: &[Notified]) -> Value {
    Value::Array(
        alerts
            .iter()
            .map(|a| {
                let mut v = json!({
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "startsAt": rfc3339(Some(a.starts_at)),
                    "generatorURL": a.generator_url,
                });
                if let Some(e) = a.ends_at {
                    v["endsAt"] = json!(rfc3339(Some(e)));
                }
                v
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn m(s: &str) -> Matcher {
        Matcher::parse(s).unwrap()
    }

    #[test]
    fn matchers_as_alertmanager() {
        let a = l(&[("service", "cart"), ("severity", "page")]);
        assert!(m("service=cart").matches(&a));
        assert!(m("service!=db").matches(&a));
        assert!(m("service=~\"ca.*\"").matches(&a));
        assert!(!m("service=~ar").matches(&a), "regexes are anchored");
        assert!(m("team=").matches(&a), "a missing label is empty");
        assert!(m("severity!~info|warn").matches(&a));
        for bad in ["service", "=x", "a b=c", "x=~("] {
            assert!(Matcher::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn silences_cover_a_time_range() {
        let s = Silence {
            matchers: vec![m("service=cart")],
            starts: 10,
            ends: 20,
        };
        let a = l(&[("service", "cart")]);
        assert!(!s.silences(&a, 9) && s.silences(&a, 10) && !s.silences(&a, 20));
        assert!(!s.silences(&l(&[("service", "db")]), 15));
    }

    #[test]
    fn inhibition_as_alertmanager() {
        // A firing ServiceDown mutes the same service's HighLatency.
        let rule = InhibitRule {
            source: vec![m("alertname=ServiceDown")],
            target: vec![m("alertname=HighLatency")],
            equal: vec!["service".into()],
        };
        let down = l(&[("alertname", "ServiceDown"), ("service", "cart")]);
        let slow = l(&[("alertname", "HighLatency"), ("service", "cart")]);
        let other = l(&[("alertname", "HighLatency"), ("service", "db")]);
        assert!(rule.inhibits(&slow, std::slice::from_ref(&down)));
        assert!(
            !rule.inhibits(&other, std::slice::from_ref(&down)),
            "equal labels differ"
        );
        assert!(!rule.inhibits(&slow, &[]));
        // Missing equal labels count as empty on both sides.
        let bare = l(&[("alertname", "ServiceDown")]);
        assert!(rule.inhibits(&l(&[("alertname", "HighLatency")]), &[bare]));
        // Alerts matching both sides do not inhibit each other.
        let both = InhibitRule {
            source: vec![m("severity=page")],
            target: vec![m("severity=page")],
            equal: vec![],
        };
        let a = l(&[("severity", "page"), ("x", "1")]);
        let b = l(&[("severity", "page"), ("x", "2")]);
        assert!(!both.inhibits(&a, &[b]));
    }

    #[test]
    fn grouping_waits_then_batches_then_repeats() {
        let iv = Intervals {
            group_wait: 30,
            group_interval: 300,
            repeat_interval: 3600,
        };
        let mut g = GroupState::default();
        let one: BTreeSet<(u64, bool)> = [(1, true)].into();
        let two: BTreeSet<(u64, bool)> = [(1, true), (2, true)].into();
        assert!(!g.due(0, &one, &iv), "group_wait");
        assert!(!g.due(29, &two, &iv));
        assert!(g.due(30, &two, &iv), "first notification after group_wait");
        let resolved: BTreeSet<(u64, bool)> = [(1, false), (2, true)].into();
        assert!(
            !g.due(100, &resolved, &iv),
            "changes wait for group_interval"
        );
        assert!(g.due(330, &resolved, &iv));
        assert!(
            !g.due(1000, &resolved, &iv),
            "unchanged: wait for repeat_interval"
        );
        assert!(g.due(330 + 3600, &resolved, &iv));
        let all_resolved: BTreeSet<(u64, bool)> = [(1, false), (2, false)].into();
        assert!(g.due(330 + 3600 + 300, &all_resolved, &iv));
        assert!(
            !g.due(100_000, &all_resolved, &iv),
            "resolved groups are not repeated"
        );
    }

    #[test]
    fn webhook_body_has_alertmanagers_fields() {
        let group = l(&[("alertname", "HighErrors")]);
        let alerts = vec![
            Notified {
                labels: l(&[
                    ("alertname", "HighErrors"),
                    ("service", "cart"),
                    ("severity", "page"),
                ]),
                annotations: l(&[("summary", "cart errors 12%")]),
                starts_at: 1_795_000_000_000_000_000,
                ends_at: None,
                generator_url: "http://sieve/alerts/1".into(),
            },
            Notified {
                labels: l(&[
                    ("alertname", "HighErrors"),
                    ("service", "db"),
                    ("severity", "page"),
                ]),
                annotations: l(&[("summary", "db errors 3%")]),
                starts_at: 1_795_000_000_000_000_000,
                ends_at: Some(1_795_000_060_000_000_000),
                generator_url: "http://sieve/alerts/2".into(),
            },
        ];
        let v = webhook_payload("ops", &group, &alerts, "http://sieve");
        assert_eq!(v["version"], "4");
        assert_eq!(v["groupKey"], "{}:{alertname=\"HighErrors\"}");
        assert_eq!(v["status"], "firing");
        assert_eq!(v["receiver"], "ops");
        assert_eq!(v["groupLabels"]["alertname"], "HighErrors");
        assert_eq!(
            v["commonLabels"],
            json!({"alertname": "HighErrors", "severity": "page"})
        );
        assert_eq!(v["commonAnnotations"], json!({}));
        assert_eq!(v["externalURL"], "http://sieve");
        assert_eq!(v["truncatedAlerts"], 0);
        let a = &v["alerts"][1];
        assert_eq!(a["status"], "resolved");
        assert_eq!(a["startsAt"], "2026-11-18T11:06:40.000Z");
        assert_eq!(a["endsAt"], "2026-11-18T11:07:40.000Z");
        assert_eq!(v["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(
            a["fingerprint"],
            format!("{:016x}", fingerprint(&alerts[1].labels))
        );
        for k in ["labels", "annotations", "generatorURL"] {
            assert!(!a[k].is_null(), "{k}");
        }
        let post = alertmanager_post(&alerts);
        assert!(post[0].get("endsAt").is_none());
        assert_eq!(post[1]["endsAt"], "2026-11-18T11:07:40.000Z");
    }
}

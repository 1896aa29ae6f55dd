//! Notifications, planned as Alertmanager plans them and sent over HTTP.
//!
//! After each evaluation round, the alerts that fire (and those resolved since the last
//! notification of their group) are filtered: suppressed ones (a higher-priority correlated
//! alert in the same incident), silenced ones and inhibited ones are not notified. The rest
//! are grouped by the route's `group_by` labels, and each group is notified when its
//! `group_wait` / `group_interval` / `repeat_interval` say so ([`notify::GroupState`]),
//! measured in event time so a replay notifies as living through it would.
//!
//! - A **webhook** receiver gets Alertmanager's webhook JSON (version "4").
//! - An **alertmanager** receiver gets `POST /api/v2/alerts` with the group's alerts, re-sent
//!   at least every minute while they fire (Alertmanager resolves alerts that are not
//!   re-sent), and once with `endsAt` when they resolve.
//!
//! Sending retries three times with backoff (1 s, 2 s, 4 s), then logs and drops.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;

use super::AlertView;
use crate::alerts::alert::{Labels, State};
use crate::alerts::notify::{self, GroupState, InhibitRule, Intervals, Matcher, Notified, Silence};
use crate::config::alerting::{Alerting, parse_rfc3339};

/// Where a receiver sends.
#[derive(Debug, Clone)]
enum Target {
    Webhook(http::Uri),
    Alertmanager(http::Uri),
}

/// One HTTP POST to make.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub receiver: String,
    pub url: http::Uri,
    pub body: Bytes,
}

/// The notification planner.
pub struct Notifier {
    receiver: Option<(String, Target)>,
    group_by: Vec<String>,
    intervals: Intervals,
    inhibit: Vec<InhibitRule>,
    silences: Vec<Silence>,
    external_url: String,
    groups: HashMap<String, GroupState>,
    /// For Alertmanager: when each group was last posted.
    posted: HashMap<String, u64>,
}

/// How often firing alerts are re-sent to an Alertmanager (event time).
const RESEND: u64 = 60_000_000_000;

fn matchers(list: &[String]) -> Vec<Matcher> {
    // Validated at start (config::alerting): a matcher that does not parse is left out.
    list.iter().filter_map(|m| Matcher::parse(m).ok()).collect()
}

impl Notifier {
    pub fn new(cfg: &Alerting) -> Notifier {
        let receiver = cfg.route.receiver.as_ref().and_then(|name| {
            let r = cfg.receivers.iter().find(|r| &r.name == name)?;
            let target = match (&r.webhook, &r.alertmanager) {
                (Some(w), _) => Target::Webhook(w.url.parse().ok()?),
                (None, Some(a)) => Target::Alertmanager(
                    format!("{}/api/v2/alerts", a.url.trim_end_matches('/'))
                        .parse()
                        .ok()?,
                ),
                (None, None) => return None,
            };
            Some((name.clone(), target))
        });
        Notifier {
            receiver,
            group_by: cfg.route.group_by.clone(),
            intervals: Intervals {
                group_wait: cfg.route.group_wait.as_nanos() as u64,
                group_interval: cfg.route.group_interval.as_nanos() as u64,
                repeat_interval: cfg.route.repeat_interval.as_nanos() as u64,
            },
            inhibit: cfg
                .inhibit_rules
                .iter()
                .map(|r| InhibitRule {
                    source: matchers(&r.source_matchers),
                    target: matchers(&r.target_matchers),
                    equal: r.equal.clone(),
                })
                .collect(),
            silences: cfg
                .silences
                .iter()
                .filter_map(|s| {
                    Some(Silence {
                        matchers: matchers(&s.matchers),
                        starts: parse_rfc3339(&s.starts_at).ok()?,
                        ends: parse_rfc3339(&s.ends_at).ok()?,
                    })
                })
                .collect(),
            external_url: cfg.external_url.clone(),
            groups: HashMap::new(),
            posted: HashMap::new(),
        }
    }

    /// Does the route name a receiver?
    pub fn active(&self) -> bool {
        self.receiver.is_some()
    }

    /// What to send at event time `t`, given every alert and the suppressed fingerprints.
    pub fn plan(
        &mut self,
        t: u64,
        alerts: &[AlertView],
        suppressed: &HashSet<u64>,
    ) -> Vec<Outgoing> {
        let Some((name, target)) = self.receiver.clone() else {
            return Vec::new();
        };
        let firing: Vec<Labels> = alerts
            .iter()
            .filter(|a| a.state == State::Firing)
            .map(|a| a.labels.clone())
            .collect();
        let mut groups: HashMap<String, (Labels, Vec<&AlertView>)> = HashMap::new();
        for a in alerts {
            let notifiable = match a.state {
                State::Firing => true,
                // Resolved ones are told once, with the group they were in.
                State::Resolved => a
                    .resolved_at
                    .is_some_and(|r| t.saturating_sub(r) <= self.intervals.repeat_interval),
                _ => false,
            };
            if !notifiable
                || suppressed.contains(&a.fingerprint)
                || self.silences.iter().any(|s| s.silences(&a.labels, t))
                || self.inhibit.iter().any(|r| r.inhibits(&a.labels, &firing))
            {
                continue;
            }
            let g = notify::group_labels(&a.labels, &self.group_by);
            let key = notify::group_key(&g);
            groups
                .entry(key)
                .or_insert_with(|| (g, Vec::new()))
                .1
                .push(a);
        }
        let mut out = Vec::new();
        for (key, (group, members)) in groups {
            let content: BTreeSet<(u64, bool)> = members
                .iter()
                .map(|a| (a.fingerprint, a.state == State::Firing))
                .collect();
            let state = self.groups.entry(key.clone()).or_default();
            let changed = state.last_content != content;
            let mut due = state.due(t, &content, &self.intervals);
            if let Target::Alertmanager(_) = target
                && !due
                && state.last_sent.is_some()
            {
                // Alertmanager needs firing alerts re-sent, whatever the grouping intervals.
                let last = self.posted.get(&key).copied().unwrap_or(0);
                due = (changed || content.iter().any(|c| c.1)) && t.saturating_sub(last) >= RESEND;
            }
            if !due {
                continue;
            }
            self.posted.insert(key.clone(), t);
            let notified: Vec<Notified> = members
                .iter()
                .map(|a| Notified {
                    labels: a.labels.clone(),
                    annotations: a.annotations.clone(),
                    starts_at: a.fired_at.unwrap_or(t),
                    ends_at: if a.state == State::Firing {
                        None
                    } else {
                        a.resolved_at
                    },
                    generator_url: format!(
                        "{}/alerts/{:016x}",
                        self.external_url.trim_end_matches('/'),
                        a.fingerprint
                    ),
                })
                .collect();
            let (url, body) = match &target {
                Target::Webhook(u) => (
                    u.clone(),
                    notify::webhook_payload(&name, &group, &notified, &self.external_url),
                ),
                Target::Alertmanager(u) => (u.clone(), notify::alertmanager_post(&notified)),
            };
            out.push(Outgoing {
                receiver: name.clone(),
                url,
                body: Bytes::from(body.to_string()),
            });
        }
        out
    }
}

use crate::stages::export::sink::{HttpClient as Client, Outcome, classify_http};

/// An HTTP client for notifications.
pub fn client() -> Result<Client, crate::stages::export::sink::SinkError> {
    crate::stages::export::sink::http_client(Duration::from_secs(5), None)
}

/// POSTs one notification; logs the outcome. Answers are classified as the HTTP exporters
/// classify them ([`classify_http`]): 429 and 502–504 (honouring `Retry-After`), connection
/// failures and timeouts are retried three times with backoff (1, 2, 4 s, or the
/// `Retry-After` up to a minute); any other
/// answer is final.
pub async fn send(client: Client, out: Outgoing) {
    let mut delay = Duration::from_secs(1);
    for attempt in 1..=4 {
        let req = http::Request::post(out.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(out.body.clone()));
        let outcome = match req {
            Ok(req) => {
                match tokio::time::timeout(Duration::from_secs(10), client.request(req)).await {
                    Ok(Ok(resp)) if resp.status().is_success() => None,
                    Ok(Ok(resp)) => {
                        let after = resp
                            .headers()
                            .get(http::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok());
                        Some(classify_http(resp.status().as_u16(), after, b""))
                    }
                    Ok(Err(e)) => Some(Outcome::Retry {
                        reason: e.to_string(),
                        after: None,
                    }),
                    Err(_) => Some(Outcome::Retry {
                        reason: "timed out".into(),
                        after: None,
                    }),
                }
            }
            Err(e) => Some(Outcome::Permanent {
                reason: e.to_string(),
            }),
        };
        match outcome {
            None | Some(Outcome::Sent { .. }) => {
                tracing::debug!(receiver = %out.receiver, url = %out.url, "notification sent");
                return;
            }
            Some(Outcome::Retry { reason, after }) if attempt < 4 => {
                tracing::warn!(receiver = %out.receiver, url = %out.url, error = %reason, attempt, "notification failed; retrying");
                tokio::time::sleep(after.unwrap_or(delay).clamp(delay, Duration::from_secs(60)))
                    .await;
                delay *= 2;
            }
            Some(
                Outcome::Retry { reason, .. }
                | Outcome::TooLarge { reason }
                | Outcome::Permanent { reason },
            ) => {
                tracing::error!(receiver = %out.receiver, url = %out.url, error = %reason, attempt, "notification dropped");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::alerting::{
        Endpoint, InhibitRule as InhibitConfig, Receiver, SilenceConfig,
    };
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const S: u64 = 1_000_000_000;

    fn view(fp: u64, name: &str, service: &str, state: State) -> AlertView {
        AlertView {
            fingerprint: fp,
            labels: [
                ("alertname".to_string(), name.to_string()),
                ("service".to_string(), service.to_string()),
            ]
            .into(),
            annotations: Labels::new(),
            state,
            value: Some(1.0),
            priority: 1.0,
            active_since: Some(0),
            fired_at: Some(0),
            resolved_at: (state == State::Resolved).then_some(100 * S),
        }
    }

    fn cfg(alertmanager: bool) -> Alerting {
        let mut c = Alerting::default();
        let ep = Some(Endpoint {
            url: "http://127.0.0.1:9/x".into(),
        });
        c.receivers = vec![Receiver {
            name: "r".into(),
            webhook: if alertmanager { None } else { ep.clone() },
            alertmanager: if alertmanager { ep } else { None },
        }];
        c.route.receiver = Some("r".into());
        c
    }

    fn bodies(out: &[Outgoing]) -> Vec<serde_json::Value> {
        out.iter()
            .map(|o| serde_json::from_slice(&o.body).unwrap())
            .collect()
    }

    /// A loopback HTTP server answering `statuses` in turn (then 200); counts requests.
    async fn answering(statuses: &'static [u16]) -> (http::Uri, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let seen = Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let status = statuses.get(n).copied().unwrap_or(200);
                let mut buf = vec![0u8; 64 * 1024];
                let _ = conn.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nretry-after: 0\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            }
        });
        (url.parse().unwrap(), seen)
    }

    /// 503 is retried (after 1 s, then 2 s); 400 is final.
    #[tokio::test]
    async fn sends_retry_what_the_exporters_retry() {
        let out = |url: http::Uri| Outgoing {
            receiver: "ops".into(),
            url,
            body: Bytes::from_static(b"{}"),
        };
        let (url, seen) = answering(&[503, 503]).await;
        send(client().expect("client"), out(url)).await;
        assert_eq!(seen.load(Ordering::SeqCst), 3);
        let (url, seen) = answering(&[400, 400]).await;
        send(client().expect("client"), out(url)).await;
        assert_eq!(seen.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn groups_wait_and_silences_inhibition_and_suppression_filter() {
        let mut c = cfg(false);
        c.inhibit_rules = vec![InhibitConfig {
            source_matchers: vec!["alertname=ServiceDown".into()],
            target_matchers: vec!["alertname=HighLatency".into()],
            equal: vec!["service".into()],
        }];
        c.silences = vec![SilenceConfig {
            matchers: vec!["service=batch".into()],
            starts_at: "1970-01-01T00:00:00Z".into(),
            ends_at: "2100-01-01T00:00:00Z".into(),
            comment: String::new(),
        }];
        let mut n = Notifier::new(&c);
        let alerts = vec![
            view(1, "ServiceDown", "cart", State::Firing),
            view(2, "HighLatency", "cart", State::Firing), // inhibited
            view(3, "HighErrors", "batch", State::Firing), // silenced
            view(4, "HighErrors", "db", State::Firing),    // suppressed
            view(5, "HighErrors", "web", State::Firing),
        ];
        let suppressed: HashSet<u64> = [4].into();
        assert!(n.plan(0, &alerts, &suppressed).is_empty(), "group_wait");
        let out = n.plan(30 * S, &alerts, &suppressed);
        let mut keys: Vec<String> = bodies(&out)
            .iter()
            .map(|b| b["groupKey"].as_str().unwrap().to_string())
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "{}:{alertname=\"HighErrors\", service=\"web\"}",
                "{}:{alertname=\"ServiceDown\", service=\"cart\"}"
            ]
        );
        // Nothing changed: nothing until repeat_interval.
        assert!(n.plan(400 * S, &alerts, &suppressed).is_empty());
        // web resolves: told after group_interval.
        let mut later = alerts.clone();
        later[4] = view(5, "HighErrors", "web", State::Resolved);
        let out = n.plan(400 * S, &later, &suppressed);
        assert_eq!(bodies(&out)[0]["status"], "resolved");
        // Without a receiver nothing is planned.
        assert!(
            Notifier::new(&Alerting::default())
                .plan(30 * S, &alerts, &suppressed)
                .is_empty()
        );
    }

    #[test]
    fn alertmanager_gets_firing_alerts_again_every_minute() {
        let mut n = Notifier::new(&cfg(true));
        let alerts = vec![view(1, "HighErrors", "web", State::Firing)];
        let none = HashSet::new();
        assert!(n.plan(0, &alerts, &none).is_empty(), "group_wait");
        let first = n.plan(30 * S, &alerts, &none);
        assert_eq!(first[0].url.path(), "/x/api/v2/alerts");
        let b = &bodies(&first)[0];
        assert!(b.is_array() && b[0].get("endsAt").is_none());
        assert!(n.plan(60 * S, &alerts, &none).is_empty());
        assert_eq!(
            n.plan(90 * S, &alerts, &none).len(),
            1,
            "re-sent after a minute"
        );
        let resolved = vec![view(1, "HighErrors", "web", State::Resolved)];
        let out = n.plan(400 * S, &resolved, &none);
        assert!(bodies(&out)[0][0]["endsAt"].is_string());
    }
}

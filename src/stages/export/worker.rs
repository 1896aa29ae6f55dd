//! One exporter at work: take batches from its queue, send them through its sink with retry
//! and the circuit breaker, and remove them once the downstream has answered for good.
//!
//! The loop (one task per exporter, its bulkhead):
//! 1. Wait until the queue holds entries past the cursor.
//! 2. Wait until they make a batch: `send_batch_size` items or `max_request_bytes` bytes, or
//!    the first has waited `batch.timeout` (a signal change ends a batch early: one batch
//!    holds one signal). While draining, at once.
//! 3. Take a consumer slot (`num_consumers`), take the batch, move the cursor past it, and hand
//!    it to a delivery task that owns it until it is done.
//!
//! A delivery concatenates the entries' bodies ([`wire::concat`]), cuts the result into
//! pieces of at most `max_request_bytes` ([`wire::split`]) and sends the pieces in order.
//! Retryable failures back off ([`retry::backoff`]) and retry the same piece; "too large"
//! halves it; a permanent failure drops the piece (counted, logged). When every piece is done
//! the entries leave the queue. A stop at the drain deadline abandons deliveries in flight:
//! their entries stay queued and go again after a restart (at-least-once).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::queue::{Entry, EntryMeta, Queue};
use super::retry::{self, Breaker, Transition};
use super::sink::{Outcome, Sink};
use super::{Counters, wire};
use crate::config;
use crate::otlp::Signal;
use crate::telemetry::events;

/// Shortest wait honoured from a server's RetryInfo or Retry-After.
const MIN_SERVER_DELAY: Duration = Duration::from_millis(50);
/// Longest wait honoured from a server (or `max_interval`, if longer).
const MAX_SERVER_DELAY: Duration = Duration::from_secs(300);

/// A running exporter.
pub struct Exporter {
    pub name: String,
    pub signals: Vec<Signal>,
    pub queue: Arc<Queue>,
    pub sink: Sink,
    pub breaker: Breaker,
    pub batch: config::Batch,
    pub retry: config::RetryOnFailure,
    pub num_consumers: usize,
    pub drain_timeout: Duration,
    pub counters: Counters,
    /// Delivered entries whose removal failed, to be removed again.
    pub unremoved: std::sync::Mutex<Vec<EntryMeta>>,
}

impl Exporter {
    /// Runs until `drain` is cancelled and the queue is empty, or the drain deadline passes.
    pub async fn run(self: Arc<Self>, drain: CancellationToken) {
        let stop = CancellationToken::new();
        let slots = Arc::new(Semaphore::new(self.num_consumers));
        let mut deliveries = JoinSet::new();
        let mut cursor = 0u64;
        let mut first_seen: Option<Instant> = None;
        let mut draining = false;
        let max_bytes = self.batch.max_request_bytes as u64;
        // The drain deadline runs on its own, whatever the loop is waiting for.
        let deadline = {
            let (drain, stop, after) = (drain.clone(), stop.clone(), self.drain_timeout);
            tokio::spawn(async move {
                tokio::select! {
                    _ = drain.cancelled() => {}
                    _ = stop.cancelled() => return,
                }
                tokio::select! {
                    _ = tokio::time::sleep(after) => stop.cancel(),
                    _ = stop.cancelled() => {}
                }
            })
        };
        loop {
            while deliveries.try_join_next().is_some() {}
            self.retry_removals();
            draining = draining || drain.is_cancelled();
            if stop.is_cancelled() {
                break;
            }
            let (items, bytes, n) = self
                .queue
                .peek(cursor, self.batch.send_batch_size, max_bytes);
            if n == 0 {
                first_seen = None;
                if draining && deliveries.is_empty() {
                    break;
                }
                tokio::select! {
                    _ = self.queue.notify.notified() => {}
                    _ = drain.cancelled(), if !draining => {}
                    _ = stop.cancelled() => break,
                    _ = deliveries.join_next(), if !deliveries.is_empty() => {}
                }
                continue;
            }
            let since = *first_seen.get_or_insert_with(Instant::now);
            let ready = items >= self.batch.send_batch_size || bytes >= max_bytes || draining;
            if !ready && since.elapsed() < self.batch.timeout {
                tokio::select! {
                    _ = self.queue.notify.notified() => {}
                    _ = tokio::time::sleep_until(since + self.batch.timeout) => {}
                    _ = drain.cancelled(), if !draining => {}
                    _ = stop.cancelled() => break,
                }
                continue;
            }
            let slot = tokio::select! {
                s = slots.clone().acquire_owned() => match s {
                    Ok(s) => s,
                    Err(_) => break,
                },
                _ = stop.cancelled() => break,
            };
            let taken = self
                .queue
                .take(cursor, self.batch.send_batch_size, max_bytes);
            let (entries, lost) = match taken {
                Ok(t) => t,
                Err(e) => {
                    events::ExportQueueFailed {
                        exporter: &self.name,
                        error: &e,
                    }
                    .emit();
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.cancelled() => break,
                    }
                    continue;
                }
            };
            for (meta, e) in &lost {
                events::ExportEntriesLost {
                    exporter: &self.name,
                    items: meta.items,
                    error: e,
                    counters: &self.counters,
                }
                .emit();
            }
            let last = entries
                .iter()
                .map(|e| e.meta.key)
                .chain(lost.iter().map(|l| l.0.key))
                .max();
            if let Some(last) = last {
                cursor = last + 1;
            }
            first_seen = None;
            if !entries.is_empty() {
                deliveries.spawn(self.clone().deliver(entries, slot, stop.clone()));
            }
        }
        stop.cancel();
        while deliveries.join_next().await.is_some() {}
        let _ = deadline.await;
    }

    /// Sends one batch until every piece is delivered or given up, then removes its entries.
    /// Returns early, leaving them queued, when `stop` fires.
    async fn deliver(
        self: Arc<Self>,
        entries: Vec<Entry>,
        _slot: OwnedSemaphorePermit,
        stop: CancellationToken,
    ) {
        let signal = entries[0].meta.signal;
        let bodies: Vec<_> = entries.iter().map(|e| e.body.clone()).collect();
        let body = wire::concat(&bodies);
        let mut pieces: VecDeque<wire::Piece> =
            match wire::split(&body, self.batch.max_request_bytes) {
                Ok(p) => p.into(),
                Err(e) => {
                    // Only bodies sieve validated are queued, so this is damage on disk.
                    events::ExportItemsFailed {
                        exporter: &self.name,
                        signal,
                        items: entries.iter().map(|e| e.meta.items).sum(),
                        reason: &format!("queued request is not valid protobuf: {e}"),
                        counters: &self.counters,
                    }
                    .emit();
                    pieces_done(&self, &entries);
                    return;
                }
            };
        let mut attempt = 0u32;
        while let Some(piece) = pieces.front().cloned() {
            // The breaker decides whether anything may go now.
            let pass = loop {
                match self.breaker.try_acquire(Instant::now()) {
                    Ok(pass) => {
                        if let Some(transition) = pass.transition {
                            breaker_changed(&self.name, transition);
                        }
                        break pass;
                    }
                    Err(wait) => tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.cancelled() => return,
                    },
                }
            };
            let outcome = tokio::select! {
                o = self.sink.send(signal, piece.body.clone(), piece.items) => o,
                _ = stop.cancelled() => return,
            };
            let failed = matches!(outcome, Outcome::Retry { .. });
            if let Some(transition) = self.breaker.record(failed, pass.probe, Instant::now()) {
                breaker_changed(&self.name, transition);
            }
            match outcome {
                Outcome::Sent { rejected, message } => {
                    pieces.pop_front();
                    attempt = 0;
                    self.counters.sent_requests.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .sent_items
                        .fetch_add(piece.items.saturating_sub(rejected), Ordering::Relaxed);
                    if rejected > 0 {
                        events::ExportItemsRejected {
                            exporter: &self.name,
                            signal,
                            items: rejected,
                            message: &message,
                            counters: &self.counters,
                        }
                        .emit();
                    }
                }
                Outcome::Retry { reason, after } => {
                    let delay = match after {
                        // The server's delay, kept within sane bounds: a zero would spin, a
                        // year would hold a consumer slot until restart.
                        Some(d) => d.clamp(
                            MIN_SERVER_DELAY,
                            self.retry.max_interval.max(MAX_SERVER_DELAY),
                        ),
                        None => retry::backoff(&self.retry, attempt, rand::rng().random::<f64>()),
                    };
                    events::ExportRetrying {
                        exporter: &self.name,
                        signal,
                        items: piece.items,
                        attempt,
                        delay,
                        reason: &reason,
                        counters: &self.counters,
                    }
                    .emit();
                    attempt = attempt.saturating_add(1);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.cancelled() => return,
                    }
                }
                Outcome::TooLarge { reason } => {
                    let halves = if piece.items > 1 {
                        wire::split(&piece.body, piece.body.len() / 2)
                            .ok()
                            .filter(|h| h.len() > 1)
                    } else {
                        None
                    };
                    pieces.pop_front();
                    match halves {
                        Some(halves) => {
                            self.counters.splits.fetch_add(1, Ordering::Relaxed);
                            for h in halves.into_iter().rev() {
                                pieces.push_front(h);
                            }
                        }
                        None => events::ExportItemsFailed {
                            exporter: &self.name,
                            signal,
                            items: piece.items,
                            reason: &format!(
                                "too large for the downstream and cannot be split further: {reason}"
                            ),
                            counters: &self.counters,
                        }
                        .emit(),
                    }
                }
                Outcome::Permanent { reason } => {
                    pieces.pop_front();
                    attempt = 0;
                    events::ExportItemsFailed {
                        exporter: &self.name,
                        signal,
                        items: piece.items,
                        reason: &reason,
                        counters: &self.counters,
                    }
                    .emit();
                }
            }
        }
        pieces_done(&self, &entries);
    }
}

/// Every piece of a batch is done: its entries leave the queue. When sled refuses, they are
/// kept for the run loop to remove later (they are behind its cursor and would otherwise sit
/// in the queue until a restart).
fn pieces_done(exporter: &Exporter, entries: &[Entry]) {
    let metas: Vec<_> = entries.iter().map(|e| e.meta).collect();
    exporter.remove_or_keep(metas);
}

impl Exporter {
    fn remove_or_keep(&self, metas: Vec<EntryMeta>) {
        match self.queue.remove(&metas) {
            Ok(_) => {
                self.counters.acks.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                events::ExportQueueFailed {
                    exporter: &self.name,
                    error: &e,
                }
                .emit();
                self.unremoved
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(metas);
            }
        }
    }

    /// Retries removals that failed.
    fn retry_removals(&self) {
        let pending =
            std::mem::take(&mut *self.unremoved.lock().unwrap_or_else(|p| p.into_inner()));
        if !pending.is_empty() {
            self.remove_or_keep(pending);
        }
    }
}

fn breaker_changed(exporter: &str, t: Transition) {
    events::ExportBreakerChanged {
        exporter,
        from: t.from.as_str(),
        to: t.to.as_str(),
        failures: t.failures,
        window: t.window,
    }
    .emit();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WhenFull;
    use crate::stages::export::queue::Queues;
    use crate::stages::export::retry::State;
    use crate::stages::export::sink::script::Script;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    fn request(spans: u64) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: (0..spans)
                        .map(|i| Span {
                            trace_id: vec![7; 16],
                            span_id: (i + 1).to_be_bytes().to_vec(),
                            name: "op".into(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    struct Rig {
        _dir: tempfile::TempDir,
        queues: Arc<Queues>,
        exporter: Arc<Exporter>,
    }

    fn rig(answers: Vec<Outcome>, batch: config::Batch, breaker: config::CircuitBreaker) -> Rig {
        let mut cfg = config::Storage::default();
        let (dir, store) = crate::store::temp_store(&mut cfg);
        let queues = Queues::open(store).unwrap();
        let queue = queues
            .queue("otlp/test", 1 << 30, WhenFull::Refuse)
            .unwrap();
        let script = Script::default();
        script.answers.lock().unwrap().extend(answers);
        let exporter = Arc::new(Exporter {
            name: "otlp/test".into(),
            signals: vec![Signal::Traces],
            queue,
            sink: Sink::Script(script),
            breaker: Breaker::new(breaker),
            batch,
            retry: config::RetryOnFailure {
                initial_interval: Duration::from_secs(5),
                max_interval: Duration::from_secs(30),
                randomization_factor: 0.0,
                ..Default::default()
            },
            num_consumers: 1,
            drain_timeout: Duration::from_secs(5),
            counters: Counters::default(),
            unremoved: Default::default(),
        });
        Rig {
            _dir: dir,
            queues,
            exporter,
        }
    }

    impl Rig {
        fn enqueue(&self, spans: u64) {
            self.queues
                .enqueue(
                    Signal::Traces,
                    &request(spans),
                    spans,
                    std::slice::from_ref(&self.exporter.queue),
                )
                .unwrap();
            self.exporter.queue.notify.notify_one();
        }

        fn calls(&self) -> Vec<(Instant, bytes::Bytes)> {
            match &self.exporter.sink {
                Sink::Script(s) => s.calls.lock().unwrap().clone(),
                _ => unreachable!(),
            }
        }
    }

    fn unavailable() -> Outcome {
        Outcome::Retry {
            reason: "Unavailable: down".into(),
            after: None,
        }
    }

    /// Retries follow min(cap, base·2^n) (jitter 0 here), a server delay is honoured as
    /// given, and the entries leave the queue only after the OK.
    #[tokio::test(start_paused = true)]
    async fn backoff_delays_follow_the_formula_and_retry_info() {
        let mut answers = vec![unavailable(); 5];
        answers.push(Outcome::Retry {
            reason: "ResourceExhausted: busy".into(),
            after: Some(Duration::from_secs(2)),
        });
        let breaker = config::CircuitBreaker {
            window: 100,
            min_requests: 100,
            ..Default::default()
        };
        let r = rig(answers, config::Batch::default(), breaker);
        r.enqueue(3);
        let drain = CancellationToken::new();
        let task = tokio::spawn(r.exporter.clone().run(drain.clone()));
        let start = Instant::now();
        // Wait in paused time until the seventh call (the success) has happened.
        while r.calls().len() < 7 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let calls = r.calls();
        let gaps: Vec<u64> = calls
            .windows(2)
            .map(|w| (w[1].0 - w[0].0).as_secs())
            .collect();
        assert_eq!(gaps, vec![5, 10, 20, 30, 30, 2]);
        // The first call waited for the batch timeout (3 items < 8192).
        assert_eq!(calls[0].0 - start, Duration::from_millis(200));
        while !r.exporter.queue.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(r.exporter.counters.retries.load(Ordering::Relaxed), 6);
        assert_eq!(r.exporter.counters.sent_items.load(Ordering::Relaxed), 3);
        drain.cancel();
        task.await.unwrap();
    }

    /// The breaker opens after the failure rate, sends nothing during the cool-down, lets one
    /// probe through, and closes when it succeeds.
    #[tokio::test(start_paused = true)]
    async fn breaker_opens_under_failures_and_closes_after_recovery() {
        let breaker = config::CircuitBreaker {
            window: 4,
            min_requests: 4,
            failure_rate: 0.5,
            cool_down: Duration::from_secs(60),
        };
        let r = rig(vec![unavailable(); 5], config::Batch::default(), breaker);
        r.enqueue(1);
        let drain = CancellationToken::new();
        let task = tokio::spawn(r.exporter.clone().run(drain.clone()));
        while r.calls().len() < 4 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(r.exporter.breaker.state(), State::Open);
        let opened = r.calls()[3].0;
        // Backoff alone would retry after 30 s; the open breaker holds it for the cool-down.
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert_eq!(r.calls().len(), 4);
        while r.calls().len() < 5 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let probe = r.calls()[4].0;
        assert_eq!((probe - opened).as_secs(), 60);
        // The probe failed (fifth scripted failure): open again for another cool-down, then
        // the next probe succeeds and the breaker closes.
        assert_eq!(r.exporter.breaker.state(), State::Open);
        while !r.exporter.queue.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let calls = r.calls();
        assert_eq!(calls.len(), 6);
        assert_eq!((calls[5].0 - probe).as_secs(), 60);
        assert_eq!(r.exporter.breaker.state(), State::Closed);
        drain.cancel();
        task.await.unwrap();
    }

    /// Entries batch up to send_batch_size; an oversize batch is split by bytes; "too large"
    /// halves a piece; a permanent failure drops it and counts it.
    #[tokio::test(start_paused = true)]
    async fn batching_splitting_and_permanent_failures() {
        let batch = config::Batch {
            send_batch_size: 10,
            timeout: Duration::from_millis(200),
            max_request_bytes: 1 << 20,
        };
        let answers = vec![
            Outcome::TooLarge {
                reason: "ResourceExhausted: too big".into(),
            },
            Outcome::Sent {
                rejected: 0,
                message: String::new(),
            },
            Outcome::Permanent {
                reason: "InvalidArgument: no".into(),
            },
        ];
        let r = rig(answers, batch, config::CircuitBreaker::default());
        for _ in 0..4 {
            r.enqueue(3);
        }
        let drain = CancellationToken::new();
        let task = tokio::spawn(r.exporter.clone().run(drain.clone()));
        while !r.exporter.queue.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let calls = r.calls();
        let items: Vec<u64> = calls
            .iter()
            .map(|(_, b)| wire::count_items(b).unwrap())
            .collect();
        // Batch 1: three entries (9 items; a fourth would pass 10), refused as too large,
        // cut at half its bytes (one resource, three spans, per piece): the first piece
        // sent, the second refused for good, the third sent. Batch 2: the fourth entry,
        // after the batch timeout.
        assert_eq!(items, vec![9, 3, 3, 3, 3]);
        let c = &r.exporter.counters;
        assert_eq!(c.failed_items.load(Ordering::Relaxed), 3);
        assert_eq!(c.sent_items.load(Ordering::Relaxed), 9);
        assert_eq!(c.splits.load(Ordering::Relaxed), 1);
        drain.cancel();
        task.await.unwrap();
    }

    /// With nothing queued, shutdown does not wait for the drain deadline.
    #[tokio::test(start_paused = true)]
    async fn an_empty_queue_stops_at_once() {
        let r = rig(
            vec![],
            config::Batch::default(),
            config::CircuitBreaker::default(),
        );
        r.enqueue(1);
        let drain = CancellationToken::new();
        let task = tokio::spawn(r.exporter.clone().run(drain.clone()));
        while !r.exporter.queue.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drain.cancel();
        let t0 = Instant::now();
        task.await.unwrap();
        assert_eq!(Instant::now() - t0, Duration::ZERO);
    }

    /// Shutdown drains what it can within the deadline and leaves the rest queued, also
    /// when every consumer is busy and more batches wait for one.
    #[tokio::test(start_paused = true)]
    async fn drain_stops_at_the_deadline_leaving_the_rest_queued() {
        let batch = config::Batch {
            send_batch_size: 2,
            ..Default::default()
        };
        let r = rig(
            vec![unavailable(); 100],
            batch,
            config::CircuitBreaker::default(),
        );
        r.enqueue(2);
        r.enqueue(2);
        r.enqueue(2);
        let drain = CancellationToken::new();
        let task = tokio::spawn(r.exporter.clone().run(drain.clone()));
        tokio::time::sleep(Duration::from_secs(1)).await;
        drain.cancel();
        let t0 = Instant::now();
        task.await.unwrap();
        assert_eq!((Instant::now() - t0).as_secs(), 5);
        assert_eq!(r.exporter.queue.items(), 6);
    }
}

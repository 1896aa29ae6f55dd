//! sieve's own telemetry: counters behind `GetStats`, the named events that move them, and
//! the `tracing` subscriber set-up.
//!
//! Every event is a struct whose `emit` writes its log line and bumps its counters together,
//! once per request or batch (never per item), after vector's `internal_events`. Names follow
//! `<Stage><Noun><Verb>[Error|Failed]`. Refusals under backpressure are not losses (the client
//! retries), so they log at debug; rejections of bad items are losses the sender should hear
//! about, so they log at warn.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::config::LogFormat;
use crate::otlp::Signal;

/// Counters of one signal.
#[derive(Debug, Default)]
pub struct SignalCounters {
    /// Items in decoded requests.
    pub received: AtomicU64,
    /// Items stored and acknowledged.
    pub accepted: AtomicU64,
    /// Items rejected by validation.
    pub rejected: AtomicU64,
    /// Requests refused because intake was full (refused before decoding, so counted as
    /// requests, not items).
    pub refused: AtomicU64,
    /// Bytes of keys and values written.
    pub stored_bytes: AtomicU64,
    /// Requests answered OK.
    pub requests: AtomicU64,
    /// Items already past retention on arrival (a replay of old data): not written, and
    /// reported in partial_success.
    pub expired: AtomicU64,
}

/// A consistent-enough copy of [`SignalCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignalSnapshot {
    pub received: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub refused: u64,
    pub stored_bytes: u64,
    pub requests: u64,
    pub expired: u64,
}

impl SignalCounters {
    pub fn snapshot(&self) -> SignalSnapshot {
        SignalSnapshot {
            received: self.received.load(Ordering::Relaxed),
            accepted: self.accepted.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            stored_bytes: self.stored_bytes.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            expired: self.expired.load(Ordering::Relaxed),
        }
    }
}

/// The gateway's counters since start.
#[derive(Debug)]
pub struct Stats {
    pub spans: SignalCounters,
    pub logs: SignalCounters,
    pub metrics: SignalCounters,
    /// Requests whose body was not a valid protobuf message.
    pub undecodable_requests: AtomicU64,
    pub started: Instant,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            spans: SignalCounters::default(),
            logs: SignalCounters::default(),
            metrics: SignalCounters::default(),
            undecodable_requests: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}

impl Stats {
    pub fn signal(&self, kind: Signal) -> &SignalCounters {
        match kind {
            Signal::Traces => &self.spans,
            Signal::Logs => &self.logs,
            Signal::Metrics => &self.metrics,
        }
    }
}

/// One exporter's counters since start.
#[derive(Debug, Default)]
pub struct ExporterCounters {
    /// Items the downstream accepted.
    pub sent_items: AtomicU64,
    /// Requests the downstream answered OK.
    pub sent_requests: AtomicU64,
    /// Items given up after a non-retryable answer.
    pub failed_items: AtomicU64,
    /// Items the downstream accepted the request of but rejected (partial success).
    pub rejected_items: AtomicU64,
    /// Items dropped by the drop-oldest policy.
    pub dropped_items: AtomicU64,
    /// Items whose queued body could not be read back.
    pub lost_items: AtomicU64,
    /// Retries of failed attempts.
    pub retries: AtomicU64,
    /// Pieces halved after "too large".
    pub splits: AtomicU64,
    /// Batches finished (removed from the queue).
    pub acks: AtomicU64,
}

/// The named events.
pub mod events {
    use std::fmt::Display;
    use std::net::SocketAddr;
    use std::sync::atomic::Ordering;

    use super::{Signal, Stats};

    /// A listener is bound and serving.
    pub struct ServerListenerStarted<'a> {
        pub name: &'a str,
        pub addr: SocketAddr,
    }

    impl ServerListenerStarted<'_> {
        pub fn emit(self) {
            tracing::info!(listener = self.name, addr = %self.addr, "{} listening on {}", self.name, self.addr);
        }
    }

    /// A listener on every interface without auth: anyone who can reach the port can send
    /// or read.
    pub struct ServerListenerUnprotected<'a> {
        pub name: &'a str,
        pub addr: SocketAddr,
    }

    impl ServerListenerUnprotected<'_> {
        pub fn emit(self) {
            tracing::warn!(
                listener = self.name,
                addr = %self.addr,
                "{} listens on every interface ({}) without auth: set auth (extensions.bearertokenauth) or bind 127.0.0.1",
                self.name,
                self.addr
            );
        }
    }

    /// The memory limiter started or stopped refusing requests.
    pub struct MemoryLimiterChanged {
        pub over: bool,
        pub rss_bytes: u64,
        pub soft_limit_bytes: u64,
        pub hard_limit_bytes: u64,
    }

    impl MemoryLimiterChanged {
        pub fn emit(self) {
            if self.over {
                tracing::warn!(
                    rss_bytes = self.rss_bytes,
                    soft_limit_bytes = self.soft_limit_bytes,
                    hard_limit_bytes = self.hard_limit_bytes,
                    "memory over the memory_limiter's soft limit: refusing new requests"
                );
            } else {
                tracing::info!(
                    rss_bytes = self.rss_bytes,
                    soft_limit_bytes = self.soft_limit_bytes,
                    "memory back under the memory_limiter's soft limit: accepting requests"
                );
            }
        }
    }

    /// A request without an accepted bearer token was refused (the token is not logged).
    pub struct ServerRequestUnauthenticated<'a> {
        pub listener: &'a str,
    }

    impl ServerRequestUnauthenticated<'_> {
        pub fn emit(self) {
            tracing::debug!(
                listener = self.listener,
                "request refused: missing or wrong bearer token"
            );
        }
    }

    /// A request was decoded.
    pub struct ReceiverRequestReceived {
        pub signal: Signal,
        pub items: u64,
    }

    impl ReceiverRequestReceived {
        pub fn emit(self, stats: &Stats) {
            stats
                .signal(self.signal)
                .received
                .fetch_add(self.items, Ordering::Relaxed);
            tracing::trace!(
                signal = self.signal.as_str(),
                items = self.items,
                "request received"
            );
        }
    }

    /// A request's valid items are durably stored and the OK is going out.
    pub struct ReceiverItemsAccepted {
        pub signal: Signal,
        pub items: u64,
        pub bytes: u64,
    }

    impl ReceiverItemsAccepted {
        pub fn emit(self, stats: &Stats) {
            let c = stats.signal(self.signal);
            c.accepted.fetch_add(self.items, Ordering::Relaxed);
            c.stored_bytes.fetch_add(self.bytes, Ordering::Relaxed);
            c.requests.fetch_add(1, Ordering::Relaxed);
            tracing::trace!(
                signal = self.signal.as_str(),
                items = self.items,
                bytes = self.bytes,
                "items accepted"
            );
        }
    }

    /// Items failed validation and were left out (reported in partial_success).
    pub struct ReceiverItemsRejected<'a> {
        pub signal: Signal,
        pub items: u64,
        pub message: &'a str,
    }

    impl ReceiverItemsRejected<'_> {
        pub fn emit(self, stats: &Stats) {
            stats
                .signal(self.signal)
                .rejected
                .fetch_add(self.items, Ordering::Relaxed);
            tracing::warn!(
                signal = self.signal.as_str(),
                rejected = self.items,
                "{}",
                self.message
            );
        }
    }

    /// A request was refused with UNAVAILABLE because intake was full. Not a loss: the client
    /// retries after the RetryInfo delay.
    pub struct ReceiverRequestRefused {
        pub signal: Signal,
    }

    impl ReceiverRequestRefused {
        pub fn emit(self, stats: &Stats) {
            stats
                .signal(self.signal)
                .refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                signal = self.signal.as_str(),
                "intake full, request refused"
            );
        }
    }

    /// A request body was not a valid protobuf message.
    pub struct ReceiverRequestUndecodable<'a> {
        pub signal: Signal,
        pub error: &'a dyn Display,
    }

    impl ReceiverRequestUndecodable<'_> {
        pub fn emit(self, stats: &Stats) {
            stats.undecodable_requests.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(signal = self.signal.as_str(), error = %self.error, "undecodable request");
        }
    }

    /// Writing or flushing a request failed; the client gets an error and retries.
    pub struct IntakeWriteFailed<'a> {
        pub error: &'a dyn Display,
    }

    impl IntakeWriteFailed<'_> {
        pub fn emit(self) {
            tracing::error!(error = %self.error, "intake write failed");
        }
    }

    /// Accepted items were older than the retention and were not written (an intended drop).
    pub struct StoreItemsExpired {
        pub signal: Signal,
        pub items: u64,
    }

    impl StoreItemsExpired {
        pub fn emit(self, stats: &Stats) {
            stats
                .signal(self.signal)
                .expired
                .fetch_add(self.items, Ordering::Relaxed);
            tracing::debug!(
                signal = self.signal.as_str(),
                items = self.items,
                "items past retention on arrival, not stored"
            );
        }
    }

    /// A partition passed the retention horizon and was dropped.
    pub struct StorePartitionExpired {
        pub signal: Signal,
        pub start: u64,
        pub end: u64,
        /// How long dropping the tree and its value log took.
        pub took: std::time::Duration,
    }

    impl StorePartitionExpired {
        pub fn emit(self) {
            tracing::info!(
                signal = ?self.signal,
                start = self.start,
                end = self.end,
                took_ms = self.took.as_millis() as u64,
                "expired partition dropped"
            );
        }
    }

    /// A stored chunk could not be read or decoded (a record torn by a crash before it was
    /// acknowledged, or damage on disk). The query goes on without it.
    pub struct StoreChunkUnreadable<'a> {
        pub error: &'a dyn Display,
    }

    impl StoreChunkUnreadable<'_> {
        pub fn emit(self) {
            tracing::warn!(error = %self.error, "unreadable chunk skipped");
        }
    }

    /// An exporter's batch failed in a way worth retrying; it is retried after `delay`.
    pub struct ExportRetrying<'a> {
        pub exporter: &'a str,
        pub signal: Signal,
        pub items: u64,
        pub attempt: u32,
        pub delay: std::time::Duration,
        pub reason: &'a str,
        pub counters: &'a super::ExporterCounters,
    }

    impl ExportRetrying<'_> {
        pub fn emit(self) {
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            // The first failure of a batch is news; its later retries are not.
            if self.attempt == 0 {
                tracing::warn!(
                    exporter = self.exporter,
                    signal = self.signal.as_str(),
                    items = self.items,
                    delay_ms = self.delay.as_millis() as u64,
                    reason = self.reason,
                    "export failed, will retry"
                );
            } else {
                tracing::debug!(
                    exporter = self.exporter,
                    signal = self.signal.as_str(),
                    items = self.items,
                    attempt = self.attempt,
                    delay_ms = self.delay.as_millis() as u64,
                    reason = self.reason,
                    "export retry failed"
                );
            }
        }
    }

    /// A downstream refused items for good (a non-retryable status): they leave the queue.
    pub struct ExportItemsFailed<'a> {
        pub exporter: &'a str,
        pub signal: Signal,
        pub items: u64,
        pub reason: &'a str,
        pub counters: &'a super::ExporterCounters,
    }

    impl ExportItemsFailed<'_> {
        pub fn emit(self) {
            self.counters
                .failed_items
                .fetch_add(self.items, Ordering::Relaxed);
            tracing::warn!(
                exporter = self.exporter,
                signal = self.signal.as_str(),
                items = self.items,
                reason = self.reason,
                "export failed permanently, items dropped"
            );
        }
    }

    /// A downstream accepted a request but rejected some of its items (partial success).
    pub struct ExportItemsRejected<'a> {
        pub exporter: &'a str,
        pub signal: Signal,
        pub items: u64,
        pub message: &'a str,
        pub counters: &'a super::ExporterCounters,
    }

    impl ExportItemsRejected<'_> {
        pub fn emit(self) {
            self.counters
                .rejected_items
                .fetch_add(self.items, Ordering::Relaxed);
            tracing::warn!(
                exporter = self.exporter,
                signal = self.signal.as_str(),
                rejected = self.items,
                message = self.message,
                "downstream rejected items (partial success)"
            );
        }
    }

    /// Drop-oldest made room in a full queue.
    pub struct ExportQueueDropped<'a> {
        pub exporter: &'a str,
        pub entries: u64,
        pub items: u64,
        pub counters: &'a super::ExporterCounters,
    }

    impl ExportQueueDropped<'_> {
        pub fn emit(self) {
            self.counters
                .dropped_items
                .fetch_add(self.items, Ordering::Relaxed);
            tracing::warn!(
                exporter = self.exporter,
                entries = self.entries,
                items = self.items,
                "queue full, oldest items dropped"
            );
        }
    }

    /// Queued bodies could not be read back (damage on disk); they are lost.
    pub struct ExportEntriesLost<'a> {
        pub exporter: &'a str,
        pub items: u64,
        pub error: &'a dyn Display,
        pub counters: &'a super::ExporterCounters,
    }

    impl ExportEntriesLost<'_> {
        pub fn emit(self) {
            self.counters
                .lost_items
                .fetch_add(self.items, Ordering::Relaxed);
            tracing::error!(exporter = self.exporter, items = self.items, error = %self.error, "queued items unreadable, lost");
        }
    }

    /// An exporter's circuit breaker changed state (`from` and `to` are `closed`, `open` or
    /// `half-open`; `failures` of the last `window` calls when it opened).
    pub struct ExportBreakerChanged<'a> {
        pub exporter: &'a str,
        pub from: &'static str,
        pub to: &'static str,
        pub failures: usize,
        pub window: usize,
    }

    impl ExportBreakerChanged<'_> {
        pub fn emit(self) {
            if self.to == "open" {
                tracing::warn!(
                    exporter = self.exporter,
                    from = self.from,
                    to = self.to,
                    failures = self.failures,
                    window = self.window,
                    "circuit breaker opened"
                );
            } else {
                tracing::info!(
                    exporter = self.exporter,
                    from = self.from,
                    to = self.to,
                    "circuit breaker {}",
                    self.to
                );
            }
        }
    }

    /// Shutdown did not wait longer for notifications still being sent (Alertmanager and
    /// webhooks retried for up to a minute each); they are not sent.
    pub struct NotificationsAbandoned {
        pub count: usize,
        pub after: std::time::Duration,
    }

    impl NotificationsAbandoned {
        pub fn emit(self) {
            tracing::warn!(
                count = self.count,
                after_ms = self.after.as_millis() as u64,
                "shutdown: notifications still being sent were abandoned"
            );
        }
    }

    /// An exporter's queue could not be read or updated; it is tried again shortly.
    pub struct ExportQueueFailed<'a> {
        pub exporter: &'a str,
        pub error: &'a dyn Display,
    }

    impl ExportQueueFailed<'_> {
        pub fn emit(self) {
            tracing::error!(exporter = self.exporter, error = %self.error, "export queue error");
        }
    }

    /// Merging the analysis figures into sled failed; they are lost (the data is not).
    pub struct AnalysisCheckpointFailed<'a> {
        pub error: &'a dyn Display,
    }

    impl AnalysisCheckpointFailed<'_> {
        pub fn emit(self) {
            tracing::error!(error = %self.error, "analysis checkpoint failed");
        }
    }

    /// A bound on tracked analysis keys was reached; further keys count under `*`.
    pub struct AnalysisKeysOverflowed {
        pub what: &'static str,
        pub bound: usize,
    }

    impl AnalysisKeysOverflowed {
        pub fn emit(self) {
            tracing::warn!(
                what = self.what,
                bound = self.bound,
                "more than {} distinct {} since start; new ones are counted under \"*\"",
                self.bound,
                self.what
            );
        }
    }

    /// A kind of log line never seen before: a new template cluster.
    pub struct LogClusterNew<'a> {
        pub service: &'a str,
        pub id: u64,
        pub template: &'a str,
    }

    impl LogClusterNew<'_> {
        pub fn emit(self) {
            tracing::info!(
                service = self.service,
                cluster = self.id,
                template = self.template,
                "new log cluster"
            );
        }
    }

    /// A stored analysis value does not decode; it is skipped.
    pub struct AnalysisValueCorrupt<'a> {
        pub error: &'a dyn Display,
    }

    impl AnalysisValueCorrupt<'_> {
        pub fn emit(self) {
            tracing::warn!(error = %self.error, "skipping an undecodable analysis value");
        }
    }

    /// The retention sweep failed; it is tried again at the next interval.
    /// An index run file could not be read at start-up: it is set aside as `.corrupt` and
    /// its entries are rebuilt from the value log.
    pub struct StoreRunUnreadable<'a> {
        pub error: &'a dyn Display,
    }

    impl StoreRunUnreadable<'_> {
        pub fn emit(self) {
            tracing::error!(error = %self.error, "index run unreadable; rebuilding it from the value log");
        }
    }

    /// Writing a frozen memtable out as an index run failed; it stays in memory (and in the
    /// value log) and the next sweep tick retries.
    pub struct StoreRunWriteFailed<'a> {
        pub error: &'a dyn Display,
    }

    impl StoreRunWriteFailed<'_> {
        pub fn emit(self) {
            tracing::error!(error = %self.error, "writing an index run failed; will retry");
        }
    }

    /// A range of a partition's value log was rewritten compressed.
    pub struct StoreCompacted {
        pub signal: Signal,
        pub start: u64,
        pub raw_bytes: u64,
        pub compressed_bytes: u64,
        pub took: std::time::Duration,
    }

    impl StoreCompacted {
        pub fn emit(self) {
            tracing::debug!(
                signal = ?self.signal,
                start = self.start,
                raw_bytes = self.raw_bytes,
                compressed_bytes = self.compressed_bytes,
                took_ms = self.took.as_millis() as u64,
                "value log range compacted"
            );
        }
    }

    /// Compacting a value-log range failed; the raw range stays and the next seal retries.
    pub struct StoreCompactionFailed<'a> {
        pub error: &'a dyn Display,
    }

    impl StoreCompactionFailed<'_> {
        pub fn emit(self) {
            tracing::error!(error = %self.error, "compacting the value log failed; will retry");
        }
    }

    /// A compaction a crash interrupted was found at start-up; its raw range is intact and
    /// is compacted again.
    pub struct StoreCompactionUnfinished<'a> {
        pub path: &'a std::path::Path,
    }

    impl StoreCompactionUnfinished<'_> {
        pub fn emit(self) {
            tracing::info!(path = %self.path.display(), "removed an unfinished compressed segment; its range is compacted again");
        }
    }

    /// Start-up found whole body records after a partition's last frame (an append a crash
    /// cut short, never acknowledged) and cut them off.
    pub struct StoreUnframedTailCut {
        pub signal: Signal,
        pub start: u64,
        pub bytes: u64,
    }

    impl StoreUnframedTailCut {
        pub fn emit(self) {
            tracing::info!(
                signal = self.signal.as_str(),
                partition = self.start,
                bytes = self.bytes,
                "cut the unacknowledged tail of an append a crash interrupted"
            );
        }
    }

    /// Merging index runs failed; the inputs stay and the next seal retries.
    pub struct StoreRunMergeFailed<'a> {
        pub error: &'a dyn Display,
    }

    impl StoreRunMergeFailed<'_> {
        pub fn emit(self) {
            tracing::error!(error = %self.error, "merging index runs failed; will retry");
        }
    }

    /// Index runs of a partition were merged (fewer runs for a read to visit).
    pub struct StoreRunsMerged {
        pub signal: Signal,
        pub start: u64,
        pub merges: usize,
    }

    impl StoreRunsMerged {
        pub fn emit(self) {
            tracing::debug!(
                signal = self.signal.as_str(),
                partition = self.start,
                merges = self.merges,
                "merged index runs"
            );
        }
    }

    /// A compressed segment could not be opened at start-up: it is set aside as `.corrupt`.
    pub struct StoreSegmentUnreadable<'a> {
        pub error: &'a dyn Display,
    }

    impl StoreSegmentUnreadable<'_> {
        pub fn emit(self) {
            tracing::error!(error = %self.error, "compressed segment unreadable; set aside, reads fall back to the raw value log");
        }
    }

    /// The file system cannot punch holes: compacted ranges keep their raw bytes too.
    pub struct StoreHolePunchUnsupported<'a> {
        pub path: &'a std::path::Path,
    }

    impl StoreHolePunchUnsupported<'_> {
        pub fn emit(self) {
            tracing::warn!(path = %self.path.display(), "this file system cannot punch holes; compaction writes compressed segments but the raw value log keeps its size");
        }
    }

    /// Partitions were dropped because the data directory passed `storage.max_disk_size`.
    pub struct StorePartitionDroppedForSize {
        pub signal: Signal,
        pub start: u64,
        pub end: u64,
        pub disk_bytes: u64,
        pub max_disk_bytes: u64,
    }

    impl StorePartitionDroppedForSize {
        pub fn emit(self) {
            tracing::warn!(
                signal = ?self.signal,
                start = self.start,
                end = self.end,
                disk_bytes = self.disk_bytes,
                max_disk_bytes = self.max_disk_bytes,
                "oldest partition dropped: the data directory is over storage.max_disk_size"
            );
        }
    }

    /// Over `storage.max_disk_size` with nothing left to drop but the newest partitions.
    pub struct StoreOverDiskSize {
        pub disk_bytes: u64,
        pub max_disk_bytes: u64,
    }

    impl StoreOverDiskSize {
        pub fn emit(self) {
            tracing::warn!(
                disk_bytes = self.disk_bytes,
                max_disk_bytes = self.max_disk_bytes,
                "the data directory is over storage.max_disk_size but only the partitions being written are left"
            );
        }
    }

    pub struct StoreSweepFailed<'a> {
        pub error: &'a dyn Display,
    }

    impl StoreSweepFailed<'_> {
        pub fn emit(self) {
            tracing::error!(error = %self.error, "retention sweep failed");
        }
    }
}

/// Installs the `tracing` subscriber on stderr: `RUST_LOG` if set, else `level`.
pub fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second initialisation (tests start several gateways) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

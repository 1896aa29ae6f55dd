//! The memory limiter (`processors.memory_limiter`, in the Collector's shape): every
//! `check_interval` it reads the process's resident memory, and while that is above the soft
//! limit (`limit_mib − spike_limit_mib`) the receivers refuse new requests with a retryable
//! status (gRPC UNAVAILABLE with RetryInfo, HTTP 503 with Retry-After), counted as refused.
//! Requests already admitted finish. It clears once memory is back under the soft limit.
//!
//! It guards the process as a whole, not one pipeline: every pipeline that lists a
//! memory_limiter shares the one check (with the lowest soft limit when several are set).
//! It complements the in-flight budget (`intake.max_inflight_mib`), which bounds the bytes of
//! requests being handled; the limiter catches what the budget cannot see (caches, the tail
//! buffer, allocator slack).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::telemetry::events;

/// The shared state of the check: whether memory is over the soft limit, and the figures.
#[derive(Debug)]
pub struct MemoryLimit {
    soft_bytes: u64,
    hard_bytes: u64,
    check_interval: Duration,
    over: AtomicBool,
    /// Resident bytes at the last check.
    rss: AtomicU64,
    /// Requests refused while over.
    pub refused: AtomicU64,
}

impl MemoryLimit {
    /// A limit of `hard_bytes` with `spike_bytes` of headroom, checked every `check_interval`.
    pub fn new(hard_bytes: u64, spike_bytes: u64, check_interval: Duration) -> Arc<MemoryLimit> {
        Arc::new(MemoryLimit {
            soft_bytes: hard_bytes.saturating_sub(spike_bytes).max(1),
            hard_bytes,
            check_interval,
            over: AtomicBool::new(false),
            rss: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// Whether new requests are to be refused now (and counts the refusal when so).
    pub fn refuses(&self) -> bool {
        let over = self.over.load(Ordering::Relaxed);
        if over {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        over
    }

    /// Whether memory was over the soft limit at the last check.
    pub fn is_over(&self) -> bool {
        self.over.load(Ordering::Relaxed)
    }

    /// Requests refused while over, so far.
    pub fn refused_total(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The soft limit in bytes.
    pub fn soft_bytes(&self) -> u64 {
        self.soft_bytes
    }

    /// Takes one reading of `rss` bytes and updates the state.
    pub fn observe(&self, rss: u64) {
        self.rss.store(rss, Ordering::Relaxed);
        let over = rss > self.soft_bytes;
        if self.over.swap(over, Ordering::Relaxed) != over {
            events::MemoryLimiterChanged {
                over,
                rss_bytes: rss,
                soft_limit_bytes: self.soft_bytes,
                hard_limit_bytes: self.hard_bytes,
            }
            .emit();
        }
    }
}

/// The process's resident memory in bytes, from `/proc/self/statm` (0 where there is none).
pub fn resident_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages.saturating_mul(u64::try_from(page).unwrap_or(4096))
}

/// Total memory of the machine or the cgroup, whichever is smaller, in bytes (for
/// `limit_percentage`); `None` when it cannot be read.
pub fn total_bytes() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    });
    match (cgroup, meminfo) {
        (Some(c), Some(m)) => Some(c.min(m)),
        (c, m) => c.or(m),
    }
}

/// The check's loop, as a stage: one reading per `check_interval` until `stop`.
pub struct MemoryWatch(pub Arc<MemoryLimit>);

impl crate::stages::Stage for MemoryWatch {
    async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.0.check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => self.0.observe(resident_bytes()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_above_the_soft_limit_only() {
        let m = MemoryLimit::new(1000, 200, Duration::from_secs(1));
        assert_eq!(m.soft_bytes(), 800);
        m.observe(800);
        assert!(!m.refuses());
        m.observe(801);
        assert!(m.refuses());
        assert!(m.refuses());
        m.observe(500);
        assert!(!m.refuses());
        assert_eq!(m.refused.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn this_process_has_resident_memory() {
        assert!(resident_bytes() > 1 << 20);
        assert!(total_bytes().is_some_and(|t| t > resident_bytes()));
    }
}

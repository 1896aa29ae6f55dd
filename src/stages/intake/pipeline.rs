//! The stage sequence every request runs through, whatever receiver took it: admit, analyse,
//! sample, enqueue for the exporters, write, commit.
//!
//! A receiver decodes its protocol (gRPC or HTTP, protobuf or JSON), validates the items
//! (`receiver::validate`) and answers in its protocol; everything between is here, once:
//! - [`Pipeline::admit`] before anything is decoded: memory over the memory limiter's soft
//!   limit, a tail-sampling buffer over twice its
//!   bounds, a full exporter queue under the refuse policy, or a spent intake budget refuse
//!   the request with a retry delay ([`PipelineError::Refused`]). The [`Reservation`] it
//!   returns bounds the decoded requests in memory, not only the written ones.
//! - [`Pipeline::run`]: every valid item goes to the analysis stage (analysis sees 100%),
//!   then the pipeline's samplers drop what is not to be kept (not reported as rejected).
//!   When the signal's pipeline names exporters, the request enters their queues before the
//!   store write is committed, so one flush makes it durable in both. The received bytes are
//!   forwarded and stored as they came unless something changed the request. It returns once
//!   [`Intake::commit`] says the write is durable.

use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::memory::MemoryLimit;
use super::sampling::{Sampled, Sampling};
use super::{Intake, IntakeError, Reservation};
use crate::otlp::Signal;
use crate::stages::analysis::Analyzer;
use crate::stages::export::Exporters;
use crate::store::{Store, StoreError, Write};
use crate::telemetry::{Stats, events};
use std::sync::Arc;

/// Why a request was not taken. Nothing here is the client's fault: every variant is
/// retryable, and a receiver answers it as its protocol says (gRPC UNAVAILABLE, HTTP 503),
/// with the retry delay where there is one.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Refused before anything was done (a sampling buffer or exporter queue is full).
    #[error("{reason}")]
    Refused {
        reason: String,
        retry_after: Duration,
    },
    /// Intake refused it (full) or could not make it durable.
    #[error(transparent)]
    Intake(#[from] IntakeError),
    /// Sampling, the exporters' queues or the store write failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request would take more memory decoded than the whole intake budget: it can
    /// never be taken (the client must send smaller requests).
    #[error(
        "the request would take about {need} bytes once decoded, more than the whole intake \
         budget of {budget} bytes (intake.max_inflight_mib); send smaller requests"
    )]
    TooLarge { need: usize, budget: usize },
}

impl PipelineError {
    /// How long the client should wait before retrying, when the refusal says.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PipelineError::Refused { retry_after, .. } => Some(*retry_after),
            PipelineError::Intake(IntakeError::Full { retry_delay, .. }) => Some(*retry_delay),
            _ => None,
        }
    }
}

/// What differs between traces, logs and metrics in the stage sequence.
pub trait Kind: Send + Sync + 'static {
    const KIND: Signal;
    type Request: Message + Default + Send;
    /// Feeds the analysis stage with the validated items, before sampling; returns whether
    /// it changed them (log records get their template cluster as attributes).
    fn analyse(_req: &mut Self::Request, _analyzer: &Analyzer) -> bool {
        false
    }
    /// Applies the pipeline's samplers.
    fn sample(_req: &mut Self::Request, _sampling: &Sampling) -> Result<Sampled, StoreError> {
        Ok(Sampled::default())
    }
    /// Turns the request into a store write. `received` is the body as it came when nothing
    /// was removed from or added to the request, so it can be stored without encoding again.
    fn prepare(
        store: &Store,
        req: Self::Request,
        received: Option<&[u8]>,
    ) -> Result<Write, StoreError>;
}

/// `ExportTraceServiceRequest`.
pub struct Traces;

impl Kind for Traces {
    const KIND: Signal = Signal::Traces;
    type Request = ExportTraceServiceRequest;

    fn analyse(req: &mut Self::Request, analyzer: &Analyzer) -> bool {
        analyzer.observe(&req.resource_spans);
        false
    }

    fn sample(req: &mut Self::Request, sampling: &Sampling) -> Result<Sampled, StoreError> {
        sampling.traces(&mut req.resource_spans)
    }

    fn prepare(
        store: &Store,
        req: Self::Request,
        received: Option<&[u8]>,
    ) -> Result<Write, StoreError> {
        store.prepare_spans_received(req.resource_spans, received)
    }
}

/// `ExportLogsServiceRequest`.
pub struct Logs;

impl Kind for Logs {
    const KIND: Signal = Signal::Logs;
    type Request = ExportLogsServiceRequest;

    fn analyse(req: &mut Self::Request, analyzer: &Analyzer) -> bool {
        analyzer.observe_logs(&mut req.resource_logs)
    }

    fn sample(req: &mut Self::Request, sampling: &Sampling) -> Result<Sampled, StoreError> {
        Ok(Sampled {
            changed: sampling.logs(&mut req.resource_logs),
            ..Sampled::default()
        })
    }

    fn prepare(store: &Store, req: Self::Request, _: Option<&[u8]>) -> Result<Write, StoreError> {
        store.prepare_logs(req.resource_logs)
    }
}

/// `ExportMetricsServiceRequest`: stored for the exporters and counted per data point.
pub struct Metrics;

impl Kind for Metrics {
    const KIND: Signal = Signal::Metrics;
    type Request = ExportMetricsServiceRequest;

    fn prepare(store: &Store, req: Self::Request, _: Option<&[u8]>) -> Result<Write, StoreError> {
        store.prepare_metrics(req.resource_metrics)
    }
}

/// The stages a request passes through, shared by every receiver.
pub struct Pipeline {
    intake: Intake,
    stats: Arc<Stats>,
    exporters: Arc<Exporters>,
    sampling: Arc<Sampling>,
    analyzer: Arc<Analyzer>,
    memory: Option<Arc<MemoryLimit>>,
}

impl Pipeline {
    /// The stage sequence over the stages it feeds; `memory` is the memory limiter's check,
    /// when one is configured.
    pub fn new(
        intake: Intake,
        stats: Arc<Stats>,
        exporters: Arc<Exporters>,
        sampling: Arc<Sampling>,
        analyzer: Arc<Analyzer>,
        memory: Option<Arc<MemoryLimit>>,
    ) -> Arc<Pipeline> {
        Arc::new(Pipeline {
            intake,
            stats,
            exporters,
            sampling,
            analyzer,
            memory,
        })
    }

    /// The gateway's counters (receivers emit their events into them).
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Reserves what a protobuf body will take before it is decoded — its bytes plus the
    /// estimate of its decoded size ([`crate::otlp::size`]) — or refuses the request.
    pub fn admit(&self, kind: Signal, body: &[u8]) -> Result<Reservation, PipelineError> {
        let decoded = crate::otlp::size::decoded_size(kind, body).unwrap_or(0);
        self.admit_bytes(kind, body.len().saturating_add(decoded))
    }

    /// Reserves an OTLP JSON body before it is decoded: its bytes plus an upper bound of
    /// what it decodes to ([`crate::otlp::size::json_upper_bound`]).
    pub fn admit_json(&self, kind: Signal, body: &[u8]) -> Result<Reservation, PipelineError> {
        self.admit_bytes(kind, crate::otlp::size::json_upper_bound(body))
    }

    /// Reserves `need` bytes of the in-flight budget, or refuses the request.
    fn admit_bytes(&self, kind: Signal, need: usize) -> Result<Reservation, PipelineError> {
        let budget = self.intake.budget_total();
        if need > budget {
            return Err(PipelineError::TooLarge { need, budget });
        }
        let refused = |reason: String| {
            events::ReceiverRequestRefused { signal: kind }.emit(&self.stats);
            PipelineError::Refused {
                reason,
                retry_after: self.intake.retry_delay(),
            }
        };
        if self.memory.as_ref().is_some_and(|m| m.refuses()) {
            return Err(refused(
                "memory is over the memory_limiter's soft limit; retry later".into(),
            ));
        }
        if self.sampling.is_overloaded(kind) {
            return Err(refused(
                "the tail sampling buffer is over twice its bounds; retry later".into(),
            ));
        }
        if let Err(e) = self.exporters.check_room(kind) {
            return Err(refused(e.to_string()));
        }
        self.intake.try_reserve(need).map_err(|e| {
            events::ReceiverRequestRefused { signal: kind }.emit(&self.stats);
            PipelineError::Intake(e)
        })
    }

    /// Runs a validated request through analysis, sampling, the exporters' queues and the
    /// store, and returns once it is durable: how many of its items were already past
    /// retention and so not stored. `received` is the request's protobuf body as it came,
    /// when there is one and validation removed nothing (`validated_changed` false).
    pub async fn run<K: Kind>(
        &self,
        mut req: K::Request,
        received: Option<Bytes>,
        validated_changed: bool,
    ) -> Result<u64, PipelineError> {
        let analysed = K::analyse(&mut req, &self.analyzer);
        let sampled = K::sample(&mut req, &self.sampling).map_err(write_failed)?;
        let received = received.filter(|_| !(validated_changed || analysed || sampled.changed));
        self.enqueue(K::KIND, received.clone(), &req)?;
        let write =
            K::prepare(self.intake.store(), req, received.as_deref()).map_err(write_failed)?;
        let expired = self.commit(K::KIND, write, sampled).await?;
        self.exporters.notify(K::KIND);
        Ok(expired)
    }

    /// Enters the request into the exporters' queues before the store write is committed,
    /// so the flush that makes it durable covers both: the received bytes when there are
    /// (forwarded byte for byte), otherwise `req` encoded.
    fn enqueue<M: Message>(
        &self,
        kind: Signal,
        received: Option<Bytes>,
        req: &M,
    ) -> Result<(), PipelineError> {
        if !self.exporters.wants(kind) {
            return Ok(());
        }
        let mut body = received.unwrap_or_else(|| Bytes::from(req.encode_to_vec()));
        let items = match crate::stages::export::wire::count_items(&body) {
            Ok(n) => n,
            Err(_) => {
                // prost accepted what the wire walker does not (deprecated group fields):
                // forward prost's re-encoding, which leaves them out.
                body = Bytes::from(req.encode_to_vec());
                crate::stages::export::wire::count_items(&body).map_err(|e| {
                    write_failed(StoreError::Corrupt {
                        what: "re-encoded request",
                        reason: e.to_string(),
                    })
                })?
            }
        };
        if items == 0 {
            return Ok(());
        }
        self.exporters
            .enqueue(kind, &body, items)
            .map_err(write_failed)?;
        Ok(())
    }

    /// Stores a prepared write and waits until it is durable; returns how many of its items
    /// were already past retention and so not stored. A tail sampler's buffer write
    /// (`sampled.buffered`) is flushed even when the store write is empty, and its spans
    /// count as accepted.
    async fn commit(
        &self,
        kind: Signal,
        write: Write,
        sampled: Sampled,
    ) -> Result<u64, PipelineError> {
        let (items, bytes) = (write.items + sampled.buffered_spans, write.bytes);
        if write.is_empty() && !sampled.buffered {
            return Ok(0);
        }
        // Intake logs its own failures (a failed flush once, not once per waiting request).
        let expired = self.intake.commit(write).await?;
        if expired > 0 {
            events::StoreItemsExpired {
                signal: kind,
                items: expired,
            }
            .emit(&self.stats);
        }
        events::ReceiverItemsAccepted {
            signal: kind,
            items: items - expired.min(items),
            bytes,
        }
        .emit(&self.stats);
        Ok(expired)
    }
}

fn write_failed(e: StoreError) -> PipelineError {
    events::IntakeWriteFailed { error: &e }.emit();
    PipelineError::Store(e)
}

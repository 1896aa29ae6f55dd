//! The OTLP receiver: TraceService, LogsService and MetricsService over gRPC.
//!
//! Per request: decode the body with `opentelemetry-proto`'s generated types (a body that is
//! not protobuf gets INVALID_ARGUMENT), admit it against the intake budget (full: UNAVAILABLE
//! with RetryInfo), validate item by item ([`validate`]; invalid items leave alone and are
//! reported in `partial_success`), prepare the store write, and answer only once
//! [`Intake::commit`] says the write is durable. Between validation and the write, every
//! valid span goes to the analysis stage ([`crate::analyzer`]: analysis sees 100%), then the
//! pipeline's samplers drop what is not to be kept ([`crate::sampling`]; not reported as
//! rejected). When the signal's pipeline names exporters,
//! the request also enters their queues before the commit, so the same flush makes it
//! durable there (a full queue under the refuse policy refuses the request up front, like a
//! full intake). Prost types are moved; the received bytes are forwarded as they came unless
//! validation removed items.

pub mod grpc;
pub mod validate;

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::analyzer::Analyzer;
use crate::config::Limits;
use crate::export::Exporters;
use crate::intake::{Intake, IntakeError, Reservation};
use crate::otlp::Signal;
use crate::sampling::{Sampled, Sampling};
use crate::store::{Store, StoreError, Write};
use crate::telemetry::{Stats, events};

pub use grpc::{Export, OtlpGrpc};

/// State shared by the three OTLP services.
pub struct Receiver {
    intake: Intake,
    stats: Arc<Stats>,
    limits: Limits,
    exporters: Arc<Exporters>,
    sampling: Arc<Sampling>,
    analyzer: Arc<Analyzer>,
}

impl Receiver {
    pub fn new(
        intake: Intake,
        stats: Arc<Stats>,
        limits: Limits,
        exporters: Arc<Exporters>,
        sampling: Arc<Sampling>,
        analyzer: Arc<Analyzer>,
    ) -> Arc<Receiver> {
        Arc::new(Receiver {
            intake,
            stats,
            limits,
            exporters,
            sampling,
            analyzer,
        })
    }

    /// One of the three OTLP services ([`Traces`], [`Logs`], [`Metrics`]) for a tonic router.
    pub fn service<S: OtlpSignal>(
        self: &Arc<Self>,
        max_message_bytes: usize,
    ) -> OtlpGrpc<Service<S>> {
        OtlpGrpc::new(
            Arc::new(Service(self.clone(), PhantomData)),
            max_message_bytes,
        )
    }

    fn decode<M: Message + Default>(&self, kind: Signal, body: Bytes) -> Result<M, Status> {
        M::decode(body).map_err(|e| {
            events::ReceiverRequestUndecodable {
                signal: kind,
                error: &e,
            }
            .emit(&self.stats);
            Status::invalid_argument(format!(
                "request body is not a valid OTLP {} export request: {e}",
                kind.as_str()
            ))
        })
    }

    /// Reserves the body's bytes before anything is decoded, or refuses the request: the
    /// budget then bounds the decoded requests in memory, not only the written ones.
    fn admit(&self, kind: Signal, body_len: usize) -> Result<Reservation, Status> {
        if self.sampling.is_overloaded(kind) {
            events::ReceiverRequestRefused { signal: kind }.emit(&self.stats);
            return Err(Status::with_error_details(
                Code::Unavailable,
                "the tail sampling buffer is over twice its bounds; retry later",
                ErrorDetails::with_retry_info(Some(self.intake.retry_delay())),
            ));
        }
        if let Err(e) = self.exporters.check_room(kind) {
            events::ReceiverRequestRefused { signal: kind }.emit(&self.stats);
            return Err(Status::with_error_details(
                Code::Unavailable,
                e.to_string(),
                ErrorDetails::with_retry_info(Some(self.intake.retry_delay())),
            ));
        }
        self.intake.try_reserve(body_len).map_err(|e| {
            events::ReceiverRequestRefused { signal: kind }.emit(&self.stats);
            intake_status(e)
        })
    }

    /// Enters the request into the exporters' queues before the store write is committed,
    /// so the flush that makes it durable covers both. `body` is the request as received:
    /// when validation and sampling left it alone (`modified` false) it is forwarded byte for
    /// byte; otherwise `req` (what is left) is encoded.
    fn enqueue<M: Message>(
        &self,
        kind: Signal,
        body: Bytes,
        req: &M,
        modified: bool,
    ) -> Result<(), Status> {
        if !self.exporters.wants(kind) {
            return Ok(());
        }
        let mut body = if !modified {
            body
        } else {
            Bytes::from(req.encode_to_vec())
        };
        let items = match crate::export::wire::count_items(&body) {
            Ok(n) => n,
            Err(_) => {
                // prost accepted what the wire walker does not (deprecated group fields):
                // forward prost's re-encoding, which leaves them out.
                body = Bytes::from(req.encode_to_vec());
                crate::export::wire::count_items(&body).map_err(|e| {
                    prepare_failed(StoreError::Corrupt {
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
            .map_err(prepare_failed)
    }

    /// Stores a prepared write and waits until it is durable; returns how many of its items
    /// were already past retention and so not stored.
    /// A tail sampler's buffer write (`sampled.buffered`) is flushed even when the store
    /// write is empty, and its spans count as accepted.
    async fn commit(&self, kind: Signal, write: Write, sampled: Sampled) -> Result<u64, Status> {
        let (items, bytes) = (write.items + sampled.buffered_spans, write.bytes);
        if write.is_empty() && !sampled.buffered {
            return Ok(0);
        }
        // Intake logs its own failures (a failed flush once, not once per waiting request).
        let expired = self.intake.commit(write).await.map_err(intake_status)?;
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

    /// Counts and logs what validation rejected.
    fn reject(&self, kind: Signal, rej: &validate::Rejections) {
        if rej.count > 0 {
            events::ReceiverItemsRejected {
                signal: kind,
                items: rej.count,
                message: &rej.message(kind.item()),
            }
            .emit(&self.stats);
        }
    }
}

/// Maps an intake failure to a retryable status: nothing the client sent was wrong.
fn intake_status(e: IntakeError) -> Status {
    match e {
        IntakeError::Full { retry_delay, .. } => Status::with_error_details(
            Code::Unavailable,
            e.to_string(),
            ErrorDetails::with_retry_info(Some(retry_delay)),
        ),
        other => Status::unavailable(other.to_string()),
    }
}

fn prepare_failed(e: StoreError) -> Status {
    events::IntakeWriteFailed { error: &e }.emit();
    Status::unavailable(e.to_string())
}

/// What differs between the three OTLP services; [`Service`] does the rest once.
pub trait OtlpSignal: Send + Sync + 'static {
    /// The generated gRPC service name.
    const SERVICE: &'static str;
    const KIND: Signal;
    type Request: Message + Default + Send;
    type Response: Message + Default + Send + 'static;
    /// Items (spans, log records, data points) in a request.
    fn items(req: &Self::Request) -> u64;
    /// Removes invalid items.
    fn validate(req: &mut Self::Request, limits: &Limits) -> validate::Rejections;
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
    /// The answer, with `partial_success` when items were rejected.
    fn respond(rejected: &validate::Rejections, message: String) -> Self::Response;
}

/// One OTLP service over the shared [`Receiver`].
pub struct Service<S>(Arc<Receiver>, PhantomData<S>);

impl<S: OtlpSignal> Export for Service<S> {
    const SERVICE: &'static str = S::SERVICE;
    type Response = S::Response;

    async fn export(self: Arc<Self>, body: Bytes) -> Result<S::Response, Status> {
        let rx = &self.0;
        let _reservation = rx.admit(S::KIND, body.len())?;
        let mut req: S::Request = rx.decode(S::KIND, body.clone())?;
        events::ReceiverRequestReceived {
            signal: S::KIND,
            items: S::items(&req),
        }
        .emit(&rx.stats);
        let mut rejected = S::validate(&mut req, &rx.limits);
        rx.reject(S::KIND, &rejected);
        let analysed = S::analyse(&mut req, &rx.analyzer);
        let sampled = S::sample(&mut req, &rx.sampling).map_err(prepare_failed)?;
        let modified = analysed || sampled.changed || rejected.count > 0;
        rx.enqueue(S::KIND, body.clone(), &req, modified)?;
        let received = (!modified).then_some(&body[..]);
        let write = S::prepare(rx.intake.store(), req, received).map_err(prepare_failed)?;
        let expired = rx.commit(S::KIND, write, sampled).await?;
        rx.exporters.notify(S::KIND);
        if expired > 0 {
            rejected.add_many(
                expired,
                format!(
                    "{expired} {} older than the storage retention were not stored",
                    S::KIND.item()
                ),
            );
        }
        let message = rejected.message(S::KIND.item());
        Ok(S::respond(&rejected, message))
    }
}

/// `opentelemetry.proto.collector.trace.v1.TraceService`.
pub struct Traces;

impl OtlpSignal for Traces {
    const SERVICE: &'static str =
        opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::SERVICE_NAME;
    const KIND: Signal = Signal::Traces;
    type Request = ExportTraceServiceRequest;
    type Response = ExportTraceServiceResponse;

    fn items(req: &Self::Request) -> u64 {
        crate::otlp::spans(&req.resource_spans).count() as u64
    }

    fn validate(req: &mut Self::Request, limits: &Limits) -> validate::Rejections {
        validate::validate_spans(&mut req.resource_spans, limits)
    }

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

    fn respond(rejected: &validate::Rejections, message: String) -> Self::Response {
        ExportTraceServiceResponse {
            partial_success: (rejected.count > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: rejected.count as i64,
                error_message: message,
            }),
        }
    }
}

/// `opentelemetry.proto.collector.logs.v1.LogsService`.
pub struct Logs;

impl OtlpSignal for Logs {
    const SERVICE: &'static str =
        opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::SERVICE_NAME;
    const KIND: Signal = Signal::Logs;
    type Request = ExportLogsServiceRequest;
    type Response = ExportLogsServiceResponse;

    fn items(req: &Self::Request) -> u64 {
        req.resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len() as u64)
            .sum()
    }

    fn validate(req: &mut Self::Request, limits: &Limits) -> validate::Rejections {
        validate::validate_logs(&mut req.resource_logs, limits)
    }

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

    fn respond(rejected: &validate::Rejections, message: String) -> Self::Response {
        ExportLogsServiceResponse {
            partial_success: (rejected.count > 0).then_some(ExportLogsPartialSuccess {
                rejected_log_records: rejected.count as i64,
                error_message: message,
            }),
        }
    }
}

/// `opentelemetry.proto.collector.metrics.v1.MetricsService`. Metrics are stored for the
/// exporters and counted per data point; none is rejected by validation.
pub struct Metrics;

impl OtlpSignal for Metrics {
    const SERVICE: &'static str =
        opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::SERVICE_NAME;
    const KIND: Signal = Signal::Metrics;
    type Request = ExportMetricsServiceRequest;
    type Response = ExportMetricsServiceResponse;

    fn items(req: &Self::Request) -> u64 {
        req.resource_metrics
            .iter()
            .map(|rm| crate::store::write::count_points(rm).0)
            .sum()
    }

    fn validate(_req: &mut Self::Request, _limits: &Limits) -> validate::Rejections {
        validate::Rejections::default()
    }

    fn prepare(store: &Store, req: Self::Request, _: Option<&[u8]>) -> Result<Write, StoreError> {
        store.prepare_metrics(req.resource_metrics)
    }

    fn respond(rejected: &validate::Rejections, message: String) -> Self::Response {
        ExportMetricsServiceResponse {
            partial_success: (rejected.count > 0).then_some(ExportMetricsPartialSuccess {
                rejected_data_points: rejected.count as i64,
                error_message: message,
            }),
        }
    }
}

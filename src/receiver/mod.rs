//! The OTLP receiver: TraceService, LogsService and MetricsService over gRPC ([`grpc`]) and
//! the same three over HTTP with protobuf or JSON bodies ([`http`]).
//!
//! A receiver does three things and leaves the rest to [`Pipeline`]: per request it asks the
//! pipeline to admit the body (refused: UNAVAILABLE with RetryInfo), decodes it with
//! `opentelemetry-proto`'s generated types (a body that is not protobuf gets
//! INVALID_ARGUMENT), validates it item by item ([`validate`]; invalid items leave alone and
//! are reported in `partial_success`), runs it through the pipeline (analysis, sampling,
//! exporter queues, store, durable commit), and answers. Prost types are moved; the received
//! bytes go on as they came unless validation removed items.

pub mod auth;
pub mod conn;
pub mod counters;
pub mod grpc;
pub mod http;
pub mod tls;
pub mod validate;

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::config::Limits;
use crate::otlp::Signal;
use crate::stages::intake::pipeline::{self, Kind, Pipeline, PipelineError};
use crate::telemetry::events;
use counters::{Outcome, ReceiverCounters, Transport};

pub use grpc::{Export, OtlpGrpc};
pub use pipeline::{Logs, Metrics, Traces};

/// State shared by the three OTLP services.
pub struct Receiver {
    pipeline: Arc<Pipeline>,
    limits: Limits,
    counters: Arc<ReceiverCounters>,
}

impl Receiver {
    pub fn new(pipeline: Arc<Pipeline>, limits: Limits) -> Arc<Receiver> {
        Arc::new(Receiver {
            pipeline,
            limits,
            counters: Arc::default(),
        })
    }

    /// The per-transport counters (for `/metrics`).
    pub fn counters(&self) -> &Arc<ReceiverCounters> {
        &self.counters
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

    /// Counts and logs an undecodable body; returns the message the client gets.
    fn undecodable(
        &self,
        transport: Transport,
        kind: Signal,
        error: &dyn std::fmt::Display,
    ) -> String {
        self.counters.request(transport, kind, Outcome::Invalid);
        events::ReceiverRequestUndecodable {
            signal: kind,
            error,
        }
        .emit(self.pipeline.stats());
        format!(
            "request body is not a valid OTLP {} export request: {error}",
            kind.as_str()
        )
    }

    /// A request ended before it was decoded: refused by admission (retryable) or too large
    /// ever to fit (invalid).
    fn not_admitted(&self, transport: Transport, kind: Signal, e: &PipelineError) {
        let outcome = match e {
            PipelineError::TooLarge { .. } => Outcome::Invalid,
            _ => Outcome::Refused,
        };
        self.counters.request(transport, kind, outcome);
    }

    /// What every protocol does once it has a decoded request: count it, validate it item by
    /// item, run it through the pipeline (durable when this returns) and build the answer,
    /// with `partial_success` for what was rejected or expired. `received` is the protobuf
    /// body as it came (forwarded and stored as is when nothing changed), `None` when the
    /// request came in another encoding.
    async fn accept<S: OtlpSignal>(
        &self,
        transport: Transport,
        mut req: S::Request,
        received: Option<Bytes>,
    ) -> Result<S::Response, PipelineError> {
        let items = S::items(&req);
        events::ReceiverRequestReceived {
            signal: S::KIND,
            items,
        }
        .emit(self.pipeline.stats());
        let mut rejected = S::validate(&mut req, &self.limits);
        self.reject(S::KIND, &rejected);
        let invalid = rejected.count;
        let expired = match self.pipeline.run::<S>(req, received, invalid > 0).await {
            Ok(expired) => expired,
            Err(e) => {
                self.counters
                    .refused(transport, S::KIND, items.saturating_sub(invalid), invalid);
                return Err(e);
            }
        };
        self.counters.answered(
            transport,
            S::KIND,
            items.saturating_sub(invalid + expired),
            invalid + expired,
        );
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

    /// Counts and logs what validation rejected.
    fn reject(&self, kind: Signal, rej: &validate::Rejections) {
        if rej.count > 0 {
            events::ReceiverItemsRejected {
                signal: kind,
                items: rej.count,
                message: &rej.message(kind.item()),
            }
            .emit(self.pipeline.stats());
        }
    }
}

/// Maps a pipeline failure to a retryable status (with RetryInfo when it says when):
/// nothing the client sent was wrong — except a request too large to ever fit the budget,
/// which is RESOURCE_EXHAUSTED without RetryInfo (not retried).
fn status(e: PipelineError) -> Status {
    if let PipelineError::TooLarge { .. } = e {
        // Permanent for OTLP clients: RESOURCE_EXHAUSTED without RetryInfo.
        return Status::resource_exhausted(e.to_string());
    }
    match e.retry_after() {
        Some(delay) => Status::with_error_details(
            Code::Unavailable,
            e.to_string(),
            ErrorDetails::with_retry_info(Some(delay)),
        ),
        None => Status::unavailable(e.to_string()),
    }
}

/// What the receiver adds to a pipeline [`Kind`]: the gRPC service, validation and the
/// answer.
pub trait OtlpSignal: Kind {
    /// The generated gRPC service name.
    const SERVICE: &'static str;
    type Response: Message + Default + Send + 'static;
    /// Items (spans, log records, data points) in a request.
    fn items(req: &Self::Request) -> u64;
    /// Removes invalid items.
    fn validate(req: &mut Self::Request, limits: &Limits) -> validate::Rejections;
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
        let grpc = Transport::Grpc;
        let _reservation = rx.pipeline.admit(S::KIND, &body).map_err(|e| {
            rx.not_admitted(grpc, S::KIND, &e);
            status(e)
        })?;
        let req = S::Request::decode(body.clone())
            .map_err(|e| Status::invalid_argument(rx.undecodable(grpc, S::KIND, &e)))?;
        rx.accept::<S>(grpc, req, Some(body)).await.map_err(status)
    }
}

impl OtlpSignal for Traces {
    const SERVICE: &'static str =
        opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::SERVICE_NAME;
    type Response = ExportTraceServiceResponse;

    fn items(req: &Self::Request) -> u64 {
        crate::otlp::spans(&req.resource_spans).count() as u64
    }

    fn validate(req: &mut Self::Request, limits: &Limits) -> validate::Rejections {
        validate::validate_spans(&mut req.resource_spans, limits)
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

impl OtlpSignal for Logs {
    const SERVICE: &'static str =
        opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::SERVICE_NAME;
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

    fn respond(rejected: &validate::Rejections, message: String) -> Self::Response {
        ExportLogsServiceResponse {
            partial_success: (rejected.count > 0).then_some(ExportLogsPartialSuccess {
                rejected_log_records: rejected.count as i64,
                error_message: message,
            }),
        }
    }
}

/// Metrics: none is rejected by validation.
impl OtlpSignal for Metrics {
    const SERVICE: &'static str =
        opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::SERVICE_NAME;
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

    fn respond(rejected: &validate::Rejections, message: String) -> Self::Response {
        ExportMetricsServiceResponse {
            partial_success: (rejected.count > 0).then_some(ExportMetricsPartialSuccess {
                rejected_data_points: rejected.count as i64,
                error_message: message,
            }),
        }
    }
}

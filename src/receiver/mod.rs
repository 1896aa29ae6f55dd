//! The OTLP receiver: TraceService, LogsService and MetricsService over gRPC.
//!
//! Per request: decode the body with `opentelemetry-proto`'s generated types (a body that is
//! not protobuf gets INVALID_ARGUMENT), admit it against the intake budget (full: UNAVAILABLE
//! with RetryInfo), validate item by item ([`validate`]; invalid items leave alone and are
//! reported in `partial_success`), prepare the store write, and answer only once
//! [`Intake::commit`] says the write is durable. Prost types are moved, never re-encoded to be
//! passed along.

pub mod grpc;
pub mod validate;

use std::sync::Arc;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::config::Limits;
use crate::intake::{Intake, IntakeError, Reservation};
use crate::store::Write;
use crate::telemetry::{SignalKind, Stats, events};

pub use grpc::{Export, OtlpGrpc};

/// State shared by the three OTLP services.
pub struct Receiver {
    intake: Intake,
    stats: Arc<Stats>,
    limits: Limits,
}

impl Receiver {
    pub fn new(intake: Intake, stats: Arc<Stats>, limits: Limits) -> Arc<Receiver> {
        Arc::new(Receiver {
            intake,
            stats,
            limits,
        })
    }

    /// The three services, ready for a tonic router.
    pub fn services(
        self: &Arc<Self>,
        max_message_bytes: usize,
    ) -> (OtlpGrpc<Traces>, OtlpGrpc<Logs>, OtlpGrpc<Metrics>) {
        (
            OtlpGrpc::new(Arc::new(Traces(self.clone())), max_message_bytes),
            OtlpGrpc::new(Arc::new(Logs(self.clone())), max_message_bytes),
            OtlpGrpc::new(Arc::new(Metrics(self.clone())), max_message_bytes),
        )
    }

    fn decode<M: Message + Default>(&self, kind: SignalKind, body: Bytes) -> Result<M, Status> {
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

    /// Counts the request and reserves its bytes, or refuses it.
    fn admit(&self, kind: SignalKind, body_len: usize, items: u64) -> Result<Reservation, Status> {
        events::ReceiverRequestReceived {
            signal: kind,
            items,
        }
        .emit(&self.stats);
        self.intake.try_reserve(body_len).map_err(|e| {
            events::ReceiverRequestRefused {
                signal: kind,
                items,
            }
            .emit(&self.stats);
            intake_status(e)
        })
    }

    /// Stores a prepared write and waits until it is durable.
    async fn commit(&self, kind: SignalKind, write: Write) -> Result<(), Status> {
        let (items, bytes) = (write.items, write.bytes);
        if write.is_empty() {
            return Ok(());
        }
        self.intake.commit(write).await.map_err(|e| {
            events::IntakeWriteFailed { error: &e }.emit();
            intake_status(e)
        })?;
        events::ReceiverItemsAccepted {
            signal: kind,
            items,
            bytes,
        }
        .emit(&self.stats);
        Ok(())
    }

    fn reject(&self, kind: SignalKind, rej: &validate::Rejections) -> String {
        let message = rej.message(kind.item());
        if rej.count > 0 {
            events::ReceiverItemsRejected {
                signal: kind,
                items: rej.count,
                message: &message,
            }
            .emit(&self.stats);
        }
        message
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

fn prepare_failed(e: crate::store::StoreError) -> Status {
    events::IntakeWriteFailed { error: &e }.emit();
    Status::unavailable(e.to_string())
}

/// `opentelemetry.proto.collector.trace.v1.TraceService`.
pub struct Traces(Arc<Receiver>);

impl Export for Traces {
    const SERVICE: &'static str =
        opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::SERVICE_NAME;
    type Response = ExportTraceServiceResponse;

    async fn export(self: Arc<Self>, body: Bytes) -> Result<Self::Response, Status> {
        {
            let rx = &self.0;
            let kind = SignalKind::Traces;
            let len = body.len();
            let mut req: ExportTraceServiceRequest = rx.decode(kind, body)?;
            let items = req
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len() as u64)
                .sum();
            let _reservation = rx.admit(kind, len, items)?;
            let rej = validate::validate_spans(&mut req.resource_spans, &rx.limits);
            let message = rx.reject(kind, &rej);
            let write = rx
                .intake
                .store()
                .prepare_spans(req.resource_spans)
                .map_err(prepare_failed)?;
            rx.commit(kind, write).await?;
            Ok(ExportTraceServiceResponse {
                partial_success: (rej.count > 0).then_some(ExportTracePartialSuccess {
                    rejected_spans: rej.count as i64,
                    error_message: message,
                }),
            })
        }
    }
}

/// `opentelemetry.proto.collector.logs.v1.LogsService`.
pub struct Logs(Arc<Receiver>);

impl Export for Logs {
    const SERVICE: &'static str =
        opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::SERVICE_NAME;
    type Response = ExportLogsServiceResponse;

    async fn export(self: Arc<Self>, body: Bytes) -> Result<Self::Response, Status> {
        {
            let rx = &self.0;
            let kind = SignalKind::Logs;
            let len = body.len();
            let mut req: ExportLogsServiceRequest = rx.decode(kind, body)?;
            let items = req
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .map(|s| s.log_records.len() as u64)
                .sum();
            let _reservation = rx.admit(kind, len, items)?;
            let rej = validate::validate_logs(&mut req.resource_logs, &rx.limits);
            let message = rx.reject(kind, &rej);
            let write = rx
                .intake
                .store()
                .prepare_logs(req.resource_logs)
                .map_err(prepare_failed)?;
            rx.commit(kind, write).await?;
            Ok(ExportLogsServiceResponse {
                partial_success: (rej.count > 0).then_some(ExportLogsPartialSuccess {
                    rejected_log_records: rej.count as i64,
                    error_message: message,
                }),
            })
        }
    }
}

/// `opentelemetry.proto.collector.metrics.v1.MetricsService`. Metrics are stored for the
/// exporters and counted; no item is rejected.
pub struct Metrics(Arc<Receiver>);

impl Export for Metrics {
    const SERVICE: &'static str =
        opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::SERVICE_NAME;
    type Response = ExportMetricsServiceResponse;

    async fn export(self: Arc<Self>, body: Bytes) -> Result<Self::Response, Status> {
        {
            let rx = &self.0;
            let kind = SignalKind::Metrics;
            let len = body.len();
            let req: ExportMetricsServiceRequest = rx.decode(kind, body)?;
            let items = req
                .resource_metrics
                .iter()
                .map(|rm| crate::store::write::count_points(rm).0)
                .sum();
            let _reservation = rx.admit(kind, len, items)?;
            let write = rx
                .intake
                .store()
                .prepare_metrics(req.resource_metrics)
                .map_err(prepare_failed)?;
            rx.commit(kind, write).await?;
            Ok(ExportMetricsServiceResponse {
                partial_success: None,
            })
        }
    }
}

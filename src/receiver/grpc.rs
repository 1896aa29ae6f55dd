//! The OTLP/gRPC wire: one generic tower service per OTLP collector service, with a codec
//! that hands the handler the raw request bytes.
//!
//! Why not the generated `TraceServiceServer` of `opentelemetry-proto`: its prost codec
//! decodes before the handler runs and maps a malformed body to INTERNAL, where OTLP asks for
//! INVALID_ARGUMENT, and it hides the body's size, which the intake budget is counted in. Here
//! the codec only collects bytes (after tonic has decompressed gzip/zstd and enforced the size
//! limit); the handler decodes with the crate's generated message types and answers with the
//! crate's generated response types and service names, so nothing of OTLP is hand-written.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings};
use tonic::codegen::{BoxFuture, Context, Poll, Service, StdError, http};
use tonic::server::{NamedService, UnaryService};

/// One OTLP Export method: its service and its handler.
pub trait Export: Send + Sync + 'static {
    /// Fully qualified gRPC service name (the generated `SERVICE_NAME`).
    const SERVICE: &'static str;
    /// The OTLP response message.
    type Response: Message + Default + Send + 'static;
    /// Handles one request body (uncompressed protobuf bytes).
    fn export(
        self: Arc<Self>,
        body: Bytes,
    ) -> impl Future<Output = Result<Self::Response, Status>> + Send + 'static;
}

/// Serves one [`Export`] implementation as a gRPC service.
pub struct OtlpGrpc<E> {
    inner: Arc<E>,
    max_decoding_message_size: usize,
}

impl<E> Clone for OtlpGrpc<E> {
    fn clone(&self) -> Self {
        OtlpGrpc {
            inner: self.inner.clone(),
            max_decoding_message_size: self.max_decoding_message_size,
        }
    }
}

impl<E: Export> OtlpGrpc<E> {
    pub fn new(inner: Arc<E>, max_decoding_message_size: usize) -> Self {
        OtlpGrpc {
            inner,
            max_decoding_message_size,
        }
    }
}

impl<E: Export> NamedService for OtlpGrpc<E> {
    const NAME: &'static str = E::SERVICE;
}

struct Handler<E>(Arc<E>);

impl<E: Export> UnaryService<Bytes> for Handler<E> {
    type Response = E::Response;
    type Future = BoxFuture<tonic::Response<E::Response>, Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move {
            let body = request.into_inner();
            inner.export(body).await.map(tonic::Response::new)
        })
    }
}

impl<E, B> Service<http::Request<B>> for OtlpGrpc<E>
where
    E: Export,
    B: http_body::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let is_export = req
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(E::SERVICE))
            == Some("/Export");
        if !is_export {
            return Box::pin(async { Ok(Status::unimplemented("unknown method").into_http()) });
        }
        let handler = Handler(self.inner.clone());
        let max = self.max_decoding_message_size;
        Box::pin(async move {
            let mut accept = EnabledCompressionEncodings::default();
            accept.enable(CompressionEncoding::Gzip);
            accept.enable(CompressionEncoding::Zstd);
            let mut send = EnabledCompressionEncodings::default();
            send.enable(CompressionEncoding::Gzip);
            send.enable(CompressionEncoding::Zstd);
            let mut grpc = tonic::server::Grpc::new(RawCodec::<E::Response>::default())
                .apply_compression_config(accept, send)
                .apply_max_message_size_config(Some(max), None);
            let mut response = grpc.unary(handler, req).await;
            client_errors_are_permanent(&mut response);
            Ok(response)
        })
    }
}

/// Statuses tonic itself gives to bad request bodies, mapped to what OTLP clients should see.
/// The handlers never answer OUT_OF_RANGE or INTERNAL, so either one here came from tonic:
/// - OUT_OF_RANGE (body over the size limit) and INTERNAL "Error decompressing: size limit"
///   (a body that inflates past it) become RESOURCE_EXHAUSTED without RetryInfo, which OTLP
///   clients treat as permanent — OUT_OF_RANGE is on OTLP's retryable list, so a client would
///   send the same oversize request forever;
/// - any other INTERNAL (a corrupt gzip/zstd body, a truncated or missing message) becomes
///   INVALID_ARGUMENT: the request is malformed and retrying cannot help.
fn client_errors_are_permanent(response: &mut http::Response<tonic::body::Body>) {
    let Some(status) = Status::from_header_map(response.headers()) else {
        return;
    };
    let code = match status.code() {
        tonic::Code::OutOfRange => tonic::Code::ResourceExhausted,
        tonic::Code::Internal if status.message().contains("size limit") => {
            tonic::Code::ResourceExhausted
        }
        tonic::Code::Internal => tonic::Code::InvalidArgument,
        _ => return,
    };
    let fixed = Status::new(code, status.message().to_string());
    let _ = fixed.add_header(response.headers_mut());
}

/// Decodes a request as its raw bytes; encodes the response with prost.
struct RawCodec<R>(PhantomData<R>);

impl<R> Default for RawCodec<R> {
    fn default() -> Self {
        RawCodec(PhantomData)
    }
}

impl<R: Message + Default + Send + 'static> Codec for RawCodec<R> {
    type Encode = R;
    type Decode = Bytes;
    type Encoder = <tonic_prost::ProstCodec<R, R> as Codec>::Encoder;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstCodec::<R, R>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesDecoder
    }
}

struct BytesDecoder;

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let n = buf.remaining();
        Ok(Some(buf.copy_to_bytes(n)))
    }
}

"""Sends spans and logs to a sieve gateway with the official OpenTelemetry Python SDK.

Usage: send_otel.py ENDPOINT [grpc|http]
    grpc (default): ENDPOINT is the OTLP/gRPC address, e.g. http://127.0.0.1:4317
    http: ENDPOINT is the OTLP/HTTP base URL, e.g. http://127.0.0.1:4318 (the exporters
    append /v1/traces and /v1/logs), protobuf bodies, gzip
Prints one JSON object: {"trace_id": "<32 hex>", "span_ids": {...}} once everything is
flushed (force_flush returns True only after the exporter got its answers).
"""
import json
import logging
import sys

from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

endpoint = sys.argv[1]
protocol = sys.argv[2] if len(sys.argv) > 2 else "grpc"
if protocol == "http":
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    span_exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", compression=Compression.Gzip)
    log_exporter = OTLPLogExporter(endpoint=f"{endpoint}/v1/logs", compression=Compression.Gzip)
else:
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    span_exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
    log_exporter = OTLPLogExporter(endpoint=endpoint, insecure=True)
resource = Resource.create({"service.name": "py-recommender", "ml.model": "ranker-v3"})

tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))

log = logging.getLogger("recommender")
log.setLevel(logging.INFO)
log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))

tracer = tracer_provider.get_tracer("recommender")
with tracer.start_as_current_span("POST /recommend", kind=trace.SpanKind.SERVER) as root:
    root.set_attribute("user.segment", "returning")
    with tracer.start_as_current_span("embed") as embed:
        embed.add_event("cache_miss", {"key": "u42"})
        log.info("embedding computed")
    with tracer.start_as_current_span("rank") as rank:
        rank.set_status(Status(StatusCode.ERROR, "model timeout"))
        log.error("ranking timed out")
    trace_id = format(root.get_span_context().trace_id, "032x")

ok = tracer_provider.force_flush(10_000) and logger_provider.force_flush(10_000)
if not ok:
    sys.exit("force_flush failed")
print(json.dumps({"trace_id": trace_id}))
tracer_provider.shutdown()
logger_provider.shutdown()

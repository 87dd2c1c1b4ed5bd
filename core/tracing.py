"""OpenTelemetry tracing: set-up, the ``span`` helper and the current trace id.

Off by default. :func:`configure_tracing` turns it on when ``settings.trace`` is set or the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` variable is: spans then go over OTLP/HTTP
(a batch processor) to ``settings.trace_endpoint``, else where the OTEL variables say (the exporter reads them,
headers included), else ``http://127.0.0.1:6006`` (a local Arize Phoenix). The resource names the service
``ponder`` and the Phoenix/Langfuse project (``openinference.project.name``).

While tracing is off :func:`span` returns one shared no-op context (no SDK is set up), so instrumented code costs a
function call and an ``is None`` test per span. A collector that cannot be reached never fails a run: exports are
bounded by :data:`EXPORT_TIMEOUT_S`, one warning is logged, and later batches are dropped for a while rather than
retried. Spans still buffered are flushed at the end of each CLI command (:func:`flush_tracing`) and at exit.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, format_trace_id

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from ponder.core.settings import EcosystemSettings

log = logging.getLogger("ponder.tracing")

#: Where spans go when tracing is on and no endpoint is configured: Phoenix's default HTTP port.
DEFAULT_ENDPOINT = "http://127.0.0.1:6006"
#: The OTLP/HTTP path of traces below a base endpoint.
TRACES_PATH = "/v1/traces"
#: The environment variables that turn tracing on by themselves (the exporter reads them too).
OTEL_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
#: Seconds one export request (with its retries) may take.
EXPORT_TIMEOUT_S = 3.0
#: Seconds a flush at the end of a command or at exit may take.
FLUSH_TIMEOUT_S = 5.0
#: Seconds exports are skipped after one failed (an unreachable collector does not slow every batch down).
FAILURE_COOLDOWN_S = 30.0
#: The most characters of an ``input.value`` / ``output.value`` attribute.
MAX_VALUE_CHARS = 4000
SERVICE_NAME = "ponder"

_LOCK = threading.Lock()
#: The context every span helper returns while tracing is off (a shared no-op span).
NOOP: AbstractContextManager[Span] = nullcontext(INVALID_SPAN)
_tracer: trace.Tracer | None = None
_provider: TracerProvider | None = None
_global_set = False

AttributeValue = str | bool | int | float | Sequence[str] | Sequence[int] | Sequence[float]


def tracing_enabled() -> bool:
    """Whether spans are being recorded in this process."""
    return _tracer is not None


def wants_tracing(settings: EcosystemSettings) -> bool:
    """Whether ``settings`` (or the standard OTEL endpoint variables) ask for traces."""
    return settings.trace or any(os.environ.get(name) for name in OTEL_ENDPOINT_VARS)


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of ``endpoint``: a base URL gets ``/v1/traces``; a full traces URL stays."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


def configure_tracing(settings: EcosystemSettings) -> bool:
    """Turn tracing on when the settings or the environment ask for it (once per process; later calls keep it).

    Returns:
        Whether tracing is on.
    """
    if _tracer is not None:
        return True
    if not wants_tracing(settings):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    env_set = any(os.environ.get(name) for name in OTEL_ENDPOINT_VARS)
    endpoint = traces_url(settings.trace_endpoint or DEFAULT_ENDPOINT) if settings.trace_endpoint or not env_set \
        else None
    exporter = OTLPSpanExporter(endpoint=endpoint, timeout=EXPORT_TIMEOUT_S)
    where = endpoint or "the OTEL_EXPORTER_OTLP_* endpoint"
    # The exporter logs every failed batch; we say it once (see _GuardedExporter).
    logging.getLogger("opentelemetry.exporter").setLevel(logging.CRITICAL)
    if not log.isEnabledFor(logging.WARNING):  # a quiet command (ponder eval) still says its spans are lost
        log.setLevel(logging.WARNING)
    install_exporter(_GuardedExporter(exporter, where), settings.trace_project)
    log.info("tracing on: spans go to %s (project %s)", where, settings.trace_project)
    return True


def install_exporter(exporter: SpanExporter, project: str = SERVICE_NAME, *, batch: bool = True) -> TracerProvider:
    """Record spans into ``exporter`` from now on (tests pass an ``InMemorySpanExporter`` with ``batch=False``).

    Replaces a provider installed before (it is shut down). The first provider also becomes OpenTelemetry's global
    one, so spans of instrumented libraries join ponder's traces.
    """
    from openinference.semconv.resource import ResourceAttributes
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    global _tracer, _provider, _global_set
    resource = Resource.create({"service.name": SERVICE_NAME, ResourceAttributes.PROJECT_NAME: project})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter, export_timeout_millis=int(EXPORT_TIMEOUT_S * 1000))
                                if batch else SimpleSpanProcessor(exporter))
    with _LOCK:
        old, _provider, _tracer = _provider, provider, provider.get_tracer("ponder")
        if not _global_set:
            _global_set = True
            trace.set_tracer_provider(provider)
            atexit.register(shutdown_tracing)
    if old is not None:
        old.shutdown()
    return provider


def flush_tracing(timeout_s: float = FLUSH_TIMEOUT_S) -> bool:
    """Export the spans still buffered, waiting at most ``timeout_s``; ``True`` when tracing is off."""
    provider = _provider
    return True if provider is None else provider.force_flush(int(timeout_s * 1000))


def shutdown_tracing() -> None:
    """Flush (bounded) and turn tracing off; :func:`span` is a no-op again afterwards."""
    global _tracer, _provider
    with _LOCK:
        provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.force_flush(int(FLUSH_TIMEOUT_S * 1000))
        provider.shutdown()


def span(name: str, attributes: Mapping[str, AttributeValue | None] | None = None) -> AbstractContextManager[Span]:
    """A span named ``name``, current inside the ``with`` block (a shared no-op span while tracing is off).

    ``None`` attribute values are left out. An exception leaving the block is recorded on the span with its
    ``error.type`` and re-raised. Test ``span.is_recording()`` before computing costly attributes.
    """
    tracer = _tracer
    if tracer is None:
        return NOOP
    return _recording(tracer, name, attributes)


def start_span(name: str, attributes: Mapping[str, AttributeValue | None] | None = None) -> Span:
    """A started span that is NOT made current (for generators, which outlive one context); call ``.end()``.

    The no-op span while tracing is off.
    """
    tracer = _tracer
    if tracer is None:
        return INVALID_SPAN
    return tracer.start_span(name, attributes={k: v for k, v in (attributes or {}).items() if v is not None})


@contextmanager
def _recording(tracer: trace.Tracer, name: str, attributes: Mapping[str, Any] | None) -> Iterator[Span]:
    attrs = {k: v for k, v in (attributes or {}).items() if v is not None}
    with tracer.start_as_current_span(name, attributes=attrs) as current:
        try:
            yield current
        except BaseException as exc:
            current.set_attribute("error.type", type(exc).__qualname__)
            raise


def current_trace_id() -> str | None:
    """The hex id of the trace the current span belongs to (``None`` outside a recorded span)."""
    context = trace.get_current_span().get_span_context()
    return format_trace_id(context.trace_id) if context.is_valid else None


def clip(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """``text`` cut to ``limit`` characters (with a note of how much was cut) for an attribute value."""
    return text if len(text) <= limit else f"{text[:limit]}... [{len(text) - limit} more characters]"


class _GuardedExporter:
    """An exporter that warns once when the collector cannot be reached and then skips batches for a while."""

    def __init__(self, inner: SpanExporter, where: str) -> None:
        self.inner = inner
        self.where = where
        self.warned = False
        self.skip_until = 0.0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        from opentelemetry.sdk.trace.export import SpanExportResult

        if time.monotonic() < self.skip_until:
            return SpanExportResult.FAILURE
        try:
            result = self.inner.export(spans)
        except Exception:  # noqa: BLE001 - a broken exporter must not break a run
            result = SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            self.skip_until = time.monotonic() + FAILURE_COOLDOWN_S
            if not self.warned:
                self.warned = True
                log.warning("could not export trace spans to %s (is the collector running?); the run goes on "
                            "without them", self.where)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)

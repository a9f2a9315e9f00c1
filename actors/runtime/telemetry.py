"""OpenTelemetry tracing: set-up from ``OTEL_*`` variables and NATS header propagation.

Every publish injects the W3C trace context into the NATS headers; every
handler continues it with a ``SERVER`` (request/reply) or ``CONSUMER``
(stream) span carrying the messaging semantic-convention attributes. Set-up
reads only the standard variables: with no exporter configured the global
no-op tracer stays in place, which still forwards an incoming trace context
unchanged, so a workflow keeps one trace id across processes at almost no cost.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Literal

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind

__all__ = [
    "MESSAGING_SYSTEM",
    "TRACER_NAME",
    "Operation",
    "configure_tracing",
    "current_trace_id",
    "ensure_trace_ids",
    "inject_context",
    "process_span",
    "publish_span",
    "shutdown_tracing",
    "tracer",
]

log = logging.getLogger(__name__)

TRACER_NAME = "troupe"
"""Instrumentation scope of every troupe span."""

MESSAGING_SYSTEM = "nats"
"""Value of ``messaging.system``."""

Operation = Literal["publish", "send", "process", "receive"]

_configured = False


def _exporter_requested(env: Mapping[str, str]) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    if exporter in {"otlp", "console"}:
        return True
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure_tracing(service_name: str, env: Mapping[str, str] | None = None) -> bool:
    """Install an SDK tracer provider if the ``OTEL_*`` variables ask for one.

    Honours ``OTEL_SDK_DISABLED``, ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``,
    ``none``), ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`` and
    ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`` (``grpc`` or ``http/protobuf``, the
    default); ``OTEL_SERVICE_NAME`` overrides ``service_name``.

    Args:
        service_name: default ``service.name`` resource attribute.
        env: variables to read (``os.environ`` by default).

    Returns:
        Whether spans will be exported.
    """
    global _configured  # noqa: PLW0603 - one provider per process, installed once
    env = os.environ if env is None else env
    if _configured or not _exporter_requested(env):
        return _configured
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or service_name})
    provider = TracerProvider(resource=resource)
    exporter: SpanExporter
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        exporter = ConsoleSpanExporter()
    else:
        protocol = (
            env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        ).strip()
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )

            exporter = GrpcExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter as HttpExporter,
            )

            exporter = HttpExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = True
    log.info("tracing exports spans for service %s", resource.attributes["service.name"])
    return True


def ensure_trace_ids(service_name: str) -> None:
    """Make sure spans started here get real trace ids, exporter or not.

    A client that starts a workflow (``troupe submit``, ``troupe demo``) needs a
    trace id to show even when nothing is exported; without an exporter this
    installs an SDK provider with no processor, which only generates ids.
    """
    if configure_tracing(service_name):
        return
    from opentelemetry.sdk.trace import TracerProvider

    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())


def shutdown_tracing() -> None:
    """Flush and stop the SDK provider, if one was installed."""
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if callable(shutdown):
        shutdown()


def tracer() -> trace.Tracer:
    """Return troupe's tracer (the no-op one until tracing is configured)."""
    return trace.get_tracer(TRACER_NAME)


def inject_context(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Write the current trace context into ``headers`` and return them."""
    propagate.inject(headers)
    return headers


def current_trace_id() -> str | None:
    """Return the current span's trace id as 32 hex digits, or ``None``."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def _attributes(subject: str, operation: Operation, actor: str | None) -> dict[str, str]:
    attrs = {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.destination.name": subject,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
    }
    if actor:
        attrs["troupe.actor"] = actor
    return attrs


@contextmanager
def publish_span(
    subject: str, headers: MutableMapping[str, str], *, operation: Operation = "publish"
) -> Iterator[Span]:
    """Open a ``PRODUCER`` (publish) or ``CLIENT`` (send, for requests) span and
    inject its context into ``headers``."""
    kind = SpanKind.PRODUCER if operation == "publish" else SpanKind.CLIENT
    with tracer().start_as_current_span(
        f"{operation} {subject}", kind=kind, attributes=_attributes(subject, operation, None)
    ) as span:
        propagate.inject(headers)
        yield span


@contextmanager
def process_span(
    subject: str,
    headers: Mapping[str, str] | None,
    *,
    kind: Literal["server", "consumer"],
    actor: str,
    name: str | None = None,
) -> Iterator[Span]:
    """Continue the trace found in ``headers`` with a span around a handler."""
    parent = propagate.extract(headers) if headers else None
    with tracer().start_as_current_span(
        name or f"process {subject}",
        context=parent,
        kind=SpanKind.SERVER if kind == "server" else SpanKind.CONSUMER,
        attributes=_attributes(subject, "process", actor),
    ) as span:
        yield span

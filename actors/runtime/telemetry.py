"""OpenTelemetry tracing: set-up from ``OTEL_*`` variables and NATS header propagation.

Every publish injects the W3C trace context into the NATS headers; every
handler continues it with a ``SERVER`` (request/reply) or ``CONSUMER``
(stream) span carrying the messaging semantic-convention attributes. Span
names stay low in cardinality, as the conventions ask: a subject that carries an
id is named by its template (``process troupe.status.events.{workflow}``) and
the id goes in an attribute (``troupe.workflow.id``). Set-up
reads only the standard variables: with no exporter configured the global
no-op tracer stays in place, which still forwards an incoming trace context
unchanged, so a workflow keeps one trace id across processes at almost no cost.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Literal

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import (
    INVALID_SPAN,
    NoOpTracerProvider,
    ProxyTracerProvider,
    Span,
    SpanKind,
)

__all__ = [
    "MESSAGING_SYSTEM",
    "TRACER_NAME",
    "Operation",
    "carrying",
    "configure_tracing",
    "current_trace_id",
    "destination_template",
    "ensure_trace_ids",
    "fresh_context",
    "inject_context",
    "internal_span",
    "process_span",
    "publish_span",
    "recording",
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

_TRACEPARENT = "traceparent"
_NOOP_PROVIDERS = (ProxyTracerProvider, NoOpTracerProvider)


def recording() -> bool:
    """Whether an SDK tracer provider is installed (spans are recorded and exported).

    Without one, the span helpers below skip span creation altogether and only
    forward an incoming trace context, which keeps tracing nearly free.
    """
    # Read on every message, so the global is read directly: the public getter
    # consults os.environ on each call while no provider is installed.
    provider = getattr(trace, "_TRACER_PROVIDER", None)
    return provider is not None and not isinstance(provider, _NOOP_PROVIDERS)


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


def internal_span(name: str, attributes: Mapping[str, str]) -> AbstractContextManager[Span]:
    """Open an ``INTERNAL`` span around local work (a step run), made current.

    Without an SDK provider nothing is made or attached: the no-op tracer would
    only allocate a proxy, a context and a token to hand back the span already
    current, so the trace in progress carries on unchanged either way.
    """
    if not recording():
        return _NO_SPAN
    return tracer().start_as_current_span(name, attributes=attributes)


def inject_context(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Write the current trace context into ``headers`` and return them."""
    propagate.inject(headers)
    return headers


def fresh_context() -> trace.SpanContext:
    """Return a sampled span context with new random ids, to make current when none is.

    It is only propagated, never exported: a door that starts a workflow
    without an exporter (the CLI, the gateway) still gives it a trace id the
    user can look up. Ids come from :func:`random.getrandbits`, as the
    OpenTelemetry SDK's own generator draws them.
    """
    return trace.SpanContext(
        trace_id=random.getrandbits(128) or 1,
        span_id=random.getrandbits(64) or 1,
        is_remote=False,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )


def current_trace_id() -> str | None:
    """Return the current span's trace id as 32 hex digits, or ``None``."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


_ID_PREFIXES: tuple[tuple[str, str], ...] = (
    ("troupe.status.events.", "workflow"),
    ("troupe.status.updates.", "workflow"),
    ("troupe.agents.results.", "workflow"),
    ("troupe.agents.inbox.", "agent"),
)
"""Subject prefixes whose remainder is an id, and the id's placeholder name."""

_ID_ATTRIBUTES = {"workflow": "troupe.workflow.id", "agent": "troupe.agent.id"}
"""Span attribute that carries the id behind each placeholder."""


def destination_template(subject: str) -> tuple[str, str | None, str | None]:
    """Return the low-cardinality template of ``subject``, the id it carries and its kind.

    ``troupe.status.events.wf-1`` gives ``("troupe.status.events.{workflow}",
    "wf-1", "workflow")``; KV subjects keep the bucket and template the key,
    inboxes and micro service instance ids are templated too; any other
    subject is its own template (``None`` id).

    Args:
        subject: a concrete NATS subject.

    Returns:
        ``(template, id, placeholder)``.
    """
    for prefix, placeholder in _ID_PREFIXES:
        if subject.startswith(prefix) and len(subject) > len(prefix):
            return f"{prefix}{{{placeholder}}}", subject[len(prefix) :], placeholder
    tokens = subject.split(".")
    if tokens[0] == "$KV" and len(tokens) > 2:
        return f"$KV.{tokens[1]}.{{key}}", ".".join(tokens[2:]), "key"
    if tokens[0].startswith("_INBOX") and len(tokens) > 1:
        return f"{tokens[0]}.{{inbox}}", ".".join(tokens[1:]), "inbox"
    if tokens[0] == "$SRV" and len(tokens) > 3:
        return f"$SRV.{tokens[1]}.{tokens[2]}.{{id}}", tokens[3], "id"
    return subject, None, None


def _span_name(operation: Operation, subject: str) -> str:
    return f"{operation} {destination_template(subject)[0]}"


def _attributes(subject: str, operation: Operation, actor: str | None) -> dict[str, str]:
    attrs = {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.destination.name": subject,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
    }
    template, ident, placeholder = destination_template(subject)
    if ident is not None and placeholder is not None:
        attrs["messaging.destination.template"] = template
        if placeholder in _ID_ATTRIBUTES:
            attrs[_ID_ATTRIBUTES[placeholder]] = ident
    if actor:
        attrs["troupe.actor"] = actor
    return attrs


_NO_SPAN: AbstractContextManager[Span] = nullcontext(INVALID_SPAN)
"""What the span helpers return when there is neither a recorder nor a trace to continue."""


def carrying() -> bool:
    """Whether a message sent now would carry a trace: spans are recorded, or a trace
    context is attached (:func:`publish_span` then has something to do)."""
    return recording() or bool(otel_context.get_current())


def publish_span(
    subject: str, headers: MutableMapping[str, str], *, operation: Operation = "publish"
) -> AbstractContextManager[Span]:
    """Open a ``PRODUCER`` (publish) or ``CLIENT`` (send, for requests) span and
    inject its context into ``headers``.

    Without an SDK provider no span is made: a trace already in progress is
    injected as it is, and with none the call costs next to nothing.
    """
    if not recording():
        if not otel_context.get_current():
            return _NO_SPAN  # nothing attached: no trace to carry on (the common case)
        current = trace.get_current_span()
        if not current.get_span_context().is_valid:
            return _NO_SPAN
        propagate.inject(headers)
        return nullcontext(current)
    return _recorded_publish_span(subject, headers, operation)


@contextmanager
def _recorded_publish_span(
    subject: str, headers: MutableMapping[str, str], operation: Operation
) -> Iterator[Span]:
    kind = SpanKind.PRODUCER if operation == "publish" else SpanKind.CLIENT
    with tracer().start_as_current_span(
        _span_name(operation, subject), kind=kind, attributes=_attributes(subject, operation, None)
    ) as span:
        propagate.inject(headers)
        yield span


def process_span(
    subject: str,
    headers: Mapping[str, str] | None,
    *,
    kind: Literal["server", "consumer"],
    actor: str,
    name: str | None = None,
) -> AbstractContextManager[Span]:
    """Continue the trace found in ``headers`` with a span around a handler.

    Without an SDK provider no span is made, but an incoming trace context is
    made current, so whatever the handler publishes carries the trace on.
    """
    if not recording():
        if not headers or _TRACEPARENT not in headers:
            return _NO_SPAN
        return _continued_context(headers)
    return _recorded_process_span(subject, headers, kind, actor, name)


@contextmanager
def _continued_context(headers: Mapping[str, str]) -> Iterator[Span]:
    token = otel_context.attach(propagate.extract(headers))
    try:
        yield trace.get_current_span()
    finally:
        otel_context.detach(token)


@contextmanager
def _recorded_process_span(
    subject: str,
    headers: Mapping[str, str] | None,
    kind: Literal["server", "consumer"],
    actor: str,
    name: str | None,
) -> Iterator[Span]:
    parent = propagate.extract(headers) if headers else None
    with tracer().start_as_current_span(
        name or _span_name("process", subject),
        context=parent,
        kind=SpanKind.SERVER if kind == "server" else SpanKind.CONSUMER,
        attributes=_attributes(subject, "process", actor),
    ) as span:
        yield span

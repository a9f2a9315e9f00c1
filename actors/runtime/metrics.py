"""OpenTelemetry metrics: the catalog of every troupe metric and set-up from ``OTEL_*``.

:data:`METRICS` is the one list of what troupe exports — name, instrument kind,
unit, attributes and which process records it. The monitoring guide, the
Grafana dashboard and the alert rules are checked against it, and
:func:`prometheus_names` gives the series names a Prometheus scrape shows
(dots become underscores, counters end in ``_total``, seconds in ``_seconds``,
histograms add ``_bucket``, ``_count`` and ``_sum``).

:func:`configure_metrics` installs the global SDK meter provider when the
standard variables ask for an exporter (``OTEL_METRICS_EXPORTER`` = ``otlp`` or
``console``, or an ``OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT``);
:func:`build_meter_provider` makes a provider for one component, with extra
readers (the gateway's, with its Prometheus reader). Without an exporter the
API's no-op meter stays in place and the runtime records nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from opentelemetry import metrics
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader

__all__ = [
    "DURATION_BUCKETS",
    "METRICS",
    "MetricKind",
    "MetricSpec",
    "build_meter_provider",
    "configure_metrics",
    "exporting",
    "metric",
    "prometheus_names",
    "record_dead_letter",
    "record_handled",
    "shutdown_metrics",
]

log = logging.getLogger(__name__)

MetricKind = Literal["counter", "histogram", "gauge"]
"""Instrument kind (gauges are observable gauges)."""

DURATION_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)
"""Histogram bucket bounds of every duration, in seconds."""


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One exported metric.

    Attributes:
        name: OpenTelemetry instrument name.
        kind: instrument kind.
        unit: UCUM unit (``s``, ``By``, ``1``) or an annotation (``{workflow}``).
        description: what it measures.
        attributes: attribute keys of its data points.
        source: the process that records it (an actor name, or ``every actor``).
    """

    name: str
    kind: MetricKind
    unit: str
    description: str
    attributes: tuple[str, ...] = ()
    source: str = "gateway"


METRICS: tuple[MetricSpec, ...] = (
    # Every actor, recorded by the runtime's handler dispatch.
    MetricSpec(
        "troupe.messages.handled",
        "counter",
        "{message}",
        "Messages handled, by outcome (ok, error, dead_letter)",
        ("troupe.actor", "messaging.destination.template", "outcome"),
        "every actor",
    ),
    MetricSpec(
        "troupe.handler.duration",
        "histogram",
        "s",
        "Time a handler took per message",
        ("troupe.actor", "messaging.destination.template"),
        "every actor",
    ),
    MetricSpec(
        "troupe.dead_letters.published",
        "counter",
        "{message}",
        "Messages an actor gave up on and sent to the dead-letter stream",
        ("troupe.actor", "stream"),
        "every actor",
    ),
    # Workflows, recorded by the gateway from the status updates.
    MetricSpec(
        "troupe.workflow.transitions",
        "counter",
        "{transition}",
        "Workflow state changes, by the state entered",
        ("state", "template"),
    ),
    MetricSpec(
        "troupe.workflow.retries",
        "counter",
        "{retry}",
        "Workflow attempts scheduled again after a failure",
        ("template",),
    ),
    MetricSpec(
        "troupe.workflow.duration",
        "histogram",
        "s",
        "Time from submission to a final state",
        ("state", "template"),
    ),
    MetricSpec(
        "troupe.step.duration",
        "histogram",
        "s",
        "Time a step ran, by final step state",
        ("template", "step", "state"),
    ),
    MetricSpec(
        "troupe.step.cache_hits",
        "counter",
        "{step}",
        "Steps answered from the result cache instead of running",
        ("template", "step"),
    ),
    MetricSpec(
        "troupe.workflows",
        "gauge",
        "{workflow}",
        "Workflows the tracker keeps, by state and template",
        ("state", "template"),
    ),
    # Streams and consumers, from JetStream's own accounting.
    MetricSpec(
        "troupe.stream.messages",
        "gauge",
        "{message}",
        "Messages held by a stream (queue depth of work-queue streams)",
        ("stream",),
    ),
    MetricSpec("troupe.stream.bytes", "gauge", "By", "Bytes held by a stream", ("stream",)),
    MetricSpec(
        "troupe.stream.replicas",
        "gauge",
        "{replica}",
        "Replicas a stream is configured with",
        ("stream",),
    ),
    MetricSpec(
        "troupe.stream.replicas_current",
        "gauge",
        "{replica}",
        "Replicas of a stream that are online and current (leader included)",
        ("stream",),
    ),
    MetricSpec(
        "troupe.consumer.pending",
        "gauge",
        "{message}",
        "Messages not yet delivered to a durable consumer (its lag)",
        ("stream", "consumer"),
    ),
    MetricSpec(
        "troupe.consumer.ack_pending",
        "gauge",
        "{message}",
        "Messages delivered to a durable consumer and not yet acknowledged",
        ("stream", "consumer"),
    ),
    MetricSpec(
        "troupe.consumer.redelivered",
        "gauge",
        "{message}",
        "Messages a durable consumer holds that were delivered more than once",
        ("stream", "consumer"),
    ),
    MetricSpec(
        "troupe.dead_letters",
        "gauge",
        "{message}",
        "Messages in the dead-letter stream",
    ),
    MetricSpec("troupe.agents.live", "gauge", "{agent}", "Agents with a live heartbeat"),
    # Breakers: the supervisor records calls and transitions; the gateway reads states.
    MetricSpec(
        "troupe.breaker.calls",
        "counter",
        "{call}",
        "Call outcomes reported to the breakers (success, failure, ignored)",
        ("breaker.key", "outcome", "slow"),
        "breaker_supervisor",
    ),
    MetricSpec(
        "troupe.breaker.transitions",
        "counter",
        "{transition}",
        "Breaker state changes",
        ("breaker.key", "to_state"),
        "breaker_supervisor",
    ),
    MetricSpec(
        "troupe.breaker.state",
        "gauge",
        "1",
        "0 closed, 1 open, 2 half_open, 3 forced_open, 4 disabled",
        ("breaker.key",),
        "breaker_supervisor, gateway",
    ),
    MetricSpec(
        "troupe.breaker.failure_rate",
        "gauge",
        "1",
        "Failure ratio of the breaker's current window",
        ("breaker.key",),
        "breaker_supervisor, gateway",
    ),
    MetricSpec(
        "troupe.breaker.slow_rate",
        "gauge",
        "1",
        "Slow-call ratio of the breaker's current window",
        ("breaker.key",),
        "breaker_supervisor, gateway",
    ),
)
"""Every metric troupe exports."""


def metric(name: str) -> MetricSpec:
    """Return the catalog entry named ``name``.

    Raises:
        KeyError: no such metric.
    """
    for spec in METRICS:
        if spec.name == name:
            return spec
    raise KeyError(name)


def prometheus_names(spec: MetricSpec) -> tuple[str, ...]:
    """Return the series names ``spec`` appears under in a Prometheus scrape."""
    base = spec.name.replace(".", "_")
    if spec.unit == "s" and not base.endswith("_seconds"):
        base += "_seconds"
    if spec.kind == "counter":
        return (f"{base}_total",)
    if spec.kind == "histogram":
        return (f"{base}_bucket", f"{base}_count", f"{base}_sum")
    return (base,)


_configured = False


def _exporter_requested(env: Mapping[str, str]) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_METRICS_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    if exporter in {"otlp", "console"}:
        return True
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    )


def _exporting_reader(env: Mapping[str, str]) -> MetricReader:
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        MetricExporter,
        PeriodicExportingMetricReader,
    )

    exporter: MetricExporter
    if env.get("OTEL_METRICS_EXPORTER", "").strip().lower() == "console":
        exporter = ConsoleMetricExporter()
    else:
        protocol = (
            env.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
            or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        ).strip()
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter as GrpcExporter,
            )

            exporter = GrpcExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter as HttpExporter,
            )

            exporter = HttpExporter()
    # The interval comes from OTEL_METRIC_EXPORT_INTERVAL (milliseconds) when set.
    return PeriodicExportingMetricReader(exporter)


def build_meter_provider(
    service_name: str,
    env: Mapping[str, str] | None = None,
    *,
    readers: Sequence[MetricReader] = (),
) -> MeterProvider | None:
    """Return an SDK meter provider if ``OTEL_*`` asks for an exporter or readers are given.

    Honours ``OTEL_SDK_DISABLED``, ``OTEL_METRICS_EXPORTER`` (``otlp``, ``console``,
    ``none``), ``OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT``,
    ``OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL`` and ``OTEL_METRIC_EXPORT_INTERVAL``;
    ``OTEL_SERVICE_NAME`` overrides ``service_name``.

    Args:
        service_name: default ``service.name`` resource attribute.
        env: variables to read (``os.environ`` by default).
        readers: extra readers, e.g. a Prometheus reader serving ``/metrics``.

    Returns:
        The provider, or ``None`` when there is nothing to export to.
    """
    env = os.environ if env is None else env
    all_readers = list(readers)
    if _exporter_requested(env):
        all_readers.append(_exporting_reader(env))
    if not all_readers:
        return None
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or service_name})
    return SdkMeterProvider(metric_readers=all_readers, resource=resource)


def configure_metrics(service_name: str, env: Mapping[str, str] | None = None) -> bool:
    """Install the global SDK meter provider if the ``OTEL_*`` variables ask for an exporter.

    Args:
        service_name: default ``service.name`` resource attribute.
        env: variables to read (``os.environ`` by default).

    Returns:
        Whether metrics are exported (by this call or an earlier one).
    """
    global _configured  # noqa: PLW0603 - one provider per process, installed once
    if _configured:
        return True
    provider = build_meter_provider(service_name, env)
    if provider is None:
        return False
    metrics.set_meter_provider(provider)
    _configured = True
    log.info("metrics exported for service %s", service_name)
    return True


def exporting() -> bool:
    """Whether :func:`configure_metrics` installed an exporting provider in this process."""
    return _configured


class _HandlerInstruments:
    """The runtime's instruments, made on first use from the global meter."""

    def __init__(self) -> None:
        meter = metrics.get_meter("troupe.runtime")
        handled = metric("troupe.messages.handled")
        self.handled = meter.create_counter(
            handled.name, unit=handled.unit, description=handled.description
        )
        duration = metric("troupe.handler.duration")
        self.duration = meter.create_histogram(
            duration.name,
            unit=duration.unit,
            description=duration.description,
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        dead = metric("troupe.dead_letters.published")
        self.dead_letters = meter.create_counter(
            dead.name, unit=dead.unit, description=dead.description
        )


_instruments: _HandlerInstruments | None = None


def _handler_instruments() -> _HandlerInstruments:
    global _instruments  # noqa: PLW0603 - made once, after the provider is installed
    if _instruments is None:
        _instruments = _HandlerInstruments()
    return _instruments


def record_handled(actor: str, destination: str, error: str | None, seconds: float) -> None:
    """Count one message a handler of ``actor`` subscribed to ``destination`` took.

    Args:
        actor: the actor's name.
        destination: the subscribed subject (a pattern, so low in cardinality).
        error: ``None`` when handled, ``"dead_letter"`` or any other error label.
        seconds: time the handler took.
    """
    outcome = "ok" if error is None else "dead_letter" if error == "dead_letter" else "error"
    instruments = _handler_instruments()
    attrs = {"troupe.actor": actor, "messaging.destination.template": destination}
    instruments.handled.add(1, {**attrs, "outcome": outcome})
    instruments.duration.record(seconds, attrs)


def record_dead_letter(actor: str, stream: str) -> None:
    """Count one message ``actor`` sent to the dead-letter stream from ``stream``."""
    _handler_instruments().dead_letters.add(1, {"troupe.actor": actor, "stream": stream})


def shutdown_metrics() -> None:
    """Flush and stop the SDK meter provider, if one was installed."""
    provider = metrics.get_meter_provider()
    shutdown = getattr(provider, "shutdown", None)
    if callable(shutdown):
        shutdown()

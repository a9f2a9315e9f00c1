"""The gateway's metrics: workflow counters from status updates, gauges from JetStream.

:class:`GatewayMetrics` records, on a meter provider of its own (a Prometheus
reader for ``GET /metrics``, plus the OTLP exporter when ``OTEL_*`` asks):

* from every status update (``troupe.status.updates.>``): workflow transitions,
  retries and durations, step durations and cache hits;
* on each scrape (at most every ``min_interval`` seconds): stream depth, bytes
  and replica health, durable consumers' lag, ack-pending and redeliveries (all
  from JetStream's own accounting), dead letters, live agents, breaker states
  and the tracker's workflows by state and template.

Every name is in :data:`actors.runtime.metrics.METRICS`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from actors.agent_registry.client import list_agents
from actors.breaker_supervisor.client import list_breakers
from actors.gateway.http import bearer_of, error_response
from actors.gateway.services import Services
from actors.runtime.bus import Bus
from actors.runtime.metrics import DURATION_BUCKETS, build_meter_provider, metric
from actors.status_tracker.client import list_workflows
from protocols.errors import DEAD_LETTER_STREAM
from protocols.status import TERMINAL_STATES, ListWorkflows, WorkflowView

__all__ = ["GatewayMetrics", "metrics_route"]

log = logging.getLogger(__name__)

_STATE_CODES = {"closed": 0, "open": 1, "half_open": 2, "forced_open": 3, "disabled": 4}
_FINAL_STEP_STATES = frozenset({"succeeded", "failed", "skipped", "cancelled", "timed_out"})
_REMEMBERED = 10_000
"""Workflows whose last seen state is remembered (to count each transition once)."""
_WORKFLOW_PAGES = 20
"""Pages of 1,000 workflows read per scrape for the ``troupe.workflows`` gauge."""

Points = list[tuple[float, dict[str, str]]]
Attributes = tuple[tuple[str, str], ...]


class GatewayMetrics:
    """Workflow and infrastructure metrics, served to Prometheus and exported over OTLP.

    Args:
        bus: the gateway's connection.
        env: ``OTEL_*`` variables (``os.environ`` by default).
        min_interval: seconds between two JetStream polls (scrapes in between reuse them).
    """

    def __init__(
        self, bus: Bus, *, env: Mapping[str, str] | None = None, min_interval: float = 2.0
    ) -> None:
        self.bus = bus
        self.registry = CollectorRegistry()
        self._min_interval = min_interval
        self._polled_at = float("-inf")
        self._poll_lock = asyncio.Lock()
        self._gauges: dict[str, Points] = {}
        self._seen: OrderedDict[str, tuple[str, frozenset[str]]] = OrderedDict()
        reader = PrometheusMetricReader(
            disable_target_info=True, scope_info_enabled=False, registry=self.registry
        )
        provider = build_meter_provider("troupe-gateway", env, readers=[reader])
        assert provider is not None  # a reader is always given
        self.provider: MeterProvider = provider
        meter = provider.get_meter("troupe.gateway")

        def counter(name: str) -> Counter[Attributes]:
            # Counted in a dict and read at collection: an SDK counter's add() costs
            # about a tenth of a millisecond, paid on every status update. The OTLP
            # reader collects from its own thread: it reads a copy (list() of a dict's
            # items holds the GIL throughout).
            spec = metric(name)
            counts: Counter[Attributes] = Counter()
            meter.create_observable_counter(
                name,
                callbacks=[
                    lambda _options: [Observation(n, dict(k)) for k, n in list(counts.items())]
                ],
                unit=spec.unit,
                description=spec.description,
            )
            return counts

        def histogram(name: str) -> Any:
            spec = metric(name)
            return meter.create_histogram(
                name,
                unit=spec.unit,
                description=spec.description,
                explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
            )

        self._transitions = counter("troupe.workflow.transitions")
        self._retries = counter("troupe.workflow.retries")
        self._cache_hits = counter("troupe.step.cache_hits")
        self._workflow_duration = histogram("troupe.workflow.duration")
        self._step_duration = histogram("troupe.step.duration")
        for name in (
            "troupe.workflows",
            "troupe.stream.messages",
            "troupe.stream.bytes",
            "troupe.stream.replicas",
            "troupe.stream.replicas_current",
            "troupe.consumer.pending",
            "troupe.consumer.ack_pending",
            "troupe.consumer.redelivered",
            "troupe.dead_letters",
            "troupe.agents.live",
            "troupe.breaker.state",
            "troupe.breaker.failure_rate",
            "troupe.breaker.slow_rate",
        ):
            spec = metric(name)
            meter.create_observable_gauge(
                name,
                callbacks=[self._observe(name)],
                unit=spec.unit,
                description=spec.description,
            )

    def _observe(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(value, attrs) for value, attrs in self._gauges.get(name, [])]

        return callback

    # -- status updates ----------------------------------------------------------

    async def on_update(self, view: WorkflowView, ctx: object = None) -> None:
        """Count what changed since the last update of the same workflow."""
        self.record(view)

    def record(self, view: WorkflowView) -> None:
        """Fold one workflow view into the counters and histograms."""
        template = view.template or ""
        before = self._seen.pop(view.workflow_id, None)
        finished_steps = frozenset(s.name for s in view.steps if s.state in _FINAL_STEP_STATES)
        self._seen[view.workflow_id] = (view.state, finished_steps)
        while len(self._seen) > _REMEMBERED:
            self._seen.popitem(last=False)
        if before is None or before[0] != view.state:
            self._transitions[("state", view.state), ("template", template)] += 1
            if view.state == "retrying":
                self._retries[(("template", template),)] += 1
            if view.state in TERMINAL_STATES and view.finished_at is not None:
                self._workflow_duration.record(
                    max(0.0, view.finished_at - view.created_at),
                    {"state": view.state, "template": template},
                )
        already = before[1] if before is not None else frozenset()
        for step in view.steps:
            if step.name in already or step.state not in _FINAL_STEP_STATES:
                continue
            if step.cache_hit:
                self._cache_hits[("template", template), ("step", step.name)] += 1
            duration = step.duration_s
            if duration is None and step.started_at is not None and step.finished_at is not None:
                duration = step.finished_at - step.started_at
            if duration is not None:
                self._step_duration.record(
                    max(0.0, duration),
                    {"template": template, "step": step.name, "state": step.state},
                )

    # -- polled gauges -----------------------------------------------------------

    async def refresh(self) -> None:
        """Poll JetStream and the actors for the gauges (at most every ``min_interval`` s)."""
        async with self._poll_lock:
            if time.monotonic() - self._polled_at < self._min_interval:
                return
            gauges: dict[str, Points] = {}
            for part in (self._streams, self._workflows, self._agents, self._breakers):
                try:
                    gauges.update(await part())
                except Exception as exc:  # noqa: BLE001 - one missing source keeps the others
                    log.debug("metrics: %s unavailable: %s", part.__name__, exc)
            self._gauges = gauges
            self._polled_at = time.monotonic()

    async def _streams(self) -> dict[str, Points]:
        out: dict[str, Points] = {
            name: []
            for name in (
                "troupe.stream.messages",
                "troupe.stream.bytes",
                "troupe.stream.replicas",
                "troupe.stream.replicas_current",
                "troupe.consumer.pending",
                "troupe.consumer.ack_pending",
                "troupe.consumer.redelivered",
            )
        }
        js = self.bus.js
        for info in await js.streams_info():
            name = info.config.name or ""
            if not name.startswith("TROUPE"):
                continue  # KV and object store streams have no queue to watch
            labels = {"stream": name}
            out["troupe.stream.messages"].append((float(info.state.messages), labels))
            out["troupe.stream.bytes"].append((float(info.state.bytes), labels))
            configured = info.config.num_replicas or 1
            current = 1 if info.cluster is None or info.cluster.leader else 0
            if info.cluster is not None and info.cluster.replicas:
                current += sum(1 for p in info.cluster.replicas if p.current and not p.offline)
            out["troupe.stream.replicas"].append((float(configured), labels))
            out["troupe.stream.replicas_current"].append((float(current), labels))
            if name == DEAD_LETTER_STREAM:
                out["troupe.dead_letters"] = [(float(info.state.messages), {})]
            for consumer in await js.consumers_info(name):
                durable = consumer.config.durable_name
                if not durable:
                    continue
                clabels = {"stream": name, "consumer": durable}
                out["troupe.consumer.pending"].append((float(consumer.num_pending or 0), clabels))
                out["troupe.consumer.ack_pending"].append(
                    (float(consumer.num_ack_pending or 0), clabels)
                )
                out["troupe.consumer.redelivered"].append(
                    (float(consumer.num_redelivered or 0), clabels)
                )
        return out

    async def _workflows(self) -> dict[str, Points]:
        counts: Counter[tuple[str, str]] = Counter()
        cursor: str | None = None
        for _ in range(_WORKFLOW_PAGES):
            page = await list_workflows(self.bus, ListWorkflows(limit=1000, cursor=cursor))
            counts.update((v.state, v.template or "") for v in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        return {
            "troupe.workflows": [
                (float(n), {"state": state, "template": template})
                for (state, template), n in sorted(counts.items())
            ]
        }

    async def _agents(self) -> dict[str, Points]:
        agents = await list_agents(self.bus)
        live = sum(1 for a in agents.agents if a.presence == "live")
        return {"troupe.agents.live": [(float(live), {})]}

    async def _breakers(self) -> dict[str, Points]:
        items = (await list_breakers(self.bus)).items
        return {
            "troupe.breaker.state": [
                (float(_STATE_CODES.get(b.state, 0)), {"breaker.key": b.key}) for b in items
            ],
            "troupe.breaker.failure_rate": [
                (b.failure_rate, {"breaker.key": b.key}) for b in items
            ],
            "troupe.breaker.slow_rate": [(b.slow_rate, {"breaker.key": b.key}) for b in items],
        }

    async def scrape(self) -> bytes:
        """Refresh the gauges and return the Prometheus text exposition."""
        await self.refresh()
        return generate_latest(self.registry)

    def close(self) -> None:
        """Flush the OTLP exporter, if any, and stop the provider."""
        shutdown = getattr(self.provider, "shutdown", None)
        if callable(shutdown):
            shutdown()


def metrics_route(services: Services, metrics: GatewayMetrics) -> Route:
    """Return ``GET /metrics``: the Prometheus scrape, for tokens that may read workflows."""

    async def endpoint(request: Request) -> Response:
        try:
            principal = await services.verifier.verify(bearer_of(request))
            await services.verifier.authorize(
                principal, "workflows:read", action="GET /metrics", target=""
            )
        except Exception as exc:  # noqa: BLE001 - every failure is a typed error answer
            return error_response(exc)
        return Response(await metrics.scrape(), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", endpoint, methods=["GET"], name="metrics")

"""The NATS micro protocol for an actor: ``$SRV.PING``, ``$SRV.INFO``, ``$SRV.STATS``.

Built on nats-py's :class:`nats.micro.service.Service`, which answers the
three verbs. troupe dispatches requests itself (decode-before-handler,
concurrency, typed error replies), so this subclass reports troupe's own
counters: every request/reply endpoint, and every stream consumer and event
listener as an endpoint with ``kind`` metadata, so ``nats micro stats`` shows
messages, errors and latency of all of an actor's handlers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from nats.aio.client import Client
from nats.micro.service import (
    EndpointInfo,
    EndpointStats,
    Service,
    ServiceConfig,
    ServiceInfo,
    ServiceStats,
)

from actors.runtime.consumer import ConsumerRuntime
from actors.runtime.subscriptions import EndpointRuntime, ListenerRuntime
from actors.runtime.watch import WatchRuntime

__all__ = ["ActorService"]

Runtime = EndpointRuntime | ConsumerRuntime | ListenerRuntime | WatchRuntime


def _describe(runtime: Runtime) -> tuple[str, str, str, dict[str, str]]:
    """Return name, subject, queue group and metadata of a handler runtime."""
    if isinstance(runtime, EndpointRuntime):
        spec = runtime.spec
        return spec.name, spec.subject, spec.queue_group, {"kind": "request"}
    if isinstance(runtime, ConsumerRuntime):
        c = runtime.spec
        meta = {"kind": "stream", "stream": c.stream.name, "durable": c.durable}
        return c.durable, runtime.subject, c.durable, meta
    if isinstance(runtime, WatchRuntime):
        w = runtime.spec
        return w.name, w.subject, "", {"kind": "watch", "bucket": w.bucket.name}
    subject = runtime.spec.subject
    name = subject.replace(".", "-").replace("*", "any").replace(">", "all")
    return name, subject, runtime.spec.queue_group or "", {"kind": "event"}


class ActorService(Service):
    """A micro service whose INFO and STATS describe an actor's handlers.

    Args:
        nc: connection.
        config: micro service identity.
        runtimes: the actor's handler runtimes.
        extra_stats: returns actor-specific data (cache hits, breaker metrics)
            keyed by endpoint name; shown as that endpoint's ``data`` (an
            empty object when there is none, as the micro schema requires).
    """

    def __init__(
        self,
        nc: Client,
        config: ServiceConfig,
        runtimes: Sequence[Runtime],
        extra_stats: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(nc, config)
        # Not copied: handlers the actor adds while running appear at once.
        self._runtimes = runtimes
        self._extra_stats = extra_stats

    def info(self) -> ServiceInfo:
        """Describe the actor and every handler."""
        endpoints = []
        for runtime in self._runtimes:
            name, subject, queue, meta = _describe(runtime)
            endpoints.append(
                EndpointInfo(name=name, subject=subject, queue_group=queue, metadata=meta)
            )
        return ServiceInfo(
            id=self.id,
            name=self._name,
            version=self._version,
            description=self._description or "",  # a string, per the micro schema
            metadata=self._metadata,
            endpoints=endpoints,
        )

    def stats(self) -> ServiceStats:
        """Report messages, errors and latency of every handler."""
        extra = self._extra_stats() if self._extra_stats else {}
        endpoints = []
        for runtime in self._runtimes:
            name, subject, queue, _ = _describe(runtime)
            counters = runtime.stats
            data: dict[str, Any] = dict(extra.get(name, {}))
            if isinstance(runtime, ConsumerRuntime):
                data.setdefault("redeliveries", runtime.redeliveries)
                data.setdefault("dead_lettered", runtime.dead_lettered)
            endpoints.append(
                EndpointStats(
                    name=name,
                    subject=subject,
                    queue_group=queue,
                    num_requests=counters.num_requests,
                    num_errors=counters.num_errors,
                    processing_time=counters.processing_time_ns,
                    average_processing_time=counters.average_ns,
                    last_error=counters.last_error or None,
                    # The micro schema wants an object here, never null.
                    data=data,
                )
            )
        started: datetime = self._started
        return ServiceStats(
            id=self.id,
            name=self._name,
            version=self._version,
            metadata=self._metadata,
            endpoints=endpoints,
            started=started,
        )

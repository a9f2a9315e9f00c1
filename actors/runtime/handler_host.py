"""Handlers added to an actor at run time: their specs built into running runtimes.

:class:`HandlerHost` is the part of :class:`~actors.runtime.actor.Actor` that adds
handlers (:meth:`~HandlerHost.add_endpoint`, :meth:`~HandlerHost.add_consumer`,
:meth:`~HandlerHost.add_listener`, :meth:`~HandlerHost.add_watch`): added before the
actor runs, a handler waits to start with the others; added while it runs, it
starts at once. Each kind becomes its runtime (:data:`Runtime`). A running
handler is stopped and forgotten with :meth:`~HandlerHost.remove_handler`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from actors.runtime.bus import Bus
from actors.runtime.clock import Clock
from actors.runtime.consumer import ConsumerRuntime
from actors.runtime.handlers import (
    ConsumerSpec,
    EndpointSpec,
    HandlerOptions,
    ListenerSpec,
    WatchSpec,
    message_type_of,
    subject_name,
    value_type_of,
)
from actors.runtime.kv import TypedBucket
from actors.runtime.subscriptions import EndpointRuntime, ListenerRuntime
from actors.runtime.topology import BucketSpec
from actors.runtime.watch import WatchHandler, WatchRuntime

__all__ = ["HandlerHost", "Runtime"]

Runtime = EndpointRuntime | ConsumerRuntime | ListenerRuntime | WatchRuntime
"""A running handler of any kind."""

_Factory = Callable[[], Awaitable[Runtime]]


class HandlerHost:
    """Adds handlers to an actor and starts them (a base of :class:`~actors.runtime.Actor`)."""

    name: ClassVar[str]
    grace: float
    runtime_clock: Clock
    _lifecycle: Literal["idle", "starting", "running", "stopping"]
    _runtimes: list[Runtime]
    _pending_handlers: list[_Factory]
    _streams_ready: set[str]

    if TYPE_CHECKING:

        @property
        def bus(self) -> Bus:
            """The actor's bus (see :attr:`~actors.runtime.Actor.bus`)."""
            ...

        async def on_failure(self, exc: BaseException) -> None:
            """The actor's failure hook (see :meth:`~actors.runtime.Actor.on_failure`)."""
            ...

    async def add_endpoint(
        self,
        subject: str,
        handler: Callable[[Any, Any], Awaitable[Any]],
        *,
        name: str | None = None,
        queue_group: str = "troupe",
        concurrency: int = 32,
        request_type: Any = None,
    ) -> EndpointSpec:
        """Serve ``subject`` with ``handler(request, ctx) -> reply``.

        Args:
            subject: subject served.
            handler: the request handler.
            name: endpoint name (default: from the subject).
            queue_group: queue group shared by replicas.
            concurrency: requests handled at once.
            request_type: type requests decode to (default: ``handler``'s annotation).

        Returns:
            The endpoint's spec.
        """
        spec = EndpointSpec(
            subject=subject,
            name=name or subject_name(subject),
            queue_group=queue_group,
            concurrency=concurrency,
        )
        await self._add(spec, handler, request_type or message_type_of(handler))
        return spec

    async def add_consumer(
        self,
        spec: ConsumerSpec,
        handler: Callable[[Any, Any], Awaitable[None]],
        *,
        message_type: Any = None,
    ) -> ConsumerSpec:
        """Consume ``spec``'s stream with ``handler(message, ctx)``; its stream is ensured.

        Returns:
            ``spec``.
        """
        await self._add(spec, handler, message_type or message_type_of(handler))
        return spec

    async def add_listener(
        self,
        subject: str,
        handler: Callable[[Any, Any], Awaitable[None]],
        *,
        queue_group: str | None = None,
        message_type: Any = None,
    ) -> ListenerSpec:
        """Handle core-NATS events on ``subject`` with ``handler(event, ctx)``.

        Returns:
            The listener's spec.
        """
        spec = ListenerSpec(subject=subject, queue_group=queue_group)
        await self._add(spec, handler, message_type or message_type_of(handler))
        return spec

    async def add_watch(
        self,
        bucket: BucketSpec,
        handler: WatchHandler,
        *,
        value_type: Any = None,
        keys: str = ">",
        initial: bool = True,
        name: str | None = None,
        on_caught_up: Callable[[], Awaitable[None]] | None = None,
    ) -> WatchSpec:
        """Watch ``bucket`` with ``handler(entry)``, one typed entry at a time.

        Args:
            bucket: the bucket (created if missing).
            handler: ``async def h(entry: Entry[T | None]) -> None``.
            value_type: type values decode to (default: from the handler's
                ``Entry[T | None]`` annotation).
            keys: key pattern.
            initial: start with the current value of every live key.
            name: name in ``$SRV.INFO`` (default ``watch-<bucket>``).
            on_caught_up: awaited once the handler has taken every initial
                value (each time the watch starts).

        Returns:
            The watch's spec.
        """
        spec = WatchSpec(bucket=bucket, keys=keys, initial=initial, name=name or "")
        await self._add(
            spec, handler, value_type or value_type_of(handler), on_caught_up=on_caught_up
        )
        return spec

    async def remove_handler(
        self, spec: HandlerOptions | WatchSpec, *, grace: float | None = None
    ) -> bool:
        """Stop the running handler added with ``spec`` and forget it.

        It leaves ``$SRV.INFO`` and ``$SRV.STATS``; a watch unsubscribes (the server
        drops its ephemeral consumer after that consumer's inactivity threshold), a
        durable consumer stays on the server (it is topology), its in-flight
        messages handed back like on shutdown.

        Args:
            spec: the spec its ``add_*`` call returned (compared by identity).
            grace: seconds the message or entry in hand gets to finish
                (default: :attr:`~actors.runtime.Actor.grace`).

        Returns:
            Whether a running handler had ``spec`` (``False``: never added,
            already removed, not started yet, or the actor is stopping).
        """
        for runtime in self._runtimes:
            if runtime.spec is spec:
                self._runtimes.remove(runtime)
                await runtime.stop(self.grace if grace is None else grace)
                return True
        return False

    async def _add(
        self,
        spec: HandlerOptions | WatchSpec,
        handler: Callable[..., Any],
        message_type: Any,
        *,
        on_caught_up: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        async def build() -> Runtime:
            return await self._build(spec, handler, message_type, on_caught_up)

        if self._lifecycle == "running":
            await self._start_runtime(build)
        else:
            self._pending_handlers.append(build)

    async def _build(
        self,
        spec: HandlerOptions | WatchSpec,
        handler: Callable[..., Any],
        message_type: Any,
        on_caught_up: Callable[[], Awaitable[None]] | None = None,
    ) -> Runtime:
        bus = self.bus
        # The runtime's own waits (in_progress keep-alive, fetch back-off, shutdown grace)
        # run against the server's ack_wait and the supervisor's kill deadline, which are
        # real time: they use the real clock even when the actor's domain clock is manual.
        common: dict[str, Any] = {
            "actor": self.name,
            "on_failure": self.on_failure,
            "clock": self.runtime_clock,
        }
        if isinstance(spec, EndpointSpec):
            return EndpointRuntime(bus.nc, spec, handler, message_type, **common)
        if isinstance(spec, ConsumerSpec):
            if spec.stream.name not in self._streams_ready:
                await bus.ensure_stream(spec.stream)
                self._streams_ready.add(spec.stream.name)
            return ConsumerRuntime(bus.js, spec, handler, message_type, **common)
        if isinstance(spec, ListenerSpec):
            return ListenerRuntime(bus.nc, spec, handler, message_type, **common)
        bucket: TypedBucket[Any] = await TypedBucket.bind(bus, spec.bucket, message_type)

        async def open_watch() -> Any:
            return await bucket.watch(spec.keys, initial=spec.initial, on_caught_up=on_caught_up)

        return WatchRuntime(spec, open_watch, handler, **common)

    async def _start_runtime(self, build: _Factory) -> None:
        runtime = await build()
        try:
            await runtime.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await runtime.stop(0.0)
            raise
        self._runtimes.append(runtime)

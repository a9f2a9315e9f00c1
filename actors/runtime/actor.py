"""The :class:`Actor` base class: lifecycle, wiring of handlers, graceful shutdown.

An actor is a class with handlers declared by :func:`~actors.runtime.handlers.endpoint`,
:func:`~actors.runtime.handlers.consumer` and :func:`~actors.runtime.handlers.listener`.
:meth:`Actor.serve` runs it as a long-lived process: connect (and reconnect),
create the streams and buckets it declares, start the handlers and the NATS
micro service, then on SIGTERM/SIGINT stop taking work, let in-flight handlers
finish within :attr:`Actor.grace` seconds, hand back what remains and drain
the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from nats.micro.service import ServiceConfig

from actors.runtime import telemetry
from actors.runtime.bus import Bus
from actors.runtime.clock import Clock, system_clock
from actors.runtime.config import ConnectionConfig
from actors.runtime.dispatch import ConsumerRuntime, EndpointRuntime, ListenerRuntime
from actors.runtime.handlers import ConsumerSpec, EndpointSpec, ListenerSpec, handler_specs
from actors.runtime.micro import ActorService
from actors.runtime.topology import BucketSpec, ObjectStoreSpec, StreamSpec
from protocols.errors import DEAD_LETTER_STREAM, DEAD_LETTER_SUBJECTS

__all__ = ["DEAD_LETTERS", "Actor"]

log = logging.getLogger(__name__)

DEAD_LETTERS = StreamSpec(
    name=DEAD_LETTER_STREAM,
    subjects=(DEAD_LETTER_SUBJECTS,),
    max_age=14 * 24 * 3600.0,
    description="Messages no handler could take, with the reason in headers",
)
"""The dead-letter stream every actor ensures."""

VERSION = "0.1.0"


class Actor:
    """Base class of every troupe actor.

    Subclasses set :attr:`name` and declare handlers; they may override the
    lifecycle hooks :meth:`on_start`, :meth:`on_stop` and :meth:`on_failure`.

    Args:
        clock: time source for everything time-dependent in the actor.
    """

    name: ClassVar[str] = ""
    """Actor kind, also the NATS micro service name (letters, digits, ``_``, ``-``)."""
    description: ClassVar[str] = ""
    """Shown by ``$SRV.INFO``."""
    version: ClassVar[str] = VERSION
    """Semantic version shown by ``$SRV.INFO``."""
    streams: ClassVar[tuple[StreamSpec, ...]] = ()
    """Streams the actor publishes to or reads, created at start (consumed ones are added)."""
    buckets: ClassVar[tuple[BucketSpec, ...]] = ()
    """KV buckets the actor uses, created at start."""
    object_stores: ClassVar[tuple[ObjectStoreSpec, ...]] = ()
    """Object stores the actor uses, created at start."""
    grace: float = 10.0
    """Seconds in-flight handlers get to finish on shutdown before being handed back."""

    def __init__(self, *, clock: Clock = system_clock) -> None:
        if not self.name:
            raise TypeError(f"{type(self).__name__} must set the class attribute 'name'")
        self.clock = clock
        self._bus: Bus | None = None
        self._runtimes: list[EndpointRuntime | ConsumerRuntime | ListenerRuntime] = []
        self._service: ActorService | None = None

    # -- lifecycle hooks -------------------------------------------------------------

    async def on_start(self) -> None:
        """Called once connected and the topology exists, before handlers start."""

    async def on_stop(self) -> None:
        """Called after handlers stopped, before the connection drains."""

    async def on_failure(self, exc: BaseException) -> None:
        """Called when a handler raised an unexpected exception (already logged)."""

    def stats_data(self) -> dict[str, dict[str, Any]]:
        """Extra ``$SRV.STATS`` data, keyed by endpoint name."""
        return {}

    # -- running ---------------------------------------------------------------------

    @property
    def bus(self) -> Bus:
        """The actor's bus.

        Raises:
            RuntimeError: the actor is not running.
        """
        if self._bus is None:
            raise RuntimeError(f"actor {self.name} is not running")
        return self._bus

    @property
    def service(self) -> ActorService | None:
        """The micro service while running."""
        return self._service

    async def start(self, bus: Bus) -> None:
        """Create the topology, run :meth:`on_start`, start handlers and the micro service."""
        self._bus = bus
        specs = handler_specs(type(self))
        streams = {s.name: s for s in (DEAD_LETTERS, *self.streams)}
        for spec in specs:
            if isinstance(spec.options, ConsumerSpec):
                streams.setdefault(spec.options.stream.name, spec.options.stream)
        for stream in streams.values():
            await bus.ensure_stream(stream)
        for bucket in self.buckets:
            await bus.key_value(bucket)
        for store in self.object_stores:
            await bus.object_store(store)
        await self.on_start()
        for spec in specs:
            handler = getattr(self, spec.attr)
            runtime: EndpointRuntime | ConsumerRuntime | ListenerRuntime
            if isinstance(spec.options, EndpointSpec):
                runtime = EndpointRuntime(
                    bus.nc,
                    spec.options,
                    handler,
                    spec.message_type,
                    actor=self.name,
                    on_failure=self.on_failure,
                )
            elif isinstance(spec.options, ConsumerSpec):
                runtime = ConsumerRuntime(
                    bus.js,
                    spec.options,
                    handler,
                    spec.message_type,
                    actor=self.name,
                    on_failure=self.on_failure,
                )
            else:
                assert isinstance(spec.options, ListenerSpec)
                runtime = ListenerRuntime(
                    bus.nc,
                    spec.options,
                    handler,
                    spec.message_type,
                    actor=self.name,
                    on_failure=self.on_failure,
                )
            await runtime.start()
            self._runtimes.append(runtime)
        self._service = ActorService(
            bus.nc,
            ServiceConfig(
                name=self.name,
                version=self.version,
                description=self.description or None,
                metadata={"troupe": VERSION},
            ),
            self._runtimes,
            self.stats_data,
        )
        await self._service.start()
        await bus.nc.flush()
        log.info("%s started with %d handlers", self.name, len(self._runtimes))

    async def stop(self) -> None:
        """Stop gracefully: stop taking work, finish or hand back in-flight messages."""
        handed_back = 0
        results = await asyncio.gather(
            *(r.stop(self.grace) for r in self._runtimes), return_exceptions=True
        )
        for result in results:
            if isinstance(result, int):
                handed_back += result
            elif isinstance(result, BaseException):
                log.warning("%s: handler stop failed: %s", self.name, result)
        self._runtimes.clear()
        try:
            await self.on_stop()
        finally:
            if self._service is not None:
                with contextlib.suppress(Exception):
                    await self._service.stop()
                self._service = None
        log.info("%s stopped (%d in-flight messages handed back)", self.name, handed_back)

    @contextlib.asynccontextmanager
    async def running(self, bus: Bus) -> AsyncIterator[Actor]:
        """Run the actor on ``bus`` for the duration of an ``async with`` block."""
        await self.start(bus)
        try:
            yield self
        finally:
            await self.stop()

    async def serve(
        self,
        config: ConnectionConfig,
        *,
        stop: asyncio.Event | None = None,
        handle_signals: bool = True,
    ) -> None:
        """Run until ``stop`` is set or SIGTERM/SIGINT arrives, then shut down gracefully."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
        telemetry.configure_tracing(f"troupe-{self.name}")
        bus = await Bus.connect(config, name=f"troupe-{self.name}")
        try:
            async with self.running(bus):
                await stop.wait()
                log.info("%s: shutting down", self.name)
        finally:
            await bus.close()
            telemetry.shutdown_tracing()
            if handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)

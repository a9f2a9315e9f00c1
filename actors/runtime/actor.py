"""The :class:`Actor` base class: lifecycle, handlers added at run time, graceful shutdown.

An actor's handlers are added with :meth:`Actor.add_endpoint`,
:meth:`Actor.add_consumer`, :meth:`Actor.add_listener` and
:meth:`Actor.add_watch` — from :meth:`Actor.on_start` (they start with the
others) or while running (they start at once). The ``@endpoint``,
``@consumer`` and ``@listener`` decorators are sugar: at start each declared
handler is added with its per-instance options.

:meth:`Actor.start` and :meth:`Actor.stop` hold: a start that fails half-way
stops whatever it started (and runs :meth:`Actor.on_stop` if
:meth:`Actor.on_start` ran) before re-raising; stopping twice, or before
starting, does nothing. :meth:`Actor.spawn` runs background tasks the actor
owns, cancelled and awaited on stop. User hooks are guarded: a raising
:meth:`Actor.on_failure` or :meth:`Actor.on_stop` is logged and never breaks a
reply, an acknowledgement or the shutdown.

:meth:`Actor.serve` runs it as a long-lived process: connect (and reconnect),
bind the streams, buckets and consumers it declares (created beforehand by
``troupe init``; see :meth:`Actor.topology`), start the handlers and the NATS
micro service, then on SIGTERM/SIGINT stop taking work, let in-flight handlers
finish within :attr:`Actor.grace` seconds, hand back what remains and drain
the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Coroutine
from typing import Any, ClassVar, Literal, Self, TypeVar

from nats.micro.service import ServiceConfig

from actors.runtime import metrics, telemetry
from actors.runtime.bootstrap import Topology
from actors.runtime.bus import Bus
from actors.runtime.clock import Clock, system_clock
from actors.runtime.config import ConnectionConfig
from actors.runtime.handler_host import HandlerHost, Runtime
from actors.runtime.handlers import ConsumerSpec, handler_specs
from actors.runtime.loops import EventLoop
from actors.runtime.micro import ActorService
from actors.runtime.profiling import profiled
from actors.runtime.tasks import ManagedTasks
from actors.runtime.topology import BucketSpec, ObjectStoreSpec, StreamSpec
from protocols.errors import DEAD_LETTER_STREAM, DEAD_LETTER_SUBJECTS

__all__ = ["DEAD_LETTERS", "Actor"]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEAD_LETTERS = StreamSpec(
    name=DEAD_LETTER_STREAM,
    subjects=(DEAD_LETTER_SUBJECTS,),
    max_age=14 * 24 * 3600.0,
    description="Messages no handler could take, with the reason in headers",
)
"""The dead-letter stream every actor ensures."""

VERSION = "0.1.0"


class Actor(HandlerHost):
    """Base class of every troupe actor.

    Subclasses set :attr:`name`, add handlers (decorators or ``add_*``) and may
    override the lifecycle hooks :meth:`on_start`, :meth:`on_stop` and
    :meth:`on_failure`.

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
    """Streams the actor publishes to or reads (consumed ones are added), bound at start."""
    buckets: ClassVar[tuple[BucketSpec, ...]] = ()
    """KV buckets the actor uses, bound at start."""
    object_stores: ClassVar[tuple[ObjectStoreSpec, ...]] = ()
    """Object stores the actor uses, bound at start."""
    consumers: ClassVar[tuple[ConsumerSpec, ...]] = ()
    """Durable consumers run besides the ``@consumer`` handlers (see :meth:`topology`)."""
    event_loop: ClassVar[EventLoop] = "asyncio"
    """The loop ``troupe run`` starts the actor's process on (:mod:`actors.runtime.loops`)."""
    grace: float = 10.0
    """Seconds in-flight handlers get to finish on shutdown before being handed back."""
    task_grace: float = 5.0
    """Seconds cancelled background tasks get to finish on shutdown."""
    runtime_clock: Clock = system_clock
    """Clock of the handlers' own sleeps and shutdown waits (real time by default; the
    ``clock`` argument is the actor's domain clock: breakers, heartbeats, ETAs)."""

    def __init__(self, *, clock: Clock = system_clock) -> None:
        if not self.name:
            raise TypeError(f"{type(self).__name__} must set the class attribute 'name'")
        self.clock = clock
        self._bus: Bus | None = None
        self._lifecycle: Literal["idle", "starting", "running", "stopping"] = "idle"
        self._on_start_ran = False
        # Shared with the micro service, so handlers added later appear in INFO/STATS.
        self._runtimes: list[Runtime] = []
        self._pending_handlers = []
        self._streams_ready: set[str] = set()
        self._service: ActorService | None = None
        self._background = ManagedTasks(self.name, self.on_failure)

    # -- lifecycle hooks -------------------------------------------------------------

    async def on_start(self) -> None:
        """Called once connected and the topology exists, before handlers start."""

    async def on_stop(self) -> None:
        """Called after handlers and background tasks stopped, before the service ends."""

    async def on_failure(self, exc: BaseException) -> None:
        """Called when a handler or background task raised (already logged)."""

    def stats_data(self) -> dict[str, dict[str, Any]]:
        """Extra ``$SRV.STATS`` data, keyed by endpoint name."""
        return {}

    def service_metadata(self) -> dict[str, str]:
        """Extra ``$SRV.INFO`` metadata of this instance (e.g. an agent's id)."""
        return {}

    def topology(self) -> Topology:
        """Return everything this actor binds to: what ``troupe init`` creates for it.

        The dead-letter stream, the declared streams, buckets and object stores,
        the durable consumers of its ``@consumer`` handlers (with this instance's
        options) and :attr:`consumers`.
        """
        handled = [
            options
            for spec in handler_specs(type(self))
            if isinstance(options := spec.options_for(self), ConsumerSpec)
        ]
        return Topology(
            streams=(DEAD_LETTERS, *self.streams),
            buckets=self.buckets,
            object_stores=self.object_stores,
            consumers=(*handled, *self.consumers),
        )

    # -- state -----------------------------------------------------------------------

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

    @property
    def is_running(self) -> bool:
        """Whether :meth:`start` completed and :meth:`stop` has not begun."""
        return self._lifecycle == "running"

    @property
    def handlers(self) -> tuple[Runtime, ...]:
        """The running handlers, in the order they started."""
        return tuple(self._runtimes)

    # -- background tasks ------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Run ``coro`` as a background task owned by the actor.

        A task that raises is logged and passed to :meth:`on_failure`; tasks
        still running at :meth:`stop` are cancelled and awaited (at most
        :attr:`task_grace` seconds).

        Raises:
            RuntimeError: the actor is neither starting nor running.
        """
        if self._lifecycle not in ("starting", "running"):
            coro.close()
            raise RuntimeError(f"actor {self.name} is not running")
        return self._background.spawn(coro, name=name)

    # -- running ---------------------------------------------------------------------

    async def start(self, bus: Bus) -> None:
        """Bind the topology, run :meth:`on_start`, start handlers and the micro service.

        The streams, buckets, object stores and durable consumers must exist
        (``troupe init`` creates them as ``admin``); a missing one raises
        :class:`~actors.runtime.errors.TopologyMissing` naming it. Only on a
        server without authentication are missing ones created here.

        A no-op while already started. If anything fails, whatever was started
        is stopped (and :meth:`on_stop` runs if :meth:`on_start` did) before the
        exception propagates.
        """
        if self._lifecycle != "idle":
            return
        self._lifecycle = "starting"
        self._bus = bus
        try:
            await self._start(bus)
        except BaseException:
            await self._teardown()
            raise
        self._lifecycle = "running"
        while self._pending_handlers:  # added by a background task while the service started
            await self._start_runtime(self._pending_handlers.pop(0))
        log.info("%s started with %d handlers", self.name, len(self._runtimes))

    async def _start(self, bus: Bus) -> None:
        for stream in (DEAD_LETTERS, *self.streams):
            await bus.ensure_stream(stream)
            self._streams_ready.add(stream.name)
        for bucket in self.buckets:
            await bus.key_value(bucket)
        for store in self.object_stores:
            await bus.object_store(store)
        for spec in handler_specs(type(self)):
            await self._add(spec.options_for(self), getattr(self, spec.attr), spec.message_type)
        self._on_start_ran = True
        await self.on_start()
        while self._pending_handlers:
            await self._start_runtime(self._pending_handlers.pop(0))
        self._service = ActorService(
            bus.nc,
            ServiceConfig(
                name=self.name,
                version=self.version,
                description=self.description or None,
                metadata={**self.service_metadata(), "troupe": VERSION},
            ),
            self._runtimes,
            self.stats_data,
        )
        await self._service.start()
        await bus.nc.flush()

    async def stop(self) -> None:
        """Stop gracefully: stop taking work, finish or hand back in-flight messages.

        Then cancel background tasks, run :meth:`on_stop` and end the micro
        service. A no-op unless running.
        """
        if self._lifecycle != "running":
            return
        handed_back = await self._teardown()
        log.info("%s stopped (%d in-flight messages handed back)", self.name, handed_back)

    async def _teardown(self) -> int:
        """Stop everything started so far; never raises for a handler or hook."""
        self._lifecycle = "stopping"
        self._pending_handlers.clear()
        runtimes = list(self._runtimes)
        self._runtimes.clear()
        handed_back = 0
        results = await asyncio.gather(
            *(r.stop(self.grace) for r in runtimes), return_exceptions=True
        )
        for result in results:
            if isinstance(result, int):
                handed_back += result
            elif isinstance(result, BaseException):
                log.warning("%s: handler stop failed: %r", self.name, result)
        await self._background.stop(self.task_grace)
        if self._on_start_ran:
            self._on_start_ran = False
            try:
                await self.on_stop()
            except Exception:
                log.exception("%s: on_stop failed", self.name)
        service, self._service = self._service, None
        if service is not None:
            with contextlib.suppress(Exception):
                await service.stop()
        self._streams_ready.clear()
        self._lifecycle = "idle"
        return handed_back

    @contextlib.asynccontextmanager
    async def running(self, bus: Bus) -> AsyncIterator[Self]:
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
        metrics.configure_metrics(f"troupe-{self.name}")
        try:
            with profiled(self.name):
                bus = await Bus.connect(config, name=f"troupe-{self.name}")
                try:
                    async with self.running(bus):
                        await stop.wait()
                        log.info("%s: shutting down", self.name)
                finally:
                    await bus.close()
        finally:
            telemetry.shutdown_tracing()
            metrics.shutdown_metrics()
            if handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)

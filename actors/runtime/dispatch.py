"""Dispatch of incoming messages to handlers: decode first, then call, then settle.

The handler runtimes live in sibling modules:

* :class:`~actors.runtime.subscriptions.EndpointRuntime` answers requests: a
  body that does not decode gets a ``bad_request``
  :class:`~protocols.errors.ErrorReply`; a
  :class:`~actors.runtime.errors.RequestError` becomes its typed reply; any
  other exception becomes ``internal`` with a generic message.
* :class:`~actors.runtime.consumer.ConsumerRuntime` runs a durable pull consumer:
  acknowledge after the handler returns, ``nak`` with backoff when it raises,
  ``in_progress`` while it runs (one :class:`~actors.runtime.keepalive.KeepAlive`
  task per consumer), and terminate-and-copy to the dead-letter subject when the
  message does not decode or keeps failing. On shutdown it stops fetching, lets
  running handlers finish within the grace period and hands the rest back.
* :class:`~actors.runtime.subscriptions.ListenerRuntime` handles core-NATS events
  (no acknowledgement).

This module holds what they share: the handler and failure-hook types, the
per-handler :class:`Stats` (the counters ``$SRV.STATS`` reports) and the sets of
running handler tasks settled on shutdown. The failure hook is guarded
(:func:`notify`): it runs after the reply or acknowledgement is sent, and a hook
that raises is logged, never allowed to break either. Sleeps and shutdown waits
go through the injected :class:`~actors.runtime.clock.Clock`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from actors.runtime import metrics
from actors.runtime.clock import Clock, system_clock, wait_tasks
from actors.runtime.eager import start_eagerly

__all__ = ["FailureHook", "Handler", "Stats", "notify"]

log = logging.getLogger(__name__)

T = TypeVar("T")

Handler = Callable[[Any, Any], Awaitable[Any]]
FailureHook = Callable[[BaseException], Awaitable[None]]


async def notify(hook: FailureHook, exc: BaseException, actor: str) -> None:
    """Run a failure hook; if it raises, log that and carry on."""
    try:
        await hook(exc)
    except Exception:
        log.exception("%s: on_failure hook raised while handling %r", actor, type(exc).__name__)


@dataclass(slots=True)
class Stats:
    """Counters of one handler, in the NATS micro ``$SRV.STATS`` shape."""

    num_requests: int = 0
    num_errors: int = 0
    processing_time_ns: int = 0
    last_error: str = ""
    actor: str = ""
    """Actor name on the exported metrics."""
    destination: str = ""
    """Subscribed subject on the exported metrics."""

    def record(self, started_ns: int, error: str | None = None) -> None:
        """Count one handled message that started at ``started_ns``."""
        elapsed_ns = time.perf_counter_ns() - started_ns
        self.processing_time_ns += elapsed_ns
        if error is not None:
            self.num_errors += 1
            self.last_error = error
        if metrics.exporting():
            metrics.record_handled(self.actor, self.destination, error, elapsed_ns / 1e9)

    @property
    def average_ns(self) -> int:
        """Average processing time in nanoseconds."""
        return self.processing_time_ns // self.num_requests if self.num_requests else 0


class _Running:
    """The running handler tasks of one handler, settled on shutdown.

    Args:
        clock: time source of the shutdown waits.
        on_done: called once per spawned coroutine when it ends.
    """

    def __init__(self, clock: Clock, on_done: Callable[[], None]) -> None:
        self.running: set[asyncio.Task[None]] = set()
        self.clock = clock
        self._on_done = on_done

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` (started eagerly, see :mod:`.eager`)."""
        try:
            task = start_eagerly(coro)
        except BaseException:
            self._on_done()
            raise
        if task is None:
            self._on_done()
            return
        self.running.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.running.discard(task)
        self._on_done()

    async def settle(self, grace: float) -> int:
        """Wait up to ``grace`` seconds for running tasks, cancel the rest; return how
        many were cancelled."""
        if not self.running:
            return 0
        pending = await wait_tasks(set(self.running), grace, self.clock)
        for task in pending:
            task.cancel()
        if pending:
            await wait_tasks(pending, 5.0, self.clock)
        return len(pending)


class _Tasks(_Running):
    """At most ``limit`` handler tasks at once.

    A handler that finishes without waiting (most request handlers, which answer from
    memory) never becomes a task, so it never counts against the limit: only handlers
    that wait hold a place until they end.
    """

    def __init__(self, limit: int, clock: Clock = system_clock) -> None:
        super().__init__(clock, self._freed)
        self.limit = limit
        self._vacancy = asyncio.Event()
        self._waiting = 0

    @property
    def full(self) -> bool:
        """Whether ``limit`` handlers are waiting to finish."""
        return len(self.running) >= self.limit

    def _freed(self) -> None:
        if self._waiting:
            self._vacancy.set()

    def try_run(self, start: Callable[[T], Coroutine[Any, Any, None]], arg: T) -> bool:
        """Run ``start(arg)`` if there is room and nobody waits for room (so nothing
        overtakes a message already held back); else start nothing and return False."""
        if self._waiting or self.full:
            return False
        self.spawn(start(arg))
        return True

    async def run(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` at once if there is room, else once a running handler ends."""
        if self.full:
            self._waiting += 1
            try:
                while self.full:
                    self._vacancy.clear()
                    await self._vacancy.wait()
            except BaseException:
                coro.close()
                raise
            finally:
                self._waiting -= 1
        self.spawn(coro)

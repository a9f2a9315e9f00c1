"""Background tasks owned by an actor: started with ``spawn``, stopped with the actor.

A task that raises is logged and reported to the actor's guarded failure
hook; a task still running when the actor stops is cancelled and awaited
within a bounded time (see :func:`~actors.runtime.cancellation.cancel_and_wait`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from actors.runtime.cancellation import cancel_and_wait
from actors.runtime.dispatch import FailureHook, notify

__all__ = ["ManagedTasks"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class ManagedTasks:
    """The set of an actor's running background tasks.

    Args:
        actor: actor name for logs.
        on_failure: guarded hook told about a task that raised.
    """

    def __init__(self, actor: str, on_failure: FailureHook) -> None:
        self._actor = actor
        self._on_failure = on_failure
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reporting: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Run ``coro`` as a task owned by the actor and return it."""
        task = asyncio.create_task(coro, name=f"{self._actor}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        log.error("%s: background task %s failed", self._actor, task.get_name(), exc_info=exc)
        if isinstance(exc, Exception):
            report = asyncio.ensure_future(notify(self._on_failure, exc, self._actor))
            self._reporting.add(report)
            report.add_done_callback(self._reporting.discard)

    async def stop(self, timeout: float = 5.0) -> None:
        """Cancel every task and wait for them (at most ``timeout`` seconds)."""
        tasks = set(self._tasks) | set(self._reporting)
        self._tasks.clear()
        if tasks:
            await cancel_and_wait(tasks, timeout)

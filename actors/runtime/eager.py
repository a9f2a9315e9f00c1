"""Eager start of handler coroutines: run at once, become a task only if they wait.

Most request handlers answer from memory or after one await. Creating an
:class:`asyncio.Task` for every message costs more than such a handler, so
:func:`start_eagerly` runs the coroutine synchronously up to its first
suspension and only then wraps the rest in a task; a handler that never
waits finishes without a task at all. Python 3.12 does this natively
(``eager_start=True``); on 3.11 a small trampoline hands the pending future
to a task. Either way the coroutine runs in one copied context from start
to end, so context variables it sets (the current trace) never leak into
the caller.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Coroutine, Generator
from types import TracebackType
from typing import Any

__all__ = ["start_eagerly"]

_NATIVE = sys.version_info >= (3, 12)


def start_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run ``coro`` until it first suspends; return the task finishing it, if any.

    Returns:
        ``None`` when the coroutine completed synchronously, else the task
        that drives it to completion.
    """
    if _NATIVE:  # pragma: no cover - exercised on Python >= 3.12 only
        task: asyncio.Task[None] = asyncio.Task(  # type: ignore[call-arg]
            coro, loop=asyncio.get_running_loop(), eager_start=True
        )
        return None if task.done() else task
    context = contextvars.copy_context()
    try:
        first = context.run(coro.send, None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_Resume(coro, first), context=context)


_STARTED = object()


class _Resume(Coroutine[Any, Any, None]):
    """A started coroutine whose first yielded value is replayed to the task that adopts it."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, None], first: Any) -> None:
        self._coro = coro
        self._first = first

    def send(self, value: Any) -> Any:
        """Give the adopting task the pending future first, then drive the coroutine."""
        if self._first is not _STARTED:
            first, self._first = self._first, _STARTED
            return first
        return self._coro.send(value)

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: BaseException | object = None,
        tb: TracebackType | None = None,
    ) -> Any:
        """Forward an exception (cancellation) into the coroutine."""
        self._first = _STARTED
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)  # type: ignore[arg-type]

    def close(self) -> None:
        """Close the coroutine."""
        self._coro.close()

    def __await__(self) -> Generator[Any, None, None]:
        return self._coro.__await__()

"""Stopping background tasks reliably.

On Python 3.11 a cancellation that arrives while ``asyncio.wait_for`` (used
inside nats-py's requests and JetStream publishes) is finishing can be
swallowed: the task keeps running and a plain ``task.cancel(); await task``
waits for ever. :func:`cancel_and_wait` cancels again until the task is done,
within a bounded time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

__all__ = ["cancel_and_wait"]

log = logging.getLogger(__name__)


async def cancel_and_wait(
    tasks: asyncio.Task[object] | Iterable[asyncio.Task[object]] | None, timeout: float = 5.0
) -> None:
    """Cancel ``tasks`` and wait until each is done, re-cancelling as needed.

    Exceptions raised by the tasks are retrieved and dropped (they were
    background work being stopped). A task still running after ``timeout``
    seconds is logged and left behind.
    """
    if tasks is None:
        return
    pending = {tasks} if isinstance(tasks, asyncio.Task) else set(tasks)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while pending:
        for task in pending:
            task.cancel()
        remaining = deadline - loop.time()
        if remaining <= 0:
            for task in pending:
                log.warning("background task %s did not stop in %.1fs", task.get_name(), timeout)
            return
        done, pending = await asyncio.wait(pending, timeout=min(0.1, remaining))
        for task in done:
            if not task.cancelled():
                task.exception()

"""The event loop an actor process runs on.

An actor runs on the standard asyncio loop unless its class asks for
``uvloop`` (:attr:`actors.runtime.actor.Actor.event_loop`), as the gateway,
the task manager, the status tracker, the breaker supervisor and the agent
registry do: much of their work per message is the loop's own (socket
callbacks, HTTP parsing, task switches), which uvloop does in C. The
pipeline runner, which starts steps as child processes, stays on asyncio,
whose subprocess support is the reference (``user``, ``group``,
``preexec_fn``). Where uvloop is not installed (it has no Windows build) the
standard loop runs instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

__all__ = ["EventLoop", "loop_factory", "run"]

EventLoop = Literal["asyncio", "uvloop"]
"""The loops an actor may ask for."""

T = TypeVar("T")


def loop_factory(kind: EventLoop) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Return what creates a loop of ``kind``, ``None`` for the standard one.

    ``uvloop`` falls back to the standard loop when the package is missing.
    """
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            return None
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return None


def run(main: Coroutine[Any, Any, T], *, loop: EventLoop = "asyncio") -> T:
    """Run ``main`` to completion on a new loop of kind ``loop``, then close it."""
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(main)

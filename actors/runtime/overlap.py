"""Several independent writes in flight at once, each started in the order given.

A handler that stores a few independent things one after another waits one
round trip per write (with ``sync_interval: always``, one disk flush each).
:func:`overlapped` starts them all (in argument order, so messages published
on one connection reach the server in that order) and waits for every one:
nothing is left running, and the first failure in argument order is raised
as itself, so a consumer's error handling (redelivery) sees what it expects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar, overload

__all__ = ["overlapped"]

_A = TypeVar("_A")
_B = TypeVar("_B")
_C = TypeVar("_C")


@overload
async def overlapped(a: Awaitable[_A], b: Awaitable[_B], /) -> tuple[_A, _B]: ...
@overload
async def overlapped(
    a: Awaitable[_A], b: Awaitable[_B], c: Awaitable[_C], /
) -> tuple[_A, _B, _C]: ...
@overload
async def overlapped(*steps: Awaitable[Any]) -> tuple[Any, ...]: ...
async def overlapped(*steps: Awaitable[Any]) -> tuple[Any, ...]:
    """Run ``steps`` concurrently, started in order; return their results in order.

    Raises:
        BaseException: the first (in argument order) that a step raised, once
            every step has finished.
    """
    outcomes = await asyncio.gather(*steps, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return tuple(outcomes)

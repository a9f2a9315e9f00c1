"""Eager start: handlers run at once and become tasks only when they wait."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from actors.runtime.eager import start_eagerly

marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="outside")


async def test_coroutine_that_never_waits_needs_no_task() -> None:
    """A coroutine finishing synchronously runs to completion inside the call."""
    done: list[int] = []

    async def quick() -> None:
        done.append(1)

    assert start_eagerly(quick()) is None
    assert done == [1]


async def test_coroutine_that_waits_continues_as_a_task() -> None:
    """The part after the first suspension runs in the returned task."""
    steps: list[str] = []
    gate = asyncio.Event()

    async def slow() -> None:
        steps.append("before")
        await gate.wait()
        steps.append("after")

    task = start_eagerly(slow())
    assert steps == ["before"]
    assert task is not None
    gate.set()
    await asyncio.wait_for(task, 1.0)
    assert steps == ["before", "after"]


async def test_cancelling_the_task_reaches_the_coroutine() -> None:
    """Cancellation is delivered into the coroutine, which may clean up."""
    cleaned: list[bool] = []

    async def hang() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cleaned.append(True)
            raise

    task = start_eagerly(hang())
    assert task is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == [True]


async def test_context_changes_stay_inside_the_coroutine() -> None:
    """A context variable set by the coroutine never leaks into the caller."""
    seen: list[str] = []

    async def sets_marker() -> None:
        marker.set("inside")
        await asyncio.sleep(0)
        seen.append(marker.get())

    task = start_eagerly(sets_marker())
    assert marker.get() == "outside"
    assert task is not None
    await asyncio.wait_for(task, 1.0)
    assert seen == ["inside"]
    assert marker.get() == "outside"


async def test_exception_after_suspension_is_the_tasks_exception() -> None:
    """An error raised after the first await surfaces from the task."""

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("late")

    task = start_eagerly(fails())
    assert task is not None
    with pytest.raises(ValueError, match="late"):
        await task

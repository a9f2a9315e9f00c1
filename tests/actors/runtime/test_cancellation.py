"""Specification of cancel_and_wait: background tasks stop even if they swallow a cancel."""

from __future__ import annotations

import asyncio

import pytest

from actors.runtime.cancellation import cancel_and_wait


async def test_a_task_that_swallows_one_cancellation_is_still_stopped() -> None:
    """A loop that survives the first cancel (as wait_for can make it on 3.11) is stopped."""
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task, timeout=5), 6)
    assert task.cancelled()
    assert swallowed == 1


async def test_failures_of_stopped_tasks_are_retrieved_not_raised() -> None:
    """A task that already failed is collected without re-raising or warning."""

    async def broken() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(broken())
    await asyncio.sleep(0)
    await cancel_and_wait([task])
    assert task.done()


async def test_a_task_that_never_stops_is_left_after_the_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """cancel_and_wait is bounded: a task ignoring every cancel is logged and left."""
    release = asyncio.Event()

    async def immortal() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(immortal(), name="immortal")
    await asyncio.sleep(0)
    await cancel_and_wait(task, timeout=0.3)
    assert not task.done()
    assert "immortal" in caplog.text
    release.set()
    task.cancel()
    await asyncio.wait({task}, timeout=1)


async def test_none_is_nothing_to_stop() -> None:
    """Passing no task is a no-op."""
    await cancel_and_wait(None)

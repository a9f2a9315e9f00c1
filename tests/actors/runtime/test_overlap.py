"""``overlapped``: independent writes in flight together, started in order, all awaited."""

from __future__ import annotations

import asyncio

import pytest

from actors.runtime.overlap import overlapped


async def test_steps_start_in_order_run_together_and_return_in_order() -> None:
    """Each step starts before the previous one finishes; results keep argument order."""
    started: list[str] = []
    release = asyncio.Event()

    async def step(name: str) -> str:
        started.append(name)
        await release.wait()
        return name.upper()

    running = asyncio.ensure_future(overlapped(step("a"), step("b"), step("c")))

    async def all_started() -> None:
        while len(started) < 3:
            await asyncio.sleep(0)

    await asyncio.wait_for(all_started(), 10)
    assert started == ["a", "b", "c"]
    release.set()
    assert await asyncio.wait_for(running, 10) == ("A", "B", "C")


async def test_the_first_failure_is_raised_as_itself_after_every_step_finished() -> None:
    """No step is left running; a later failure does not hide an earlier one."""
    finished: list[str] = []

    async def fails(name: str, exc: Exception) -> None:
        await asyncio.sleep(0)
        finished.append(name)
        raise exc

    async def slow_ok() -> str:
        for _ in range(5):
            await asyncio.sleep(0)
        finished.append("ok")
        return "ok"

    with pytest.raises(ConnectionError, match="first"):
        await overlapped(
            fails("one", ConnectionError("first")), slow_ok(), fails("two", KeyError("second"))
        )
    assert sorted(finished) == ["ok", "one", "two"]

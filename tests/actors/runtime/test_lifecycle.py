"""Lifecycle that holds: exception-safe, idempotent start/stop, guarded hooks, spawned tasks."""

from __future__ import annotations

import asyncio
import logging

import pytest
from nats.js.errors import BadRequestError

from actors.runtime import (
    Actor,
    Bus,
    ConsumerSpec,
    MessageContext,
    RequestContext,
    RequestError,
    endpoint,
)
from actors.runtime.testing import eventually
from tests.actors.runtime.workers import ECHO_SUBJECT, JOBS, JOBS_SUBJECT, Job, Ping, Pong

pytestmark = pytest.mark.integration


class Hooks(Actor):
    """Counts its hooks; its on_failure and on_stop may raise."""

    name = "hooks"

    def __init__(self, *, fail_start: bool = False, fail_hooks: bool = False) -> None:
        super().__init__()
        self.fail_start = fail_start
        self.fail_hooks = fail_hooks
        self.started = 0
        self.stopped = 0
        self.failures: list[BaseException] = []
        self.jobs: list[str] = []

    async def on_start(self) -> None:
        self.started += 1
        await self.add_consumer(ConsumerSpec(stream=JOBS, durable="hooks"), self.take)
        if self.fail_start:
            # A second unfiltered consumer on a work-queue stream is refused by the server
            # when it starts, after the first one is already fetching.
            await self.add_consumer(ConsumerSpec(stream=JOBS, durable="hooks-2"), self.take)

    async def take(self, job: Job, ctx: MessageContext) -> None:
        self.jobs.append(job.id)
        if job.id == "crash":
            raise RuntimeError("job failed")

    async def on_stop(self) -> None:
        self.stopped += 1
        if self.fail_hooks:
            raise RuntimeError("on_stop failed")

    async def on_failure(self, exc: BaseException) -> None:
        self.failures.append(exc)
        if self.fail_hooks:
            raise RuntimeError("on_failure failed")

    @endpoint(ECHO_SUBJECT)
    async def echo(self, request: Ping, ctx: RequestContext) -> Pong:
        if request.mode == "crash":
            raise RuntimeError("handler failed")
        return Pong(n=request.n)


async def _subscribers(bus: Bus, subject: str) -> bool:
    try:
        await bus.nc.request(subject, b"", timeout=0.5)
    except Exception as exc:
        return type(exc).__name__ != "NoRespondersError"
    return True


async def test_a_raising_on_failure_hook_still_sends_the_internal_error_reply(bus: Bus) -> None:
    """on_failure raising is logged; the client still gets the typed internal error."""
    actor = Hooks(fail_hooks=True)
    async with actor.running(bus):
        with pytest.raises(RequestError) as caught:
            await bus.request(ECHO_SUBJECT, Ping(n=1, mode="crash"), Pong, timeout=3.0)
        assert caught.value.code == "internal"
        assert len(actor.failures) == 1


async def test_a_raising_on_failure_hook_still_naks_the_message(bus: Bus) -> None:
    """A stream handler failure with a raising on_failure is still redelivered."""
    actor = Hooks(fail_hooks=True)
    async with actor.running(bus):
        await bus.send(JOBS_SUBJECT, Job(id="crash"))
        await eventually(lambda: _at_least(actor.jobs, 2), timeout=10.0)


async def _at_least(items: list[str], n: int) -> bool:
    return len(items) >= n


async def test_a_start_that_fails_half_way_stops_what_it_started_and_runs_on_stop(
    bus: Bus,
) -> None:
    """A handler that fails to start after another one did: start re-raises, nothing runs on."""
    actor = Hooks(fail_start=True)
    with pytest.raises(BadRequestError):
        await actor.start(bus)
    assert actor.stopped == 1
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("consume-hooks")] == []
    assert not await _subscribers(bus, "$SRV.PING.hooks")
    await actor.stop()
    assert actor.stopped == 1


async def test_stop_is_idempotent_and_a_no_op_before_start(bus: Bus) -> None:
    """stop() before start does nothing; a second stop() does not run on_stop again."""
    actor = Hooks()
    await actor.stop()
    assert actor.stopped == 0
    await actor.start(bus)
    await actor.start(bus)
    assert actor.started == 1
    await actor.stop()
    await actor.stop()
    assert actor.stopped == 1


async def test_a_raising_on_stop_is_logged_and_stop_completes(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    """on_stop raising does not keep the micro service alive or escape stop()."""
    actor = Hooks(fail_hooks=True)
    await actor.start(bus)
    with caplog.at_level(logging.ERROR):
        await actor.stop()
    assert "on_stop failed" in caplog.text
    assert not await _subscribers(bus, "$SRV.PING.hooks")


class Spawner(Actor):
    """Runs background tasks from on_start."""

    name = "spawner"

    def __init__(self) -> None:
        super().__init__()
        self.failures: list[BaseException] = []
        self.cancelled = asyncio.Event()

    async def on_start(self) -> None:
        self.spawn(self._forever(), name="forever")
        self.spawn(self._crash(), name="crash")

    async def _forever(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def _crash(self) -> None:
        raise ValueError("background work failed")

    async def on_failure(self, exc: BaseException) -> None:
        self.failures.append(exc)


async def test_spawned_tasks_report_failures_and_are_cancelled_on_stop(bus: Bus) -> None:
    """A spawned task that raises reaches on_failure; the others are cancelled by stop."""
    actor = Spawner()
    await actor.start(bus)
    await eventually(lambda: _at_least(actor.failures, 1))  # type: ignore[arg-type]
    assert isinstance(actor.failures[0], ValueError)
    await actor.stop()
    assert actor.cancelled.is_set()


async def test_spawn_outside_the_lifecycle_is_refused() -> None:
    """spawn before start raises and does not leave the coroutine un-awaited."""
    actor = Spawner()
    with pytest.raises(RuntimeError, match="not running"):
        actor.spawn(actor._crash(), name="early")

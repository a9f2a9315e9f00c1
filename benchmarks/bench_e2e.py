"""End to end: workflows per second and submit-to-succeeded latency, every actor its own process.

A whole troupe is started as ``troupe up`` starts it (the embedded nats-server
with ``nats.conf``, each actor a ``python -m actors run NAME`` process under the
supervisor, default actor settings). A client then submits inline one-step
``local`` pipelines whose step is ``true``, each with its own task id and its
own step environment (so every step is a step-cache miss and really runs), and
takes a workflow as done when the status tracker publishes its ``succeeded``
view on ``troupe.status.updates.<id>``. Updates are fire-and-forget, so
workflows not seen finishing are also looked up with ``troupe.status.get``.

* ``workflows/s``: ``THROUGHPUT_N`` workflows with at most ``IN_FLIGHT``
  submitted and not yet succeeded, from the first submit to the last success.
* latency p50/p99: ``LATENCY_N`` workflows one at a time on the idle troupe,
  from just before the submit to the arrival of the ``succeeded`` view.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from nats.aio.msg import Msg

from actors.roster import ACTORS
from actors.runtime.bus import Bus
from actors.runtime.codec import Codec, encoding_of
from actors.runtime.errors import BadRequest, NotFound, Unavailable
from actors.runtime.launcher import Troupe
from actors.runtime.server import free_port
from protocols.pipelines import PipelineSpec, StepSpec
from protocols.status import (
    GET_SUBJECT,
    TERMINAL_STATES,
    UPDATES_SUBJECTS,
    GetWorkflow,
    WorkflowView,
)
from protocols.tasks import SUBMIT_SUBJECT, TaskSubmitted

Report = Callable[..., None]

THROUGHPUT_N = 200
IN_FLIGHT = 32
LATENCY_N = 30
WARMUP_N = 5
WAIT_S = 120.0
"""Upper bound on any one wait; a workflow not done by then fails the benchmark."""


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _task(task_id: str) -> TaskSubmitted:
    step = StepSpec(name="noop", run=["true"], env={"BENCH_ID": task_id}, timeout=30)
    return TaskSubmitted(
        task_id=task_id,
        pipeline=PipelineSpec(name="bench-e2e", steps=[step], backend="local"),
        submitted_at=time.time(),
    )


class _Finishes:
    """Records when each workflow is first seen terminal, from pushed views."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.done: dict[str, tuple[str, float]] = {}
        self._waiters: dict[str, asyncio.Future[str]] = {}
        self._codec: Codec[WorkflowView] = Codec.of(WorkflowView)

    async def on_update(self, msg: Msg) -> None:
        with contextlib.suppress(BadRequest):
            self._saw(self._codec.decode(msg.data, encoding_of(msg.headers)))

    def _saw(self, view: WorkflowView) -> None:
        if view.state not in TERMINAL_STATES or view.workflow_id in self.done:
            return
        self.done[view.workflow_id] = (view.state, time.perf_counter())
        waiter = self._waiters.pop(view.workflow_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(view.state)

    async def wait(self, workflow_id: str, timeout: float = WAIT_S) -> str:
        """Wait until ``workflow_id`` is terminal; return its state."""
        if workflow_id in self.done:
            return self.done[workflow_id][0]
        waiter = self._waiters.setdefault(workflow_id, asyncio.get_running_loop().create_future())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                # Poll now and then in case the pushed view was missed.
                return await asyncio.wait_for(asyncio.shield(waiter), 1.0)
            except TimeoutError:
                if loop.time() > deadline:
                    raise TimeoutError(f"{workflow_id} not finished within {timeout}s") from None
            with contextlib.suppress(NotFound, Unavailable):
                view = await self.bus.request(
                    GET_SUBJECT, GetWorkflow(workflow_id=workflow_id), WorkflowView
                )
                self._saw(view)


async def _submit(bus: Bus, task: TaskSubmitted) -> None:
    await bus.send(SUBMIT_SUBJECT, task, msg_id=task.task_id)


async def _latency(report: Report, bus: Bus, finishes: _Finishes, prefix: str) -> None:
    took: list[float] = []
    for i in range(WARMUP_N + LATENCY_N):
        task = _task(f"{prefix}-lat-{i}")
        started = time.perf_counter()
        await _submit(bus, task)
        state = await finishes.wait(task.task_id)
        if state != "succeeded":
            raise RuntimeError(f"{task.task_id} ended {state}")
        if i >= WARMUP_N:
            took.append((finishes.done[task.task_id][1] - started) * 1000)
    note = f"{LATENCY_N} one-step local workflows one at a time, submit -> succeeded view"
    report("e2e latency p50", statistics.median(took), "ms", note)
    report("e2e latency p99", _pct(took, 0.99), "ms", note + f" (the slowest of {LATENCY_N})")


async def _throughput(report: Report, bus: Bus, finishes: _Finishes, prefix: str) -> None:
    slots = asyncio.Semaphore(IN_FLIGHT)
    states: list[str] = []

    async def one(i: int) -> None:
        task = _task(f"{prefix}-tp-{i}")
        async with slots:
            await _submit(bus, task)
            states.append(await finishes.wait(task.task_id))

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(THROUGHPUT_N)))
    took = time.perf_counter() - started
    bad = [s for s in states if s != "succeeded"]
    if bad:
        raise RuntimeError(f"{len(bad)} of {THROUGHPUT_N} workflows did not succeed: {bad[:5]}")
    report(
        "e2e workflows/s",
        THROUGHPUT_N / took,
        "wf/s",
        f"{THROUGHPUT_N} one-step local `true` workflows, <= {IN_FLIGHT} in flight, "
        f"{len(ACTORS)} actor processes, default settings",
    )


async def run(report: Report) -> None:
    """Start a troupe of actor processes, measure, stop it."""
    with tempfile.TemporaryDirectory(prefix="troupe-bench-e2e-") as tmp:
        troupe = Troupe(sorted(ACTORS), state_dir=Path(tmp), port=free_port())
        async with troupe:
            await troupe.wait_ready(timeout=90)
            bus = await Bus.connect(troupe.client_config())
            try:
                finishes = _Finishes(bus)
                sub = await bus.nc.subscribe(UPDATES_SUBJECTS, cb=finishes.on_update)
                prefix = f"bench-{uuid.uuid4().hex[:8]}"
                await _latency(report, bus, finishes, prefix)
                await _throughput(report, bus, finishes, prefix)
                await sub.unsubscribe()
            finally:
                await bus.close()

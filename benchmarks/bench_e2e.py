"""End to end: a durable one-step workflow, troupe against a raw nats-py floor, side by side.

A troupe is started as ``troupe up`` starts it (the embedded nats-server with
``nats.conf``, each actor a ``python -m actors run NAME`` process under the
supervisor, default actor settings), without the gateway, which a workflow
submitted over NATS does not pass through. A client submits inline one-step
``local`` pipelines whose step is ``true``, each with its own task id and its
own step environment (so every step is a step-cache miss and really spawns),
and takes a workflow as done when the status tracker publishes its
``succeeded`` view on ``troupe.status.updates.<id>`` (looked up with
``troupe.status.get`` if that view is missed).

On the same server, :mod:`benchmarks.durable_baseline` does the same work with
raw nats-py: submit to a work-queue stream, a worker process pulls, spawns the
step, stores the result in KV and acknowledges; the client waits for the
result. Both are measured at 1 and ``IN_FLIGHT`` workflows in flight, and the
whole run is done twice: with troupe's ``nats.conf`` (``sync_interval:
always``) and with the same file without that line. For each:

* workflows/s, and p50/p99 of submit -> succeeded;
* CPU ms per workflow of every process (``/proc/<pid>/stat`` before and after:
  each actor, nats-server, the client, and the steps the runner or the
  baseline worker reaped);
* JetStream writes per workflow (stream sequence deltas over all streams),
  with the streams that took them.

``BENCH_E2E_SYNC=always`` (or ``default``) measures one of the two modes only.
``TROUPE_PROFILE_DIR=DIR`` also profiles every actor process of the troupe
(see :mod:`actors.runtime.profiling`); a profiled run's figures are not
comparable with an unprofiled one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.aio.msg import Msg

from actors.cli.init import troupe_topology
from actors.roster import ACTORS
from actors.runtime.bus import Bus
from actors.runtime.codec import Codec, encoding_of
from actors.runtime.errors import BadRequest, NotFound, Unavailable
from actors.runtime.launcher import SERVER_CHILD, Member, Troupe
from actors.runtime.server import default_config_path, free_port
from benchmarks import durable_baseline
from benchmarks.procstat import CpuTimes, snapshot, stream_sequences
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

THROUGHPUT_N = 160
IN_FLIGHT = 32
LATENCY_N = 30
WARMUP_N = 5
WAIT_S = 120.0
"""Upper bound on any one wait; a workflow not done by then fails the benchmark."""

WORKFLOW_ACTORS = sorted(set(ACTORS) - {"gateway"})
"""The actors a workflow submitted over NATS goes through (the gateway serves HTTP only)."""

_SHORT = {
    "task_manager": "tasks",
    "pipeline_runner": "runner",
    "status_tracker": "status",
    "breaker_supervisor": "breakers",
    "agent_registry": "agents",
    "gateway": "gateway",
    SERVER_CHILD: "nats",
    "client": "client",
    "worker": "worker",
}


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


@dataclass(frozen=True, slots=True)
class Figures:
    """What one measured batch of workflows cost."""

    rate: float
    p50_ms: float
    p99_ms: float
    cpu_ms: dict[str, float]
    """CPU ms per workflow by process; ``steps`` is what the spawner reaped."""
    writes: float
    """JetStream writes per workflow."""
    stream_writes: dict[str, float]
    """JetStream writes per workflow by stream (KV buckets and object stores included)."""

    @property
    def cpu_total(self) -> float:
        """CPU ms per workflow, all processes together."""
        return sum(self.cpu_ms.values())

    def breakdown(self) -> str:
        """The per-process CPU figures, largest first."""
        parts = sorted(self.cpu_ms.items(), key=lambda kv: -kv[1])
        return ", ".join(f"{_SHORT.get(k, k)} {v:.1f}" for k, v in parts if v >= 0.05)

    def writes_breakdown(self) -> str:
        """The per-stream write figures, largest first."""
        parts = sorted(self.stream_writes.items(), key=lambda kv: -kv[1])
        return ", ".join(f"{k} {v:.1f}" for k, v in parts if v >= 0.05)


async def _measure(
    one: Callable[[str], Awaitable[None]],
    ids: list[str],
    in_flight: int,
    pids: dict[str, int],
    spawner: str,
    admin: nats.aio.client.Client,
) -> Figures:
    """Run ``one`` for every id, at most ``in_flight`` at a time, and read the costs."""
    slots = asyncio.Semaphore(in_flight)
    took: list[float] = []

    async def timed(workflow_id: str) -> None:
        async with slots:
            started = time.perf_counter()
            await one(workflow_id)
            took.append((time.perf_counter() - started) * 1000)

    writes_before = await stream_sequences(admin.jetstream())
    before = snapshot(pids)
    started = time.perf_counter()
    await asyncio.gather(*(timed(i) for i in ids))
    elapsed = time.perf_counter() - started
    after = snapshot(pids)
    writes_after = await stream_sequences(admin.jetstream())
    n = len(ids)
    by_stream = {k: (v - writes_before.get(k, 0)) / n for k, v in writes_after.items()}
    delta: dict[str, CpuTimes] = {k: after[k] - before[k] for k in pids}
    cpu = {k: d.own / n for k, d in delta.items()}
    cpu["steps"] = delta[spawner].children / n
    return Figures(
        n / elapsed,
        statistics.median(took),
        _pct(took, 0.99),
        cpu,
        sum(by_stream.values()),
        by_stream,
    )


async def _sync_modes(tmp: Path) -> dict[str, Path]:
    base = default_config_path()
    relaxed = tmp / "nats-default-sync.conf"
    text, n = re.subn(r"^\s*sync_interval:\s*always\s*$", "", base.read_text(), flags=re.M)
    if n != 1:
        raise RuntimeError("nats.conf has no 'sync_interval: always' line")
    relaxed.write_text(text)
    modes = {"always": base, "default": relaxed}
    only = os.environ.get("BENCH_E2E_SYNC", "")
    return {only: modes[only]} if only in modes else modes


async def _one_mode(config: Path, state: Path) -> dict[tuple[str, int], Figures]:
    """Start a troupe on ``config``; measure troupe and the baseline at 1 and IN_FLIGHT."""
    figures: dict[tuple[str, int], Figures] = {}
    members = [Member.builtin(name) for name in WORKFLOW_ACTORS]
    troupe = Troupe(
        members,
        state_dir=state,
        port=free_port(),
        server_config=config,
        topology=troupe_topology(members, state),
    )
    async with troupe:
        await troupe.wait_ready(timeout=120)
        assert troupe.server is not None
        password = troupe.server.passwords["TROUPE_ADMIN_PASSWORD"]
        admin = await nats.connect(troupe.url, user="admin", password=password)
        bus = await Bus.connect(troupe.client_config())
        try:
            await durable_baseline.setup(admin)
            finishes = _Finishes(bus)
            sub = await bus.nc.subscribe(UPDATES_SUBJECTS, cb=finishes.on_update)
            baseline = durable_baseline.Baseline(admin)
            await baseline.start()

            async def troupe_one(workflow_id: str) -> None:
                await _submit(bus, _task(workflow_id))
                state_ = await finishes.wait(workflow_id)
                if state_ != "succeeded":
                    raise RuntimeError(f"{workflow_id} ended {state_}")

            children = troupe.restarts()
            pids = {
                name: child.proc.pid for name, child in children.items() if child.proc is not None
            }
            pids["client"] = os.getpid()
            prefix = f"bench-{uuid.uuid4().hex[:8]}"
            with durable_baseline.worker_process(troupe.url, password) as worker:
                base_pids = {
                    "worker": worker.pid,
                    SERVER_CHILD: pids[SERVER_CHILD],
                    "client": os.getpid(),
                }
                for i in range(WARMUP_N):
                    await troupe_one(f"{prefix}-warm-{i}")
                    await baseline.run(f"{prefix}-bwarm-{i}")
                for in_flight, n in ((1, LATENCY_N), (IN_FLIGHT, THROUGHPUT_N)):
                    ids = [f"{prefix}-{in_flight}-{i}" for i in range(n)]
                    figures["troupe", in_flight] = await _measure(
                        troupe_one, ids, in_flight, pids, "pipeline_runner", admin
                    )
                    figures["baseline", in_flight] = await _measure(
                        baseline.run, [f"b-{i}" for i in ids], in_flight, base_pids, "worker", admin
                    )
            await sub.unsubscribe()
        finally:
            await bus.close()
            await admin.close()
    return figures


def _report(report: Report, mode: str, figures: dict[tuple[str, int], Figures]) -> None:
    for in_flight in (1, IN_FLIGHT):
        t, b = figures["troupe", in_flight], figures["baseline", in_flight]
        at = f"@{in_flight}, sync {mode}"
        target = " (target >= 0.5)" if in_flight == IN_FLIGHT else ""
        report(f"troupe workflows/s {at}", t.rate, "wf/s")
        report(f"baseline workflows/s {at}", b.rate, "wf/s", "raw nats-py durable floor")
        report(f"troupe/baseline throughput {at}", t.rate / b.rate, "x", f"side by side{target}")
        report(f"troupe p50 submit->succeeded {at}", t.p50_ms, "ms", f"p99 {t.p99_ms:.1f} ms")
        report(f"baseline p50 submit->done {at}", b.p50_ms, "ms", f"p99 {b.p99_ms:.1f} ms")
        report(f"troupe CPU/workflow, all processes {at}", t.cpu_total, "ms", t.breakdown())
        report(f"baseline CPU/workflow, all processes {at}", b.cpu_total, "ms", b.breakdown())
        report(f"troupe/baseline CPU per workflow {at}", t.cpu_total / b.cpu_total, "x")
        report(f"troupe JetStream writes/workflow {at}", t.writes, "writes", t.writes_breakdown())
        report(f"baseline JetStream writes/workflow {at}", b.writes, "writes")


async def run(report: Report) -> None:
    """Measure troupe and the raw floor with and without ``sync_interval: always``."""
    with tempfile.TemporaryDirectory(prefix="troupe-bench-e2e-") as tmp:
        for mode, config in (await _sync_modes(Path(tmp))).items():
            load = os.getloadavg()[0]
            figures = await _one_mode(config, Path(tmp) / mode)
            _report(report, mode, figures)
            load = max(load, os.getloadavg()[0])
            report(f"load average, sync {mode}", load, "", f"1-min, {os.cpu_count()} CPUs")

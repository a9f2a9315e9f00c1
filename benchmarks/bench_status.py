"""Status tracker: events folded per second by one tracker, query latency with 10,000 workflows.

* ``events/s``: a backlog of status events (full workflow runs, redeliveries
  included) is published first; one in-process tracker then drains it, each
  event a revision-checked KV read-modify-write plus an update announcement.
* query latency: 10,000 workflow views are stored in the bucket; a tracker
  loads them into its index; ``get`` (a KV read) and ``list`` (50 items,
  filtered by state, from the index) are timed one request at a time.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable

import msgspec

from actors.runtime.bus import Bus
from actors.runtime.config import ConnectionConfig
from actors.runtime.testing import nats_server
from actors.status_tracker import StatusTracker
from actors.topology import STATUS_EVENTS, WORKFLOWS
from protocols.status import (
    GET_SUBJECT,
    LIST_SUBJECT,
    TERMINAL_STATES,
    GetWorkflow,
    ListWorkflows,
    StatusEvent,
    StepProgress,
    StepTransition,
    StepView,
    WorkflowList,
    WorkflowTransition,
    WorkflowView,
    event_subject,
)

Report = Callable[..., None]

RUNS = 400
STORED = 10_000


def _run_events(wid: str, t: float) -> list[StatusEvent]:
    events: list[StatusEvent] = []

    def wf(state: str, dt: float, **kw: object) -> None:
        events.append(
            WorkflowTransition(workflow_id=wid, state=state, at=t + dt, source="bench", **kw)
        )  # type: ignore[arg-type]

    wf("submitted", 0, template="bench")
    wf("queued", 0.1, steps=["a", "b", "c"])
    wf("preparing", 0.2)
    wf("running", 0.3)
    for i, step in enumerate("abc"):
        base = 1 + i
        events.append(StepTransition(workflow_id=wid, step=step, state="running", at=t + base))
        events.append(StepProgress(workflow_id=wid, step=step, at=t + base + 0.5, percent=50))
        events.append(
            StepTransition(
                workflow_id=wid, step=step, state="succeeded", at=t + base + 0.9, exit_code=0
            )
        )
    wf("succeeded", 5)
    return events


async def _publish(bus: Bus, events: list[StatusEvent]) -> None:
    for i in range(0, len(events), 500):
        await asyncio.gather(
            *(bus.send(event_subject(e.workflow_id), e) for e in events[i : i + 500])
        )


def _pct(samples: list[float], q: float) -> float:
    return (
        statistics.quantiles(samples, n=100, method="inclusive")[q - 1]
        if len(samples) > 1
        else samples[0]
    )


async def _throughput(url: str, report: Report) -> None:
    bus = await Bus.connect(ConnectionConfig(url=url))
    try:
        await bus.ensure_stream(STATUS_EVENTS)
        t = time.time()
        runs = [_run_events(f"tp-{i}", t) for i in range(RUNS)]
        # Producers run workflows side by side: their events interleave in the stream.
        events = [run[k] for k in range(len(runs[0])) for run in runs]
        events += events[::10]  # redeliveries
        await _publish(bus, events)
        tracker = StatusTracker()
        started = time.perf_counter()
        async with tracker.running(bus):
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                page = tracker.index.query(ListWorkflows(states=list(TERMINAL_STATES), limit=1000))
                if len(page.items) >= RUNS:
                    break
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - started
        report(
            "status events processed per second (1 tracker)",
            len(events) / elapsed,
            "events/s",
            f"{len(events)} events, {RUNS} workflows, 10% redelivered",
        )
    finally:
        await bus.close()


async def _queries(url: str, report: Report) -> None:
    bus = await Bus.connect(ConnectionConfig(url=url))
    try:
        kv = await bus.key_value(WORKFLOWS)
        t = time.time()
        states = ["running", "succeeded", "failed", "queued"]
        enc = msgspec.msgpack.Encoder()
        for i in range(0, STORED, 500):
            await asyncio.gather(
                *(
                    kv.put(
                        f"q-{j}",
                        enc.encode(
                            WorkflowView(
                                workflow_id=f"q-{j}",
                                state=states[j % 4],
                                created_at=t + j,  # type: ignore[arg-type]
                                updated_at=t + j,
                                template="bench",
                                steps=[StepView(name=n, state="succeeded") for n in "abc"],
                            )
                        ),
                    )
                    for j in range(i, min(i + 500, STORED))
                )
            )
        tracker = StatusTracker()
        loaded = time.perf_counter()
        async with tracker.running(bus):
            report("index load at start (10,000 workflows)", time.perf_counter() - loaded, "s")
            gets: list[float] = []
            for i in range(2000):
                t0 = time.perf_counter()
                await bus.request(
                    GET_SUBJECT, GetWorkflow(workflow_id=f"q-{i * 7 % STORED}"), WorkflowView
                )
                gets.append((time.perf_counter() - t0) * 1000)
            lists: list[float] = []
            for _ in range(500):
                t0 = time.perf_counter()
                page = await bus.request(
                    LIST_SUBJECT, ListWorkflows(states=["failed"], limit=50), WorkflowList
                )
                lists.append((time.perf_counter() - t0) * 1000)
            assert len(page.items) == 50
        note = f"{STORED} workflows stored"
        report("get workflow latency p50", _pct(gets, 50), "ms", note)
        report("get workflow latency p99", _pct(gets, 99), "ms", note)
        report("list 50 (state filter) latency p50", _pct(lists, 50), "ms", note)
        report("list 50 (state filter) latency p99", _pct(lists, 99), "ms", note)
    finally:
        await bus.close()


async def run(report: Report) -> None:
    """Measure tracker throughput and query latency on a fresh local nats-server each."""
    with nats_server() as server:
        await _throughput(server.url, report)
    with nats_server() as server:
        await _queries(server.url, report)


if __name__ == "__main__":
    asyncio.run(run(print))

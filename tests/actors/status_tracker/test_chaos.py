"""The tracker as a real process, SIGKILLed mid-flow: nothing lost, queries answer as before."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from actors.runtime.bus import Bus
from actors.runtime.errors import NotFound, Unavailable
from actors.runtime.testing import eventually
from actors.status_tracker import state as sm
from actors.topology import STATUS_EVENTS, WORKFLOWS
from protocols.status import (
    GET_SUBJECT,
    LIST_SUBJECT,
    TERMINAL_STATES,
    GetWorkflow,
    ListWorkflows,
    StatusEvent,
    WorkflowList,
    WorkflowView,
)
from tests.actors.status_tracker.histories import history, project, send_all

pytestmark = [pytest.mark.integration, pytest.mark.processes, pytest.mark.chaos]

WORKFLOWS_N = 200
ORPHANS = 10
"""Workflows whose runner dies: only the deadline sweep can finish them."""


async def _start(nats_url: str, log: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "TROUPE_STATUS_SWEEP_INTERVAL_S": "0.2"}
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "actors",
            "run",
            "status_tracker",
            "--nats-url",
            nats_url,
            stdout=out,
            stderr=out,
            env=env,
        )


async def _get(bus: Bus, wid: str) -> WorkflowView | None:
    try:
        return await bus.request(GET_SUBJECT, GetWorkflow(workflow_id=wid), WorkflowView)
    except (NotFound, Unavailable):
        return None


async def test_sigkill_during_200_workflows_loses_nothing(
    bus: Bus, nats_url: str, tmp_path: Path
) -> None:
    """Kill -9 mid-flow, restart: every workflow ends right and list/get agree with the log."""
    await bus.ensure_stream(STATUS_EVENTS)
    t = time.time()
    outcomes = ["succeeded", "failed", "cancelled", "rejected"]
    expected: dict[str, str] = {}
    logs: dict[str, list[StatusEvent]] = {}
    for i in range(WORKFLOWS_N):
        wid = f"chaos-{i:03d}"
        if i < ORPHANS:
            events = history(wid, t, steps=("a", "b"), deadline=t + 4.0)[:6]
            expected[wid] = "timed_out"
        else:
            outcome = outcomes[i % 4]
            events = history(wid, t, outcome=outcome, attempts=1 + i % 2, messages=False)
            expected[wid] = outcome
        logs[wid] = events
    # Producers interleave their workflows; a quarter of the events are redelivered.
    stream = [
        e
        for k in range(max(map(len, logs.values())))
        for ev in logs.values()
        if k < len(ev)
        for e in [ev[k]]
    ]
    stream += stream[::4]

    log = tmp_path / "tracker.log"
    proc = await _start(nats_url, log)
    kv = await bus.key_value(WORKFLOWS)
    publisher = asyncio.create_task(send_all(bus, stream))
    try:

        async def some_applied() -> bool:
            return (await kv.status()).values >= 60

        await eventually(some_applied, timeout=30.0)
        proc.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(proc.wait(), 10) == -signal.SIGKILL
        await asyncio.wait_for(publisher, 60)
        proc = await _start(nats_url, log)

        async def all_final() -> bool:
            try:
                page = await bus.request(
                    LIST_SUBJECT, ListWorkflows(limit=1000), WorkflowList, timeout=2.0
                )
            except Unavailable:
                return False  # still starting
            return len(page.items) == WORKFLOWS_N and all(
                v.state in TERMINAL_STATES for v in page.items
            )

        await eventually(all_final, timeout=60.0, interval=0.2)

        # Events the killed process had fetched but not acknowledged come back after
        # the consumer's ack wait; only then is every view complete.
        async def settled() -> bool:
            page = await bus.request(LIST_SUBJECT, ListWorkflows(limit=1000), WorkflowList)
            by_id = {v.workflow_id: v for v in page.items}
            return all(
                wid < f"chaos-{ORPHANS:03d}" or project(by_id[wid]) == project(sm.fold(ev))
                for wid, ev in logs.items()
            )

        await eventually(settled, timeout=30.0, interval=0.2)

        verdict: Counter[str] = Counter()
        for wid, events in logs.items():
            view = await _get(bus, wid)
            orphan = wid < f"chaos-{ORPHANS:03d}"
            if view is None:
                verdict["lost"] += 1
            elif view.state != expected[wid] or (
                not orphan and project(view) != project(sm.fold(events))
            ):
                verdict["unexpected"] += 1
            else:
                verdict["ok"] += 1
        assert verdict == Counter(ok=WORKFLOWS_N), log.read_text()[-3000:]

        for state, count in Counter(expected.values()).items():
            page = await bus.request(
                LIST_SUBJECT, ListWorkflows(states=[state], limit=1000), WorkflowList
            )
            assert len(page.items) == count, state
    finally:
        publisher.cancel()
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()

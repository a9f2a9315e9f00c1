"""Live step output: latency from a step's print to ``troupe logs ID --follow``'s terminal.

A troupe is started as ``troupe up`` starts it (the embedded nats-server with
``nats.conf``, each actor a ``python -m actors run NAME`` process under the
supervisor), without the gateway. A one-step ``local`` workflow is submitted
whose step (a shell loop) prints ``wait`` until a gate file exists, then
``LINES`` lines, each carrying the wall-clock time it was printed (``date
+%s.%N``), ``INTERVAL_S`` apart, each written straight to the pipe.

Two readers follow the workflow before the gate opens:

* ``troupe logs ID --follow`` as a child process (what a user runs), its
  standard output a pipe this process reads: latency is the time a line is
  read from that pipe minus the time the step printed it;
* :func:`follow_logs` in this process (the client iterator the command uses):
  latency is the time the iterator yields the line minus the time it was
  printed, which leaves out the command's own printing.

Reported: p50, p99 and the worst of each, over every line (target p50 <= 50 ms).
Both ends read the same machine clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from actors.cli.init import troupe_topology
from actors.pipeline_runner.client import follow_logs
from actors.roster import ACTORS
from actors.runtime.bus import Bus
from actors.runtime.errors import NotFound
from actors.runtime.launcher import Member, Troupe
from actors.runtime.server import free_port
from actors.status_tracker.client import get_workflow
from protocols.pipelines import PipelineSpec, StepSpec
from protocols.tasks import SUBMIT_SUBJECT, TaskSubmitted

Report = Callable[..., None]

LINES = 100
INTERVAL_S = 0.02
TARGET_P50_MS = 50.0
WAIT_S = 120.0
"""Upper bound on any one wait; a workflow not done by then fails the benchmark."""

ACTORS_USED = sorted(set(ACTORS) - {"gateway"})

_LINE = re.compile(r"bench-line (\d+) (\d+\.\d+)")

_STEP = """
while [ ! -e "$BENCH_GATE" ]; do echo wait; sleep 0.05; done
i=0
while [ "$i" -lt {lines} ]; do
  echo "bench-line $i $(date +%s.%N)"
  sleep {interval}
  i=$((i + 1))
done
"""
"""The step: a shell loop (the step runs as an unprivileged user, any shell has it);
``echo`` is a shell builtin writing each line straight to the pipe."""


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _task(task_id: str, gate: Path) -> TaskSubmitted:
    script = _STEP.format(lines=LINES, interval=INTERVAL_S)
    step = StepSpec(
        name="talk",
        run=script,
        env={"BENCH_GATE": str(gate)},
        timeout=WAIT_S,
    )
    return TaskSubmitted(
        task_id=task_id,
        pipeline=PipelineSpec(name="bench-logs", steps=[step], backend="local"),
        submitted_at=time.time(),
    )


async def _cli_follower(
    troupe: Troupe, workflow_id: str, waiting: asyncio.Event, latencies: dict[int, float]
) -> int:
    """Run ``troupe logs ID --follow``; record each bench line's latency; return its exit code."""
    env = {**os.environ, "TROUPE_STATE_DIR": str(troupe.state_dir)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "actors",
        "logs",
        workflow_id,
        "--follow",
        "--nats-url",
        troupe.url,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        while raw := await proc.stdout.readline():
            now = time.time()
            text = raw.decode(errors="replace")
            if (found := _LINE.search(text)) is not None:
                latencies[int(found[1])] = now - float(found[2])
            elif "wait" in text:
                waiting.set()
        return await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _iterator_follower(
    bus: Bus, workflow_id: str, waiting: asyncio.Event, latencies: dict[int, float]
) -> None:
    """Follow with :func:`follow_logs`; record each bench line's latency."""
    async for out in follow_logs(bus, workflow_id):
        now = time.time()
        if (found := _LINE.search(out.line)) is not None:
            latencies[int(found[1])] = now - float(found[2])
        elif out.line == "wait":
            waiting.set()


def _gate(tmp: Path) -> Path:
    """Where the gate file goes: a directory the step's unprivileged user can see."""
    gates = tmp / "gates"
    gates.mkdir(mode=0o755)
    tmp.chmod(0o755)
    return gates / "gate"


async def _until_known(bus: Bus, workflow_id: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        with contextlib.suppress(NotFound):
            await get_workflow(bus, workflow_id)
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{workflow_id} unknown to the tracker after {WAIT_S}s")
        await asyncio.sleep(0.05)


async def run(report: Report) -> None:
    """Measure print -> terminal and print -> iterator latency of live step output."""
    with tempfile.TemporaryDirectory(prefix="troupe-bench-logs-") as tmp:
        state = Path(tmp) / "state"
        members = [Member.builtin(name) for name in ACTORS_USED]
        troupe = Troupe(
            members, state_dir=state, port=free_port(), topology=troupe_topology(members, state)
        )
        async with troupe:
            await troupe.wait_ready(timeout=WAIT_S)
            bus = await Bus.connect(troupe.client_config())
            try:
                workflow_id = f"bench-logs-{uuid.uuid4().hex[:8]}"
                gate = _gate(Path(tmp))
                await bus.send(SUBMIT_SUBJECT, _task(workflow_id, gate), msg_id=workflow_id)
                await _until_known(bus, workflow_id)
                cli: dict[int, float] = {}
                direct: dict[int, float] = {}
                cli_waiting, direct_waiting = asyncio.Event(), asyncio.Event()
                cli_task = asyncio.create_task(_cli_follower(troupe, workflow_id, cli_waiting, cli))
                direct_task = asyncio.create_task(
                    _iterator_follower(bus, workflow_id, direct_waiting, direct)
                )
                # Open the gate once both follow: the step's own lines come after.
                await asyncio.wait_for(
                    asyncio.gather(cli_waiting.wait(), direct_waiting.wait()), WAIT_S
                )
                gate.touch()
                code, _ = await asyncio.wait_for(asyncio.gather(cli_task, direct_task), WAIT_S)
            finally:
                await bus.close()
    if code != 0:
        raise RuntimeError(f"troupe logs --follow exited {code}")
    for what, latencies in (
        ("print -> troupe logs --follow terminal", cli),
        ("print -> follow_logs iterator", direct),
    ):
        if len(latencies) < LINES:
            raise RuntimeError(f"{what}: {len(latencies)} of {LINES} lines arrived")
        ms = [v * 1000 for v in latencies.values()]
        target = f"{len(ms)} lines, target <= {TARGET_P50_MS:.0f} ms"
        report(f"{what} p50", statistics.median(ms), "ms", target)
        report(f"{what} p99", _pct(ms, 0.99), "ms", f"max {max(ms):.1f} ms")
    report("load average", os.getloadavg()[0], "", f"1-min, {os.cpu_count()} CPUs")

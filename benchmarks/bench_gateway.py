"""The gateway: HTTP submit latency against plain NATS, and SSE fan-out to 1,000 followers.

A whole troupe runs as ``troupe up`` runs it (its gateway on a free port).

* ``submit->succeeded via HTTP / via NATS (p50)``: the same one-step inline
  workflow, ``LATENCY_N`` times each way, one at a time; completion is seen the
  same way for both (the tracker's pushed view), so the ratio is the cost of
  the HTTP door (target <= 1.2).
* ``SSE fan-out``: ``FOLLOWERS`` SSE clients follow one workflow; the time from
  the first follower receiving its final state until the last one has it.
* ``gateway CPU per workflow, nobody following``: what a running gateway costs
  for each workflow submitted straight over NATS while no client follows
  events (``IDLE_N`` workflows one at a time, the gateway process's CPU time
  from ``/proc``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
from nats.aio.msg import Msg

from actors.cli.creds import troupe_url
from actors.cli.options import connection_config
from actors.runtime.bus import Bus
from actors.runtime.codec import Codec, encoding_of
from actors.runtime.server import free_port
from benchmarks.procstat import cpu_times
from protocols.pipelines import PipelineSpec, StepSpec
from protocols.status import TERMINAL_STATES, WorkflowView, update_subject
from protocols.tasks import SUBMIT_SUBJECT, TaskSubmitted

LATENCY_N = 20
FOLLOWERS = 1000
IDLE_N = 60

Report = Callable[..., None]


def _pipeline(seconds: float = 0.0) -> PipelineSpec:
    run = ["sleep", str(seconds)] if seconds else ["true"]
    return PipelineSpec(
        name="bench-gateway", steps=[StepSpec(name="step", run=run, timeout=60)], backend="local"
    )


async def _finished(bus: Bus, workflow_id: str, start: Callable[[], object]) -> float:
    """Run ``start`` and return seconds until ``workflow_id`` is seen succeeded."""
    done = asyncio.get_running_loop().create_future()

    codec: Codec[WorkflowView] = Codec.of(WorkflowView)

    async def on_view(msg: Msg) -> None:
        view = codec.decode(msg.data, encoding_of(msg.headers))
        if view.state in TERMINAL_STATES and not done.done():
            done.set_result(view.state)

    sub = await bus.nc.subscribe(update_subject(workflow_id), cb=on_view)
    began = time.perf_counter()
    try:
        await start()  # type: ignore[misc]
        state = await asyncio.wait_for(done, 60)
    finally:
        await sub.unsubscribe()
    if state != "succeeded":
        raise RuntimeError(f"workflow {workflow_id} ended {state}")
    return time.perf_counter() - began


async def alternate(
    bus: Bus, door: Callable[[str], Awaitable[None]], *, rounds: int, prefix: str
) -> tuple[list[float], list[float]]:
    """Time the one-step workflow submitted over NATS and through ``door``, turn about.

    Each way runs ``rounds`` measured times after one unmeasured warm-up, one
    workflow at a time; completion is seen the same way for both (the
    tracker's pushed view).

    Args:
        bus: the client connection the NATS submissions and the views use.
        door: submits the workflow with the id it is given, some other way.
        rounds: measured workflows each way.
        prefix: start of the workflow ids.

    Returns:
        The seconds to ``succeeded`` over NATS, then through ``door``.
    """
    nats_times: list[float] = []
    door_times: list[float] = []
    for i in range(rounds * 2 + 2):
        workflow_id = f"{prefix}-{uuid.uuid4().hex[:12]}"
        if i % 2:

            async def start(wid: str = workflow_id) -> None:
                task = TaskSubmitted(task_id=wid, pipeline=_pipeline(), submitted_at=time.time())
                await bus.send(SUBMIT_SUBJECT, task, msg_id=wid)

            took = await _finished(bus, workflow_id, start)
            (nats_times if i > 1 else []).append(took)
        else:
            took = await _finished(bus, workflow_id, functools.partial(door, workflow_id))
            (door_times if i > 1 else []).append(took)
    return nats_times, door_times


async def _latency(bus: Bus, http: httpx.AsyncClient, report: Report) -> None:
    spec = msgspec.to_builtins(_pipeline())

    async def over_http(workflow_id: str) -> None:
        body = {"pipeline": spec, "idempotency_key": workflow_id}
        response = await http.post("/api/v1/workflows", json=body)
        response.raise_for_status()

    nats_times, http_times = await alternate(bus, over_http, rounds=LATENCY_N, prefix="bench-gw")
    over_nats = statistics.median(nats_times)
    over_http_p50 = statistics.median(http_times)
    report("submit->succeeded via NATS (p50)", over_nats * 1000, "ms")
    report("submit->succeeded via HTTP (p50)", over_http_p50 * 1000, "ms")
    report("HTTP / NATS latency ratio (p50)", over_http_p50 / over_nats, "x", "target <= 1.2")


async def _follow(
    http: httpx.AsyncClient, path: str, ready: asyncio.Event, box: list[int]
) -> float:
    async with http.stream("GET", path) as response:
        response.raise_for_status()
        box[0] += 1
        if box[0] >= FOLLOWERS:
            ready.set()
        async for line in response.aiter_lines():
            if line.startswith("data: ") and any(f'"state":"{s}"' in line for s in TERMINAL_STATES):
                return time.time()
    raise RuntimeError("stream ended without the final state")


async def _fanout(http: httpx.AsyncClient, bus: Bus, report: Report) -> None:
    workflow_id = f"bench-fan-{uuid.uuid4().hex[:12]}"
    body = {"pipeline": msgspec.to_builtins(_pipeline(4.0)), "idempotency_key": workflow_id}
    ready = asyncio.Event()
    box = [0]
    path = f"/api/v1/workflows/{workflow_id}/events"
    followers = [asyncio.ensure_future(_follow(http, path, ready, box)) for _ in range(FOLLOWERS)]
    await asyncio.wait_for(ready.wait(), 120)
    (await http.post("/api/v1/workflows", json=body)).raise_for_status()
    received = await asyncio.wait_for(asyncio.gather(*followers), 180)
    first = min(received)
    report("SSE followers that got the final state", float(len(received)), "followers")
    report("SSE fan-out: first -> last follower", (max(received) - first) * 1000, "ms")
    report(
        "SSE fan-out: first -> median follower", (statistics.median(received) - first) * 1000, "ms"
    )


def _start(state_dir: Path) -> subprocess.Popen[str]:
    port = free_port()
    return subprocess.Popen(
        [sys.executable, "-m", "actors", "up", "--state-dir", str(state_dir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TROUPE_NATS_URL": "", "TROUPE_GATEWAY_PORT": "0"},
    )


@dataclass(frozen=True, slots=True)
class GatewayTroupe:
    """A running ``troupe up`` with its gateway: where each door is and the operator's token."""

    url: str
    """The gateway's base URL."""
    token: str
    """The operator token ``troupe up`` saved."""
    nats_url: str
    """The embedded server's URL."""
    state_dir: Path
    up_pid: int = 0
    """The ``troupe up`` process."""

    def gateway_pid(self) -> int:
        """The gateway actor's process (a child of ``troupe up``), 0 if not found."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            if parent == self.up_pid and b"run" in argv and b"gateway" in argv:
                return int(entry.name)
        return 0

    async def connect(self, role: str) -> Bus:
        """Return a bus logged in to the troupe's server as ``role``."""
        args = argparse.Namespace(nats_url=self.nats_url, state_dir=self.state_dir, ca=None)
        return await Bus.connect(connection_config(args, role=role))


@contextlib.asynccontextmanager
async def gateway_troupe(prefix: str) -> AsyncIterator[GatewayTroupe]:
    """Run ``troupe up`` (its gateway on a free port) in a fresh state directory; stop it after.

    Raises:
        RuntimeError: the gateway was not up within two minutes, or ``troupe up`` exited.
    """
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        state_dir = Path(tmp) / "state"
        proc = _start(state_dir)
        try:
            deadline = time.monotonic() + 120
            while not (state_dir / "gateway-token").exists():
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("troupe up did not start its gateway")
                await asyncio.sleep(0.1)
            yield GatewayTroupe(
                url=(state_dir / "gateway-url").read_text().strip(),
                token=(state_dir / "gateway-token").read_text().strip(),
                nats_url=troupe_url(state_dir),
                state_dir=state_dir,
                up_pid=proc.pid,
            )
        finally:
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(60)
            if proc.poll() is None:
                proc.kill()


async def _idle_cost(bus: Bus, troupe: GatewayTroupe, report: Report) -> None:
    pid = troupe.gateway_pid()
    if not pid:
        raise RuntimeError("the gateway process was not found")
    before = cpu_times(pid).own
    for _ in range(IDLE_N):
        workflow_id = f"bench-idle-{uuid.uuid4().hex[:12]}"

        async def start(wid: str = workflow_id) -> None:
            task = TaskSubmitted(task_id=wid, pipeline=_pipeline(), submitted_at=time.time())
            await bus.send(SUBMIT_SUBJECT, task, msg_id=wid)

        await _finished(bus, workflow_id, start)
    spent = cpu_times(pid).own - before
    report("gateway CPU per workflow over NATS, nobody following", spent / IDLE_N, "ms")


async def run(report: Report) -> None:
    """Start a troupe, measure, stop it."""
    async with gateway_troupe("bench-gateway-") as troupe:
        bus = await troupe.connect("operator")
        limits = httpx.Limits(max_connections=FOLLOWERS + 50, max_keepalive_connections=50)
        async with httpx.AsyncClient(
            base_url=troupe.url,
            headers={"Authorization": f"Bearer {troupe.token}"},
            timeout=httpx.Timeout(120.0),
            limits=limits,
        ) as http:
            try:
                await _idle_cost(bus, troupe, report)
                await _latency(bus, http, report)
                await _fanout(http, bus, report)
            finally:
                await bus.close()

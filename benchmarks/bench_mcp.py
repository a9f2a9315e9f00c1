"""MCP: submit latency through the MCP server over Streamable HTTP against plain NATS.

A whole troupe runs as ``troupe up`` runs it (its gateway on a free port). The
same one-step inline workflow is submitted ``LATENCY_N`` times each way, one
at a time, alternating: with the ``submit_workflow`` tool of one MCP session
at ``/mcp``, and straight over NATS. Completion is seen the same way for both
(the tracker's pushed view), so the ratio is the cost of the MCP door
(target <= 1.2 at p50).

Where an MCP submit's time goes beyond a NATS one: the tool itself is one
JetStream write, as over NATS (the gateway keeps no copy of the submission;
the task manager's record holds it); the rest is the SDK's Streamable HTTP
exchange (JSON-RPC envelope checks, the tool's argument and output models,
the client's output-schema validation), a few milliseconds per call. Forty
rounds each way keep the p50 steady on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import msgspec
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from actors.cli.options import connection_config
from actors.runtime.bus import Bus
from benchmarks.bench_gateway import Report, _finished, _pipeline, _start
from protocols.tasks import SUBMIT_SUBJECT, TaskSubmitted

LATENCY_N = 40


async def _latency(bus: Bus, client: Client, report: Report) -> None:
    spec = msgspec.to_builtins(_pipeline())
    nats_times: list[float] = []
    mcp_times: list[float] = []
    nats_calls: list[float] = []
    mcp_calls: list[float] = []
    mcp_cpu: list[float] = []
    for i in range(LATENCY_N * 2 + 2):
        workflow_id = f"bench-mcp-{uuid.uuid4().hex[:12]}"
        warm = i > 1
        if i % 2:

            async def start(wid: str = workflow_id, warm: bool = warm) -> None:
                began = time.perf_counter()
                task = TaskSubmitted(task_id=wid, pipeline=_pipeline(), submitted_at=time.time())
                await bus.send(SUBMIT_SUBJECT, task, msg_id=wid)
                (nats_calls if warm else []).append(time.perf_counter() - began)

            took = await _finished(bus, workflow_id, start)
            (nats_times if warm else []).append(took)
        else:

            async def start(wid: str = workflow_id, warm: bool = warm) -> None:
                began, cpu = time.perf_counter(), time.process_time()
                result = await client.call_tool(
                    "submit_workflow", {"pipeline": spec, "idempotency_key": wid}
                )
                (mcp_calls if warm else []).append(time.perf_counter() - began)
                (mcp_cpu if warm else []).append(time.process_time() - cpu)
                if result.is_error:
                    raise RuntimeError(f"submit_workflow failed: {result.content}")

            took = await _finished(bus, workflow_id, start)
            (mcp_times if warm else []).append(took)
    over_nats = statistics.median(nats_times)
    over_mcp = statistics.median(mcp_times)
    report("submit->succeeded via NATS (p50)", over_nats * 1000, "ms")
    report("submit->succeeded via MCP over HTTP (p50)", over_mcp * 1000, "ms")
    report("MCP / NATS latency ratio (p50)", over_mcp / over_nats, "x", "target <= 1.2")
    report("NATS submit: send until acknowledged (p50)", statistics.median(nats_calls) * 1000, "ms")
    report("MCP submit_workflow call round trip (p50)", statistics.median(mcp_calls) * 1000, "ms")
    report(
        "MCP client CPU per submit_workflow call (p50, SDK client)",
        statistics.median(mcp_cpu) * 1000,
        "ms",
    )
    report("load average (1 min) after the rounds", os.getloadavg()[0], "", "2 cores")


async def run(report: Report) -> None:
    """Start a troupe, measure, stop it."""
    with tempfile.TemporaryDirectory(prefix="bench-mcp-") as tmp:
        state_dir = Path(tmp) / "state"
        proc: subprocess.Popen[str] = _start(state_dir)
        try:
            deadline = time.monotonic() + 120
            url = token = ""
            while not (url and token):  # the token is saved first, then the URL
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("troupe up did not start its gateway")
                await asyncio.sleep(0.1)
                with contextlib.suppress(FileNotFoundError):
                    token = (state_dir / "gateway-token").read_text().strip()
                    url = (state_dir / "gateway-url").read_text().strip()
            nats_url = (state_dir / "troupe.pid").read_text().split()[1]
            config = connection_config(
                argparse.Namespace(nats_url=nats_url, state_dir=state_dir, ca=None),
                role="operator",
            )
            bus = await Bus.connect(config)
            try:
                async with (
                    create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http,
                    Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
                ):
                    await _latency(bus, client, report)
            finally:
                await bus.close()
        finally:
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(60)
            if proc.poll() is None:
                proc.kill()

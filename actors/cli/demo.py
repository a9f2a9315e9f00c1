"""``troupe demo``: start a troupe, run the bundled example pipeline, print the result."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

from actors.cli.gateway_http import announce_gateway
from actors.cli.init import troupe_topology
from actors.roster import ACTORS
from actors.runtime import telemetry
from actors.runtime.bus import Bus
from actors.runtime.errors import TroupeError
from actors.runtime.launcher import Member, Troupe
from actors.runtime.server import free_port
from protocols.status import TERMINAL_STATES, WorkflowView
from protocols.tasks import SUBMIT_SUBJECT, TaskSubmitted

__all__ = ["DEMO_TEMPLATE", "register"]

DEMO_TEMPLATE = "hello"


async def _follow(bus: Bus, workflow_id: str, timeout: float) -> WorkflowView:
    from actors.cli.follow import follow

    return await follow(bus, workflow_id, timeout=timeout)


async def _demo(args: argparse.Namespace) -> int:
    telemetry.ensure_trace_ids("troupe-cli")
    with tempfile.TemporaryDirectory(prefix="troupe-demo-") as tmp:
        state_dir = Path(args.state_dir) if args.state_dir else Path(tmp)
        port = args.port or free_port()
        print(f"troupe demo: starting nats-server and {len(ACTORS)} actors...", flush=True)
        members = [Member.builtin(name) for name in sorted(ACTORS)]
        topology = troupe_topology(members, state_dir)
        # Like its NATS port, the demo's HTTP port is a free one unless chosen.
        env = {**os.environ, "TROUPE_GATEWAY_PORT": os.environ.get("TROUPE_GATEWAY_PORT") or "0"}
        async with Troupe(
            members, state_dir=state_dir, port=port, env=env, topology=topology
        ) as troupe:
            print(f"NATS listening on {troupe.url}", flush=True)
            counts = await troupe.wait_ready(timeout=90.0)
            print("actors answering $SRV.PING: " + ", ".join(sorted(counts)), flush=True)
            async with await Bus.connect(troupe.client_config()) as bus:
                workflow_id = f"demo-{uuid.uuid4().hex[:12]}"
                with telemetry.tracer().start_as_current_span("troupe demo"):
                    trace_id = telemetry.current_trace_id()
                    task = TaskSubmitted(
                        task_id=workflow_id, template=DEMO_TEMPLATE, submitted_at=time.time()
                    )
                    await bus.send(SUBMIT_SUBJECT, task, msg_id=workflow_id)
                print(f"submitted workflow {workflow_id} (template {DEMO_TEMPLATE})", flush=True)
                view = await _follow(bus, workflow_id, args.timeout)
            print(f"final state: {view.state}")
            print(f"trace id: {trace_id}")
            if view.state not in TERMINAL_STATES:
                print(
                    f"troupe demo: workflow did not finish within {args.timeout:.0f}s",
                    file=sys.stderr,
                )
            if args.keep:
                await _keep(troupe.url, state_dir)
            print("troupe demo: stopping the troupe...", flush=True)
    return 0 if view.state == "succeeded" else 1


async def _keep(url: str, state_dir: Path) -> None:
    """Leave the demo troupe up, with its dashboard and a login token, until Ctrl-C."""
    await announce_gateway(url, state_dir, "troupe demo")
    print("troupe demo: the troupe stays up; Ctrl-C stops it", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _demo_command(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_demo(args))
    except TroupeError as exc:
        print(f"troupe demo: {exc}", file=sys.stderr)
        return 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``demo``."""
    p = sub.add_parser(
        "demo",
        help="start a troupe, run the bundled example pipeline, print the result, stop",
        description=(
            "Start nats-server and every actor as processes on free ports (NATS and, unless "
            "TROUPE_GATEWAY_PORT is set, HTTP), submit the "
            f"bundled '{DEMO_TEMPLATE}' pipeline, show its progress, print the final state "
            "and the trace id, and stop. Exit 0 when the workflow succeeded."
        ),
    )
    p.add_argument(
        "--state-dir",
        default=None,
        metavar="DIR",
        help="keep state here (default: a temporary directory)",
    )
    p.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    p.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long to wait for the workflow (default 120)",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="leave the troupe up afterwards and print its dashboard URL and a login token",
    )
    p.set_defaults(handler=_demo_command)

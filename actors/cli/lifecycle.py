"""``troupe run``, ``troupe up``, ``troupe down`` and ``troupe demo``: running a troupe."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from actors.cli.options import add_connection_options, connection_config
from actors.roster import ACTORS, load_actor
from actors.runtime import telemetry
from actors.runtime.bus import Bus
from actors.runtime.errors import TroupeError
from actors.runtime.launcher import Troupe, ping_actors
from actors.runtime.server import free_port
from protocols.status import TERMINAL_STATES, WorkflowView
from protocols.tasks import SUBMIT_SUBJECT, TaskSubmitted

__all__ = ["register"]

PID_FILE = "troupe.pid"
DEMO_TEMPLATE = "hello"


# -- troupe run ------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    config = connection_config(args, name=f"troupe-{args.actor}")
    actor = load_actor(args.actor)()
    if args.grace is not None:
        actor.grace = args.grace
    try:
        asyncio.run(actor.serve(config))
    except TroupeError as exc:
        print(f"troupe run {args.actor}: {exc}", file=sys.stderr)
        return 1
    return 0


# -- troupe up / down -----------------------------------------------------------------


async def _up(args: argparse.Namespace, env: dict[str, str]) -> int:
    state_dir = Path(args.state_dir)
    url = args.nats_url or os.environ.get("TROUPE_NATS_URL")
    troupe = Troupe(sorted(ACTORS), state_dir=state_dir, port=args.port, nats_url=url, env=env)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    pid_file = state_dir / PID_FILE
    try:
        async with troupe:
            where = "external server" if url else "embedded nats-server"
            print(f"NATS listening on {troupe.url} ({where}, state in {state_dir})", flush=True)
            await asyncio.to_thread(_write_pid_file, pid_file, troupe.url)
            try:
                await troupe.wait_ready(timeout=args.ready_timeout)
            except TroupeError as exc:
                print(f"troupe up: {exc}", file=sys.stderr, flush=True)
                if stop.is_set():
                    return 1
            else:
                print(
                    f"troupe up: {len(ACTORS)} actors running ({', '.join(sorted(ACTORS))}); "
                    f"logs in {state_dir / 'logs'}; Ctrl-C stops",
                    flush=True,
                )
            await stop.wait()
            print("troupe up: stopping actors and server...", flush=True)
    except TroupeError as exc:
        print(f"troupe up: {exc}", file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
    print("troupe up: stopped", flush=True)
    return 0


def _write_pid_file(pid_file: Path, url: str) -> None:
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{os.getpid()}\n{url}\n")


def _detach(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    pid_file = state_dir / PID_FILE
    if pid_file.exists() and _alive(int(pid_file.read_text().split()[0])):
        print(
            f"troupe up: already running (pid file {pid_file}); 'troupe down' stops it",
            file=sys.stderr,
        )
        return 1
    argv = [
        sys.executable,
        "-m",
        "actors",
        "up",
        "--state-dir",
        str(state_dir),
        "--port",
        str(args.port),
        "--ready-timeout",
        str(args.ready_timeout),
    ]
    if args.nats_url:
        argv += ["--nats-url", args.nats_url]
    for templates in args.templates or ():
        argv += ["--templates", str(Path(templates).resolve())]
    log_path = state_dir / "troupe.log"
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + args.ready_timeout
    url = args.nats_url or os.environ.get("TROUPE_NATS_URL") or f"nats://127.0.0.1:{args.port}"
    config = connection_config(argparse.Namespace(nats_url=url))
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(
                f"troupe up: failed to start (exit {proc.returncode}); see {log_path}:",
                file=sys.stderr,
            )
            print(log_path.read_text(errors="replace")[-2000:], file=sys.stderr)
            return 1
        with contextlib.suppress(TroupeError, OSError):
            counts = asyncio.run(ping_actors(config, timeout=0.5))
            if all(counts.get(name) for name in ACTORS):
                print(f"NATS listening on {url}")
                print(
                    f"troupe up: {len(ACTORS)} actors running in the background "
                    f"(pid {proc.pid}, log {log_path}); 'troupe down' stops them"
                )
                return 0
        time.sleep(0.3)
    print(
        f"troupe up: actors not ready after {args.ready_timeout:.0f}s; see {log_path}",
        file=sys.stderr,
    )
    return 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _up_command(args: argparse.Namespace) -> int:
    if args.detach:
        return _detach(args)
    env = dict(os.environ)
    if args.templates:
        env["TROUPE_TEMPLATES"] = os.pathsep.join(str(Path(t).resolve()) for t in args.templates)
    return asyncio.run(_up(args, env))


def _down(args: argparse.Namespace) -> int:
    pid_file = Path(args.state_dir) / PID_FILE
    if not pid_file.exists():
        print(f"troupe down: no detached troupe found ({pid_file} missing)", file=sys.stderr)
        return 1
    pid = int(pid_file.read_text().split()[0])
    if not _alive(pid):
        pid_file.unlink()
        print("troupe down: troupe was not running (stale pid file removed)")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            print("troupe down: stopped")
            return 0
        time.sleep(0.1)
    print(f"troupe down: pid {pid} still running after {args.timeout:.0f}s", file=sys.stderr)
    return 1


# -- troupe demo ----------------------------------------------------------------------


async def _follow(bus: Bus, workflow_id: str, timeout: float) -> WorkflowView:
    from actors.cli.status import follow

    return await follow(bus, workflow_id, timeout=timeout)


async def _demo(args: argparse.Namespace) -> int:
    telemetry.ensure_trace_ids("troupe-cli")
    with tempfile.TemporaryDirectory(prefix="troupe-demo-") as tmp:
        state_dir = Path(args.state_dir) if args.state_dir else Path(tmp)
        port = args.port or free_port()
        print(f"troupe demo: starting nats-server and {len(ACTORS)} actors...", flush=True)
        async with Troupe(sorted(ACTORS), state_dir=state_dir, port=port) as troupe:
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
            print("troupe demo: stopping the troupe...", flush=True)
    return 0 if view.state == "succeeded" else 1


def _demo_command(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_demo(args))
    except TroupeError as exc:
        print(f"troupe demo: {exc}", file=sys.stderr)
        return 1


# -- registration ---------------------------------------------------------------------


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``run``, ``up``, ``down`` and ``demo``."""
    p = sub.add_parser(
        "run",
        help="run one actor in this process (how a deployment runs each actor)",
        description="Run one actor until SIGTERM/SIGINT, then drain and stop gracefully.",
    )
    p.add_argument("actor", choices=sorted(ACTORS), help="which actor")
    p.add_argument(
        "--grace",
        type=float,
        default=None,
        metavar="SECONDS",
        help="time in-flight work gets to finish on shutdown (default 10)",
    )
    add_connection_options(p)
    p.set_defaults(handler=_run)

    p = sub.add_parser(
        "up",
        help="start nats-server and every actor as its own process",
        description=(
            "Start the embedded nats-server (JetStream, troupe's nats.conf) unless --nats-url "
            "or TROUPE_NATS_URL names a running server, then each actor as its own process, "
            "restarting crashed actors with backoff. Ctrl-C stops everything cleanly."
        ),
    )
    p.add_argument(
        "--state-dir",
        default=".troupe",
        metavar="DIR",
        help="JetStream files, logs and secrets (default .troupe/)",
    )
    p.add_argument("--port", type=int, default=4222, help="embedded server port (default 4222)")
    p.add_argument(
        "--nats-url", metavar="URL", help="use this running NATS server instead of starting one"
    )
    p.add_argument(
        "--detach",
        action="store_true",
        help="run in the background; return once every actor answers $SRV.PING",
    )
    p.add_argument(
        "--ready-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for the actors to answer (default 60)",
    )
    p.add_argument(
        "--templates",
        action="append",
        metavar="DIR",
        help="extra pipeline template directory for the task manager "
        "(repeatable; sets TROUPE_TEMPLATES)",
    )
    p.set_defaults(handler=_up_command)

    p = sub.add_parser(
        "down",
        help="stop a troupe started with 'troupe up --detach'",
        description="Stop a detached troupe: drain the actors, stop the server.",
    )
    p.add_argument(
        "--state-dir",
        default=".troupe",
        metavar="DIR",
        help="state directory the troupe was started with (default .troupe/)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for it to stop (default 60)",
    )
    p.set_defaults(handler=_down)

    p = sub.add_parser(
        "demo",
        help="start a troupe, run the bundled example pipeline, print the result, stop",
        description=(
            "Start nats-server and every actor as processes on a free port, submit the "
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
    p.set_defaults(handler=_demo_command)

"""``troupe up --detach``: run the troupe in a background process, return once it answers.

The background process is ``troupe up`` itself in a new session, its output in
``troupe.log`` in the state directory; it records its pid and NATS URL in the
pid file that ``troupe down`` reads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from actors.cli import creds
from actors.cli.creds import PID_FILE
from actors.cli.gateway_http import announce_gateway, http_env
from actors.cli.options import connection_config
from actors.runtime.agent_logins import process_alive, read_pid
from actors.runtime.errors import ConnectError, TroupeError
from actors.runtime.launcher import Member, ping_actors
from actors.runtime.tls import find_ca

__all__ = ["detach"]


def _detach_argv(args: argparse.Namespace, members: list[Member], state_dir: Path) -> list[str]:
    """The ``troupe up`` command a detached troupe runs in the background."""
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
    if args.cluster:
        argv += ["--cluster", str(args.cluster)]
    if args.tls:
        argv.append("--tls")
    argv += [
        f"--{k.lower().replace('troupe_gateway_', 'http-')}={v}" for k, v in http_env(args).items()
    ]
    for templates in args.templates or ():
        argv += ["--templates", str(Path(templates).resolve())]
    for member in dict.fromkeys(members):
        if member.spec != member.name or member.role != member.name:
            argv += ["--actor", member.spec]
    if args.replicas:
        argv += ["--replicas", args.replicas]
    return argv


def detach(args: argparse.Namespace, members: list[Member]) -> int:
    """Start ``troupe up`` in the background; return 0 once every actor answers, else 1."""
    state_dir = Path(args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    pid_file = state_dir / PID_FILE
    running = read_pid(pid_file)
    if running is not None and process_alive(running):
        print(
            f"troupe up: already running (pid file {pid_file}); 'troupe down' stops it",
            file=sys.stderr,
        )
        return 1
    argv = _detach_argv(args, members, state_dir)
    names = [m.name for m in members]
    env = {**os.environ, "TROUPE_ACTORS": ""}  # the user actors are passed as --actor
    log_path = state_dir / "troupe.log"
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + args.ready_timeout
    scheme = "tls" if args.tls else "nats"
    url = args.nats_url or os.environ.get("TROUPE_NATS_URL") or f"{scheme}://127.0.0.1:{args.port}"
    while time.monotonic() < deadline:
        if args.cluster:
            # The nodes' ports are the child's to choose: it writes their URLs in its pid file.
            url = creds.troupe_url(state_dir) if pid_file.exists() else url
        ca = find_ca(state_dir) if args.tls else None  # made by the child on first start
        config = connection_config(
            argparse.Namespace(nats_url=url, ca=str(ca) if ca else None, state_dir=state_dir)
        )
        if proc.poll() is not None:
            print(
                f"troupe up: failed to start (exit {proc.returncode}); see {log_path}:",
                file=sys.stderr,
            )
            print(log_path.read_text(errors="replace")[-2000:], file=sys.stderr)
            return 1
        with contextlib.suppress(ConnectError, TroupeError, OSError):
            counts = asyncio.run(ping_actors(config, timeout=0.5))
            if all(counts.get(name) for name in names):
                print(f"NATS listening on {url}")
                print(
                    f"troupe up: {len(names)} actors running in the background "
                    f"(pid {proc.pid}, log {log_path}); 'troupe down' stops them"
                )
                if not (args.nats_url or os.environ.get("TROUPE_NATS_URL")):
                    print(creds.how_to_connect(state_dir))
                if "gateway" in names:
                    asyncio.run(announce_gateway(url, state_dir))
                return 0
        time.sleep(0.3)
    print(
        f"troupe up: actors not ready after {args.ready_timeout:.0f}s; stopping what started;"
        f" see {log_path}",
        file=sys.stderr,
    )
    _stop_session(proc)
    return 1


def _stop_session(proc: subprocess.Popen[bytes]) -> None:
    """Stop a detached troupe that never became ready: SIGTERM its session, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

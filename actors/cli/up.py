"""``troupe up``: the embedded nats-server (or a loopback cluster) and every actor.

In the foreground, ``troupe up`` supervises the troupe until SIGTERM or Ctrl-C,
reporting each restart and each actor that gave up; with ``--detach`` it hands
the same command to a background process (:mod:`actors.cli.detach`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from actors.cli import creds
from actors.cli.creds import PID_FILE
from actors.cli.detach import detach
from actors.cli.gateway_http import add_http_options, announce_gateway, http_env
from actors.cli.init import troupe_topology
from actors.roster import ActorSpecError, build_roster, user_actor_specs
from actors.runtime import cluster
from actors.runtime.errors import ServerError, TroupeError
from actors.runtime.launcher import Member, Troupe

__all__ = ["parse_replicas", "register"]


def parse_replicas(text: str | None) -> dict[str, int]:
    """Parse ``--replicas pipeline_runner=3,status_tracker=2`` into a dict.

    Raises:
        ValueError: a pair is not ``NAME=N`` with N from 1 to 16.
    """
    counts: dict[str, int] = {}
    for pair in (text or "").split(","):
        if not pair.strip():
            continue
        name, sep, number = pair.strip().partition("=")
        if not sep or not name or not number.isdigit() or not 1 <= int(number) <= 16:
            raise ValueError(f"--replicas {pair.strip()!r} is not ACTOR=N with N from 1 to 16")
        counts[name] = int(number)
    return counts


def _roster(args: argparse.Namespace) -> list[Member]:
    """The six built-in actors plus ``--actor`` and ``TROUPE_ACTORS`` (exits 2 on a bad spec),
    each repeated as often as ``--replicas`` asks."""
    try:
        members = build_roster([*user_actor_specs(), *(args.actor or ())])
        replicas = parse_replicas(getattr(args, "replicas", None))
    except (ActorSpecError, ValueError) as exc:
        print(f"troupe up: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    unknown = sorted(set(replicas) - {m.name for m in members})
    if unknown:
        print(f"troupe up: --replicas names no actor of this troupe: {unknown}", file=sys.stderr)
        raise SystemExit(2)
    return [m for m in members for _ in range(replicas.get(m.name, 1))]


def _troupe(
    args: argparse.Namespace, env: dict[str, str], members: list[Member], url: str | None
) -> Troupe:
    """The troupe ``troupe up`` runs: on one embedded server, a loopback cluster, or ``url``."""
    state_dir = Path(args.state_dir)
    topology = troupe_topology(members, state_dir)
    if not args.cluster:
        return Troupe(
            members,
            state_dir=state_dir,
            port=args.port,
            nats_url=url,
            env=env,
            tls=args.tls,
            topology=topology,
        )
    replicas = cluster.cluster_replicas(args.cluster, env)
    return cluster.ClusterTroupe(
        members,
        state_dir=state_dir,
        nodes=args.cluster,
        port=args.port,
        env=env,
        tls=args.tls,
        topology=topology.with_replicas(replicas),
    )


async def _up(args: argparse.Namespace, env: dict[str, str], members: list[Member]) -> int:
    state_dir = Path(args.state_dir)
    url = None if args.cluster else args.nats_url or os.environ.get("TROUPE_NATS_URL")
    names = [m.name for m in members]
    troupe = _troupe(args, env, members, url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    pid_file = state_dir / PID_FILE
    try:
        async with troupe:
            where = "external server" if url else "embedded nats-server"
            if isinstance(troupe, cluster.ClusterTroupe):
                where = "embedded cluster: " + cluster.describe_cluster(troupe, troupe.topology)
            print(f"NATS listening on {troupe.url} ({where}, state in {state_dir})", flush=True)
            await asyncio.to_thread(_write_pid_file, pid_file, troupe.url)
            halt = asyncio.Event()
            watcher = asyncio.create_task(_halt_on_gave_up(troupe, stop, halt))
            try:
                ready = await troupe.wait_ready_or_stop(halt, timeout=args.ready_timeout)
            except TroupeError as exc:
                print(f"troupe up: {exc}", file=sys.stderr, flush=True)
            else:
                if not ready and not stop.is_set():
                    _report_gave_up(troupe)
                    print("troupe up: stopping actors and server...", flush=True)
                    return 1
                if ready:
                    print(
                        f"troupe up: {len(names)} actors running ({', '.join(names)}); "
                        f"logs in {state_dir / 'logs'}; Ctrl-C stops",
                        flush=True,
                    )
                    if not url:
                        print(creds.how_to_connect(state_dir), flush=True)
                    if "gateway" in names:
                        await announce_gateway(troupe.url, state_dir)
            finally:
                watcher.cancel()
            reporter = asyncio.create_task(_report_restarts(troupe, stop))
            await stop.wait()
            await reporter
            print("troupe up: stopping actors and server...", flush=True)
    except TroupeError as exc:
        print(f"troupe up: {exc}", file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
    print("troupe up: stopped", flush=True)
    return 0


async def _halt_on_gave_up(
    troupe: Troupe, stop: asyncio.Event, halt: asyncio.Event, every: float = 0.2
) -> None:
    """Set ``halt`` once ``stop`` is set or a child gave up (exited with a config error)."""
    while not stop.is_set() and not any(c.gave_up for c in troupe.restarts().values()):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
    halt.set()


def _report_gave_up(troupe: Troupe) -> None:
    """Print each child that is not restarted, with the last line of its log."""
    for name, child in sorted(troupe.restarts().items()):
        if not child.gave_up:
            continue
        log_file = child.spec.log_file
        lines = log_file.read_text(errors="replace").splitlines() if log_file else []
        last = next((line for line in reversed(lines) if line.strip()), "")
        print(
            f"troupe up: {name} cannot start ({child.last_exit}, not restarted): {last}",
            file=sys.stderr,
            flush=True,
        )


async def _report_restarts(troupe: Troupe, stop: asyncio.Event, every: float = 0.5) -> None:
    """Print each restart of a supervised child (an actor or the server) with its cause."""
    seen: dict[str, int] = {}
    gave_up: set[str] = set()
    while not stop.is_set():
        for name, child in troupe.restarts().items():
            if child.gave_up and name not in gave_up:
                gave_up.add(name)
                print(
                    f"troupe up: {name} not restarted ({child.last_exit}); see its log", flush=True
                )
            if child.restarts > seen.get(name, 0):
                seen[name] = child.restarts
                print(
                    f"troupe up: restarted {name} ({child.last_exit}; "
                    f"{child.restarts} restart{'s' if child.restarts != 1 else ''} so far)",
                    flush=True,
                )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
    total = sum(seen.values())
    if total:
        counts = ", ".join(f"{name} {n}" for name, n in sorted(seen.items()))
        print(f"troupe up: {total} restarts in all ({counts})", flush=True)


def _write_pid_file(pid_file: Path, url: str) -> None:
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{os.getpid()}\n{url}\n")


def _up_command(args: argparse.Namespace) -> int:
    # Everything troupe writes (state, secrets, logs) is for its owner's eyes only.
    os.umask(0o077)
    members = _roster(args)
    if args.cluster:
        problem = _cluster_problem(args)
        if problem:
            print(f"troupe up: {problem}", file=sys.stderr)
            return 2
    if args.detach:
        return detach(args, members)
    env = {**os.environ, **http_env(args)}
    env.pop("TROUPE_ACTORS", None)
    if args.templates:
        env["TROUPE_TEMPLATES"] = os.pathsep.join(str(Path(t).resolve()) for t in args.templates)
    try:
        return asyncio.run(_up(args, env, members))
    except ServerError as exc:
        print(f"troupe up: {exc}", file=sys.stderr)
        return 1


def _cluster_problem(args: argparse.Namespace) -> str | None:
    """Why ``--cluster`` cannot work with the other options given, if it cannot."""
    if args.nats_url:
        return "--cluster runs its own nodes; drop --nats-url"
    try:
        cluster.plan_nodes(Path(args.state_dir), args.cluster, args.port)
        cluster.cluster_replicas(args.cluster)
    except ValueError as exc:
        return str(exc)
    return None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``up``."""
    p = sub.add_parser(
        "up",
        help="start nats-server and every actor as its own process",
        description=(
            "Start the embedded nats-server (JetStream, troupe's nats.conf) unless --nats-url "
            "or TROUPE_NATS_URL names a running server (which must answer within 5 s), then "
            "each actor as its own process, restarting crashed actors and a crashed server "
            "(same port and state) with a short backoff, and reporting each restart. User "
            "actors given with --actor or TROUPE_ACTORS join the six and log in as the "
            "'actor' role. An actor that exits with a configuration error (exit 78, such as "
            "the gateway's HTTP port in use) is not restarted: troupe up names it and exits 1. "
            "SIGTERM or Ctrl-C stops everything cleanly."
        ),
    )
    creds.add_state_dir_option(p, help_text="JetStream files, logs and secrets")
    p.add_argument("--port", type=int, default=4222, help="embedded server port (default 4222)")
    p.add_argument(
        "--nats-url", metavar="URL", help="use this running NATS server instead of starting one"
    )
    p.add_argument(
        "--cluster",
        type=int,
        metavar="N",
        help=f"run N nats-server nodes (3 to {cluster.MAX_NODES}) as a loopback cluster with "
        "route authorization, client ports from --port upward (0: free ones), workflow data "
        "replicated TROUPE_REPLICAS times (default 3); see docs/guides/cluster.md",
    )
    p.add_argument(
        "--detach",
        action="store_true",
        help="run in the background; return once every actor answers $SRV.PING",
    )
    p.add_argument(
        "--tls",
        action="store_true",
        help="require TLS: make a local CA and a server certificate in the state directory "
        "(tls/ca.pem is what clients verify with; the CLI finds it there)",
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
    p.add_argument(
        "--actor",
        action="append",
        metavar="SPEC",
        help="also run this user actor, package.module:Class or file.py:Class "
        "(repeatable; env TROUPE_ACTORS, comma-separated)",
    )
    p.add_argument(
        "--replicas",
        metavar="ACTOR=N,...",
        help="run N processes of an actor, e.g. pipeline_runner=3,status_tracker=2",
    )
    add_http_options(p)
    p.set_defaults(handler=_up_command)

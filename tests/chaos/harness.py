"""Kill-everything harness: a real ``troupe up`` under random SIGKILLs while workflows run.

A :class:`Cluster` runs ``python -m actors up`` (the supervisor, the embedded
nats-server and the five actors as processes). :func:`run_chaos` submits
workflows whose steps append ``start``/``end`` lines (with ``TROUPE_ATTEMPT``
and a timestamp) to one side-effect file per step (named by
``TROUPE_STEP_KEY``) while a killer SIGKILLs random processes of the kinds in
:attr:`ChaosConfig.kinds`: any actor, nats-server, or the supervisor itself
(which takes its children down; the harness starts ``troupe up`` again). Then
it waits for every workflow to end and hands everything to
:func:`tests.chaos.checker.classify`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from actors.runtime.bus import Bus
from actors.runtime.config import ConnectionConfig
from actors.runtime.credentials import password_path
from actors.runtime.launcher import ping_actors
from actors.runtime.server import free_port
from protocols.pipelines import PipelineSpec, StepSpec
from protocols.tasks import SUBMIT_SUBJECT, TaskSubmitted
from tests.chaos.checker import Observed, collect

__all__ = ["ACTOR_KINDS", "ChaosConfig", "Cluster", "Run", "run_chaos"]

REPO = Path(__file__).resolve().parents[2]

ACTOR_KINDS = (
    "pipeline_runner",
    "task_manager",
    "status_tracker",
    "breaker_supervisor",
    "agent_registry",
)


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    """How hard to shake the troupe.

    Attributes:
        workflows: workflows submitted.
        steps: steps per workflow (a chain).
        step_seconds: how long each step sleeps between its two lines.
        kills: SIGKILLs to deliver.
        kill_interval: mean seconds between two kills (exponentially distributed).
        kinds: process kinds to choose from (actors, ``nats-server``, ``supervisor``),
            each with a weight.
        submit_rate: workflows submitted per second.
        lease_ttl: the runners' lease TTL (seconds).
        timeout: seconds to wait for every workflow to end after the last kill.
        seed: random seed (kills are reproducible in kind and timing).
    """

    workflows: int = 30
    steps: int = 2
    step_seconds: float = 0.3
    kills: int = 8
    kill_interval: float = 1.5
    kinds: dict[str, float] = field(
        default_factory=lambda: {
            "pipeline_runner": 4.0,
            "task_manager": 1.0,
            "status_tracker": 1.0,
            "breaker_supervisor": 0.5,
            "agent_registry": 0.5,
            "nats-server": 1.0,
            "supervisor": 0.5,
        }
    )
    submit_rate: float = 20.0
    lease_ttl: int = 2
    timeout: float = 240.0
    seed: int = 1


@dataclass(slots=True)
class Run:
    """What one chaos run did."""

    kills: dict[str, int] = field(default_factory=dict)
    server_back_s: list[float] = field(default_factory=list)
    """Seconds until nats-server listened again after each of its kills."""
    observed: Observed | None = None
    elapsed_s: float = 0.0


class Cluster:
    """``troupe up`` as a subprocess, restartable; its processes by kind.

    Args:
        workdir: state directory, logs and side-effect files live here.
        lease_ttl: runners' lease TTL.
        up_args: further ``troupe up`` arguments (e.g. ``--replicas``).
    """

    def __init__(self, workdir: Path, lease_ttl: int, up_args: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.up_args = up_args
        self.state_dir = workdir / "state"
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.lease_ttl = lease_ttl
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 120.0) -> None:
        """Start ``troupe up`` and wait until every actor answers."""
        self.starts += 1
        log = (self.workdir / f"up-{self.starts}.log").open("wb")
        env = {
            **os.environ,
            "TROUPE_NATS_URL": "",
            "TROUPE_ACTORS": "",
            "TROUPE_RUNNER_BACKEND": "local",
            "TROUPE_RUNNER_LEASE_TTL": str(self.lease_ttl),
            "TROUPE_RUNNER_ACK_WAIT": "5",
            "TROUPE_RUNNER_MAX_DELIVER": "1000",
            "TROUPE_STEP_USER": "",  # steps write the side-effect files of the harness
            "TROUPE_WORKSPACES": str(self.workdir / "ws"),
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "actors",
                "up",
                "--state-dir",
                str(self.state_dir),
                "--port",
                str(self.port),
                "--ready-timeout",
                str(timeout),
                *self.up_args,
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        path = self.workdir / f"up-{self.starts}.log"
        # Ready once the actors under test answer (other members of the roster may lag).
        while not self._answering():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"troupe up did not start:\n{path.read_text()[-3000:]}")
            time.sleep(0.2)

    def admin(self) -> ConnectionConfig:
        """Connection settings of the ``admin`` role of this troupe."""
        return ConnectionConfig(
            url=self.url,
            user="admin",
            password_file=str(password_path(self.state_dir, "admin")),
            connect_timeout=10.0,
        )

    def _answering(self) -> bool:
        if not password_path(self.state_dir, "admin").exists():
            return False
        try:
            counts = asyncio.run(ping_actors(self.admin().for_client(), timeout=0.5))
        except Exception:  # not up yet
            return False
        return all(counts.get(kind) for kind in ACTOR_KINDS)

    def pids(self, kind: str) -> list[int]:
        """Live pids of one kind: an actor name, ``nats-server`` or ``supervisor``."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        if kind == "supervisor":
            return [self.proc.pid]
        found = []
        try:
            children = psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []
        for child in children:
            with contextlib.suppress(psutil.Error):
                cmd = " ".join(child.cmdline())
                if child.status() == psutil.STATUS_ZOMBIE:
                    continue
                if (kind == "nats-server" and "nats-server" in cmd) or cmd.endswith(
                    f"actors run {kind}"
                ):
                    found.append(child.pid)
        return found

    def stop(self) -> None:
        """Stop ``troupe up`` (SIGTERM, then SIGKILL)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


async def _listening(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


def pipeline(side: Path, steps: int, seconds: float) -> PipelineSpec:
    """A chain of ``steps`` steps, each recording its start and end in its own file."""
    line = 'echo "{0} $TROUPE_ATTEMPT $(date +%s.%N)" >> ' + f'"{side}/$TROUPE_STEP_KEY"'
    specs = []
    for i in range(steps):
        specs.append(
            StepSpec(
                name=f"s{i}",
                run=f"{line.format('start')}; sleep {seconds}; {line.format('end')}",
                needs=[f"s{i - 1}"] if i else [],
                cache=False,
                backend="local",
            )
        )
    return PipelineSpec(name="chaos", steps=specs, backend="local")


async def _submit(bus: Bus, ids: list[str], spec: PipelineSpec, rate: float) -> None:
    for wf in ids:
        task = TaskSubmitted(task_id=wf, pipeline=spec, submitted_at=time.time())
        while True:
            try:
                await bus.send(SUBMIT_SUBJECT, task, msg_id=wf)
                break
            except Exception:
                await asyncio.sleep(0.5)
        await asyncio.sleep(1.0 / rate)


async def _killer(cluster: Cluster, config: ChaosConfig, run: Run) -> None:
    rng = random.Random(config.seed)
    kinds, weights = zip(*config.kinds.items(), strict=True)
    done = 0
    while done < config.kills:
        await asyncio.sleep(rng.expovariate(1.0 / config.kill_interval))
        kind = rng.choices(kinds, weights)[0]
        pids = cluster.pids(kind)
        if not pids:
            continue
        os.kill(rng.choice(pids), signal.SIGKILL)
        done += 1
        run.kills[kind] = run.kills.get(kind, 0) + 1
        if kind == "supervisor":
            assert cluster.proc is not None
            cluster.proc.wait(10)
            await asyncio.to_thread(cluster.start)
        elif kind == "nats-server":
            killed = time.monotonic()
            while not await _listening(cluster.port):
                await asyncio.sleep(0.05)
            run.server_back_s.append(time.monotonic() - killed)


async def run_chaos(config: ChaosConfig, workdir: Path) -> Run:
    """Run the troupe under ``config``'s kills; return what was observed."""
    started = time.monotonic()
    side = workdir / "side"
    side.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(workdir, config.lease_ttl)
    await asyncio.to_thread(cluster.start)
    run = Run()
    ids = [f"chaos-{config.seed}-{i:05d}" for i in range(config.workflows)]
    try:
        bus = await Bus.connect(cluster.admin())
        try:
            spec = pipeline(side, config.steps, config.step_seconds)
            await asyncio.gather(
                _submit(bus, ids, spec, config.submit_rate), _killer(cluster, config, run)
            )
            run.observed = await collect(bus, ids, side, timeout=config.timeout)
        finally:
            await bus.close()
    finally:
        await asyncio.to_thread(cluster.stop)
    run.elapsed_s = time.monotonic() - started
    return run

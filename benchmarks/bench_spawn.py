"""What starting one step costs: the local backend's old and new ways against a bare spawn.

Measured in this process after importing the pipeline runner (so the parent
is about as large as a runner), and again with 128 MB more of touched memory
(a full ``fork`` copies the parent's page tables, so its cost grows with the
parent), each kind running ``true`` with a working directory, its own
environment, piped output and a new session, in rounds taken in turn:

* **fork (preexec_fn)**: :meth:`LocalBackend.execute` of the step ``run =
  "true"`` with ``fast_spawn=False``, the old way: death signal and
  ``setrlimit`` in a ``preexec_fn``, which makes CPython ``fork`` the runner
  and run Python in the child, which execs ``/bin/sh -c true``;
* **vfork + shim**: the same step as the runner starts it, the new way:
  ``vfork``, then ``setpriv`` (death signal), then ``sh`` (parent check,
  ``ulimit``) running the step's script (see
  :mod:`actors.pipeline_runner.backends.spawn`);
* **vfork + shim, argv**: the step ``run = ["true"]``: the shim's shell execs
  ``true`` (one exec more);
* **bare**: ``asyncio.create_subprocess_exec`` of ``true`` with no set-up at
  all (``vfork``): the floor, with neither limits nor death signal.

Latency is wall time per spawn-and-wait (p50 and p99 of single spawns); CPU
is per spawn, in this process (``RUSAGE_SELF``, which includes the event
loop's work) and in the reaped children (``RUSAGE_CHILDREN``: shim and step),
medians of the rounds.
"""

from __future__ import annotations

import asyncio
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil

from actors.pipeline_runner.actor import PipelineRunner  # noqa: F401  (a runner-sized parent)
from actors.pipeline_runner.backends.base import StepRequest, StopSignal
from actors.pipeline_runner.backends.local import LocalBackend
from actors.pipeline_runner.config import Limits
from actors.pipeline_runner.state import command_argv
from protocols.pipelines import StepSpec

Report = Callable[..., None]

ROUNDS = 7
PER_ROUND = 15
BALLAST_MB = (0, 128)
OLD, NEW, NEW_ARGV, BARE = "fork (preexec_fn)", "vfork + shim", "vfork + shim, argv", "bare"


def _kinds(workdir: Path) -> dict[str, Callable[[], Awaitable[None]]]:
    true = shutil.which("true") or "/bin/true"

    def backend_kind(backend: LocalBackend, run: str | list[str]) -> Callable[[], Awaitable[None]]:
        request = StepRequest(
            workflow_id="bench",
            step=StepSpec(name="noop", run=run),
            argv=command_argv(run),
            env={"PATH": "/usr/bin:/bin", "STEP": "1"},
            workdir=workdir,
            timeout=30.0,
        )

        async def spawn() -> None:
            result = await backend.execute(request, StopSignal(), _no_events)
            if result.state != "succeeded":
                raise RuntimeError(f"local backend: step ended {result.state}: {result.reason}")

        return spawn

    async def bare() -> None:
        proc = await asyncio.create_subprocess_exec(
            true,
            cwd=workdir,
            env={"STEP": "1"},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"true failed ({proc.returncode})")

    return {
        OLD: backend_kind(LocalBackend(limits=Limits(), fast_spawn=False), "true"),
        NEW: backend_kind(LocalBackend(limits=Limits()), "true"),
        NEW_ARGV: backend_kind(LocalBackend(limits=Limits()), [true]),
        BARE: bare,
    }


async def _no_events(*_: object) -> None:
    return None


def _cpu_ms() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (own.ru_utime + own.ru_stime) * 1000, (kids.ru_utime + kids.ru_stime) * 1000


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


async def _measure(kinds: dict[str, Callable[[], Awaitable[None]]]) -> dict[str, dict[str, float]]:
    latency: dict[str, list[float]] = {k: [] for k in kinds}
    parent: dict[str, list[float]] = {k: [] for k in kinds}
    child: dict[str, list[float]] = {k: [] for k in kinds}
    for spawn in kinds.values():
        await spawn()  # warm up
    names = list(kinds)
    for r in range(ROUNDS):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            own0, kids0 = _cpu_ms()
            for _ in range(PER_ROUND):
                wall0 = time.perf_counter()
                await kinds[name]()
                latency[name].append((time.perf_counter() - wall0) * 1000)
            own1, kids1 = _cpu_ms()
            parent[name].append((own1 - own0) / PER_ROUND)
            child[name].append((kids1 - kids0) / PER_ROUND)
    return {
        name: {
            "p50": statistics.median(latency[name]),
            "p99": _p99(latency[name]),
            "parent": statistics.median(parent[name]),
            "child": statistics.median(child[name]),
        }
        for name in kinds
    }


async def run(report: Report) -> dict[int, dict[str, dict[str, float]]]:
    """Measure and report each way of spawning a step, at each parent size; return the figures."""
    results: dict[int, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="troupe-bench-spawn-") as tmp:
        kinds = _kinds(Path(tmp))
        for extra in BALLAST_MB:
            ballast = bytearray(b"\x01" * (extra << 20))  # touched, so really resident
            rss = psutil.Process().memory_info().rss / 2**20
            figures = results[extra] = await _measure(kinds)
            del ballast
            note = f"parent RSS {rss:.0f} MB"
            for name, fig in figures.items():
                report(f"spawn `true`, {name}: latency p50", fig["p50"], "ms", note)
                report(f"spawn `true`, {name}: latency p99", fig["p99"], "ms", note)
                report(f"spawn `true`, {name}: parent CPU", fig["parent"], "ms", note)
                report(f"spawn `true`, {name}: child CPU", fig["child"], "ms", "shim + step")
            old, new, bare = figures[OLD], figures[NEW], figures[BARE]
            for what in ("p50", "parent"):
                label = "latency p50" if what == "p50" else "parent CPU"
                report(f"spawn, new / old: {label}", new[what] / old[what], "x", note)
                report(f"spawn, new / bare: {label}", new[what] / bare[what], "x", note)
    return results


def _table(results: dict[int, dict[str, dict[str, float]]]) -> None:
    for extra, figures in results.items():
        print(f"\nparent + {extra} MB of ballast")
        print(f"{'ms per spawn':<14}" + "".join(f"{k:>20}" for k in figures) + f"{'new/old':>10}")
        for row in ("p50", "p99", "parent", "child"):
            cells = "".join(f"{f[row]:>20.2f}" for f in figures.values())
            ratio = figures[NEW][row] / figures[OLD][row]
            print(f"{row:<14}{cells}{ratio:>10.2f}")


if __name__ == "__main__":
    _table(asyncio.run(run(lambda *_: None)))

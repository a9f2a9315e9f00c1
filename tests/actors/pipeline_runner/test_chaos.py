"""Pipeline runners as real processes: SIGKILL mid-pipeline, and two runners sharing work."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.runtime.bus import Bus
from actors.runtime.testing import eventually
from actors.topology import RESULTS
from protocols.pipelines import StepSpec
from protocols.status import StepTransition, WorkflowTransition
from tests.actors.pipeline_runner.conftest import (
    make_run,
    publish,
    status_events,
    stored_result,
    wait_result,
)

pytestmark = [pytest.mark.integration, pytest.mark.processes]

ROOT = Path(__file__).resolve().parents[3]


class Runners:
    """Pipeline runner processes (``troupe run pipeline_runner``) of one test."""

    def __init__(self, nats_url: str, tmp_path: Path) -> None:
        self.nats_url = nats_url
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = dict(os.environ) | {
            "TROUPE_RUNNER_ACK_WAIT": "2",
            "TROUPE_WORKSPACES": str(tmp_path / "ws"),
            "TROUPE_RUNNER_BACKEND": "local",
            "TROUPE_RUNNER_CONCURRENCY": "8",
            "TROUPE_RUNNER_LEASE_TTL": "2",
            "TROUPE_STEP_USER": "",  # steps write side-effect files into the test's directory
        }

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start one more runner process, its output in the test's directory."""
        with (self.tmp_path / f"runner-{len(self.procs)}.log").open("wb") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "actors",
                    "run",
                    "pipeline_runner",
                    "--nats-url",
                    self.nats_url,
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        """Terminate every runner still alive (SIGKILL after 15 s)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@contextlib.contextmanager
def runner_processes(nats_url: str, tmp_path: Path, count: int = 1) -> Iterator[Runners]:
    """Start ``count`` runner processes; stop them all on exit."""
    runners = Runners(nats_url, tmp_path)
    for _ in range(count):
        runners.spawn()
    try:
        yield runners
    finally:
        runners.stop()


def lines(path: Path) -> int:
    """Number of lines in ``path`` (0 if missing)."""
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.chaos
async def test_sigkilled_runner_resumes_without_re_running_finished_steps(
    bus: Bus, nats_url: str, tmp_path: Path
) -> None:
    """After SIGKILL and restart the workflow completes once; finished steps do not rerun."""
    out = tmp_path / "side"
    out.mkdir()
    steps = [
        StepSpec(
            name="s1", run=f"echo 1 >> {out}/s1; echo data > f.txt", outputs=["f.txt"], cache=False
        ),
        StepSpec(
            name="s2",
            run=f"echo $TROUPE_ATTEMPT $TROUPE_STEP_KEY >> {out}/s2.start; sleep 3; "
            f"cat f.txt > g.txt; echo 1 >> {out}/s2",
            needs=["s1"],
            inputs=["f.txt"],
            outputs=["g.txt"],
            cache=False,
        ),
        StepSpec(
            name="s3",
            run=f"cat g.txt; echo 1 >> {out}/s3",
            needs=["s2"],
            inputs=["g.txt"],
            cache=False,
        ),
    ]
    with runner_processes(nats_url, tmp_path) as runners:
        await publish(bus, make_run("wf-kill", steps))

        async def s2_started() -> bool:
            return lines(out / "s2.start") == 1

        await eventually(s2_started, timeout=30)
        runners.procs[0].send_signal(signal.SIGKILL)
        runners.procs[0].wait(5)
        assert await stored_result(bus, "wf-kill") is None
        runners.spawn()
        result = await wait_result(bus, "wf-kill", timeout=40)
    assert result.state == "succeeded", result
    assert result.steps[-1].stdout_tail == "data"
    assert lines(out / "s1") == 1, "a finished step ran again"
    assert lines(out / "s2.start") == 2, "the interrupted step runs again"
    assert lines(out / "s2") == 1
    assert lines(out / "s3") == 1
    events = await status_events(bus, "wf-kill")
    terminal = [e for e in events if isinstance(e, WorkflowTransition) and e.state == "succeeded"]
    assert len(terminal) == 1
    # The re-run is visible: its own attempt, the reason, one stable step key.
    assert (out / "s2.start").read_text().split("\n")[:2] == ["1 wf-kill.s2", "2 wf-kill.s2"]
    s2 = next(s for s in result.steps if s.name == "s2")
    assert (s2.attempt, s2.attempt_reason) == (2, "runner_lost")
    runs = [
        (e.step_attempt, e.attempt_reason)
        for e in events
        if isinstance(e, StepTransition) and e.step == "s2" and e.state == "running"
    ]
    assert runs == [(1, "first"), (2, "runner_lost")]


@pytest.mark.chaos
async def test_step_whose_runner_died_mid_step_runs_again_visibly_as_attempt_2(
    bus: Bus, nats_url: str, tmp_path: Path
) -> None:
    """A step whose effect happened but whose end was never recorded runs again, visibly."""
    out = tmp_path / "side"
    out.mkdir()
    # The step's effect happens, then the runner dies before the step's end is recorded.
    gate = tmp_path / "gate"
    steps = [
        StepSpec(
            name="effect",
            run=f"echo $TROUPE_ATTEMPT >> {out}/effect; "
            f"if [ $TROUPE_ATTEMPT = 1 ]; then touch {gate}; sleep 30; fi",
            cache=False,
        )
    ]
    with runner_processes(nats_url, tmp_path) as runners:
        await publish(bus, make_run("wf-lost", steps))
        await eventually(gate.exists, timeout=30)
        runners.procs[0].send_signal(signal.SIGKILL)
        runners.procs[0].wait(5)
        runners.spawn()
        result = await wait_result(bus, "wf-lost", timeout=40)
    assert result.state == "succeeded"
    assert (out / "effect").read_text() == "1\n2\n"
    assert (result.steps[0].attempt, result.steps[0].attempt_reason) == (2, "runner_lost")
    events = await status_events(bus, "wf-lost")
    finished = [
        (e.step_attempt, e.attempt_reason)
        for e in events
        if isinstance(e, StepTransition) and e.state in ("running", "succeeded")
    ]
    assert finished == [(1, "first"), (2, "runner_lost"), (2, "runner_lost")]


async def test_two_runners_share_100_workflows_each_completing_exactly_once(
    bus: Bus, nats_url: str, tmp_path: Path
) -> None:
    """Every workflow completes once: zero lost, duplicated or unexpected."""
    out = tmp_path / "done"
    out.mkdir()
    ids = [f"wf-{i:03d}" for i in range(100)]
    with runner_processes(nats_url, tmp_path, count=2) as runners:
        await asyncio.gather(
            *(
                publish(bus, make_run(wf, [StepSpec(name="only", run=f"echo 1 >> {out}/{wf}")]))
                for wf in ids
            )
        )
        kv = await bus.key_value(RESULTS)

        async def all_stored() -> bool:
            try:
                keys = await kv.keys()
            except Exception:
                return False
            return len(keys) >= len(ids)

        await eventually(all_stored, timeout=60, interval=0.2)
        assert all(p.poll() is None for p in runners.procs), "a runner died"
    verdict: dict[str, list[str]] = {"ok": [], "lost": [], "duplicated": [], "unexpected": []}
    for wf in ids:
        result = await stored_result(bus, wf)
        runs = lines(out / wf)
        if result is None:
            verdict["lost"].append(wf)
        elif runs > 1:
            verdict["duplicated"].append(wf)
        elif result.state != "succeeded" or runs != 1:
            verdict["unexpected"].append(wf)
        else:
            verdict["ok"].append(wf)
    assert {k: v for k, v in verdict.items() if k != "ok" and v} == {}
    assert len(verdict["ok"]) == 100

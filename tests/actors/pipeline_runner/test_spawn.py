"""Starting a local step: no fork of the runner, and every guarantee of the forked start kept."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from actors.pipeline_runner.backends import LocalBackend, StepRequest, StopSignal
from actors.pipeline_runner.backends.spawn import find_shim, shim_argv
from actors.pipeline_runner.config import Limits
from actors.pipeline_runner.state import LineEvent, command_argv
from actors.runtime.testing import eventually
from protocols.pipelines import StepSpec

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

needs_shim = pytest.mark.skipif(find_shim() is None, reason="needs util-linux setpriv")
both_ways = pytest.mark.parametrize("fast", [pytest.param(True, marks=needs_shim), False])
_ROOT = Path(__file__).resolve().parents[3]

_forks = [0]
os.register_at_fork(before=lambda: _forks.__setitem__(0, _forks[0] + 1))

_RUNNER = """
import asyncio, os, sys
from pathlib import Path
from actors.pipeline_runner.backends import LocalBackend, StepRequest, StopSignal
from actors.pipeline_runner.backends.local import step_user
from protocols.pipelines import StepSpec

workspace, fast, user = Path(sys.argv[1]), sys.argv[2] == "fast", sys.argv[3] == "nobody"
workdir = workspace / "step"
workdir.mkdir(parents=True)
argv = ["/bin/sh", "-c", "echo $$ > pid.tmp && mv pid.tmp pid; exec sleep 60"]
request = StepRequest(workflow_id="wf", step=StepSpec(name="s", run=argv), argv=argv,
                      env={"PATH": "/usr/bin:/bin"}, workdir=workdir, timeout=None)
backend = LocalBackend(fast_spawn=fast, user=step_user("nobody") if user else None,
                       workspace_root=workspace)

async def ignore(event):
    pass

asyncio.run(backend.execute(request, StopSignal(), ignore))
"""


def request(tmp_path: Path, run: str | list[str], env: dict[str, str] | None = None) -> StepRequest:
    """A request running ``run`` in a fresh directory under ``tmp_path``."""
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    return StepRequest(
        workflow_id="wf",
        step=StepSpec(name="s", run=run),
        argv=command_argv(run),
        env=env if env is not None else {"PATH": "/usr/bin:/bin"},
        workdir=workdir,
        timeout=30.0,
    )


async def ignore(event: LineEvent) -> None:
    """Drop step reports."""


def _running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@needs_shim
async def test_a_step_starts_without_forking_the_runner(tmp_path: Path) -> None:
    """The fast path runs no Python in a forked child: the runner's fork hooks never run."""
    before = _forks[0]
    result = await LocalBackend().execute(request(tmp_path, ["true"]), StopSignal(), ignore)
    assert result.state == "succeeded", result.stderr_tail
    assert _forks[0] == before
    await LocalBackend(fast_spawn=False).execute(request(tmp_path, ["true"]), StopSignal(), ignore)
    assert _forks[0] == before + 1, "the forked start is the one that runs them"


@both_ways
async def test_every_limit_is_set_as_a_soft_limit(tmp_path: Path, fast: bool) -> None:
    """Address space, CPU time, open files and file size are in force; hard limits stay."""
    limits = Limits(memory_bytes=512 << 20, cpu_seconds=7, open_files=64, file_bytes=1 << 20)
    run = "ulimit -S -v; ulimit -S -t; ulimit -S -n; ulimit -S -f; ulimit -H -n"
    result = await LocalBackend(limits=limits, fast_spawn=fast).execute(
        request(tmp_path, run), StopSignal(), ignore
    )
    assert result.state == "succeeded", result.stderr_tail
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert result.stdout_tail.splitlines() == ["524288", "7", "64", "2048", str(hard)]


@needs_shim
async def test_limits_below_one_unit_round_to_one_unit_not_to_none(tmp_path: Path) -> None:
    """A file cap under one 512-byte block is one block, never zero (no writes at all)."""
    backend = LocalBackend(limits=Limits(file_bytes=100, memory_bytes=(512 << 20) + 5))
    result = await backend.execute(
        request(tmp_path, "ulimit -S -f; ulimit -S -v"), StopSignal(), ignore
    )
    assert result.stdout_tail.splitlines() == ["1", "524288"]


@both_ways
async def test_step_environment_is_exactly_the_one_given(tmp_path: Path, fast: bool) -> None:
    """Neither the runner's environment nor the shim's shell adds a variable."""
    env = {"PATH": "/usr/bin:/bin", "OWN": "1"}
    result = await LocalBackend(fast_spawn=fast).execute(
        request(tmp_path, ["env"], env=env), StopSignal(), ignore
    )
    assert sorted(result.stdout_tail.splitlines()) == ["OWN=1", "PATH=/usr/bin:/bin"]


@both_ways
async def test_a_program_that_cannot_start_fails_the_start_the_same_way(
    tmp_path: Path, fast: bool
) -> None:
    """A missing or non-executable program is a permanent start failure with its reason."""
    backend = LocalBackend(fast_spawn=fast)
    missing = await backend.execute(
        request(tmp_path, ["no-such-program-troupe"]), StopSignal(), ignore
    )
    assert (missing.state, missing.exit_code, missing.error_class) == ("failed", 127, "permanent")
    assert missing.reason == "cannot start 'no-such-program-troupe': No such file or directory"
    script = tmp_path / "work" / "script"
    script.write_text("#!/bin/sh\necho ran\n")
    script.chmod(0o644)
    denied = await backend.execute(request(tmp_path, ["./script"]), StopSignal(), ignore)
    assert denied.reason == "cannot start './script': Permission denied"
    script.chmod(0o755)
    ran = await backend.execute(request(tmp_path, ["./script"]), StopSignal(), ignore)
    assert ran.stdout_tail == "ran"


@needs_shim
def test_shim_ends_a_step_whose_parent_is_not_the_runner() -> None:
    """A runner that died before the death signal was set leaves a step that never runs."""
    shim = find_shim()
    assert shim is not None
    argv = ["sh", "-c", "echo ran"]
    ok = subprocess.run(
        shim_argv(shim, argv, limits=Limits(), user=None, runner=os.getpid()),
        capture_output=True,
        check=False,
    )
    assert (ok.returncode, ok.stdout) == (0, b"ran\n")
    orphan = subprocess.run(
        shim_argv(shim, argv, limits=Limits(), user=None, runner=1),
        capture_output=True,
        check=False,
    )
    assert orphan.returncode == -signal.SIGKILL
    assert orphan.stdout == b""


_USERS = [
    "self",
    pytest.param("nobody", marks=pytest.mark.skipif(os.geteuid() != 0, reason="root")),
]


@both_ways
@pytest.mark.parametrize("user", _USERS)
async def test_step_dies_with_a_sigkilled_runner(tmp_path: Path, fast: bool, user: str) -> None:
    """SIGKILL of the runner process takes its running step down with it."""
    workspace = tmp_path / "ws"
    runner = subprocess.Popen(
        [sys.executable, "-c", _RUNNER, str(workspace), "fast" if fast else "fork", user],
        cwd=_ROOT,
    )
    pid_file = workspace / "step" / "pid"
    step = 0
    try:
        await eventually(
            lambda: pid_file.exists() or runner.poll() is not None, timeout=20, what="the step"
        )
        assert runner.poll() is None, "the runner ended before its step started"
        step = int(pid_file.read_text())
        assert _running(step)
        assert int(Path(f"/proc/{step}/stat").read_text().rsplit(")", 1)[1].split()[1]) == (
            runner.pid
        ), "the step is the runner's own child"
        runner.kill()
        runner.wait(10)
        await eventually(lambda: not _running(step), timeout=10, what="the step to die")
    finally:
        runner.kill()
        runner.wait(10)
        if step and _running(step):
            os.kill(step, signal.SIGKILL)


@both_ways
async def test_a_shell_step_sees_the_same_shell_either_way(tmp_path: Path, fast: bool) -> None:
    """A string ``run`` keeps its ``$0``, arguments, line numbers and working directory."""
    run = 'echo "$0" "$#" "$PWD"\nno-such-command-troupe'
    result = await LocalBackend(fast_spawn=fast).execute(
        request(tmp_path, run), StopSignal(), ignore
    )
    direct = subprocess.run(
        ["/bin/sh", "-c", run], cwd=tmp_path / "work", capture_output=True, text=True, check=False
    )
    assert result.stdout_tail == direct.stdout.strip() == f"/bin/sh 0 {tmp_path / 'work'}"
    assert result.stderr_tail == direct.stderr.strip()
    assert ": 2: " in result.stderr_tail or "line 2" in result.stderr_tail


@needs_shim
def test_a_shell_step_runs_in_the_shim_shell_without_another_exec() -> None:
    """``/bin/sh -c RUN`` becomes the shim shell's own script: set-up, then RUN on one line."""
    shim = find_shim()
    assert shim is not None
    argv = shim_argv(
        shim, ["/bin/sh", "-c", "echo hi", "name"], limits=Limits(), user=None, runner=7
    )
    assert argv[:4] == [shim.setpriv, "--pdeathsig=KILL", "--", "/bin/sh"]
    assert argv[4] == "-c"
    assert argv[5].startswith('[ "$PPID" = 7 ]')
    assert argv[5].endswith("; echo hi")
    assert "exec" not in argv[5]
    assert argv[6:] == ["name"]

"""Local steps run as an unprivileged user when the runner is root, with nothing inherited."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
from pathlib import Path

import pytest

from actors.pipeline_runner.backends import LocalBackend, StepRequest, StopSignal
from actors.pipeline_runner.backends.local import step_user
from actors.pipeline_runner.config import Limits
from actors.pipeline_runner.state import LineEvent, command_argv
from actors.runtime.errors import ConfigError
from protocols.pipelines import StepSpec

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing user needs root")

_LIMITS_AND_PDEATHSIG = (
    "import ctypes, resource; s = ctypes.c_int(); "
    "ctypes.CDLL(None).prctl(2, ctypes.byref(s)); "  # PR_GET_PDEATHSIG
    "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0]); print(s.value)"
)


def request(
    workspace: Path, run: str | list[str], env: dict[str, str] | None = None
) -> StepRequest:
    """A request running ``run`` in ``workspace``/wf/steps/s (made 0700, like the runner's)."""
    workdir = workspace / "wf" / "steps" / "s"
    workdir.mkdir(parents=True)
    for directory in (workspace, workspace / "wf", workspace / "wf" / "steps", workdir):
        directory.chmod(0o700)
    return StepRequest(
        workflow_id="wf",
        step=StepSpec(name="s", run=run),
        argv=command_argv(run),
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", **(env or {})},
        workdir=workdir,
        timeout=None,
    )


async def ignore(event: LineEvent) -> None:
    """Drop step reports."""


def backend(workspace: Path, **options: object) -> LocalBackend:
    """A backend running steps as ``nobody`` under ``workspace``."""
    return LocalBackend(user=step_user("nobody"), workspace_root=workspace, **options)  # type: ignore[arg-type]


@as_root
async def test_step_runs_as_nobody_and_owns_its_staged_inputs(tmp_path: Path) -> None:
    """A root runner's step runs as nobody, reads its staged input and writes its workdir."""
    workspace = tmp_path / "ws"
    req = request(workspace, "id -u; cat input.txt; echo out > made.txt; echo ok")
    staged = req.workdir / "input.txt"
    staged.write_text("staged\n")
    staged.chmod(0o600)
    result = await backend(workspace).execute(req, StopSignal(), ignore)
    assert result.state == "succeeded", result.stderr_tail
    nobody = pwd.getpwnam("nobody").pw_uid
    assert result.stdout_tail.splitlines() == [str(nobody), "staged", "ok"]
    assert (req.workdir / "made.txt").stat().st_uid == nobody


@as_root
async def test_step_cannot_read_a_private_directory_of_the_runner(tmp_path: Path) -> None:
    """A 0700 directory of the runner (like the state dir) is closed to the step."""
    private = tmp_path / "state"
    private.mkdir(mode=0o700)
    (private / "admin.password").write_text("p-secret\n")
    workspace = tmp_path / "ws"
    req = request(workspace, f"cat {private}/admin.password; ls {private}; echo done")
    result = await backend(workspace).execute(req, StopSignal(), ignore)
    assert "p-secret" not in result.stdout_tail
    assert result.stdout_tail.splitlines() == ["done"]
    assert "Permission denied" in result.stderr_tail


@as_root
async def test_step_as_nobody_keeps_its_limits_and_parent_death_signal(tmp_path: Path) -> None:
    """Changing user keeps the open-files limit and PR_SET_PDEATHSIG (SIGKILL)."""
    python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    if python is None:
        pytest.skip("needs a system python3 the step user can run")
    workspace = tmp_path / "ws"
    req = request(workspace, [python, "-c", _LIMITS_AND_PDEATHSIG])
    result = await backend(workspace, limits=Limits(open_files=77)).execute(
        req, StopSignal(), ignore
    )
    assert result.state == "succeeded", result.stderr_tail
    assert result.stdout_tail.splitlines() == ["77", str(int(signal.SIGKILL))]


async def test_step_inherits_nothing_from_the_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A variable of the runner's own environment is not visible to the step."""
    monkeypatch.setenv("TROUPE_NATS_PASSWORD", "p-runner-secret")
    workspace = tmp_path / "ws"
    req = request(workspace, "env", env={"OWN": "1"})
    result = await LocalBackend(user=step_user("nobody"), workspace_root=workspace).execute(
        req, StopSignal(), ignore
    )
    assert result.state == "succeeded", result.stderr_tail
    names = {line.split("=", 1)[0] for line in result.stdout_tail.splitlines()}
    assert names <= {"PATH", "OWN", "PWD", "SHLVL", "_"}
    assert "p-runner-secret" not in result.stdout_tail


def test_step_user_is_checked() -> None:
    """An unknown account or root is refused; an empty name means no change of user."""
    assert step_user("") is None
    if os.geteuid() != 0:
        assert step_user("nobody") is None
        return
    with pytest.raises(ConfigError, match="step_user"):
        step_user("no-such-user-troupe")
    with pytest.raises(ConfigError, match="root"):
        step_user("root")

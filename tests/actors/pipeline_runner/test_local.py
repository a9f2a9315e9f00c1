"""The local backend: environment, timeouts that kill whole process trees, caps, limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.pipeline_runner.backends import LocalBackend, StepRequest, StopSignal
from actors.pipeline_runner.config import Limits
from actors.pipeline_runner.state import LineEvent, command_argv
from actors.runtime.testing import eventually
from protocols.pipelines import StepSpec
from tests.actors.pipeline_runner.conftest import processes_with


def request(
    tmp_path: Path,
    run: str | list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> StepRequest:
    """A request running ``run`` in a fresh directory under ``tmp_path``."""
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    return StepRequest(
        workflow_id="wf",
        step=StepSpec(name="s", run=run),
        argv=command_argv(run),
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        workdir=workdir,
        timeout=timeout,
    )


async def ignore(event: LineEvent) -> None:
    """Drop step reports."""


async def test_step_sees_only_its_environment_and_runs_in_its_workdir(tmp_path: Path) -> None:
    """The runner's own environment does not leak into a step."""
    backend = LocalBackend()
    result = await backend.execute(
        request(tmp_path, 'echo "$GREETING"; pwd; echo "${HOME:-unset}"', env={"GREETING": "hi"}),
        StopSignal(),
        ignore,
    )
    assert result.state == "succeeded"
    assert result.stdout_tail.splitlines() == ["hi", str(tmp_path / "work"), "unset"]


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    """A timed-out step's children and grandchildren are gone afterwards."""
    marker = "troupe-local-timeout-81"
    backend = LocalBackend(kill_grace=0.2)
    run = f"(sleep 30 # {marker}\n) & (sh -c 'sleep 30 # {marker}' &) ; sleep 30 # {marker}"
    result = await backend.execute(request(tmp_path, run, timeout=0.5), StopSignal(), ignore)
    assert result.state == "timed_out"
    assert result.error_class == "timeout"
    assert 0.5 <= result.duration_s < 5

    async def gone() -> bool:
        return not processes_with(marker)

    await eventually(gone)


async def test_children_left_behind_by_a_finished_step_are_killed(tmp_path: Path) -> None:
    """A step that exits leaving a background process does not leak it."""
    marker = "troupe-local-stray-82"
    result = await LocalBackend().execute(
        request(tmp_path, f"(sleep 30 # {marker}\n) > /dev/null 2>&1 & echo done"),
        StopSignal(),
        ignore,
    )
    assert result.state == "succeeded"

    async def gone() -> bool:
        return not processes_with(marker)

    await eventually(gone)


async def test_stop_signal_cancels_a_running_step(tmp_path: Path) -> None:
    """A stop request ends the step as the stop says."""
    stop = StopSignal()
    stop.stop("cancelled", "user asked")
    result = await LocalBackend().execute(request(tmp_path, "sleep 30"), stop, ignore)
    assert (result.state, result.reason, result.error_class) == (
        "cancelled",
        "user asked",
        "cancelled",
    )


async def test_output_beyond_the_cap_kills_the_step(tmp_path: Path) -> None:
    """Writing more than the output cap fails the step as a resource error."""
    backend = LocalBackend(output_cap=10_000)
    result = await backend.execute(request(tmp_path, "yes troupe"), StopSignal(), ignore)
    assert result.state == "failed"
    assert result.error_class == "resource"
    assert "output exceeded" in result.reason


async def test_long_lines_and_tails_are_bounded(tmp_path: Path) -> None:
    """A line longer than the read buffer does not break reading; the tail is bounded."""
    backend = LocalBackend(tail_lines=2)
    run = "head -c 200000 /dev/zero | tr '\\0' x; echo; echo a; echo b; echo c >&2"
    result = await backend.execute(request(tmp_path, run), StopSignal(), ignore)
    assert result.state == "succeeded"
    assert result.stdout_tail == "a\nb"
    assert result.stderr_tail == "c"


async def test_progress_and_message_lines_are_forwarded(tmp_path: Path) -> None:
    """``::progress`` and ``::message`` lines reach the event sink in order."""
    seen: list[LineEvent] = []

    async def sink(event: LineEvent) -> None:
        seen.append(event)

    run = "echo '::progress 10'; echo plain; echo '::message {\"a\": 1}'; echo '::progress 90'"
    await LocalBackend().execute(request(tmp_path, run), StopSignal(), sink)
    assert seen == [LineEvent(percent=10.0), LineEvent(message={"a": 1}), LineEvent(percent=90.0)]


async def test_resource_limits_apply_to_the_step(tmp_path: Path) -> None:
    """setrlimit limits are visible inside the step."""
    backend = LocalBackend(limits=Limits(open_files=64, cpu_seconds=7, file_bytes=1 << 20))
    result = await backend.execute(request(tmp_path, "ulimit -n; ulimit -t"), StopSignal(), ignore)
    assert result.stdout_tail.splitlines() == ["64", "7"]
    big = await backend.execute(
        request(tmp_path, "head -c 2000000 /dev/zero > big"), StopSignal(), ignore
    )
    assert big.state == "failed"


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        ("exit 75", "transient"),
        ("exit 2", "permanent"),
        (["/nonexistent/binary"], "permanent"),
    ],
)
async def test_failures_are_classified(tmp_path: Path, run: str | list[str], expected: str) -> None:
    """Exit codes map to error classes; a missing program is permanent."""
    result = await LocalBackend().execute(request(tmp_path, run), StopSignal(), ignore)
    assert result.state == "failed"
    assert result.error_class == expected

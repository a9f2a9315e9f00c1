"""``troupe status`` / ``ls`` / ``watch`` and the reusable :func:`follow`."""

from __future__ import annotations

import asyncio
import io
import sys
import time

import msgspec
import pytest

from actors.cli.follow import EXIT_CODES, exit_code, follow, format_view
from actors.runtime.bus import Bus
from actors.runtime.errors import NotFound, Unavailable
from actors.status_tracker import StatusTracker
from protocols.status import WorkflowView
from tests.actors.status_tracker.histories import history, send_all

pytestmark = pytest.mark.integration

T0 = time.time()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def _troupe(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "actors",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def test_exit_code_is_zero_only_on_success() -> None:
    """succeeded exits 0; every other terminal state has its own non-zero code."""

    def view(state: str) -> WorkflowView:
        return WorkflowView(workflow_id="w", state=state, created_at=0, updated_at=0)  # type: ignore[arg-type]

    assert exit_code(view("succeeded")) == 0
    codes = [exit_code(view(s)) for s in ("failed", "cancelled", "timed_out", "rejected")]
    assert all(codes)
    assert len(set(codes)) == 4
    assert set(EXIT_CODES) == {"succeeded", "failed", "cancelled", "timed_out", "rejected"}


async def test_follow_prints_plain_lines_when_not_a_terminal(bus: Bus) -> None:
    """Piped output gets one plain line per change, ending with the final state."""
    out = io.StringIO()
    async with StatusTracker().running(bus):
        watcher = asyncio.create_task(follow(bus, "f-plain", out=out, timeout=20))
        await asyncio.sleep(0.1)
        await send_all(bus, history("f-plain", T0, steps=("build", "test")))
        view = await watcher
    assert view.state == "succeeded"
    text = out.getvalue()
    assert "\x1b" not in text
    lines = text.splitlines()
    assert lines[-1] == format_view(view)
    assert any(line.startswith("f-plain step build succeeded") for line in lines)


async def test_follow_draws_a_live_display_on_a_terminal(bus: Bus) -> None:
    """On a terminal, follow renders rich output with each step."""
    out = _Terminal()
    async with StatusTracker().running(bus):
        await send_all(bus, history("f-live", T0, steps=("compile",), outcome="failed"))
        view = await follow(bus, "f-live", out=out, timeout=20)
    assert exit_code(view) == 1
    assert "compile" in out.getvalue()


async def test_follow_gives_up_after_its_timeout(bus: Bus) -> None:
    """A workflow that never finishes makes follow raise TimeoutError."""
    async with StatusTracker().running(bus):
        await send_all(bus, history("f-slow", T0)[:4])
        with pytest.raises(TimeoutError):
            await follow(bus, "f-slow", out=io.StringIO(), timeout=0.5)


@pytest.mark.processes
async def test_cli_commands_and_watch_exit_codes(bus: Bus, nats_url: str) -> None:
    """watch exits 0 on success and non-zero otherwise; status and ls print plain text."""
    url = ("--nats-url", nats_url)
    async with StatusTracker().running(bus):
        await send_all(bus, history("c-ok", T0))
        await send_all(bus, history("c-bad", T0 + 50, outcome="failed"))
        await send_all(bus, history("c-open", T0 + 100)[:4])
        results = await asyncio.gather(
            _troupe("watch", "c-ok", *url, "--timeout", "30"),
            _troupe("watch", "c-bad", *url, "--timeout", "30"),
            _troupe("watch", "c-open", *url, "--timeout", "1"),
            _troupe("status", "c-bad", *url),
            _troupe("status", "missing", *url),
            _troupe("ls", "--state", "failed", *url),
        )
    (ok, ok_out, _), (bad, bad_out, _), (open_, _, open_err) = results[:3]
    assert ok == 0
    assert ok_out.splitlines()[-1].startswith("c-ok succeeded")
    assert bad == EXIT_CODES["failed"]
    assert "c-bad failed" in bad_out
    assert "\x1b" not in ok_out + bad_out
    assert open_ == 124
    assert "not finished" in open_err
    status, status_out, _ = results[3]
    assert status == 0
    assert status_out.startswith("c-bad failed")
    assert "template  ci" in status_out
    assert results[4][0] == 2
    ls, ls_out, _ = results[5]
    assert ls == 0
    header, *rows = ls_out.splitlines()
    assert header.split() == ["ID", "STATE", "TEMPLATE", "PROGRESS", "CREATED"]
    assert [line.split()[0] for line in rows] == ["c-bad"]
    assert "100%" not in rows[0]
    assert " ok " in rows[0]


async def test_follow_of_an_unknown_workflow_that_must_exist_raises_not_found(bus: Bus) -> None:
    """must_exist (``troupe watch``): an id the tracker does not know ends the follow at once."""
    async with StatusTracker().running(bus):
        with pytest.raises(NotFound):
            await asyncio.wait_for(follow(bus, "f-unknown", out=io.StringIO(), must_exist=True), 15)


async def test_follow_raises_unavailable_when_no_tracker_answers(bus: Bus) -> None:
    """With no status tracker to ask, follow fails instead of waiting for ever."""
    with pytest.raises(Unavailable):
        await asyncio.wait_for(follow(bus, "f-nobody", out=io.StringIO()), 15)


def test_each_retry_reads_differently_with_its_delay_and_reason() -> None:
    """A retrying summary names the delivery and the delay, so watch prints every retry."""
    first = WorkflowView(
        workflow_id="r",
        state="retrying",
        created_at=T0,
        updated_at=T0 + 1,
        round=1,
        next_attempt_at=T0 + 3.5,
        reason="step flaky failed: exit code 75",
    )
    second = msgspec.structs.replace(first, round=2, updated_at=T0 + 5, next_attempt_at=T0 + 9)
    assert "retry after delivery 1, next attempt in 2.5s (step flaky failed" in format_view(first)
    assert format_view(second) != format_view(first)

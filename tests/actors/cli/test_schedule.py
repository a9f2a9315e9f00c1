"""``troupe schedule``: add, ls, pause, resume, run-now and rm against a real server."""

from __future__ import annotations

import asyncio
import json

import pytest

from actors.cli import main
from actors.runtime.bus import Bus
from actors.topology import SCHEDULE_DEFINITIONS, SCHEDULES, TASKS


@pytest.mark.integration
async def test_schedule_command_manages_a_schedule(
    bus: Bus, nats_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each action reaches the bucket and the stream; bad arguments exit 2."""
    await bus.key_value(SCHEDULE_DEFINITIONS)
    await bus.ensure_stream(SCHEDULES)
    await bus.ensure_stream(TASKS)

    async def cli(*argv: str) -> tuple[int, str]:
        code = await asyncio.to_thread(main, ["schedule", *argv, "--nats-url", nats_url])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    code, out = await cli("add", "nightly", "hello", "--cron", "0 0 3 * * *", "-p", "who=x")
    assert code == 0, out
    code, out = await cli("ls", "--json")
    assert code == 0, out
    (listed,) = json.loads(out)
    assert (listed["expression"], listed["params"], listed["paused"]) == (
        "0 0 3 * * *",
        {"who": "x"},
        False,
    )
    assert (await cli("pause", "nightly"))[0] == 0
    assert "paused" in (await cli("ls"))[1]
    assert (await cli("resume", "nightly"))[0] == 0
    code, out = await cli("run-now", "nightly")
    assert code == 0, out
    assert out.startswith("submitted sched-nightly-now-")
    assert (await cli("rm", "nightly"))[0] == 0
    assert (await cli("rm", "nightly"))[0] == 1
    assert (await cli("add", "x", "hello"))[0] == 2
    assert (await cli("add", "x", "hello", "--every", "often"))[0] == 2
    assert (await cli("pause"))[0] == 2
    assert (await cli())[1].strip() == "no schedules"

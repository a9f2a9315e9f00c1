"""``troupe breakers``: list, open, reset and disable against a running supervisor."""

from __future__ import annotations

import asyncio

import pytest

from actors.breaker_supervisor.actor import BreakerSupervisor
from actors.cli import main
from actors.cli.breakers import format_table
from actors.cli.options import EXIT_UNAVAILABLE
from actors.runtime.bus import Bus
from protocols.breakers import BreakerStatus


def test_format_table_shows_state_rates_and_time_to_half_open() -> None:
    """Rows show key, state, calls, failure and slow rates and the remaining wait."""
    table = format_table(
        [
            BreakerStatus(
                key="image:a",
                state="open",
                since=0.0,
                open_until=12.5,
                failure_rate=0.5,
                calls=4,
                opened_count=2,
            ),
            BreakerStatus(key="image:b", state="closed", since=0.0),
        ],
        now=10.0,
    )
    lines = table.splitlines()
    assert lines[0].split() == [
        "KEY",
        "STATE",
        "CALLS",
        "FAILURES",
        "SLOW",
        "OPENED",
        "HALF-OPENS",
        "IN",
    ]
    assert lines[1].split() == ["image:a", "open", "4", "50%", "0%", "2", "2.5s"]
    assert lines[2].split() == ["image:b", "closed", "0", "0%", "0%", "0"]
    assert format_table([], now=0.0) == "no breakers yet"


@pytest.mark.integration
async def test_breakers_command_opens_disables_resets_and_lists(
    bus: Bus, nats_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each subcommand reaches the supervisor and prints the breaker's new state."""

    async def cli(*argv: str) -> tuple[int, str]:
        code = await asyncio.to_thread(main, ["breakers", *argv, "--nats-url", nats_url])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    async with BreakerSupervisor().running(bus):
        code, out = await cli()
        assert (code, out.strip()) == (0, "no breakers yet")
        code, out = await cli("open", "image:alpine")
        assert code == 0
        assert "forced_open" in out
        code, out = await cli("disable", "backend:dagger")
        assert "disabled" in out
        code, out = await cli("list", "image:")
        assert "image:alpine" in out
        assert "backend:dagger" not in out
        code, out = await cli("reset", "image:alpine", "--json")
        assert '"state": "closed"' in out
        code, out = await cli("open")
        assert code == 2
        assert "KEY is required" in out
        code, out = await cli("reset", "nosuch:key")
        assert code == 1
        assert "not a breaker key" in out
        code, out = await cli("reset", "image:never-seen")
        assert code == 1
        assert "no breaker 'image:never-seen'" in out
        code, out = await cli("list", "image:never-seen")
        assert (code, out.strip()) == (0, "no breakers yet")
    code, out = await cli()
    assert code == EXIT_UNAVAILABLE
    assert out.startswith("troupe breakers: no actor answers")

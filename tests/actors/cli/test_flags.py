"""``troupe flags``: ls, get, set, rm against a real server; audit events for each change."""

from __future__ import annotations

import asyncio
import json

import pytest

from actors.cli import main
from actors.cli.flags import apply_changes, format_table
from actors.runtime.bus import Bus
from actors.topology import FLAGS
from protocols.flags import Flag


def test_apply_changes_keeps_what_is_not_given() -> None:
    """set changes only the given fields of an existing flag."""
    current = Flag(name="runner.backend", rollout=30.0, on="dagger", off="local")
    changed = apply_changes(current, "runner.backend", {"rollout": 0.0, "on": None})
    assert (changed.rollout, changed.on, changed.off) == (0.0, "dagger", "local")


def test_format_table_shows_rollout_and_targets() -> None:
    """Rows show name, state, share, values and targeting."""
    flag = Flag(name="f", rollout=25.0, templates=["build"], labels={"team": "x"})
    lines = format_table([flag]).splitlines()
    assert lines[1].split() == ["f", "yes", "25%", "true", "false", "template=build,team=x"]
    assert format_table([]) == "no flags"


@pytest.mark.integration
async def test_flags_command_sets_gets_lists_and_removes_with_audit_events(
    bus: Bus, nats_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each subcommand works on the bucket and every change is an audit event."""
    await bus.key_value(FLAGS)
    sub = await bus.nc.subscribe("troupe.audit.flags.>")

    async def cli(*argv: str) -> tuple[int, str]:
        code = await asyncio.to_thread(main, ["flags", *argv, "--nats-url", nats_url])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    code, out = await cli(
        "set", "runner.backend", "--on", "dagger", "--off", "local", "--rollout", "30"
    )
    assert code == 0, out
    code, out = await cli("set", "runner.backend", "--rollout", "0", "--json")
    assert code == 0, out
    stored = json.loads(out)
    assert (stored["rollout"], stored["on"], stored["off"]) == (0.0, "dagger", "local")
    assert stored["updated_by"]
    code, out = await cli("ls")
    assert code == 0
    assert out.splitlines()[1].split()[:5] == ["runner.backend", "yes", "0%", "dagger", "local"]
    assert (await cli("get", "runner.backend"))[0] == 0
    assert (await cli("rm", "runner.backend"))[0] == 0
    code, out = await cli("get", "runner.backend")
    assert code == 1
    assert "no flag" in out
    assert (await cli("rm", "runner.backend"))[0] == 1
    assert (await cli("set", "x", "--rollout", "120"))[0] == 2
    assert (await cli("get"))[0] == 2
    subjects = [(await sub.next_msg(timeout=5)).subject for _ in range(3)]
    await sub.unsubscribe()
    assert subjects == [
        "troupe.audit.flags.set",
        "troupe.audit.flags.set",
        "troupe.audit.flags.rm",
    ]

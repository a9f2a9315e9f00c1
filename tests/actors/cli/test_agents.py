"""``troupe agents`` and ``troupe agents find`` against a running registry."""

from __future__ import annotations

import asyncio
import sys

import pytest

from actors.agent_registry.actor import AgentRegistry
from actors.cli.agents import format_table
from actors.runtime.bus import Bus
from actors.runtime.testing import eventually
from actors.sdk import Agent
from protocols.agents import AgentInfo, AgentView, Capability


def test_format_table_shows_id_capabilities_load_age_and_state() -> None:
    """Each agent is one aligned row under the header."""
    view = AgentView(
        info=AgentInfo(
            agent_id="stats-1",
            name="stats",
            capabilities=[Capability(name="text.stats", version="1.2")],
            inbox="troupe.agents.inbox.stats-1",
            started_at=0,
            heartbeat_at=0,
            load=1,
            capacity=4,
        ),
        presence="suspect",
        last_seen_s=1.56,
    )
    lines = format_table([view]).splitlines()
    assert lines[0].split() == ["ID", "CAPABILITIES", "LOAD", "LAST", "HEARTBEAT", "STATE"]
    assert lines[1].split() == ["stats-1", "text.stats@1.2", "1/4", "1.6s", "ago", "suspect"]


async def troupe(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "actors",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode()


@pytest.mark.integration
@pytest.mark.processes
async def test_agents_lists_and_finds(bus: Bus, nats_url: str) -> None:
    """The table lists the agent; find answers by capability and exits 1 when nothing matches."""
    registry = AgentRegistry()
    agent = Agent("stats-1", capabilities=["text.stats@1.2"], interval=0.5)
    async with registry.running(bus), agent.running(bus):
        await eventually(lambda: _async("stats-1" in registry.index))
        await _check_commands(nats_url)


async def _check_commands(nats_url: str) -> None:
    code, out = await troupe("agents", "--nats-url", nats_url)
    assert code == 0, out
    assert "stats-1" in out
    assert "text.stats@1.2" in out
    assert "live" in out
    code, out = await troupe(
        "agents", "--nats-url", nats_url, "find", "text.stats", "--min-version", "1.10", "--json"
    )
    assert code == 1
    assert '"agents": []' in out
    code, out = await troupe("agents", "find", "text.stats", "--nats-url", nats_url)
    assert code == 0
    assert "stats-1" in out
    # The --requires syntax works here too.
    code, out = await troupe("agents", "find", "text.stats>=1.0", "--nats-url", nats_url)
    assert code == 0, out
    assert "stats-1" in out
    code, _ = await troupe("agents", "find", "text.stats@2", "--nats-url", nats_url)
    assert code == 1


async def _async(value: object) -> object:
    return value

"""Bounded inbox retention for agents that never come back."""

from __future__ import annotations

import time

import nats.js.errors
import pytest

from actors.agent_registry.janitor import InboxJanitor
from actors.agent_registry.state import AgentIndex
from actors.runtime.actor import DEAD_LETTERS
from actors.runtime.bus import Bus
from actors.runtime.testing import ManualClock, eventually
from actors.sdk import Agent, Incoming
from actors.topology import AGENT_INBOX
from protocols import headers as h
from protocols.agents import INBOX_STREAM, AgentEnvelope, inbox_subject
from protocols.errors import DEAD_LETTER_STREAM, dead_letter_subject
from tests.actors.agent_registry.test_state import info

pytestmark = pytest.mark.integration


async def test_janitor_dead_letters_only_unread_messages_of_absent_agents(bus: Bus) -> None:
    """Past the retention, an absent agent's unread message is dead-lettered and removed;
    read messages and those of present agents stay."""
    for stream in (AGENT_INBOX, DEAD_LETTERS):
        await bus.ensure_stream(stream)
    got: list[Incoming] = []
    reader = Agent("reader", interval=0.25)

    @reader.on("note")
    async def note(message: Incoming) -> None:
        got.append(message)

    async with reader.running(bus):
        await reader.send("reader", {"n": 1}, kind="note")
        await eventually(lambda: _async(got))
    ghost = await bus.send(
        inbox_subject("ghost"), AgentEnvelope(message_id="m1", sender="t", kind="note"), msg_id="m1"
    )
    await bus.send(
        inbox_subject("present"),
        AgentEnvelope(message_id="m2", sender="t", kind="note"),
        msg_id="m2",
    )
    index = AgentIndex()
    index.heartbeat(info("present"), 0.0)
    janitor = InboxJanitor(bus.js, index, retention_s=30, clock=ManualClock(start=time.time() + 60))
    assert await janitor.sweep() == 1
    dead = await bus.js.get_last_msg(DEAD_LETTER_STREAM, dead_letter_subject(INBOX_STREAM))
    assert dead.headers[h.DEAD_LETTER_SUBJECT] == inbox_subject("ghost")
    assert "inbox retention" in dead.headers[h.DEAD_LETTER_REASON]
    with pytest.raises(nats.js.errors.NotFoundError):
        await bus.js.get_msg(INBOX_STREAM, seq=ghost.seq)
    assert await janitor.sweep() == 0  # the present agent's message is left to it


async def _async(value: object) -> object:
    return value

"""The agent SDK on a real nats-server: messages, requests, broadcast, durable inbox, tasks."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import msgspec
import pytest

from actors.agent_registry.actor import AgentRegistry
from actors.runtime import Actor, TypedBucket
from actors.runtime.bus import Bus
from actors.runtime.errors import ConfigError, RequestError, Unavailable
from actors.runtime.testing import ManualClock, eventually
from actors.sdk import Agent, Incoming, Task
from actors.topology import AGENTS
from protocols import headers as h
from protocols.agents import AGENTS_BUCKET, AgentEnvelope, AgentInfo, TaskResult, inbox_subject
from protocols.errors import DEAD_LETTER_STREAM, dead_letter_subject

INTERVAL = 0.25


def test_agent_refuses_bad_settings() -> None:
    """Bad ids, versions, capacities and TTLs fail at construction with the field's name."""
    for kwargs, field in (
        ({"agent_id": "a.b"}, "agent_id"),
        ({"capabilities": ["x@latest"]}, "capabilities"),
        ({"capacity": 0}, "capacity"),
        ({"interval": 0}, "interval"),
        ({"ttl_multiple": 1}, "ttl_multiple"),
        ({"inbox_retention": 0}, "inbox_retention"),
    ):
        with pytest.raises(ConfigError) as info:
            Agent(**kwargs)  # type: ignore[arg-type]
        assert info.value.field == field


def test_ttl_is_whole_seconds_and_at_least_one() -> None:
    """Per-key TTLs are whole seconds: a few short intervals still make one second."""
    assert Agent(interval=0.2, ttl_multiple=3).ttl == 1
    assert Agent(interval=1.0, ttl_multiple=2.5).ttl == 3


def test_subclass_capabilities_and_info() -> None:
    """A subclass's capabilities and settings show in its heartbeat."""

    class Summarizer(Agent):
        capabilities = ("summarize@2.1",)

    agent = Summarizer("sum-1", capacity=3, labels={"zone": "eu"}, version="1.4")
    info = agent.info()
    assert info.capabilities[0].name == "summarize"
    assert info.capabilities[0].version == "2.1"
    assert (info.capacity, info.labels, info.version, info.name) == (
        3,
        {"zone": "eu"},
        "1.4",
        "summarizer",
    )
    assert info.inbox == inbox_subject("sum-1")


@pytest.mark.integration
async def test_send_request_and_broadcast_between_agents(bus: Bus, registry: AgentRegistry) -> None:
    """send queues, request waits for the answer, broadcast reaches every capable agent."""
    got: dict[str, list[Incoming]] = {"b": [], "c": []}
    alice = Agent("alice", capabilities=["chat"], interval=INTERVAL)
    bob = Agent("bob", capabilities=["chat"], interval=INTERVAL)
    carol = Agent("carol", capabilities=["chat"], interval=INTERVAL)

    @bob.on("hello")
    async def bob_hello(message: Incoming) -> Mapping[str, Any]:
        got["b"].append(message)
        return {"hi": message.sender}

    @carol.on("hello")
    async def carol_hello(message: Incoming) -> None:
        got["c"].append(message)

    @bob.on("fail")
    async def bob_fail(message: Incoming) -> None:
        raise ValueError("no thanks")

    async with alice.running(bus), bob.running(bus), carol.running(bus):
        await alice.send("bob", {"n": 1}, kind="hello")
        await eventually(lambda: _async(got["b"]))
        assert got["b"][0].body == {"n": 1}
        assert not got["b"][0].expects_reply
        assert await alice.request("bob", {"n": 2}, kind="hello") == {"hi": "alice"}
        with pytest.raises(RequestError, match="no thanks"):
            await alice.request("bob", {}, kind="fail")
        with pytest.raises(RequestError, match="no handler"):
            await alice.request("bob", {}, kind="unknown")
        await eventually(lambda: _async(len(registry.index) == 3))
        sent = await alice.broadcast("chat", {"n": 3}, kind="hello")
        assert sorted(sent) == ["bob", "carol"]
        await eventually(lambda: _async(len(got["b"]) == 3 and len(got["c"]) == 1))


@pytest.mark.integration
async def test_request_to_an_absent_agent_times_out(bus: Bus) -> None:
    """Nobody takes the message: the requester gets Unavailable after its timeout."""
    async with Agent("lonely", interval=INTERVAL).running(bus) as agent:
        with pytest.raises(Unavailable):
            await agent.request("nobody", {}, timeout=0.3)


@pytest.mark.integration
async def test_message_sent_while_agent_is_down_is_delivered_when_it_returns(bus: Bus) -> None:
    """The inbox is a durable consumer: a message waits for its agent to come back."""
    received: list[Incoming] = []
    sender = Agent("sender", interval=INTERVAL)

    def make() -> Agent:
        agent = Agent("sleeper", interval=INTERVAL)

        @agent.on("note")
        async def note(message: Incoming) -> None:
            received.append(message)

        return agent

    async with make().running(bus):
        pass  # the durable inbox exists from now on
    async with sender.running(bus):
        await sender.send("sleeper", {"text": "while you were out"}, kind="note")
    assert received == []
    async with make().running(bus):
        await eventually(lambda: _async(received))
    assert received[0].body == {"text": "while you were out"}
    assert received[0].sender == "sender"


@pytest.mark.integration
async def test_message_older_than_retention_is_dead_lettered_with_reason(bus: Bus) -> None:
    """A message that waited past the inbox retention goes to the dead-letter stream instead."""
    handled: list[Incoming] = []
    async with Agent("sender", interval=INTERVAL).running(bus) as sender:
        await sender.send("late", {"x": 1}, kind="note")
    clock = ManualClock(start=time.time() + 60)  # the agent comes back a minute later
    late = Agent("late", interval=INTERVAL, inbox_retention=30, clock=clock)

    @late.on("note")
    async def note(message: Incoming) -> None:
        handled.append(message)

    async with late.running(bus):
        msg = await eventually(lambda: _dead_letter(bus))
    assert handled == []
    assert "beyond its retention" in msg.headers[h.DEAD_LETTER_REASON]
    assert msg.headers[h.DEAD_LETTER_SUBJECT] == inbox_subject("late")


@pytest.mark.integration
async def test_task_handler_result_is_sent_to_reply_subject(bus: Bus) -> None:
    """A task envelope runs the capability's handler; the result (or failure) is published."""
    agent = Agent("worker", capabilities=["text.stats", "explode"], interval=INTERVAL)

    @agent.task("text.stats")
    async def stats(task: Task) -> Mapping[str, Any]:
        return {"words": len(str(task.params["text"]).split()), "wf": task.workflow_id}

    @agent.task("explode")
    async def explode(task: Task) -> None:
        raise RuntimeError("kaboom")

    results: list[TaskResult] = []

    async def on_result(msg: Any) -> None:
        results.append(msgspec.msgpack.decode(msg.data, type=TaskResult))

    await bus.nc.subscribe("test.results", cb=on_result)
    async with agent.running(bus):
        for wf, cap in (("wf-1", "text.stats"), ("wf-2", "explode")):
            await bus.send(
                inbox_subject("worker"),
                AgentEnvelope(
                    message_id=wf,
                    sender="test",
                    kind="task",
                    body={"text": "a b c"},
                    reply_to="test.results",
                    workflow_id=wf,
                    capability=cap,
                ),
                msg_id=wf,
            )
        await eventually(lambda: _async(len(results) == 2))
    by_wf = {r.workflow_id: r for r in results}
    assert by_wf["wf-1"].ok
    assert by_wf["wf-1"].output == {"words": 3, "wf": "wf-1"}
    assert not by_wf["wf-2"].ok
    assert by_wf["wf-2"].error == "RuntimeError: kaboom"
    assert by_wf["wf-2"].error_class == "permanent"
    assert agent.handled == 2
    assert agent.load == 0


async def _dead_letter(bus: Bus) -> Any:
    try:
        return await bus.js.get_last_msg(
            DEAD_LETTER_STREAM, dead_letter_subject("TROUPE_AGENT_INBOX")
        )
    except Exception:
        return None


async def _async(value: object) -> object:
    return value


# -- the agent is an actor ----------------------------------------------------------------


def test_agent_is_an_actor() -> None:
    """An agent is an Actor: one lifecycle, the micro service 'agent'."""
    agent = Agent("kind-1")
    assert isinstance(agent, Actor)
    assert agent.name == "agent"
    assert agent.info().name == "agent"


@pytest.mark.integration
async def test_inbox_consumer_appears_in_micro_info_and_stats(bus: Bus) -> None:
    """$SRV.INFO names the agent and lists its inbox consumer; $SRV.STATS counts it."""
    agent = Agent("stats-probe", interval=INTERVAL)
    async with agent.running(bus):
        await agent.send("stats-probe", {"n": 1}, kind="note")
        await eventually(lambda: agent.handled == 1)
        info = json.loads((await bus.nc.request("$SRV.INFO.agent", b"", timeout=10.0)).data)
        stats = json.loads((await bus.nc.request("$SRV.STATS.agent", b"", timeout=10.0)).data)
    assert info["metadata"]["agent_id"] == "stats-probe"
    (inbox,) = [e for e in info["endpoints"] if e["subject"] == inbox_subject("stats-probe")]
    assert inbox["metadata"]["kind"] == "stream"
    (counted,) = [e for e in stats["endpoints"] if e["subject"] == inbox_subject("stats-probe")]
    assert counted["num_requests"] == 1


@pytest.mark.integration
async def test_heartbeat_is_stored_with_its_content_type(bus: Bus) -> None:
    """The heartbeat is written through the typed bucket: it names its encoding."""
    async with Agent("typed-1", interval=INTERVAL).running(bus):
        msg = await bus.js.get_msg(
            f"KV_{AGENTS_BUCKET}", subject=f"$KV.{AGENTS_BUCKET}.typed-1", direct=True
        )
    assert msg.headers is not None
    assert msg.headers[h.CONTENT_TYPE] == h.MSGPACK
    assert msgspec.msgpack.decode(msg.data, type=AgentInfo).agent_id == "typed-1"


@pytest.mark.integration
async def test_heartbeats_run_on_the_injected_clock_and_stop_with_the_agent(bus: Bus) -> None:
    """Each interval of the agent's clock writes a heartbeat; stopping deletes the key once."""
    clock = ManualClock(start=time.time())
    agent = Agent("clocked-1", interval=5.0, clock=clock)
    bucket = await TypedBucket.bind(bus, AGENTS, AgentInfo)
    await agent.start(bus)
    try:
        first = await bucket.get("clocked-1")
        await eventually(clock.sleepers)
        clock.advance(5.0)
        later = await eventually(
            lambda: _newer(bucket, "clocked-1", first.revision), what="a second heartbeat"
        )
        assert later.value.heartbeat_at == pytest.approx(first.value.heartbeat_at + 5.0)
    finally:
        await agent.stop()
    await agent.stop()  # a second stop does nothing
    assert not agent.is_running
    assert await bucket.get_or_none("clocked-1") is None


async def _newer(bucket: TypedBucket[AgentInfo], key: str, revision: int) -> Any:
    entry = await bucket.get_or_none(key)
    return entry if entry is not None and entry.revision > revision else None

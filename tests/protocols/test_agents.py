"""The agents wire contract: heartbeats, queries, presence events, envelopes and results."""

from __future__ import annotations

import msgspec
import pytest

from protocols import agents
from protocols.base import type_id
from protocols.catalog import CATALOG


def _info(**overrides: object) -> agents.AgentInfo:
    fields: dict[str, object] = {
        "agent_id": "stats-1",
        "name": "stats",
        "capabilities": [agents.Capability(name="text.stats", version="1.2")],
        "inbox": agents.inbox_subject("stats-1"),
        "started_at": 1.0,
        "heartbeat_at": 2.0,
    }
    fields.update(overrides)
    return agents.AgentInfo(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("codec", [msgspec.msgpack, msgspec.json])
def test_agent_info_round_trips_in_both_encodings(codec: object) -> None:
    """A heartbeat decodes to an equal value from MessagePack and JSON."""
    info = _info(load=2, capacity=4, labels={"gpu": "no"}, ttl_s=2.0)
    data = codec.encode(info)  # type: ignore[attr-defined]
    assert codec.decode(data, type=agents.AgentInfo) == info  # type: ignore[attr-defined]


def test_agent_info_rejects_an_id_that_is_not_a_subject_token() -> None:
    """Agent ids are KV keys and subject tokens, so dots and spaces are refused."""
    data = msgspec.json.encode(msgspec.to_builtins(_info()) | {"agent_id": "a.b"})
    with pytest.raises(msgspec.ValidationError, match="agent_id"):
        msgspec.json.decode(data, type=agents.AgentInfo)


@pytest.mark.parametrize("version", ["1", "1.2", "10.0.3"])
def test_capability_accepts_dotted_numeric_versions(version: str) -> None:
    """One to three numeric parts are a valid capability version."""
    raw = msgspec.json.encode({"name": "x", "version": version})
    assert msgspec.json.decode(raw, type=agents.Capability).version == version


@pytest.mark.parametrize("version", ["", "v1", "1.2.3.4", "1.x", "-1"])
def test_capability_rejects_other_versions(version: str) -> None:
    """Anything but dotted numbers is refused at decode time."""
    raw = msgspec.json.encode({"name": "x", "version": version})
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(raw, type=agents.Capability)


def test_find_agents_validates_min_version_and_limit() -> None:
    """A query with a malformed minimum version or a zero limit never reaches the registry."""
    for bad in ({"min_version": "latest"}, {"limit": 0}):
        raw = msgspec.json.encode({"type": type_id(agents.FindAgents), "capability": "x"} | bad)
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(raw, type=agents.FindAgents)


def test_subjects_are_built_from_ids() -> None:
    """Inbox and result subjects fall under the streams that capture them."""
    assert agents.inbox_subject("a-1") == "troupe.agents.inbox.a-1"
    assert agents.inbox_subject("a").startswith(agents.INBOX_SUBJECTS.rstrip(">"))
    assert agents.result_subject("wf-1").startswith(agents.RESULTS_SUBJECTS.rstrip(">"))


def test_task_result_and_assignment_round_trip() -> None:
    """Results and stored assignments survive MessagePack unchanged."""
    result = agents.TaskResult(
        workflow_id="wf",
        message_id="wf",
        agent_id="a",
        ok=False,
        error="boom",
        error_class="permanent",
        at=3.0,
    )
    assignment = agents.AgentAssignment(
        workflow_id="wf",
        task_id="wf",
        capability="text.stats",
        min_version="1.2",
        params={"text": "hi"},
        state="assigned",
        agent_id="a",
        attempt=2,
        departed=["b"],
    )
    for message in (result, assignment):
        data = msgspec.msgpack.encode(message)
        assert msgspec.msgpack.decode(data, type=type(message)) == message


def test_presence_events_carry_their_reason() -> None:
    """AgentLeft says whether the key expired or was deleted by the agent."""
    left = agents.AgentLeft(agent_id="a", reason="expired", at=1.0)
    union = msgspec.msgpack.Decoder(agents.AgentJoined | agents.AgentLeft)
    assert union.decode(msgspec.msgpack.encode(left)) == left
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(
            b'{"type":"troupe.agents.v1.left","agent_id":"a","reason":"bored","at":1}',
            type=agents.AgentLeft,
        )


def test_catalog_lists_every_agents_message() -> None:
    """Every message of the agents contract has a route in the catalog."""
    routed = {route.message for route in CATALOG}
    for name in agents.__all__:
        value = getattr(agents, name)
        if isinstance(value, type) and issubclass(value, agents.Message):
            assert value in routed, name


def test_all_lists_exactly_the_public_names() -> None:
    """``__all__`` names every public constant, message and function of the module."""
    aliases = {"AgentId", "Version", "AssignmentState", "AgentPresence"}
    public = {
        name
        for name, value in vars(agents).items()
        if not name.startswith("_")
        and name not in aliases
        and (name.isupper() or getattr(value, "__module__", "") == "protocols.agents")
    }
    assert public == set(agents.__all__) - aliases


def test_heartbeat_key_subject_and_inbox_durable_are_built_from_the_agent_id() -> None:
    """An agent's heartbeat key is its id, published under the bucket's KV subject."""
    assert agents.heartbeat_key("a-1") == "a-1"
    assert agents.heartbeat_subject("a-1") == "$KV.troupe-agents.a-1"
    assert agents.heartbeat_subject("a-1", bucket="other") == "$KV.other.a-1"
    assert agents.inbox_durable("a-1") == "agent-a-1"

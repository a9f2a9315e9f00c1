"""The role table and the server configuration rendered from it."""

from __future__ import annotations

import re

import pytest

from actors.roster import ACTORS, resolve_actor
from actors.runtime.access import (
    ADMIN,
    ROLES,
    Role,
    agent_role,
    inbox_prefix,
    permissions,
    render_config,
    role_of,
)
from protocols import pipelines, tasks

ADMIN_API = re.compile(
    r"^\$JS\.API\.(STREAM\.(CREATE|UPDATE|DELETE)|CONSUMER\.(DURABLE\.CREATE|DELETE))"
)


def _allow(role: Role, kind: str) -> list[str]:
    block = permissions(role)[kind]
    assert isinstance(block, dict)
    allowed: list[str] = block["allow"]
    return allowed


@pytest.mark.parametrize("role", [r for r in ROLES if r.name != ADMIN], ids=lambda r: r.name)
def test_no_role_but_admin_holds_the_jetstream_api_or_a_wildcard(role: Role) -> None:
    """No $JS.API.>, no > and no stream or durable-consumer administration."""
    for subject in _allow(role, "publish"):
        assert subject not in (">", "$JS.>", "$JS.API.>", "_INBOX.>"), subject
        assert not subject.startswith("_INBOX"), subject
        assert not ADMIN_API.match(subject), subject
        if subject.startswith("$JS.API.STREAM.PURGE."):
            assert subject.removeprefix("$JS.API.STREAM.PURGE.OBJ_") in role.object_stores


@pytest.mark.parametrize("role", [r for r in ROLES if r.name != ADMIN], ids=lambda r: r.name)
def test_each_role_listens_only_on_its_own_inbox_prefix(role: Role) -> None:
    """Subscriptions to inboxes are the role's own prefix only."""
    inboxes = [s for s in _allow(role, "subscribe") if s.startswith("_INBOX")]
    shared = ["_INBOX.>"] if role.name == "client" else []
    assert inboxes == [f"{inbox_prefix(role.name)}.>", *shared]


def test_an_agent_writes_only_its_own_heartbeat_key_and_fetches_only_its_inbox() -> None:
    """agent_role(NAME) holds $KV.troupe-agents.NAME and its own durable, nothing wider."""
    publish = _allow(agent_role("alpha"), "publish")
    assert [s for s in publish if s.startswith("$KV.")] == ["$KV.troupe-agents.alpha"]
    fetches = [s for s in publish if ".MSG.NEXT." in s]
    assert fetches == ["$JS.API.CONSUMER.MSG.NEXT.TROUPE_AGENT_INBOX.agent-alpha"]


def test_agent_names_must_be_tokens() -> None:
    """A name with a dot or a wildcard would widen the agent's permissions: refused."""
    for bad in ("a.b", "*", ">", "Upper", ""):
        with pytest.raises(ValueError, match="agent name"):
            agent_role(bad)


def test_clients_and_operators_do_not_answer_requests() -> None:
    """allow_responses only for roles that serve requests."""
    by_name = {r.name: r for r in ROLES}
    assert "allow_responses" not in permissions(by_name["client"])
    assert "allow_responses" not in permissions(by_name["operator"])
    assert permissions(by_name["status_tracker"])["allow_responses"] is True


def test_the_credential_less_identity_is_off_by_default() -> None:
    """no_auth_user appears only when asked for."""
    assert "no_auth_user" not in render_config()
    assert "no_auth_user: client" in render_config(anonymous=True)


def test_issued_agents_are_rendered_with_their_hash() -> None:
    """An issued agent is a user of its own with the hash inline."""
    text = render_config(agent_hashes={"alpha": "$2a$08$hash"})
    assert 'user: "agent-alpha"' in text
    assert 'password: "$2a$08$hash"' in text


@pytest.mark.parametrize("name", sorted(ACTORS))
def test_each_built_in_actor_role_covers_what_the_actor_binds_to(name: str) -> None:
    """Every stream, bucket, store and consumer an actor declares is in its role."""
    topology = resolve_actor(name)().topology()
    role = role_of(name)
    consumers = {(c.stream.name, c.durable) for c in topology.consumers}
    assert consumers <= set(role.consumers)
    assert {b.name for b in topology.buckets} <= {*role.reads, *role.writes}
    streams = {s.name for s in topology.streams} | {c.stream.name for c in topology.consumers}
    assert streams <= {*role.streams, *role.reads_streams}
    stores = {o.name for o in topology.object_stores}
    assert stores <= {*role.object_stores, *role.reads_objects}


def test_the_gateway_reads_the_info_of_the_queues_it_shows_and_nothing_more() -> None:
    """Queue depth on the dashboard: STREAM.INFO of the tasks and pipelines streams only."""
    allowed = _allow(role_of("gateway"), "publish")
    for stream in (tasks.TASKS_STREAM, pipelines.PIPELINES_STREAM):
        assert f"$JS.API.STREAM.INFO.{stream}" in allowed
    on_pipelines = [s for s in allowed if pipelines.PIPELINES_STREAM in s]
    assert on_pipelines == [f"$JS.API.STREAM.INFO.{pipelines.PIPELINES_STREAM}"]


def test_runners_write_the_step_cache_bucket_and_operators_only_read_it() -> None:
    """The step cache is a KV bucket: runners put and delete keys, operators direct-get, and
    nobody holds its old object-store subjects."""
    cache = pipelines.CACHE_BUCKET
    get = f"$JS.API.DIRECT.GET.KV_{cache}.>"
    by_role = {r.name: _allow(r, "publish") for r in ROLES if r.name != ADMIN}
    assert {name for name, allowed in by_role.items() if f"$KV.{cache}.>" in allowed} == {
        "pipeline_runner"
    }
    assert {name for name, allowed in by_role.items() if get in allowed} == {
        "pipeline_runner",
        "operator",
    }
    for allowed in by_role.values():
        assert not [s for s in allowed if f"OBJ_{cache}" in s or s.startswith(f"$O.{cache}.")]

"""The live index: versions, matching, presence and least-loaded ordering (pure, no I/O)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.agent_registry.state import (
    AgentIndex,
    capability_list,
    matches,
    parse_requirement,
    parse_version,
    version_at_least,
)
from protocols.agents import AgentInfo, Capability, FindAgents, inbox_subject

versions = st.lists(st.integers(0, 30), min_size=1, max_size=3).map(
    lambda parts: ".".join(map(str, parts))
)
ids = st.sampled_from([f"a{i}" for i in range(12)])


def info(
    agent_id: str = "a0",
    caps: tuple[str, ...] = ("text.stats@1.2",),
    *,
    load: int = 0,
    capacity: int = 1,
    labels: dict[str, str] | None = None,
    interval: float = 1.0,
    ttl: float = 3.0,
) -> AgentInfo:
    return AgentInfo(
        agent_id=agent_id,
        name=agent_id,
        capabilities=capability_list(caps),
        inbox=inbox_subject(agent_id),
        started_at=0.0,
        heartbeat_at=0.0,
        load=load,
        capacity=capacity,
        labels=labels or {},
        interval_s=interval,
        ttl_s=ttl,
    )


@given(versions, versions)
def test_version_order_is_numeric_part_by_part(a: str, b: str) -> None:
    """Comparison agrees with comparing the parts as integers, missing parts being zero."""

    def padded(v: str) -> list[int]:
        return [*map(int, v.split(".")), 0, 0, 0][:3]

    assert version_at_least(a, b) == (padded(a) >= padded(b))


def test_version_ten_is_above_version_nine() -> None:
    """``1.10`` is newer than ``1.9`` (numbers, not strings)."""
    assert version_at_least("1.10", "1.9")
    assert not version_at_least("1.9", "1.10")
    assert parse_version("1.2.0") == parse_version("1.2")


def test_parse_version_rejects_non_numbers() -> None:
    """A version with a non-numeric part is an error, not a silent zero."""
    with pytest.raises(ValueError, match="invalid literal"):
        parse_version("1.x")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("text.stats", ("text.stats", "0")),
        ("text.stats>=1.2", ("text.stats", "1.2")),
        ("text.stats@2", ("text.stats", "2")),
        (" a >= 1.0.1 ", ("a", "1.0.1")),
    ],
)
def test_parse_requirement_reads_name_and_minimum_version(
    text: str, expected: tuple[str, str]
) -> None:
    """A requirement is a capability name with an optional minimum version."""
    assert parse_requirement(text) == expected


@pytest.mark.parametrize("text", ["", "a>=x", "a b", "a>=1.2.3.4"])
def test_parse_requirement_rejects_malformed_text(text: str) -> None:
    """Anything else is refused."""
    with pytest.raises(ValueError, match=r"requirement|invalid literal"):
        parse_requirement(text)


def test_capability_list_defaults_version_one_and_checks_versions() -> None:
    """``name`` means version 1; a bad version is refused."""
    assert capability_list(["a", "b@2.1", Capability(name="c")]) == [
        Capability(name="a", version="1"),
        Capability(name="b", version="2.1"),
        Capability(name="c", version="1"),
    ]
    with pytest.raises(ValueError, match="invalid literal"):
        capability_list(["a@new"])


def test_matches_needs_capability_version_and_every_label() -> None:
    """An agent matches only with the capability at the minimum version and all labels."""
    agent = info(caps=("text.stats@1.2", "text.stats@2.0"), labels={"gpu": "yes", "zone": "a"})
    assert matches(agent, "text.stats", "2")
    assert not matches(agent, "text.stats", "2.1")
    assert matches(agent, "text.stats", labels={"gpu": "yes"})
    assert not matches(agent, "text.stats", labels={"gpu": "no"})
    assert not matches(agent, "summarize")


@given(st.lists(st.tuples(st.booleans(), ids), max_size=60))
def test_index_holds_exactly_the_agents_that_joined_and_did_not_leave(
    ops: list[tuple[bool, str]],
) -> None:
    """After any sequence of heartbeats and departures the index equals the model set."""
    index = AgentIndex()
    model: set[str] = set()
    for t, (beat, agent_id) in enumerate(ops):
        if beat:
            change = index.heartbeat(info(agent_id), float(t))
            assert change == ("updated" if agent_id in model else "joined")
            model.add(agent_id)
        else:
            assert (index.remove(agent_id) is not None) == (agent_id in model)
            model.discard(agent_id)
    assert index.ids() == model
    assert len(index) == len(model)
    assert [v.info.agent_id for v in index.views(float(len(ops)))] == sorted(model)


@given(st.lists(st.tuples(ids, st.integers(0, 4), st.integers(1, 4)), min_size=1, max_size=20))
def test_find_returns_least_loaded_first(agents: list[tuple[str, int, int]]) -> None:
    """Matches come back ordered by load relative to capacity, never ascending."""
    index = AgentIndex()
    for agent_id, load, capacity in agents:
        index.heartbeat(info(agent_id, load=min(load, capacity), capacity=capacity), 0.0)
    found = index.find(FindAgents(capability="text.stats", limit=100), 0.0)
    ratios = [v.info.load / v.info.capacity for v in found]
    assert ratios == sorted(ratios)
    assert {v.info.agent_id for v in found} == index.ids()


def test_find_filters_by_version_labels_and_limit() -> None:
    """Only agents at the minimum version with the labels count, up to ``limit``."""
    index = AgentIndex()
    index.heartbeat(info("old", ("text.stats@1.1",)), 0.0)
    index.heartbeat(info("new", ("text.stats@1.10",), labels={"zone": "a"}), 0.0)
    index.heartbeat(info("busy", ("text.stats@2",), load=1), 0.0)
    index.heartbeat(info("other", ("summarize@3",)), 0.0)
    found = index.find(FindAgents(capability="text.stats", min_version="1.2"), 0.0)
    assert [v.info.agent_id for v in found] == ["new", "busy"]
    labelled = FindAgents(capability="text.stats", labels={"zone": "a"})
    assert [v.info.agent_id for v in index.find(labelled, 0.0)] == ["new"]
    limited = FindAgents(capability="text.stats", limit=1)
    assert len(index.find(limited, 0.0)) == 1


def test_agent_is_suspect_after_one_missed_heartbeat() -> None:
    """Live within an interval and a half of its last heartbeat, suspect after."""
    index = AgentIndex()
    index.heartbeat(info("a", interval=1.0), 10.0)
    assert index.presence("a", 11.4) == "live"
    assert index.presence("a", 11.6) == "suspect"
    assert index.presence("missing", 11.6) is None
    query = FindAgents(capability="text.stats")
    assert index.find(query, 11.6) == []
    suspect = FindAgents(capability="text.stats", include_suspect=True)
    assert [v.presence for v in index.find(suspect, 11.6)] == ["suspect"]


def test_expired_reports_agents_past_ttl_and_grace() -> None:
    """An agent whose heartbeat outlived its TTL plus the grace is reported expired."""
    index = AgentIndex(expiry_grace=0.5)
    index.heartbeat(info("a", ttl=2.0), 0.0)
    index.heartbeat(info("b", ttl=5.0), 0.0)
    assert index.expired(2.4) == []
    assert index.expired(2.6) == ["a"]
    index.heartbeat(info("a", ttl=2.0), 2.0)
    assert index.expired(2.6) == []


def test_changing_capabilities_moves_the_agent_between_queries() -> None:
    """A heartbeat with new capabilities updates what the agent is found by."""
    index = AgentIndex()
    index.heartbeat(info("a", ("x",)), 0.0)
    index.heartbeat(info("a", ("y",)), 1.0)
    assert index.find(FindAgents(capability="x"), 1.0) == []
    assert len(index.find(FindAgents(capability="y"), 1.0)) == 1
    index.clear()
    assert index.find(FindAgents(capability="y"), 1.0) == []


def test_index_refuses_bad_settings() -> None:
    """Non-positive suspicion factor and negative grace are configuration errors."""
    with pytest.raises(ValueError, match="suspect_after"):
        AgentIndex(suspect_after=0)
    with pytest.raises(ValueError, match="expiry_grace"):
        AgentIndex(expiry_grace=-1)


def test_parse_version_rejects_negative_parts() -> None:
    """``1.-2`` parses as integers but is not a version."""
    with pytest.raises(ValueError, match="negative part"):
        parse_version("1.-2")


def test_agent_offering_a_capability_twice_counts_its_highest_version() -> None:
    """Listing ``x@2`` before ``x@1`` still qualifies for ``x>=2``, and leaving is clean."""
    index = AgentIndex()
    index.heartbeat(info("a", ("x@2", "x@1")), 0.0)
    assert [
        v.info.agent_id for v in index.find(FindAgents(capability="x", min_version="2"), 0.0)
    ] == ["a"]
    assert index.remove("a") is not None
    assert index.find(FindAgents(capability="x"), 0.0) == []
    index.heartbeat(info("b", ("x@1",)), 0.0)
    assert [v.info.agent_id for v in index.find(FindAgents(capability="x"), 0.0)] == ["b"]


def test_index_answers_membership_and_lookup_by_id() -> None:
    """``in`` and ``get`` see exactly the agents present, with their last heartbeat."""
    index = AgentIndex()
    beat = info("a", load=1, capacity=2)
    index.heartbeat(beat, 4.0)
    assert "a" in index
    assert "b" not in index
    entry = index.get("a")
    assert entry is not None
    assert (entry.info, entry.last_seen) == (beat, 4.0)
    assert index.get("b") is None
    index.remove("a")
    assert "a" not in index
    assert index.get("a") is None


def _find_by_sorting_everyone(
    index: AgentIndex, agents: dict[str, tuple[AgentInfo, float]], query: FindAgents, now: float
) -> list[tuple[str, float]]:
    """The order ``find`` promises, computed the slow way: sort every matching agent."""
    rows = []
    for agent_id, (agent, seen) in agents.items():
        if not matches(agent, query.capability, query.min_version, query.labels):
            continue
        if not query.include_suspect and now - seen > agent.interval_s * index.suspect_after:
            continue
        rows.append(((agent.load / agent.capacity, agent.load, -seen, agent_id), agent_id))
    return [(agent_id, agents[agent_id][1]) for _, agent_id in sorted(rows)[: query.limit]]


few_ids = st.sampled_from(["a1", "a10", "a2", "b", "a20"])
beats = st.tuples(
    st.just("beat"),
    few_ids,
    st.integers(0, 2),
    st.integers(1, 2),
    st.sampled_from([("x@1",), ("x@2", "y")]),
    st.sampled_from([0.0, 0.0, -1.0, -3.0]),  # ties, and late observations
    st.sampled_from([{}, {"zone": "a"}]),
    st.sampled_from([2.0, 3.0]),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("tick")),
        beats,
        beats,
        st.tuples(st.just("leave"), few_ids),
        st.tuples(st.just("sweep"), st.sampled_from([0.0, 1.0, 2.5, 4.0])),
        st.tuples(
            st.just("find"),
            st.sampled_from(["x", "y", "z"]),
            st.sampled_from(["0", "2"]),
            st.integers(1, 4),
            st.booleans(),
            st.sampled_from([{}, {}, {"zone": "a"}]),
        ),
    ),
    min_size=20,
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_find_answers_as_sorting_every_matching_agent_would(
    script: list[tuple[object, ...]],
) -> None:
    """Whatever heartbeats arrive (ties, late ones, load changes), find keeps its order
    and the expired agents are those past their TTL."""
    index = AgentIndex(expiry_grace=0.5)
    agents: dict[str, tuple[AgentInfo, float]] = {}
    now = 10.0
    for step in script:
        if step[0] == "tick":
            now += 0.5
        elif step[0] == "beat":
            _, agent_id, load, capacity, caps, shift, labels, ttl = step
            assert isinstance(agent_id, str)
            agent = info(agent_id, caps, load=load, capacity=capacity, labels=labels, ttl=ttl)  # type: ignore[arg-type]
            seen = now + shift  # type: ignore[operator]
            index.heartbeat(agent, seen)
            previous = agents.get(agent_id)
            agents[agent_id] = (agent, max(seen, previous[1]) if previous else seen)
        elif step[0] == "sweep":
            at = now + step[1]  # type: ignore[operator]
            past = [a for a, (ag, seen) in agents.items() if at - seen > ag.ttl_s + 0.5]
            assert index.expired(at) == sorted(past)
        elif step[0] == "leave":
            assert isinstance(step[1], str)
            index.remove(step[1])
            agents.pop(step[1], None)
        else:
            _, capability, minimum, limit, suspect, labels = step
            query = FindAgents(
                capability=capability,  # type: ignore[arg-type]
                min_version=minimum,  # type: ignore[arg-type]
                limit=limit,  # type: ignore[arg-type]
                include_suspect=suspect,  # type: ignore[arg-type]
                labels=labels,  # type: ignore[arg-type]
            )
            got = [(v.info.agent_id, now - v.last_seen_s) for v in index.find(query, now)]
            want = _find_by_sorting_everyone(index, agents, query, now)
            assert [a for a, _ in got] == [a for a, _ in want]


def test_suspects_counts_agents_past_one_and_a_half_intervals() -> None:
    """The gauge of suspect agents counts exactly those silent too long."""
    index = AgentIndex()
    index.heartbeat(info("a", interval=1.0), 10.0)
    index.heartbeat(info("b", interval=4.0), 10.0)
    assert index.suspects(11.4) == 0
    assert index.suspects(11.6) == 1
    assert index.suspects(16.1) == 2

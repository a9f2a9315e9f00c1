"""The live agent index: who is present, how fresh, and who matches a query.

Pure logic, no I/O: the registry actor feeds it heartbeats and departures it
reads from the agents bucket, and asks it for matches. Time is passed in as
monotonic seconds, so tests drive it without sleeping.

``find`` must stay fast with thousands of agents offering the same capability,
so the index keeps them in the order ``find`` answers in: per capability, one
bucket per (relative load, load), each an insertion-ordered dict that a
heartbeat moves its agent to the end of — heartbeats arrive in time order, so
a bucket is ordered by last heartbeat and read freshest first. ``find`` walks
the buckets from the least loaded and stops once it has ``limit`` matches; a
bucket whose order a late (older) observation broke is re-sorted when next read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from actors.agent_registry.expiry import Deadlines
from protocols.agents import AgentInfo, AgentPresence, AgentView, Capability, FindAgents

__all__ = [
    "AgentIndex",
    "Change",
    "IndexedAgent",
    "capability_list",
    "capability_version",
    "matches",
    "parse_requirement",
    "parse_version",
    "version_at_least",
]

Change = Literal["joined", "updated"]
"""What a heartbeat did to the index."""

SUSPECT_AFTER = 1.5
"""A heartbeat is missed once ``SUSPECT_AFTER`` intervals passed without one."""

_REQUIREMENT = re.compile(r"^\s*([^\s@>=]+)\s*(?:(?:@|>=)\s*(\d+(?:\.\d+){0,2}))?\s*$")


def parse_version(version: str) -> tuple[int, ...]:
    """Return the numeric parts of a dotted version, trailing zeros dropped.

    ``"1.2"``, ``"1.2.0"`` and ``"01.2"`` compare equal; ``"1.10"`` is above ``"1.9"``.

    Raises:
        ValueError: a part is not a non-negative integer.
    """
    parts = [int(p) for p in version.strip().split(".")]
    if any(p < 0 for p in parts):
        raise ValueError(f"version {version!r} has a negative part")
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def parse_requirement(requires: str) -> tuple[str, str]:
    """Split ``"name"``, ``"name>=1.2"`` or ``"name@1.2"`` into (capability, minimum version).

    Raises:
        ValueError: the requirement is malformed.
    """
    match = _REQUIREMENT.match(requires)
    if match is None:
        raise ValueError(f"malformed capability requirement {requires!r}")
    version = match.group(2) or "0"
    parse_version(version)
    return match.group(1), version


def version_at_least(version: str, minimum: str) -> bool:
    """Whether dotted ``version`` is at or above ``minimum`` (numeric, part by part)."""
    return parse_version(version) >= parse_version(minimum)


def capability_version(info: AgentInfo, name: str) -> str | None:
    """Return the highest version of capability ``name`` that ``info`` offers, if any."""
    versions = [c.version for c in info.capabilities if c.name == name]
    return max(versions, key=parse_version) if versions else None


def matches(
    info: AgentInfo, capability: str, min_version: str = "0", labels: Mapping[str, str] = {}
) -> bool:
    """Whether ``info`` offers ``capability`` at ``min_version`` or above and carries ``labels``."""
    version = capability_version(info, capability)
    if version is None or not version_at_least(version, min_version):
        return False
    return all(info.labels.get(k) == v for k, v in labels.items())


_Slot = tuple[float, int]
"""Bucket of an agent within a capability: load relative to capacity, then load."""


def _versions(info: AgentInfo) -> dict[str, tuple[int, ...]]:
    versions: dict[str, tuple[int, ...]] = {}
    for cap in info.capabilities:
        parsed = parse_version(cap.version)
        if parsed > versions.get(cap.name, ()):
            versions[cap.name] = parsed
    return versions


@dataclass(slots=True)
class IndexedAgent:
    """An agent in the index.

    Attributes:
        info: its last heartbeat.
        last_seen: monotonic time that heartbeat was observed.
    """

    info: AgentInfo
    last_seen: float
    versions: dict[str, tuple[int, ...]] = field(init=False)
    """Highest parsed version of each capability (computed when capabilities change)."""
    slot: _Slot = field(init=False)
    """Bucket it is kept in under each of its capabilities (see :func:`_slot`)."""

    def __post_init__(self) -> None:
        self.versions = _versions(self.info)
        self.slot = _slot(self.info)

    def presence(self, now: float, suspect_after: float = SUSPECT_AFTER) -> AgentPresence:
        """``suspect`` once a heartbeat is overdue, else ``live``."""
        overdue = now - self.last_seen > self.info.interval_s * suspect_after
        return "suspect" if overdue else "live"

    def view(self, now: float, suspect_after: float = SUSPECT_AFTER) -> AgentView:
        """Return the wire view of this agent at ``now``."""
        return AgentView(
            info=self.info,
            presence=self.presence(now, suspect_after),
            last_seen_s=max(0.0, now - self.last_seen),
        )


def _slot(info: AgentInfo) -> _Slot:
    return (info.load / info.capacity, info.load)


class _Capability:
    """The agents offering one capability, in ``find`` order (see the module docstring)."""

    __slots__ = ("buckets", "order", "unsorted")

    def __init__(self) -> None:
        self.buckets: dict[_Slot, dict[str, IndexedAgent]] = {}
        self.order: list[_Slot] | None = []
        """Bucket slots sorted, or ``None`` when a bucket was added or dropped."""
        self.unsorted: set[_Slot] = set()
        """Buckets whose dict order is not by last heartbeat any more."""

    def __bool__(self) -> bool:
        return bool(self.buckets)

    def add(self, entry: IndexedAgent) -> None:
        """Put ``entry`` last (freshest) in its bucket."""
        bucket = self.buckets.get(entry.slot)
        if bucket is None:
            self.buckets[entry.slot] = {entry.info.agent_id: entry}
            self.order = None
            return
        if bucket and next(reversed(bucket.values())).last_seen > entry.last_seen:
            self.unsorted.add(entry.slot)
        bucket[entry.info.agent_id] = entry

    def discard(self, agent_id: str, slot: _Slot) -> None:
        """Drop ``agent_id`` from bucket ``slot``."""
        bucket = self.buckets.get(slot)
        if bucket is None or bucket.pop(agent_id, None) is None or bucket:
            return
        del self.buckets[slot]
        self.unsorted.discard(slot)
        self.order = None

    def slots(self) -> list[_Slot]:
        """Bucket slots, least loaded first."""
        if self.order is None:
            self.order = sorted(self.buckets)
        return self.order

    def freshest_first(self, slot: _Slot) -> Iterable[IndexedAgent]:
        """The agents of bucket ``slot``, latest heartbeat first."""
        bucket = self.buckets[slot]
        if slot in self.unsorted:
            ordered = sorted(bucket.values(), key=_last_seen)
            bucket.clear()
            bucket.update((e.info.agent_id, e) for e in ordered)
            self.unsorted.discard(slot)
        return reversed(bucket.values())


def _last_seen(entry: IndexedAgent) -> float:
    return entry.last_seen


def _agent_id(entry: IndexedAgent) -> str:
    return entry.info.agent_id


class AgentIndex:
    """Agents present in the bucket, by id.

    Args:
        suspect_after: intervals without a heartbeat before an agent is ``suspect``.
        expiry_grace: seconds past an agent's TTL before :meth:`expired` reports it;
            the bucket's expiry marker normally arrives first.
    """

    def __init__(self, *, suspect_after: float = SUSPECT_AFTER, expiry_grace: float = 0.0) -> None:
        if suspect_after <= 0:
            raise ValueError("suspect_after must be positive")
        if expiry_grace < 0:
            raise ValueError("expiry_grace must not be negative")
        self.suspect_after = suspect_after
        self.expiry_grace = expiry_grace
        self._agents: dict[str, IndexedAgent] = {}
        # Capability name -> its agents in find order, so find touches only the
        # agents it answers with.
        self._by_capability: dict[str, _Capability] = {}
        self._deadlines = Deadlines()

    def __len__(self) -> int:
        return len(self._agents)

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._agents

    def ids(self) -> set[str]:
        """Ids of every indexed agent."""
        return set(self._agents)

    def get(self, agent_id: str) -> IndexedAgent | None:
        """Return the indexed agent ``agent_id``, if present."""
        return self._agents.get(agent_id)

    def heartbeat(self, info: AgentInfo, seen_at: float) -> Change:
        """Record a heartbeat observed at monotonic ``seen_at``.

        Returns:
            ``joined`` for an agent not in the index, else ``updated``.
        """
        entry = self._agents.get(info.agent_id)
        if entry is None:
            entry = IndexedAgent(info=info, last_seen=seen_at)
            self._agents[info.agent_id] = entry
            self._link(entry)
            self._deadlines.push(self._deadline(entry), info.agent_id)
            return "joined"
        self._unlink(entry)
        if entry.info.capabilities != info.capabilities:
            entry.versions = _versions(info)
        entry.info = info
        entry.slot = _slot(info)
        entry.last_seen = max(entry.last_seen, seen_at)
        self._link(entry)
        self._deadlines.push(self._deadline(entry), info.agent_id)
        return "updated"

    def remove(self, agent_id: str) -> AgentInfo | None:
        """Drop ``agent_id``; return its last heartbeat, or ``None`` if it was not present."""
        entry = self._agents.pop(agent_id, None)
        if entry is None:
            return None
        self._unlink(entry)
        return entry.info

    def clear(self) -> None:
        """Forget every agent."""
        self._agents.clear()
        self._by_capability.clear()
        self._deadlines.clear()

    def _link(self, entry: IndexedAgent) -> None:
        by_capability = self._by_capability
        for name in entry.versions:
            index = by_capability.get(name)
            if index is None:
                index = by_capability[name] = _Capability()
            index.add(entry)

    def _unlink(self, entry: IndexedAgent) -> None:
        agent_id = entry.info.agent_id
        for name in entry.versions:
            # Linked entries are always in their capabilities' indexes (see _link).
            index = self._by_capability[name]
            index.discard(agent_id, entry.slot)
            if not index:
                del self._by_capability[name]

    def expired(self, now: float) -> list[str]:
        """Ids of agents whose heartbeat outlived its TTL (plus grace) at ``now``, sorted.

        Costs time in proportion to the deadlines that have passed, not to the index.
        """
        return self._deadlines.due(now, self._current_deadline)

    def _deadline(self, entry: IndexedAgent) -> float:
        return entry.last_seen + entry.info.ttl_s + self.expiry_grace

    def _current_deadline(self, agent_id: str) -> float | None:
        entry = self._agents.get(agent_id)
        return None if entry is None else self._deadline(entry)

    def suspects(self, now: float) -> int:
        """How many agents are ``suspect`` at ``now``."""
        factor = self.suspect_after
        return sum(
            1 for e in self._agents.values() if now - e.last_seen > e.info.interval_s * factor
        )

    def presence(self, agent_id: str, now: float) -> AgentPresence | None:
        """Presence of ``agent_id`` at ``now``, or ``None`` if it is not indexed."""
        entry = self._agents.get(agent_id)
        return entry.presence(now, self.suspect_after) if entry is not None else None

    def views(self, now: float) -> list[AgentView]:
        """Every agent, sorted by id."""
        return [
            self._agents[agent_id].view(now, self.suspect_after)
            for agent_id in sorted(self._agents)
        ]

    def find(self, query: FindAgents, now: float) -> list[AgentView]:
        """Agents matching ``query``, least-loaded first.

        Order: load relative to capacity, then absolute load, then the freshest
        heartbeat, then id (so equal agents come back in a stable order).
        Suspect agents qualify only with ``include_suspect``.
        """
        # The hot path of the registry: buckets in find order, freshest first, stop
        # at ``limit``. Agents seen at the same instant are ordered by id, so a tie
        # is collected whole before it is cut.
        index = self._by_capability.get(query.capability)
        if index is None:
            return []
        capability = query.capability
        minimum = parse_version(query.min_version)
        labels = list(query.labels.items())
        factor = self.suspect_after
        live_only = not query.include_suspect
        limit = query.limit
        found: list[IndexedAgent] = []
        for slot in index.slots():
            tie: list[IndexedAgent] = []
            tie_seen: float | None = None
            for entry in index.freshest_first(slot):
                if entry.last_seen != tie_seen:
                    if tie:
                        found.extend(sorted(tie, key=_agent_id) if len(tie) > 1 else tie)
                        tie = []
                    if len(found) >= limit:
                        break
                    tie_seen = entry.last_seen
                info = entry.info
                if entry.versions[capability] < minimum:
                    continue
                if live_only and now - entry.last_seen > info.interval_s * factor:
                    continue
                if labels and any(info.labels.get(k) != v for k, v in labels):
                    continue
                tie.append(entry)
            if tie:
                found.extend(sorted(tie, key=_agent_id) if len(tie) > 1 else tie)
            if len(found) >= limit:
                break
        return [entry.view(now, factor) for entry in found[:limit]]


def capability_list(specs: Iterable[str | Capability]) -> list[Capability]:
    """Turn ``"name"`` / ``"name@1.2"`` strings (or Capabilities) into Capabilities.

    Raises:
        ValueError: a version is not dotted numeric.
    """
    out: list[Capability] = []
    for spec in specs:
        if isinstance(spec, Capability):
            out.append(spec)
            continue
        name, _, version = spec.partition("@")
        version = version or "1"
        parse_version(version)
        out.append(Capability(name=name, version=version))
    return out

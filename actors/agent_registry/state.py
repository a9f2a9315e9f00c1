"""The live agent index: who is present, how fresh, and who matches a query.

Pure logic, no I/O: the registry actor feeds it heartbeats and departures it
reads from the agents bucket, and asks it for matches. Time is passed in as
monotonic seconds, so tests drive it without sleeping.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

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


_Key = tuple[float, int, float, str]
"""Sort key of a find match: relative load, load, -last seen, id."""


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

    def __post_init__(self) -> None:
        self.versions = _versions(self.info)

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
        # Capability name -> ids, so find touches only agents that could match.
        self._by_capability: dict[str, dict[str, IndexedAgent]] = {}

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
            return "joined"
        if entry.info.capabilities != info.capabilities:
            self._unlink(entry.info)
            entry.versions = _versions(info)
            entry.info = info
            self._link(entry)
        entry.info = info
        entry.last_seen = max(entry.last_seen, seen_at)
        return "updated"

    def remove(self, agent_id: str) -> AgentInfo | None:
        """Drop ``agent_id``; return its last heartbeat, or ``None`` if it was not present."""
        entry = self._agents.pop(agent_id, None)
        if entry is None:
            return None
        self._unlink(entry.info)
        return entry.info

    def clear(self) -> None:
        """Forget every agent."""
        self._agents.clear()
        self._by_capability.clear()

    def _link(self, entry: IndexedAgent) -> None:
        for name in entry.versions:
            self._by_capability.setdefault(name, {})[entry.info.agent_id] = entry

    def _unlink(self, info: AgentInfo) -> None:
        for cap in info.capabilities:
            entries = self._by_capability.get(cap.name)
            if entries is not None:
                entries.pop(info.agent_id, None)
                if not entries:
                    del self._by_capability[cap.name]

    def expired(self, now: float) -> list[str]:
        """Ids of agents whose heartbeat outlived its TTL (plus grace) at ``now``, sorted."""
        return sorted(
            agent_id
            for agent_id, entry in self._agents.items()
            if now - entry.last_seen > entry.info.ttl_s + self.expiry_grace
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
        # The hot path of the registry: one pass, no allocation per rejected agent.
        capability = query.capability
        minimum = parse_version(query.min_version)
        labels = list(query.labels.items())
        factor = self.suspect_after
        live_only = not query.include_suspect
        rows: list[tuple[_Key, IndexedAgent]] = []
        for entry in self._by_capability.get(capability, {}).values():
            info = entry.info
            if entry.versions[capability] < minimum:
                continue
            if live_only and now - entry.last_seen > info.interval_s * factor:
                continue
            if labels and any(info.labels.get(k) != v for k, v in labels):
                continue
            key = (info.load / info.capacity, info.load, -entry.last_seen, info.agent_id)
            rows.append((key, entry))
        best = heapq.nsmallest(query.limit, rows, key=_first)
        return [entry.view(now, factor) for _, entry in best]


def _first(
    row: tuple[tuple[float, int, float, str], IndexedAgent],
) -> tuple[float, int, float, str]:
    return row[0]


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

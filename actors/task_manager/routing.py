"""The agent dispatcher's pure logic: presence, candidates, and what an assignment becomes.

No I/O: :class:`Presence` keeps the dispatcher's view of the agents (the
index fed by the agents bucket, plus the agents seen leaving) and ranks
candidates; the ``placed``/``released``/``finished`` functions return the next
version of an :class:`~protocols.agents.AgentAssignment`.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from actors.agent_registry.client import AgentIndex, PresenceEvent
from protocols.agents import AgentAssignment, AgentView

__all__ = ["FORGET_DEPARTED_S", "Presence", "finished", "held_counts", "placed", "released"]

FORGET_DEPARTED_S = 300.0
"""Seconds a departed agent stays excluded from candidates unless it heartbeats again."""

_DEPARTED_KEPT = 16
"""Departed holders remembered per assignment."""


class Presence:
    """The agents a dispatcher knows about: live ones, and those seen leaving.

    Times are monotonic seconds of the dispatcher's clock.
    """

    def __init__(self) -> None:
        self.index = AgentIndex()
        self.departed: dict[str, float] = {}
        """Agents seen leaving, with when, until they come back or are long gone."""

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self.index

    def apply(self, event: PresenceEvent, now: float) -> bool:
        """Fold one presence event in; return whether an agent was seen leaving."""
        if event.kind == "put":
            assert event.info is not None
            self.index.heartbeat(event.info, now)
            self.departed.pop(event.agent_id, None)
            return False
        self.index.remove(event.agent_id)
        if event.snapshot:
            return False  # gone before the dispatcher started watching
        self.departed[event.agent_id] = now
        return True

    def sweep(self, now: float) -> None:
        """Drop agents whose heartbeats stopped; forget departures long past."""
        for agent_id in self.index.expired(now):
            self.index.remove(agent_id)
            self.departed[agent_id] = now
        for agent_id, at in list(self.departed.items()):
            if now - at > FORGET_DEPARTED_S:
                del self.departed[agent_id]

    def holder_gone(self, assignment: AgentAssignment, since_assigned: float, grace: float) -> bool:
        """Whether the agent holding ``assignment`` is gone.

        Args:
            assignment: an ``assigned`` assignment.
            since_assigned: seconds since it was assigned.
            grace: seconds an agent may be missing from the bucket (not seen
                leaving) before it counts as gone.
        """
        agent_id = assignment.agent_id
        if agent_id is None or agent_id in self.departed:
            return True
        if agent_id in self.index:
            return False
        return since_assigned > grace

    def rank(
        self, views: Iterable[AgentView], assignment: AgentAssignment, held: dict[str, int]
    ) -> list[str]:
        """Return the usable candidates' ids, least loaded first.

        An agent seen leaving is no candidate; nor is one that left this
        assignment before, unless it is live again. The load counts what this
        dispatcher handed out since the agent's last heartbeat (``held``).
        """
        usable = [
            v
            for v in views
            if v.info.agent_id not in self.departed
            and (v.info.agent_id not in assignment.departed or v.info.agent_id in self.index)
        ]
        usable.sort(key=lambda v: (v.info.load + held.get(v.info.agent_id, 0)) / v.info.capacity)
        return [v.info.agent_id for v in usable]


def held_counts(assignments: Iterable[AgentAssignment]) -> dict[str, int]:
    """Return how many of ``assignments`` each agent holds."""
    held: dict[str, int] = {}
    for assignment in assignments:
        if assignment.agent_id is not None:
            held[assignment.agent_id] = held.get(assignment.agent_id, 0) + 1
    return held


def placed(assignment: AgentAssignment, agent_id: str, now: float) -> AgentAssignment:
    """Return ``assignment`` handed to ``agent_id`` at ``now`` as its next attempt."""
    return msgspec.structs.replace(
        assignment,
        state="assigned",
        agent_id=agent_id,
        attempt=assignment.attempt + 1,
        deadline=None,
        assigned_at=now,
    )


def released(assignment: AgentAssignment, now: float, deadline_s: float) -> AgentAssignment:
    """Return ``assignment`` waiting again after its holder left, with a new deadline."""
    gone = assignment.agent_id or "?"
    return msgspec.structs.replace(
        assignment,
        state="waiting",
        agent_id=None,
        assigned_at=None,
        deadline=now + deadline_s,
        departed=[*assignment.departed, gone][-_DEPARTED_KEPT:],
    )


def finished(assignment: AgentAssignment) -> AgentAssignment:
    """Return ``assignment`` done (a result arrived, or no agent came in time)."""
    return msgspec.structs.replace(assignment, state="done", deadline=None)

"""When each indexed agent's heartbeat runs out: a heap of deadlines, read from the earliest.

The registry asks many times a second which agents outlived their TTL. Walking
every agent for that costs time in proportion to the index on every sweep, so
the deadlines are kept in a heap instead: each heartbeat pushes its agent's new
deadline, and a sweep looks only at the deadlines already past. An entry made
stale by a later heartbeat (or a departure) is dropped when it surfaces, so
the heap holds at most about one entry per heartbeat within a TTL.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

__all__ = ["Deadlines"]


class Deadlines:
    """Deadlines of agents, earliest first, with stale entries dropped lazily."""

    __slots__ = ("_heap",)

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, deadline: float, agent_id: str) -> None:
        """Note that ``agent_id`` runs out at ``deadline`` (unless it beats again)."""
        heapq.heappush(self._heap, (deadline, agent_id))

    def clear(self) -> None:
        """Forget every deadline."""
        self._heap.clear()

    def due(self, now: float, current: Callable[[str], float | None]) -> list[str]:
        """Ids whose current deadline has passed at ``now``, sorted; they stay due until
        their agent beats again or leaves.

        Args:
            now: the time to judge at.
            current: the agent's deadline as the index has it now (``None`` if it left);
                an entry that does not match it is stale and dropped.
        """
        heap = self._heap
        due: set[str] = set()
        keep: list[tuple[float, str]] = []
        while heap and heap[0][0] < now:
            deadline, agent_id = heapq.heappop(heap)
            if current(agent_id) != deadline:
                continue  # a later heartbeat pushed a newer deadline, or the agent left
            if agent_id not in due:
                due.add(agent_id)
                keep.append((deadline, agent_id))
        for item in keep:
            heapq.heappush(heap, item)
        return sorted(due)

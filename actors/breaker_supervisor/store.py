"""KV access of the breaker supervisor: snapshots, published statuses, probe claims.

The snapshot (:data:`protocols.breakers.SNAPSHOTS_BUCKET`) is the truth and is
written first; the status runners watch (:data:`protocols.breakers.BREAKERS_BUCKET`)
is derived from it and written second (or later, when only its window counters
changed). A crash between the two is repaired at start-up, when every status
is re-published from its snapshot.
"""

from __future__ import annotations

import asyncio
import logging

from actors.runtime.bus import Bus
from actors.runtime.cancellation import cancel_and_wait
from actors.runtime.clock import Clock, system_clock, wait_tasks
from actors.runtime.kv import TypedBucket
from actors.topology import BREAKER_SNAPSHOTS, BREAKERS
from protocols.breakers import BreakerSnapshot, BreakerStatus, breaker_kv_key, probe_kv_key

__all__ = ["BreakerStore"]

log = logging.getLogger(__name__)


class BreakerStore:
    """Reads and writes breaker state in KV.

    Args:
        statuses: the bucket runners watch.
        snapshots: the supervisor's own bucket.
    """

    def __init__(
        self, statuses: TypedBucket[BreakerStatus], snapshots: TypedBucket[BreakerSnapshot]
    ) -> None:
        self.statuses = statuses
        self.snapshots = snapshots

    @classmethod
    async def open(cls, bus: Bus) -> BreakerStore:
        """Open (creating if needed) both buckets."""
        return cls(
            await TypedBucket.bind(bus, BREAKERS, BreakerStatus),
            await TypedBucket.bind(bus, BREAKER_SNAPSHOTS, BreakerSnapshot),
        )

    async def load(
        self, timeout: float = 10.0, clock: Clock = system_clock
    ) -> list[BreakerSnapshot]:
        """Return every stored snapshot; undecodable ones are logged and skipped.

        Args:
            timeout: seconds of ``clock`` to wait for the bucket's content.
            clock: clock of that wait (a real-time wait on the server).

        Raises:
            TimeoutError: the content did not arrive in time.
        """
        snapshots: list[BreakerSnapshot] = []
        watch = await self.snapshots.watch()

        async def collect() -> None:
            async for entry in watch:
                if entry.value is not None:
                    snapshots.append(entry.value)

        collector = asyncio.ensure_future(collect())
        waiter = asyncio.ensure_future(watch.caught_up.wait())
        try:
            late = await wait_tasks({waiter}, timeout, clock)
        finally:
            waiter.cancel()
            await watch.close()
            await cancel_and_wait(collector)
        if late:
            raise TimeoutError(f"breaker snapshots not loaded within {timeout}s")
        return snapshots

    async def save(self, snapshot: BreakerSnapshot, *, status: bool = True) -> None:
        """Write the snapshot, then (unless ``status`` is false) the status runners see."""
        await self.snapshots.put(breaker_kv_key(snapshot.status.key), snapshot)
        if status:
            await self.save_status(snapshot.status)

    async def save_status(self, status: BreakerStatus) -> None:
        """Write only the status runners see (its snapshot is already stored)."""
        await self.statuses.put(breaker_kv_key(status.key), status)

    async def purge_probes(self, key: str, epoch: int, permits: int) -> None:
        """Remove the half-open probe claims of one epoch of breaker ``key``."""
        for slot in range(permits):
            await self.statuses.purge(probe_kv_key(key, epoch, slot))

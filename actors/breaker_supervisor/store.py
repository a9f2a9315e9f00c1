"""KV access of the breaker supervisor: snapshots, published statuses, probe claims.

The snapshot (:data:`protocols.breakers.SNAPSHOTS_BUCKET`) is the truth and is
written first; the status runners watch (:data:`protocols.breakers.BREAKERS_BUCKET`)
is derived from it and written second. A crash between the two is repaired at
start-up, when every status is re-published from its snapshot.
"""

from __future__ import annotations

import logging

import msgspec
from nats.js.kv import KeyValue

from actors.runtime.bus import Bus
from actors.topology import BREAKER_SNAPSHOTS, BREAKERS
from protocols.breakers import BreakerSnapshot, breaker_kv_key, probe_kv_key

__all__ = ["BreakerStore"]

log = logging.getLogger(__name__)

_encoder = msgspec.msgpack.Encoder()
_snapshot_decoder = msgspec.msgpack.Decoder(BreakerSnapshot)


class BreakerStore:
    """Reads and writes breaker state in KV.

    Args:
        status_kv: the bucket runners watch.
        snapshot_kv: the supervisor's own bucket.
    """

    def __init__(self, status_kv: KeyValue, snapshot_kv: KeyValue) -> None:
        self.status_kv = status_kv
        self.snapshot_kv = snapshot_kv

    @classmethod
    async def open(cls, bus: Bus) -> BreakerStore:
        """Open (creating if needed) both buckets."""
        return cls(await bus.key_value(BREAKERS), await bus.key_value(BREAKER_SNAPSHOTS))

    async def load(self) -> list[BreakerSnapshot]:
        """Return every stored snapshot; undecodable ones are logged and skipped."""
        watcher = await self.snapshot_kv.watchall()
        snapshots = []
        try:
            while True:
                entry = await watcher.updates(timeout=10.0)  # type: ignore[no-untyped-call]
                if entry is None:
                    break
                if entry.value and entry.operation is None:
                    try:
                        snapshots.append(_snapshot_decoder.decode(entry.value))
                    except msgspec.DecodeError as exc:
                        log.error(
                            "breaker snapshot %s is unreadable, starting it afresh: %s",
                            entry.key,
                            exc,
                        )
                if entry.delta == 0:
                    break
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return snapshots

    async def save(self, snapshot: BreakerSnapshot) -> None:
        """Write the snapshot, then the status runners see."""
        kv_key = breaker_kv_key(snapshot.status.key)
        await self.snapshot_kv.put(kv_key, _encoder.encode(snapshot))
        await self.status_kv.put(kv_key, _encoder.encode(snapshot.status))

    async def purge_probes(self, key: str, epoch: int, permits: int) -> None:
        """Remove the half-open probe claims of one epoch of breaker ``key``."""
        for slot in range(permits):
            await self.status_kv.purge(probe_kv_key(key, epoch, slot))

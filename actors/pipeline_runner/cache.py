"""The step cache: in-process LRU in front of a JetStream object store shared by runners.

An entry is a :class:`~protocols.pipelines.CachedStep` (the successful
step's result; its artifact references point at the content-addressed output
files). Entries older than the TTL are misses on either tier. A shared-tier
failure (NATS down) is a miss, never an error: the step simply runs.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

import msgspec
import nats.errors
from nats.js.object_store import ObjectStore

from actors.runtime.clock import Clock, system_clock
from protocols.pipelines import CachedStep, StepResult

__all__ = ["CacheStats", "StepCache"]

log = logging.getLogger(__name__)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CachedStep)


@dataclass(slots=True)
class CacheStats:
    """Hit and miss counters, reported in ``$SRV.STATS``."""

    memory_hits: int = 0
    store_hits: int = 0
    misses: int = 0
    stores: int = 0
    expired: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the counters (with the total of hits) as a plain dict."""
        return {
            "cache_hits": self.memory_hits + self.store_hits,
            "cache_memory_hits": self.memory_hits,
            "cache_store_hits": self.store_hits,
            "cache_misses": self.misses,
            "cache_stores": self.stores,
            "cache_expired": self.expired,
            "cache_errors": self.errors,
        }


class StepCache:
    """Two-tier step cache.

    Args:
        store: the shared object store (``None``: in-process tier only).
        clock: time source of TTL checks.
        capacity: entries kept in process.
        ttl: seconds an entry stays valid.
    """

    def __init__(
        self,
        store: ObjectStore | None,
        *,
        clock: Clock = system_clock,
        capacity: int = 1024,
        ttl: float = 7 * 24 * 3600.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._capacity = capacity
        self._ttl = ttl
        self._memory: OrderedDict[str, CachedStep] = OrderedDict()
        self.stats = CacheStats()

    def _fresh(self, entry: CachedStep) -> bool:
        return self._ttl <= 0 or self._clock.time() - entry.stored_at < self._ttl

    def _remember(self, entry: CachedStep) -> None:
        self._memory[entry.key] = entry
        self._memory.move_to_end(entry.key)
        while len(self._memory) > self._capacity:
            self._memory.popitem(last=False)

    async def get(self, key: str) -> StepResult | None:
        """Return the cached result of ``key``, or ``None`` (counted as a miss)."""
        entry = self._memory.get(key)
        if entry is not None:
            if self._fresh(entry):
                self._memory.move_to_end(key)
                self.stats.memory_hits += 1
                return entry.result
            del self._memory[key]
            self.stats.expired += 1
        if self._store is not None:
            try:
                found = await self._store.get(key)
            except nats.errors.Error:
                found = None
            except OSError as exc:
                self.stats.errors += 1
                log.warning("step cache: shared tier unreadable: %s", exc)
                found = None
            if found is not None and found.data:
                try:
                    entry = _decoder.decode(found.data)
                except msgspec.DecodeError:
                    entry = None
                if entry is not None and self._fresh(entry):
                    self._remember(entry)
                    self.stats.store_hits += 1
                    return entry.result
                if entry is not None:
                    self.stats.expired += 1
        self.stats.misses += 1
        return None

    async def put(self, key: str, result: StepResult) -> None:
        """Store a successful step's result under ``key`` in both tiers."""
        entry = CachedStep(key=key, result=result, stored_at=self._clock.time())
        self._remember(entry)
        self.stats.stores += 1
        if self._store is None:
            return
        try:
            await self._store.put(key, _encoder.encode(entry))
        except (nats.errors.Error, OSError) as exc:
            self.stats.errors += 1
            log.warning("step cache: entry %s not shared: %s", key[:12], exc)

    def clear_local(self) -> int:
        """Empty the in-process tier; return how many entries it held."""
        count = len(self._memory)
        self._memory.clear()
        return count

    async def clear(self) -> int:
        """Empty both tiers; return how many shared entries were removed."""
        self.clear_local()
        if self._store is None:
            return 0
        try:
            infos = await self._store.list()
        except nats.errors.Error:
            return 0
        removed = 0
        for info in infos:
            if info.deleted:
                continue
            try:
                await self._store.delete(info.name)
                removed += 1
            except nats.errors.Error as exc:
                log.warning("step cache: cannot delete %s: %s", info.name[:12], exc)
        return removed

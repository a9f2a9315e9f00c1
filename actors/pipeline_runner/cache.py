"""The step cache: in-process LRU in front of a JetStream KV bucket shared by runners.

An entry is a :class:`~protocols.pipelines.CachedStep` (the successful
step's result; its artifact references point at the content-addressed output
files; the template of the workflow that stored it), stored in the
:data:`~actors.topology.STEP_CACHE` bucket under its cache key: one KV put,
one JetStream write. Entries older than the TTL are misses on either tier. A
shared-tier failure (NATS down, an entry larger than the server's maximum
payload, a key the bucket refuses) is a miss or an entry kept in process
only, counted in :attr:`CacheStats.errors`, never an error: the step simply
runs. A stored value that does not decode is a miss.

Clearing (:meth:`StepCache.clear_for`, the answer to a
:class:`~protocols.pipelines.ClearCache` request) removes everything, one entry
(its key or an unambiguous prefix of it), or the entries a template's workflows
stored; :meth:`StepCache.forget` drops the same entries from another runner's
in-process tier when the answer is announced.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

import nats.errors

from actors.runtime.clock import Clock, system_clock
from actors.runtime.errors import BadRequest, NotFound
from actors.runtime.kv import TypedBucket
from protocols.pipelines import CacheCleared, CachedStep, ClearCache, StepResult

__all__ = ["CacheStats", "StepCache"]

log = logging.getLogger(__name__)

_SHARED_TIER_DOWN = (nats.errors.Error, OSError)
"""What a shared-tier read or write may raise when NATS cannot serve it."""


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
        store: the shared bucket (``None``: in-process tier only).
        clock: time source of TTL checks.
        capacity: entries kept in process.
        ttl: seconds an entry stays valid.
    """

    def __init__(
        self,
        store: TypedBucket[CachedStep] | None,
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
            entry = await self._read(key)
            if entry is not None and self._fresh(entry):
                self._remember(entry)
                self.stats.store_hits += 1
                return entry.result
            if entry is not None:
                self.stats.expired += 1
        self.stats.misses += 1
        return None

    async def put(self, key: str, result: StepResult, *, template: str | None = None) -> None:
        """Store a successful step's result under ``key`` in both tiers.

        Args:
            key: the cache key.
            result: the step's result.
            template: template of the workflow the step belongs to (recorded, so
                ``troupe cache clear --template`` finds the entry).
        """
        entry = CachedStep(
            key=key, result=result, stored_at=self._clock.time(), template=template or ""
        )
        self._remember(entry)
        self.stats.stores += 1
        if self._store is None:
            return
        try:
            await self._store.put(key, entry)
        except (*_SHARED_TIER_DOWN, BadRequest) as exc:
            # Too large for the server's max_payload, a key the bucket refuses, NATS down.
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
        return sum([await self._delete(key) for key in await self._keys()])

    async def clear_for(self, request: ClearCache) -> CacheCleared:
        """Remove what ``request`` names: everything, one entry, or a template's entries.

        Raises:
            NotFound: ``request.key`` names no entry (nothing is removed).
            BadRequest: ``request.key`` is empty or the prefix of several entries.
        """
        if request.key is None and request.template is None:
            return CacheCleared(removed=await self.clear())
        shared = await self._shared_entries()
        if request.key is not None:
            keys = [self._resolve(request.key, set(shared) | set(self._memory))]
        else:
            keys = sorted(
                k
                for k, e in {**shared, **self._memory}.items()
                if e is not None and e.template == request.template
            )
        removed = 0
        for key in keys:
            self._memory.pop(key, None)
            if key in shared and await self._delete(key):
                removed += 1
        return CacheCleared(removed=removed, keys=keys)

    def forget(self, cleared: CacheCleared) -> int:
        """Drop from the in-process tier what a runner's clearing removed; return how many."""
        if cleared.keys is None:
            return self.clear_local()
        return sum(self._memory.pop(key, None) is not None for key in cleared.keys)

    @staticmethod
    def _resolve(key: str, known: set[str]) -> str:
        if not key:
            raise BadRequest(
                "a cache key (or a prefix of one, as 'troupe cache ls' shows) is needed"
            )
        if key in known:
            return key
        matches = sorted(k for k in known if k.startswith(key))
        if not matches:
            raise NotFound(f"no step cache entry has the key {key!r}")
        if len(matches) > 1:
            raise BadRequest(f"{key!r} is the prefix of {len(matches)} cache keys; give more of it")
        return matches[0]

    async def _read(self, key: str) -> CachedStep | None:
        """Return the shared tier's entry of ``key`` (``None``: none, unreadable or undecodable)."""
        assert self._store is not None
        try:
            found = await self._store.get_or_none(key)
        except BadRequest:
            return None  # a value that does not decode, or a key the bucket refuses
        except _SHARED_TIER_DOWN as exc:
            self.stats.errors += 1
            log.warning("step cache: shared tier unreadable: %s", exc)
            return None
        return None if found is None else found.value

    async def _keys(self) -> list[str]:
        """Return the shared tier's keys (none when it cannot be read)."""
        if self._store is None:
            return []
        try:
            return await self._store.keys()
        except _SHARED_TIER_DOWN as exc:
            log.warning("step cache: shared tier unreadable: %s", exc)
            return []

    async def _shared_entries(self) -> dict[str, CachedStep | None]:
        """Return the shared tier's entries by key (``None``: it does not decode)."""
        store = self._store
        if store is None:
            return {}
        entries: dict[str, CachedStep | None] = {}
        for key in await self._keys():
            try:
                found = await store.get_or_none(key)
            except BadRequest:
                entries[key] = None
                continue
            except _SHARED_TIER_DOWN:
                continue
            if found is not None:  # else deleted meanwhile
                entries[key] = found.value
        return entries

    async def _delete(self, key: str) -> bool:
        assert self._store is not None
        try:
            await self._store.delete(key)
        except (*_SHARED_TIER_DOWN, BadRequest) as exc:
            log.warning("step cache: cannot delete %s: %s", key[:12], exc)
            return False
        return True

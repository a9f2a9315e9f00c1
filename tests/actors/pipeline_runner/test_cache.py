"""The step cache: in-process tier, shared object-store tier, TTL, counters, clearing."""

from __future__ import annotations

import pytest

from actors.pipeline_runner.cache import StepCache
from actors.runtime.bus import Bus
from actors.runtime.testing import ManualClock
from actors.topology import STEP_CACHE
from protocols.pipelines import StepResult

pytestmark = pytest.mark.integration

RESULT = StepResult(name="s", state="succeeded", exit_code=0)


async def test_a_second_runner_hits_the_shared_tier_and_then_its_own(bus: Bus) -> None:
    """Runner B finds what runner A stored, then serves it from memory."""
    store = await bus.object_store(STEP_CACHE)
    clock = ManualClock()
    a = StepCache(store, clock=clock)
    b = StepCache(store, clock=clock)
    assert await b.get("k1") is None
    await a.put("k1", RESULT)
    assert await b.get("k1") == RESULT
    assert await b.get("k1") == RESULT
    assert b.stats.as_dict() | {} == {
        "cache_hits": 2,
        "cache_memory_hits": 1,
        "cache_store_hits": 1,
        "cache_misses": 1,
        "cache_stores": 0,
        "cache_expired": 0,
        "cache_errors": 0,
    }


async def test_entries_expire_after_the_ttl_on_both_tiers(bus: Bus) -> None:
    """An entry older than the TTL is a miss."""
    store = await bus.object_store(STEP_CACHE)
    clock = ManualClock()
    cache = StepCache(store, clock=clock, ttl=60)
    await cache.put("k2", RESULT)
    clock.advance(59)
    assert await cache.get("k2") == RESULT
    clock.advance(2)
    assert await cache.get("k2") is None
    assert cache.stats.expired == 2


async def test_lru_capacity_and_clear(bus: Bus) -> None:
    """The in-process tier is bounded; clear empties both tiers."""
    store = await bus.object_store(STEP_CACHE)
    cache = StepCache(store, capacity=2)
    for key in ("a", "b", "c"):
        await cache.put(key, RESULT)
    assert cache.clear_local() == 2
    assert await cache.clear() == 3
    assert await cache.get("a") is None

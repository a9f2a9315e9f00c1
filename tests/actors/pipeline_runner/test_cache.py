"""The step cache: in-process tier, shared object-store tier, TTL, counters, clearing."""

from __future__ import annotations

import pytest

from actors.pipeline_runner.cache import StepCache
from actors.runtime.bus import Bus
from actors.runtime.errors import BadRequest, NotFound
from actors.runtime.testing import ManualClock
from actors.topology import STEP_CACHE
from protocols.pipelines import CacheCleared, ClearCache, StepResult

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


async def test_clear_for_one_key_removes_only_that_entry(bus: Bus) -> None:
    """A full key or an unambiguous prefix removes one entry from both tiers."""
    store = await bus.object_store(STEP_CACHE)
    cache = StepCache(store)
    for key in ("abc1", "abc2", "def3"):
        await cache.put(key, RESULT)
    assert await cache.clear_for(ClearCache(key="de")) == CacheCleared(removed=1, keys=["def3"])
    assert await cache.clear_for(ClearCache(key="abc1")) == CacheCleared(removed=1, keys=["abc1"])
    assert await cache.get("def3") is None
    assert await cache.get("abc2") == RESULT


async def test_clear_for_an_unknown_or_ambiguous_key_is_an_error_and_removes_nothing(
    bus: Bus,
) -> None:
    """No entry, several entries or an empty key: an error, and every entry stays."""
    store = await bus.object_store(STEP_CACHE)
    cache = StepCache(store)
    for key in ("abc1", "abc2"):
        await cache.put(key, RESULT)
    with pytest.raises(NotFound, match="zz"):
        await cache.clear_for(ClearCache(key="zz"))
    with pytest.raises(BadRequest, match="prefix of 2"):
        await cache.clear_for(ClearCache(key="abc"))
    with pytest.raises(BadRequest):
        await cache.clear_for(ClearCache(key=""))
    other = StepCache(store)
    assert await other.get("abc1") == RESULT
    assert await other.get("abc2") == RESULT


async def test_clear_for_a_template_removes_the_entries_its_workflows_stored(bus: Bus) -> None:
    """The template is recorded with each entry; only that template's entries go."""
    store = await bus.object_store(STEP_CACHE)
    cache = StepCache(store)
    await cache.put("k-a1", RESULT, template="alpha")
    await cache.put("k-a2", RESULT, template="alpha")
    await cache.put("k-b1", RESULT, template="beta")
    await cache.put("k-f1", RESULT)
    cleared = await cache.clear_for(ClearCache(template="alpha"))
    assert cleared == CacheCleared(removed=2, keys=["k-a1", "k-a2"])
    assert await cache.clear_for(ClearCache(template="gamma")) == CacheCleared(removed=0, keys=[])
    other = StepCache(store)
    assert [await other.get(k) for k in ("k-a1", "k-a2")] == [None, None]
    assert [await other.get(k) for k in ("k-b1", "k-f1")] == [RESULT, RESULT]


async def test_forget_drops_only_the_cleared_keys_from_another_runners_memory() -> None:
    """The announcement of a partial clearing drops those keys; of a full one, all."""
    cache = StepCache(None)
    for key in ("a", "b", "c"):
        await cache.put(key, RESULT)
    assert cache.forget(CacheCleared(removed=1, keys=["a", "x"])) == 1
    assert await cache.get("a") is None
    assert await cache.get("b") == RESULT
    assert cache.forget(CacheCleared(removed=2)) == 2
    assert await cache.get("c") is None

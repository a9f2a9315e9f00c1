"""The step cache: in-process tier, shared KV tier, TTL, counters, clearing."""

from __future__ import annotations

import msgspec
import nats.js.errors
import pytest

from actors.pipeline_runner.cache import StepCache
from actors.pipeline_runner.state import cache_key
from actors.runtime.bus import Bus
from actors.runtime.errors import BadRequest, NotFound
from actors.runtime.kv import TypedBucket
from actors.runtime.testing import ManualClock
from protocols.pipelines import CACHE_BUCKET, CacheCleared, CachedStep, ClearCache, StepResult

pytestmark = pytest.mark.integration

Bucket = TypedBucket[CachedStep]

RESULT = StepResult(name="s", state="succeeded", exit_code=0)


async def test_a_second_runner_hits_the_shared_tier_and_then_its_own(cache_bucket: Bucket) -> None:
    """Runner B finds what runner A stored, then serves it from memory."""
    clock = ManualClock()
    a = StepCache(cache_bucket, clock=clock)
    b = StepCache(cache_bucket, clock=clock)
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


async def test_entries_expire_after_the_ttl_on_both_tiers(cache_bucket: Bucket) -> None:
    """An entry older than the TTL is a miss."""
    clock = ManualClock()
    cache = StepCache(cache_bucket, clock=clock, ttl=60)
    await cache.put("k2", RESULT)
    clock.advance(59)
    assert await cache.get("k2") == RESULT
    clock.advance(2)
    assert await cache.get("k2") is None
    assert cache.stats.expired == 2


async def test_lru_capacity_and_clear(cache_bucket: Bucket) -> None:
    """The in-process tier is bounded; clear empties both tiers."""
    cache = StepCache(cache_bucket, capacity=2)
    for key in ("a", "b", "c"):
        await cache.put(key, RESULT)
    assert cache.clear_local() == 2
    assert await cache.clear() == 3
    assert await cache.get("a") is None


async def test_clear_for_one_key_removes_only_that_entry(cache_bucket: Bucket) -> None:
    """A full key or an unambiguous prefix removes one entry from both tiers."""
    cache = StepCache(cache_bucket)
    for key in ("abc1", "abc2", "def3"):
        await cache.put(key, RESULT)
    assert await cache.clear_for(ClearCache(key="de")) == CacheCleared(removed=1, keys=["def3"])
    assert await cache.clear_for(ClearCache(key="abc1")) == CacheCleared(removed=1, keys=["abc1"])
    assert await cache.get("def3") is None
    assert await cache.get("abc2") == RESULT


async def test_clear_for_an_unknown_or_ambiguous_key_is_an_error_and_removes_nothing(
    cache_bucket: Bucket,
) -> None:
    """No entry, several entries or an empty key: an error, and every entry stays."""
    cache = StepCache(cache_bucket)
    for key in ("abc1", "abc2"):
        await cache.put(key, RESULT)
    with pytest.raises(NotFound, match="zz"):
        await cache.clear_for(ClearCache(key="zz"))
    with pytest.raises(BadRequest, match="prefix of 2"):
        await cache.clear_for(ClearCache(key="abc"))
    with pytest.raises(BadRequest):
        await cache.clear_for(ClearCache(key=""))
    other = StepCache(cache_bucket)
    assert await other.get("abc1") == RESULT
    assert await other.get("abc2") == RESULT


async def test_clear_for_a_template_removes_the_entries_its_workflows_stored(
    cache_bucket: Bucket,
) -> None:
    """The template is recorded with each entry; only that template's entries go."""
    cache = StepCache(cache_bucket)
    await cache.put("k-a1", RESULT, template="alpha")
    await cache.put("k-a2", RESULT, template="alpha")
    await cache.put("k-b1", RESULT, template="beta")
    await cache.put("k-f1", RESULT)
    cleared = await cache.clear_for(ClearCache(template="alpha"))
    assert cleared == CacheCleared(removed=2, keys=["k-a1", "k-a2"])
    assert await cache.clear_for(ClearCache(template="gamma")) == CacheCleared(removed=0, keys=[])
    other = StepCache(cache_bucket)
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


async def _last_seq(bus: Bus, stream: str) -> int:
    return (await bus.js.stream_info(stream)).state.last_seq


async def test_storing_an_entry_is_one_write_to_the_cache_bucket(
    bus: Bus, cache_bucket: Bucket
) -> None:
    """Each put is one message of KV_troupe-step-cache; no object store is involved."""
    keys = [
        cache_key(backend="local", image=None, run=run, env={"É": "ü ."}, inputs={}, outputs=[])
        for run in ("echo a", "printf 'b c' > *.txt", "naïve > $HOME/.x")
    ]
    cache = StepCache(cache_bucket)
    before = await _last_seq(bus, f"KV_{CACHE_BUCKET}")
    for key in keys:
        await cache.put(key, RESULT, template="t")
    assert await _last_seq(bus, f"KV_{CACHE_BUCKET}") == before + len(keys)
    assert cache.stats.errors == 0
    assert sorted(await cache_bucket.keys()) == sorted(keys)
    with pytest.raises(nats.js.errors.NotFoundError):
        await bus.js.stream_info(f"OBJ_{CACHE_BUCKET}")


async def test_a_value_that_does_not_decode_is_a_miss_and_can_be_cleared(
    bus: Bus, cache_bucket: Bucket
) -> None:
    """Garbage or another type under a key: a miss (not an error); clearing it by key works."""
    await bus.js.publish(f"$KV.{CACHE_BUCKET}.garbage", b"\xc1")
    await bus.js.publish(f"$KV.{CACHE_BUCKET}.other", msgspec.msgpack.encode({"a": 1}))
    cache = StepCache(cache_bucket)
    assert await cache.get("garbage") is None
    assert await cache.get("other") is None
    assert (cache.stats.misses, cache.stats.errors) == (2, 0)
    cleared = await cache.clear_for(ClearCache(template=""))
    assert cleared == CacheCleared(removed=0, keys=[])
    cleared = await cache.clear_for(ClearCache(key="garb"))
    assert cleared == CacheCleared(removed=1, keys=["garbage"])
    assert await cache_bucket.keys() == ["other"]


async def test_an_entry_larger_than_the_servers_max_payload_is_kept_in_process_only(
    bus: Bus, cache_bucket: Bucket
) -> None:
    """The put fails without failing the caller: counted and logged, a miss for other runners."""
    big = StepResult(
        name="s", state="succeeded", exit_code=0, stdout_tail="x" * (bus.nc.max_payload + 1)
    )
    cache = StepCache(cache_bucket)
    before = await _last_seq(bus, f"KV_{CACHE_BUCKET}")
    await cache.put("big", big)
    assert (cache.stats.stores, cache.stats.errors) == (1, 1)
    assert await cache.get("big") == big
    other = StepCache(cache_bucket)
    assert await other.get("big") is None
    assert await _last_seq(bus, f"KV_{CACHE_BUCKET}") == before


async def test_a_key_the_bucket_refuses_is_kept_in_process_only(cache_bucket: Bucket) -> None:
    """A key with characters KV refuses: counted as an error, never raised; a miss elsewhere."""
    cache = StepCache(cache_bucket)
    await cache.put("not a key*", RESULT)
    assert cache.stats.errors == 1
    assert await cache.get("not a key*") == RESULT
    other = StepCache(cache_bucket)
    assert await other.get("not a key*") is None
    assert (other.stats.misses, other.stats.errors) == (1, 0)
    assert await cache_bucket.keys() == []

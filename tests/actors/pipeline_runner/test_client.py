"""The pipeline runner's client module: results, artifacts, the cache's entries, clearing it."""

from __future__ import annotations

import hashlib

import msgspec
import pytest

from actors.pipeline_runner.cache import StepCache
from actors.pipeline_runner.client import (
    clear_cache,
    find_artifact,
    get_result,
    list_cache,
    read_artifact,
)
from actors.runtime.bus import Bus
from actors.runtime.errors import NotFound, Unavailable
from actors.runtime.kv import TypedBucket
from actors.runtime.testing import ManualClock
from actors.topology import ARTIFACTS
from protocols.pipelines import (
    CACHE_BUCKET,
    ArtifactRef,
    CachedStep,
    ClearCache,
    PipelineResult,
    StepResult,
)


def _ref(name: str, obj: str) -> ArtifactRef:
    return ArtifactRef(name=name, object_name=obj, size=1, digest="d")


RESULT = PipelineResult(
    workflow_id="wf-a",
    state="succeeded",
    started_at=1.0,
    finished_at=2.0,
    steps=[
        StepResult(name="build", state="succeeded", artifacts=[_ref("out.txt", "o1")]),
        StepResult(name="test", state="succeeded", artifacts=[_ref("out.txt", "o2")]),
    ],
)


def test_find_artifact_takes_the_last_writer_or_the_named_step() -> None:
    """The last step in execution order wins unless a step is named; a miss lists the known."""
    assert find_artifact(RESULT, "out.txt").object_name == "o2"
    assert find_artifact(RESULT, "out.txt", "build").object_name == "o1"
    with pytest.raises(NotFound, match=r"artifacts: out\.txt"):
        find_artifact(RESULT, "missing")
    with pytest.raises(NotFound, match="from step 'deploy'"):
        find_artifact(RESULT, "out.txt", "deploy")


@pytest.mark.integration
async def test_artifacts_are_read_from_the_store_and_a_gone_one_is_not_found(bus: Bus) -> None:
    """read_artifact returns the stored bytes; an expired object is NotFound."""
    store = await bus.object_store(ARTIFACTS)
    await store.put("o1", b"hello")
    digest = f"sha256:{hashlib.sha256(b'hello').hexdigest()}"
    ref = ArtifactRef(name="out.txt", object_name="o1", size=5, digest=digest)
    assert await read_artifact(bus, ref) == b"hello"
    with pytest.raises(NotFound):
        await read_artifact(bus, _ref("out.txt", "gone"))


@pytest.mark.integration
async def test_without_a_runner_results_and_cache_clear_are_unavailable(
    bus: Bus, cache_bucket: TypedBucket[CachedStep]
) -> None:
    """No runner: get_result is Unavailable; clear_cache says to start one and purges nothing."""
    with pytest.raises(Unavailable):
        await get_result(bus, "wf-a", timeout=1.0)
    await StepCache(cache_bucket).put("entry", RESULT.steps[0])
    with pytest.raises(Unavailable, match="no pipeline runner answers; start one"):
        await clear_cache(bus, timeout=1.0)
    assert await cache_bucket.keys() == ["entry"]


@pytest.mark.integration
async def test_list_cache_shows_live_entries_oldest_first_and_undecodable_ones_without_step(
    bus: Bus, cache_bucket: TypedBucket[CachedStep]
) -> None:
    """Each entry's step, template, value size and artifacts; a deleted one is gone; another
    type is listed with no step at the bucket's time, bytes that are no MessagePack at 0."""
    clock = ManualClock(1000.0)
    cache = StepCache(cache_bucket, clock=clock)
    await cache.put("k-old", RESULT.steps[1])
    clock.advance(10)
    await cache.put("k-new", RESULT.steps[0], template="ci")
    await cache.put("k-gone", RESULT.steps[0])
    await cache.clear_for(ClearCache(key="k-gone"))
    other = msgspec.msgpack.encode({"a": 1})
    await bus.js.publish(f"$KV.{CACHE_BUCKET}.k-other", other)
    await bus.js.publish(f"$KV.{CACHE_BUCKET}.k-garbage", b"\xc1")

    listed = await list_cache(bus)

    assert [(e.key, e.step, e.template, e.artifacts) for e in listed] == [
        ("k-garbage", "", "", 0),
        ("k-old", "test", "", 1),
        ("k-new", "build", "ci", 1),
        ("k-other", "", "", 0),
    ]
    stored = await bus.js.get_msg(f"KV_{CACHE_BUCKET}", subject=f"$KV.{CACHE_BUCKET}.k-new")
    assert [e.size for e in listed] == [0, listed[1].size, len(stored.data or b""), len(other)]
    assert [e.stored_at for e in listed[:3]] == [0.0, 1000.0, 1010.0]
    assert listed[3].stored_at > 1010.0

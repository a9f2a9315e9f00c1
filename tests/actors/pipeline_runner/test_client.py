"""The pipeline runner's client module: results, artifacts, clearing the cache with no runner."""

from __future__ import annotations

import hashlib

import pytest

from actors.pipeline_runner.client import clear_cache, find_artifact, get_result, read_artifact
from actors.runtime.bus import Bus
from actors.runtime.errors import NotFound, Unavailable
from actors.topology import ARTIFACTS, STEP_CACHE
from protocols.pipelines import ArtifactRef, PipelineResult, StepResult


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
async def test_without_a_runner_results_and_cache_clear_are_unavailable(bus: Bus) -> None:
    """No runner: get_result is Unavailable; clear_cache says to start one and purges nothing."""
    with pytest.raises(Unavailable):
        await get_result(bus, "wf-a", timeout=1.0)
    store = await bus.object_store(STEP_CACHE)
    await store.put("entry", b"cached")
    with pytest.raises(Unavailable, match="no pipeline runner answers; start one"):
        await clear_cache(bus, timeout=1.0)
    assert (await store.get("entry")).data == b"cached"

"""What the CLI, the gateway and other actors use of the pipeline runner.

Typed calls to its request subjects (:func:`get_result`, :func:`clear_cache`),
reading a finished step's artifacts, streamed and checked against their
digest (:func:`find_artifact`, :func:`open_artifact`, :func:`read_artifact_to`,
:func:`read_artifact`), the steps running now across all runners, from
their step leases (:func:`list_executions`, :func:`stop_execution`), and step
output: live (:func:`follow_logs`) or the tails kept in the result
(:func:`get_logs`); the shared step cache's entries (:func:`list_cache`). The actor itself lives in
:mod:`actors.pipeline_runner.actor`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import msgspec
from nats.aio.msg import Msg

from actors.pipeline_runner.artifacts import ArtifactCorrupt, artifact_chunks, write_artifact
from actors.runtime.bus import Bus
from actors.runtime.codec import Codec, encoding_of, stored_encoding
from actors.runtime.errors import BadRequest, NotFound, Unavailable
from actors.runtime.kv import TypedBucket
from actors.status_tracker.client import get_workflow, watch_workflow
from actors.topology import LEASES, STEP_CACHE
from protocols.pipelines import (
    ARTIFACTS_BUCKET,
    CACHE_CLEAR_SUBJECT,
    EXECUTION_STOP_SUBJECT,
    RESULT_SUBJECT,
    ArtifactRef,
    CacheCleared,
    CachedStep,
    ClearCache,
    GetResult,
    PipelineResult,
    StepLease,
    StepOutput,
    StepResult,
    StopExecution,
    logs_subject,
    step_key,
)
from protocols.status import TERMINAL_STATES

__all__ = [
    "ArtifactCorrupt",
    "CacheEntry",
    "clear_cache",
    "find_artifact",
    "follow_logs",
    "get_logs",
    "get_result",
    "list_cache",
    "list_executions",
    "open_artifact",
    "read_artifact",
    "read_artifact_to",
    "stop_execution",
]


async def get_result(bus: Bus, workflow_id: str, *, timeout: float = 5.0) -> PipelineResult:
    """Ask the runners for a workflow's stored result.

    Raises:
        NotFound: no result for this workflow (yet).
        RequestError: any other error answer, or no answer.
    """
    request = GetResult(workflow_id=workflow_id)
    return await bus.request(RESULT_SUBJECT, request, PipelineResult, timeout=timeout)


def find_artifact(result: PipelineResult, name: str, step: str | None = None) -> ArtifactRef:
    """Return the reference of artifact ``name`` in ``result`` (optionally of one ``step``).

    Several steps may write the same path: the last one in execution order wins.

    Raises:
        NotFound: no such artifact (the message lists the known ones).
    """
    matches = [
        ref
        for s in result.steps
        for ref in s.artifacts
        if ref.name == name and (step is None or s.name == step)
    ]
    if not matches:
        known = sorted({ref.name for s in result.steps for ref in s.artifacts})
        raise NotFound(
            f"workflow {result.workflow_id} has no artifact {name!r}"
            + (f" from step {step!r}" if step else "")
            + f" (artifacts: {', '.join(known) or 'none'})"
        )
    return matches[-1]


async def open_artifact(bus: Bus, ref: ArtifactRef) -> AsyncIterator[bytes]:
    """Check one stored artifact and return an iterator over its content, chunk by chunk.

    At most a flow-control window of chunks is in memory at a time. The
    iterator raises :class:`ArtifactCorrupt` instead of yielding the last chunk
    if the content does not hash to ``ref.digest`` (or stops short).

    Raises:
        NotFound: the object is gone from the artifacts store (expired).
        ArtifactCorrupt: the stored object's size or digest is not the reference's.
    """
    store = await bus.js.object_store(ARTIFACTS_BUCKET)
    return await artifact_chunks(bus.js, store, ref)


async def read_artifact_to(bus: Bus, ref: ArtifactRef, out: Path | BinaryIO) -> int:
    """Stream one stored artifact into a file; return the number of bytes written.

    A path is written through a temporary file renamed into place once the
    content verified, so a failed download leaves nothing behind; an open
    stream (standard output) gets each chunk as it arrives.

    Raises:
        NotFound: the object is gone from the artifacts store (expired).
        ArtifactCorrupt: the stored content is not the reference's.
    """
    return await write_artifact(await open_artifact(bus, ref), out)


async def read_artifact(bus: Bus, ref: ArtifactRef) -> bytes:
    """Return the bytes of one stored artifact (small ones: see :func:`read_artifact_to`).

    Raises:
        NotFound: the object is gone from the artifacts store (expired).
        ArtifactCorrupt: the stored content is not the reference's.
    """
    return b"".join([data async for data in await open_artifact(bus, ref)])


async def clear_cache(
    bus: Bus, *, key: str | None = None, template: str | None = None, timeout: float = 30.0
) -> CacheCleared:
    """Remove step cache entries from every runner's in-process tier and the shared store.

    With neither ``key`` nor ``template``, the whole cache is emptied. A pipeline
    runner does it (only runners may delete from the store), so one must be up.

    Args:
        bus: a connected bus.
        key: only this entry: its key or an unambiguous prefix (as ``list_cache`` shows).
        template: only the entries stored by workflows of this template.
        timeout: seconds to wait for a runner.

    Returns:
        How many entries were removed (and which, unless everything was).

    Raises:
        NotFound: ``key`` names no entry; nothing was removed.
        BadRequest: ``key`` is the prefix of several entries; nothing was removed.
        Unavailable: no pipeline runner answered.
        RequestError: a runner answered with another error.
    """
    request = ClearCache(key=key, template=template)
    try:
        return await bus.request(CACHE_CLEAR_SUBJECT, request, CacheCleared, timeout=timeout)
    except Unavailable:
        raise Unavailable("no pipeline runner answers; start one") from None


async def list_executions(bus: Bus) -> list[StepLease]:
    """Return the steps executing now on every runner, oldest first.

    Each is the step lease its runner keeps alive (workflow, step, attempt,
    runner, host, backend, start time); a runner that died leaves its leases
    for at most one lease TTL.
    """
    leases = await TypedBucket.bind(bus, LEASES, StepLease)
    found: list[StepLease] = []
    for key in await leases.keys():
        entry = await leases.get_or_none(key)
        if entry is not None and entry.value.step:
            found.append(entry.value)
    return sorted(found, key=lambda lease: (lease.acquired_at, lease.workflow_id, lease.step))


async def stop_execution(
    bus: Bus,
    workflow_id: str,
    step: str,
    *,
    reason: str = "stopped by an operator",
    leases: TypedBucket[StepLease] | None = None,
) -> StepLease:
    """Ask the runner executing a step to stop it; its workflow then ends ``cancelled``.

    Args:
        bus: a connected bus.
        workflow_id: the step's workflow.
        step: the step.
        reason: why (the workflow's reason is ``step STEP REASON``).
        leases: the leases bucket, if already bound.

    Returns:
        The step's lease (which runner was asked).

    Raises:
        NotFound: the step is not executing now.
    """
    if leases is None:
        leases = await TypedBucket.bind(bus, LEASES, StepLease)
    entry = await leases.get_or_none(step_key(workflow_id, step))
    if entry is None:
        raise NotFound(f"step {step!r} of workflow {workflow_id} is not executing now")
    await bus.publish(
        EXECUTION_STOP_SUBJECT, StopExecution(workflow_id=workflow_id, step=step, reason=reason)
    )
    return entry.value


async def get_logs(bus: Bus, workflow_id: str, step: str | None = None) -> list[StepResult]:
    """Return the steps of a workflow's stored result, whose tails hold their last output lines.

    Args:
        bus: a connected bus.
        workflow_id: the workflow.
        step: only this step.

    Raises:
        NotFound: no result is stored yet (the workflow runs), or it has no such step.
        RequestError: no runner answered.
    """
    result = await get_result(bus, workflow_id)
    steps = [s for s in result.steps if step is None or s.name == step]
    if not steps:
        raise NotFound(f"workflow {workflow_id} has no step {step!r} in its result")
    return steps


async def follow_logs(
    bus: Bus, workflow_id: str, *, step: str | None = None, poll: float = 1.0
) -> AsyncIterator[StepOutput]:
    """Yield the lines a workflow's steps print, as they print them, until the workflow ends.

    Lines printed before the call are not replayed (see :func:`get_logs`).
    The end is learnt from the tracker's announcements, checked every ``poll``
    seconds as well.

    Args:
        bus: a connected bus.
        workflow_id: the workflow.
        step: only this step's lines.
        poll: seconds between checks of the workflow's state.

    Raises:
        NotFound: the tracker does not know the workflow.
    """
    queue: asyncio.Queue[StepOutput] = asyncio.Queue()
    codec: Codec[StepOutput] = Codec.of(StepOutput)

    async def on_msg(msg: Msg) -> None:
        with contextlib.suppress(BadRequest):
            out = codec.decode(msg.data, encoding_of(msg.headers))
            if step is None or out.step == step:
                queue.put_nowait(out)

    async def ended() -> None:
        async with watch_workflow(bus, workflow_id) as updates:
            view = await get_workflow(bus, workflow_id)
            while view.state not in TERMINAL_STATES:
                try:
                    view = await asyncio.wait_for(updates.get(), poll)
                except TimeoutError:
                    view = await get_workflow(bus, workflow_id)

    sub = await bus.nc.subscribe(logs_subject(workflow_id), cb=on_msg)
    watcher = asyncio.create_task(ended())
    try:
        while True:
            getter = asyncio.create_task(queue.get())
            await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                break
            yield getter.result()
        watcher.result()  # raises NotFound for an unknown workflow
        while not queue.empty():
            yield queue.get_nowait()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
        await sub.unsubscribe()


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One entry of the shared step cache.

    Attributes:
        key: the cache key (hex sha256 of backend, image, command, env and inputs).
        step: name of the step that stored it.
        size: bytes of its value in the bucket (its artifacts are stored apart).
        stored_at: Unix time it was stored (it expires a cache TTL later).
        artifacts: how many output files it restores.
        template: template of the workflow that stored it (empty: a pipeline file).
    """

    key: str
    step: str
    size: int
    stored_at: float
    artifacts: int
    template: str = ""


async def list_cache(bus: Bus) -> list[CacheEntry]:
    """Return the entries of the shared step cache, oldest first.

    An entry that no longer decodes is listed with an empty step name, stored
    when the bucket stored it (size and time 0 if it is not even MessagePack
    or JSON).
    """
    bucket = await TypedBucket.bind(bus, STEP_CACHE, msgspec.Raw)
    codec = Codec.of(CachedStep)
    entries: list[CacheEntry] = []
    for key in await bucket.keys():
        try:
            found = await bucket.get_or_none(key)
        except BadRequest:  # not even MessagePack or JSON
            entries.append(CacheEntry(key=key, step="", size=0, stored_at=0.0, artifacts=0))
            continue
        if found is None:
            continue  # deleted meanwhile
        data = bytes(found.value)
        try:
            cached = codec.decode(data, stored_encoding(data))
        except BadRequest:
            stored_at = found.created or 0.0
            entries.append(
                CacheEntry(key=key, step="", size=len(data), stored_at=stored_at, artifacts=0)
            )
            continue
        entries.append(
            CacheEntry(
                key=key,
                step=cached.result.name,
                size=len(data),
                stored_at=cached.stored_at,
                artifacts=len(cached.result.artifacts),
                template=cached.template,
            )
        )
    return sorted(entries, key=lambda e: (e.stored_at, e.key))

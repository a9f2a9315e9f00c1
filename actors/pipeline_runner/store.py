"""Durable state of pipeline runs: results, checkpoints, artifacts, and workflow views.

* results: KV ``troupe-results``, workflow id -> :class:`PipelineResult`;
* checkpoints: KV ``troupe-run-checkpoints``, the steps a run in flight has
  finished and the step attempts it has started, so a redelivered run resumes
  instead of starting over; written compare-and-set, so a runner that lost its
  run to another one cannot overwrite what that one recorded;
* artifacts: object store ``troupe-artifacts``, content-addressed (the object
  name is the digest), so identical outputs are stored once and a cached step's
  outputs stay fetchable by any later workflow; streamed in chunks both ways
  (:mod:`actors.pipeline_runner.artifacts`);
* workflow views: KV ``troupe-workflows`` (written by the status tracker),
  read to skip runs of workflows that already ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import nats.errors
from nats.js import JetStreamContext
from nats.js.object_store import ObjectStore

from actors.pipeline_runner.artifacts import (
    ARTIFACT_CHUNK_SIZE,
    ArtifactCorrupt,
    artifact_chunks,
    chunk_size,
    object_digest,
    put_file,
    write_artifact,
)
from actors.pipeline_runner.workspace import WorkspaceError, digest_file
from actors.runtime import BadRequest, Bus, Entry, NotFound, TypedBucket
from actors.topology import ARTIFACTS, CHECKPOINTS, RESULTS, WORKFLOWS
from protocols.pipelines import ArtifactRef, PipelineResult, RunCheckpoint
from protocols.status import WorkflowView

__all__ = ["RunStore", "artifact_object_name"]

log = logging.getLogger(__name__)


def artifact_object_name(digest: str) -> str:
    """Return the artifact store object name of content with ``digest`` (``sha256:<hex>``)."""
    return "blob." + digest.removeprefix("sha256:")


class RunStore:
    """Access to the runner's buckets.

    Args:
        results: results bucket.
        checkpoints: checkpoints bucket.
        workflows: workflow views bucket.
        artifacts: artifact object store.
        js: the JetStream context of the store's connection (downloads read
            chunks through it).
        chunk: chunk size of stored artifacts (see :func:`chunk_size`).
    """

    def __init__(
        self,
        results: TypedBucket[PipelineResult],
        checkpoints: TypedBucket[RunCheckpoint],
        workflows: TypedBucket[WorkflowView],
        artifacts: ObjectStore,
        *,
        js: JetStreamContext,
        chunk: int = ARTIFACT_CHUNK_SIZE,
    ) -> None:
        self._results = results
        self._checkpoints = checkpoints
        self._workflows = workflows
        self.artifacts = artifacts
        self._js = js
        self._chunk = chunk

    @classmethod
    async def open(cls, bus: Bus) -> RunStore:
        """Open (creating if needed) every bucket the runner uses."""
        return cls(
            await TypedBucket.bind(bus, RESULTS, PipelineResult),
            await TypedBucket.bind(bus, CHECKPOINTS, RunCheckpoint),
            await TypedBucket.bind(bus, WORKFLOWS, WorkflowView),
            await bus.object_store(ARTIFACTS),
            js=bus.js,
            chunk=chunk_size(bus.nc),
        )

    async def result(self, workflow_id: str) -> PipelineResult | None:
        """Return the stored result of ``workflow_id``, if any."""
        entry = await self._results.get_or_none(workflow_id)
        return entry.value if entry else None

    async def put_result(self, result: PipelineResult) -> None:
        """Store ``result`` durably (the stream acknowledged it)."""
        await self._results.put(result.workflow_id, result)

    async def checkpoint(self, workflow_id: str) -> RunCheckpoint | None:
        """Return the checkpoint of a run in flight, if any."""
        entry = await self._checkpoints.get_or_none(workflow_id)
        return entry.value if entry else None

    async def checkpoint_entry(self, workflow_id: str) -> Entry[RunCheckpoint] | None:
        """Return the checkpoint of a run in flight with its revision, if any."""
        return await self._checkpoints.get_or_none(workflow_id)

    async def put_checkpoint(self, checkpoint: RunCheckpoint, revision: int | None = None) -> int:
        """Store ``checkpoint`` durably; return its new revision.

        Args:
            checkpoint: the checkpoint.
            revision: the revision this writer last read or wrote (``None``:
                there was none, so it is created).

        Raises:
            Conflict: someone else wrote the checkpoint since (this writer is fenced).
        """
        if revision is None:
            return await self._checkpoints.create(checkpoint.workflow_id, checkpoint)
        return await self._checkpoints.update(checkpoint.workflow_id, checkpoint, revision)

    async def drop_checkpoint(self, workflow_id: str) -> None:
        """Forget a finished run's checkpoint (its result now holds everything)."""
        try:
            await self._checkpoints.purge(workflow_id)
        except nats.errors.Error as exc:
            log.debug("checkpoint of %s not purged: %s", workflow_id, exc)

    async def view(self, workflow_id: str) -> WorkflowView | None:
        """Return the status tracker's view of ``workflow_id``, if it has one."""
        try:
            entry = await self._workflows.get_or_none(workflow_id)
        except BadRequest as exc:
            log.warning("undecodable workflow view of %s: %s", workflow_id, exc)
            return None
        return entry.value if entry else None

    async def upload(self, name: str, path: Path) -> ArtifactRef:
        """Store one output file (once per distinct content) and return its reference.

        The file is hashed and then streamed into the store chunk by chunk, never
        read whole into memory.

        Raises:
            WorkspaceError: the file changed while it was being stored (the
                stored copy is removed; the step fails).
        """
        digest = await asyncio.to_thread(digest_file, path)
        object_name = artifact_object_name(digest)
        try:
            info = await self.artifacts.get_info(object_name)
            present = not info.deleted and info.size is not None
        except nats.errors.Error:
            present = False
        if not present:
            info = await put_file(self.artifacts, object_name, path, chunk=self._chunk)
            if object_digest(info) != digest:
                with contextlib.suppress(nats.errors.Error):
                    await self.artifacts.delete(object_name)
                raise WorkspaceError(f"output {name} changed while it was stored")
        return ArtifactRef(name=name, object_name=object_name, size=info.size or 0, digest=digest)

    async def download(self, ref: ArtifactRef) -> bytes:
        """Return the content of an artifact, checked against its size and digest.

        Raises:
            LookupError: the artifact is gone (expired or cleared) or corrupt.
        """
        try:
            return b"".join([data async for data in await self._chunks(ref)])
        except ArtifactCorrupt as exc:
            raise LookupError(str(exc)) from exc

    async def download_to(self, ref: ArtifactRef, dest: Path) -> None:
        """Stream an artifact into file ``dest`` (its directory created), checked on the way.

        The file appears only once the whole content verified.

        Raises:
            LookupError: the artifact is gone (expired or cleared) or corrupt;
                ``dest`` is not written.
        """
        await asyncio.to_thread(dest.parent.mkdir, parents=True, exist_ok=True)
        try:
            await write_artifact(await self._chunks(ref), dest)
        except ArtifactCorrupt as exc:
            raise LookupError(str(exc)) from exc

    async def _chunks(self, ref: ArtifactRef) -> AsyncIterator[bytes]:
        try:
            return await artifact_chunks(self._js, self.artifacts, ref)
        except NotFound as exc:
            raise LookupError(f"artifact {ref.name} ({ref.object_name}) is gone") from exc

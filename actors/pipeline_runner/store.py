"""Durable state of pipeline runs: results, checkpoints, artifacts, and workflow views.

* results: KV ``troupe-results``, workflow id -> :class:`PipelineResult`;
* checkpoints: KV ``troupe-run-checkpoints``, the steps a run in flight has
  finished, so a redelivered run resumes instead of starting over;
* artifacts: object store ``troupe-artifacts``, content-addressed (the object
  name is the digest), so identical outputs are stored once and a cached step's
  outputs stay fetchable by any later workflow;
* workflow views: KV ``troupe-workflows`` (written by the status tracker),
  read to skip runs of workflows that already ended.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path

import msgspec
import nats.errors
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from actors.runtime.bus import Bus
from actors.topology import ARTIFACTS, CHECKPOINTS, RESULTS, WORKFLOWS
from protocols.pipelines import ArtifactRef, PipelineResult, RunCheckpoint
from protocols.status import WorkflowView

__all__ = ["RunStore", "artifact_object_name"]

log = logging.getLogger(__name__)

_encoder = msgspec.msgpack.Encoder()
_result_decoder = msgspec.msgpack.Decoder(PipelineResult)
_checkpoint_decoder = msgspec.msgpack.Decoder(RunCheckpoint)
_view_decoder = msgspec.msgpack.Decoder(WorkflowView)


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
    """

    def __init__(
        self,
        results: KeyValue,
        checkpoints: KeyValue,
        workflows: KeyValue,
        artifacts: ObjectStore,
    ) -> None:
        self._results = results
        self._checkpoints = checkpoints
        self._workflows = workflows
        self.artifacts = artifacts

    @classmethod
    async def open(cls, bus: Bus) -> RunStore:
        """Open (creating if needed) every bucket the runner uses."""
        return cls(
            await bus.key_value(RESULTS),
            await bus.key_value(CHECKPOINTS),
            await bus.key_value(WORKFLOWS),
            await bus.object_store(ARTIFACTS),
        )

    @staticmethod
    async def _get(kv: KeyValue, key: str) -> bytes | None:
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return None
        return entry.value or None

    async def result(self, workflow_id: str) -> PipelineResult | None:
        """Return the stored result of ``workflow_id``, if any."""
        raw = await self._get(self._results, workflow_id)
        return _result_decoder.decode(raw) if raw else None

    async def put_result(self, result: PipelineResult) -> None:
        """Store ``result`` durably (the stream acknowledged it)."""
        await self._results.put(result.workflow_id, _encoder.encode(result))

    async def checkpoint(self, workflow_id: str) -> RunCheckpoint | None:
        """Return the checkpoint of a run in flight, if any."""
        raw = await self._get(self._checkpoints, workflow_id)
        return _checkpoint_decoder.decode(raw) if raw else None

    async def put_checkpoint(self, checkpoint: RunCheckpoint) -> None:
        """Store ``checkpoint`` durably."""
        await self._checkpoints.put(checkpoint.workflow_id, _encoder.encode(checkpoint))

    async def drop_checkpoint(self, workflow_id: str) -> None:
        """Forget a finished run's checkpoint (its result now holds everything)."""
        try:
            await self._checkpoints.purge(workflow_id)
        except nats.errors.Error as exc:
            log.debug("checkpoint of %s not purged: %s", workflow_id, exc)

    async def view(self, workflow_id: str) -> WorkflowView | None:
        """Return the status tracker's view of ``workflow_id``, if it has one."""
        raw = await self._get(self._workflows, workflow_id)
        if not raw:
            return None
        try:
            return _view_decoder.decode(raw)
        except msgspec.DecodeError as exc:
            log.warning("undecodable workflow view of %s: %s", workflow_id, exc)
            return None

    async def upload(self, name: str, path: Path) -> ArtifactRef:
        """Store one output file (once per distinct content) and return its reference."""
        data = await asyncio.to_thread(path.read_bytes)
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        object_name = artifact_object_name(digest)
        try:
            info = await self.artifacts.get_info(object_name)
            present = not info.deleted
        except nats.errors.Error:
            present = False
        if not present:
            await self.artifacts.put(object_name, data)
        return ArtifactRef(name=name, object_name=object_name, size=len(data), digest=digest)

    async def download(self, ref: ArtifactRef) -> bytes:
        """Return the content of an artifact.

        Raises:
            LookupError: the artifact is gone (expired or cleared).
        """
        try:
            found = await self.artifacts.get(ref.object_name)
        except nats.errors.Error as exc:
            raise LookupError(f"artifact {ref.name} ({ref.object_name}) is gone") from exc
        return found.data or b""

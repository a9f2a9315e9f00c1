"""Moving artifact content between files and the artifact object store, in chunks.

Step outputs can be hundreds of megabytes, so content never sits whole in
memory: an upload reads the file in object-store chunks of
:data:`ARTIFACT_CHUNK_SIZE` (bounded by the server's ``max_payload``), and a
download is an iterator over the stored chunks, delivered by an ordered
consumer whose flow control is answered as each chunk is taken, so the server
stays at most one flow-control window (tens of megabytes) ahead of a slow
reader. Every download is checked against its
:class:`~protocols.pipelines.ArtifactRef`: the stored object's size and digest
before the first byte, the sha256 of the bytes received before the last
chunk is handed out, so a reader never gets a complete-looking copy of
corrupt or short content.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import ObjectInfo, ObjectMeta, ObjectMetaOptions
from nats.js.object_store import ObjectStore

from actors.runtime.errors import ArtifactCorrupt, NotFound
from protocols.pipelines import ArtifactRef

__all__ = [
    "ARTIFACT_CHUNK_SIZE",
    "ArtifactCorrupt",
    "artifact_chunks",
    "chunk_size",
    "object_digest",
    "put_file",
    "write_artifact",
]

ARTIFACT_CHUNK_SIZE = 1 << 20
"""Object-store chunk size of artifacts: 1 MiB (nats-py's default is 128 KiB).

With the server acknowledging (and, with ``sync_interval: always``, flushing)
every chunk, fewer larger chunks carry the same bytes in fewer round trips;
2 and 4 MiB chunks measured no faster, and hold more memory per chunk."""

STALL_TIMEOUT = 10.0
"""Seconds a download waits for its next chunk before calling the object short."""


def chunk_size(nc: Client) -> int:
    """Return the chunk size to store artifacts with on ``nc``'s server.

    :data:`ARTIFACT_CHUNK_SIZE`, or less if the server's ``max_payload`` is smaller.
    """
    return max(1, min(ARTIFACT_CHUNK_SIZE, nc.max_payload or ARTIFACT_CHUNK_SIZE))


async def put_file(store: ObjectStore, object_name: str, path: Path, *, chunk: int) -> ObjectInfo:
    """Store the content of ``path`` as object ``object_name``, reading it chunk by chunk.

    Args:
        store: the object store.
        object_name: the object's name.
        path: the file.
        chunk: the chunk size (see :func:`chunk_size`).

    Returns:
        The stored object's information (its ``digest`` is the sha256 the store
        computed over what it stored).
    """
    meta = ObjectMeta(name=object_name, options=ObjectMetaOptions(max_chunk_size=chunk))
    with path.open("rb") as f:
        return await store.put(object_name, f, meta=meta)


def object_digest(info: ObjectInfo) -> str:
    """Return ``sha256:<hex>`` of an object from the store's own digest (``SHA-256=<b64>``)."""
    encoded = (info.digest or "").split("=", 1)[-1]
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except ValueError:
        return ""
    return f"sha256:{raw.hex()}"


async def artifact_chunks(
    js: JetStreamContext, store: ObjectStore, ref: ArtifactRef, *, stall: float = STALL_TIMEOUT
) -> AsyncIterator[bytes]:
    """Check the stored object of ``ref``; return an iterator over its content in chunks.

    The checks that need no content run now, so a missing or mismatched object
    fails before anything is sent anywhere; the iterator raises
    :class:`ArtifactCorrupt` instead of yielding the last chunk if the bytes
    received do not hash to ``ref.digest``, and if a chunk does not come within
    ``stall`` seconds.

    Args:
        js: the JetStream context of the store's connection.
        store: the artifact object store.
        ref: the artifact.
        stall: seconds to wait for each chunk.

    Raises:
        NotFound: the object is gone from the store (expired or cleared).
        ArtifactCorrupt: the stored object's size or digest is not the reference's.
    """
    try:
        info = await store.get_info(ref.object_name)
    except nats.js.errors.NotFoundError:
        raise NotFound(f"artifact {ref.name!r} is no longer stored") from None
    if info.size != ref.size or object_digest(info) != ref.digest:
        raise ArtifactCorrupt(
            f"artifact {ref.name!r}: stored object has {info.size} bytes and digest "
            f"{object_digest(info) or '?'}, expected {ref.size} bytes and {ref.digest}"
        )
    return _stream(js, info, ref, stall)


async def _stream(
    js: JetStreamContext, info: ObjectInfo, ref: ArtifactRef, stall: float
) -> AsyncIterator[bytes]:
    if ref.size == 0:
        _verify(ref, hashlib.sha256().hexdigest(), 0)
        return
    stream = f"OBJ_{info.bucket}"
    sub = await js.subscribe(
        f"$O.{info.bucket}.C.{info.nuid}", stream=stream, ordered_consumer=True
    )
    h = hashlib.sha256()
    received = 0
    try:
        while True:
            try:
                # next_msg answers the server's flow control as soon as a chunk is
                # taken: the server stays only a window ahead of this reader.
                msg = await sub.next_msg(timeout=stall)
            except nats.errors.TimeoutError:
                raise ArtifactCorrupt(
                    f"artifact {ref.name!r} is short: {received} of {ref.size} bytes arrived"
                ) from None
            data = msg.data
            h.update(data)
            received += len(data)
            if received >= ref.size:
                _verify(ref, h.hexdigest(), received)
                yield data
                return
            yield data
    finally:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()


def _verify(ref: ArtifactRef, hexdigest: str, received: int) -> None:
    got = f"sha256:{hexdigest}"
    if received != ref.size or got != ref.digest:
        raise ArtifactCorrupt(
            f"artifact {ref.name!r} is corrupt: received {received} bytes with digest {got}, "
            f"expected {ref.size} bytes with {ref.digest}"
        )


async def write_artifact(chunks: AsyncIterator[bytes], out: Path | BinaryIO) -> int:
    """Write an artifact's chunks to a file; return the number of bytes written.

    A path is written through a temporary file beside it, renamed into place
    only once the whole content arrived and was verified, so a failed download
    leaves no partial file; a stream (standard output) gets each chunk as it
    comes. Writes run in a worker thread, overlapping with the next chunk's
    arrival.

    Args:
        chunks: the content, from :func:`artifact_chunks`.
        out: the destination file path, or an open binary stream.

    Raises:
        ArtifactCorrupt: the content did not verify (nothing is left at a path).
    """
    if not isinstance(out, Path):
        written = 0
        async for data in chunks:
            await asyncio.to_thread(out.write, data)
            written += len(data)
        await asyncio.to_thread(out.flush)
        return written
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    try:
        # mkstemp creates 0600; give the file the mode a plain open() would.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            written = await write_artifact(chunks, f)
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return written


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask

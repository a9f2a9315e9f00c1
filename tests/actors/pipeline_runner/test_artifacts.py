"""Artifacts stream in chunks both ways and every download is checked against its digest."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actors.pipeline_runner.artifacts import ARTIFACT_CHUNK_SIZE, artifact_chunks, chunk_size
from actors.pipeline_runner.client import (
    ArtifactCorrupt,
    open_artifact,
    read_artifact,
    read_artifact_to,
)
from actors.pipeline_runner.store import RunStore
from actors.runtime.bus import Bus
from actors.runtime.errors import NotFound

pytestmark = pytest.mark.integration

SIZE = 3 * ARTIFACT_CHUNK_SIZE + 12345
"""A few chunks and a partial last one."""


def _file(path: Path, size: int = SIZE) -> Path:
    path.write_bytes(os.urandom(size))
    return path


async def _drain(chunks: AsyncIterator[bytes], into: list[bytes]) -> None:
    async for piece in chunks:
        into.append(piece)


async def test_a_multi_chunk_artifact_round_trips_byte_identical_to_a_file(
    bus: Bus, tmp_path: Path
) -> None:
    """Upload streams the file in chunks; read_artifact_to writes exactly those bytes."""
    source = _file(tmp_path / "big.bin")
    store = await RunStore.open(bus)
    ref = await store.upload("out/big.bin", source)
    info = await store.artifacts.get_info(ref.object_name)
    assert info.chunks == -(-SIZE // chunk_size(bus.nc)) > 1
    assert ref.size == SIZE

    dest = tmp_path / "copy.bin"
    assert await read_artifact_to(bus, ref, dest) == SIZE
    assert dest.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.bin", "copy.bin"]
    stream = io.BytesIO()
    assert await read_artifact_to(bus, ref, stream) == SIZE
    assert stream.getvalue() == source.read_bytes()
    assert await store.download(ref) == source.read_bytes()
    restored = tmp_path / "outputs" / "step" / "big.bin"
    await store.download_to(ref, restored)
    assert restored.read_bytes() == source.read_bytes()


async def test_uploading_the_same_content_twice_stores_it_once(bus: Bus, tmp_path: Path) -> None:
    """The object name is the digest: a second upload of equal content writes nothing."""
    store = await RunStore.open(bus)
    first = await store.upload("a.bin", _file(tmp_path / "a.bin", 1000))
    (tmp_path / "b.bin").write_bytes((tmp_path / "a.bin").read_bytes())
    before = (await store.artifacts.get_info(first.object_name)).nuid
    second = await store.upload("b.bin", tmp_path / "b.bin")
    assert second.object_name == first.object_name
    assert (await store.artifacts.get_info(first.object_name)).nuid == before


async def test_an_empty_artifact_round_trips(bus: Bus, tmp_path: Path) -> None:
    """A zero-byte output is stored and read back as zero bytes."""
    store = await RunStore.open(bus)
    ref = await store.upload("empty", _file(tmp_path / "empty", 0))
    assert await read_artifact(bus, ref) == b""


async def test_a_short_object_is_refused_and_leaves_no_file(bus: Bus, tmp_path: Path) -> None:
    """A stored object that is not the referenced content is refused before any byte."""
    source = _file(tmp_path / "big.bin")
    store = await RunStore.open(bus)
    ref = await store.upload("big.bin", source)
    await store.artifacts.put(ref.object_name, source.read_bytes()[: SIZE // 2])

    dest = tmp_path / "copy.bin"
    with pytest.raises(ArtifactCorrupt, match="expected"):
        await read_artifact_to(bus, ref, dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.bin"]
    # The runner takes a corrupt output as a gone one: the step runs again.
    with pytest.raises(LookupError, match="expected"):
        await store.download(ref)
    with pytest.raises(LookupError, match="expected"):
        await store.download_to(ref, dest)
    assert not dest.exists()


async def test_corrupt_chunks_are_refused_before_the_last_chunk(bus: Bus, tmp_path: Path) -> None:
    """Chunks that do not hash to the digest: the iterator raises instead of the last chunk."""
    source = _file(tmp_path / "big.bin")
    store = await RunStore.open(bus)
    ref = await store.upload("big.bin", source)
    info = await store.artifacts.get_info(ref.object_name)
    subject = f"$O.{info.bucket}.C.{info.nuid}"
    # Same chunk count and sizes, one byte flipped in the first chunk: the
    # object's metadata (size, digest) still claims the original content.
    data = bytearray(source.read_bytes())
    data[0] ^= 0xFF
    chunk = chunk_size(bus.nc)
    await bus.js.purge_stream(f"OBJ_{info.bucket}", subject=subject)
    for start in range(0, SIZE, chunk):
        await bus.js.publish(subject, bytes(data[start : start + chunk]))

    received: list[bytes] = []
    with pytest.raises(ArtifactCorrupt, match="corrupt"):
        await _drain(await open_artifact(bus, ref), received)
    assert len(received) == info.chunks - 1
    dest = tmp_path / "copy.bin"
    with pytest.raises(ArtifactCorrupt):
        await read_artifact_to(bus, ref, dest)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["big.bin"]


async def test_missing_chunks_are_refused_as_short(bus: Bus, tmp_path: Path) -> None:
    """An object whose chunks are gone stops short and is refused, not waited on for ever."""
    source = _file(tmp_path / "big.bin")
    store = await RunStore.open(bus)
    ref = await store.upload("big.bin", source)
    info = await store.artifacts.get_info(ref.object_name)
    await bus.js.purge_stream(f"OBJ_{info.bucket}", subject=f"$O.{info.bucket}.C.{info.nuid}")
    chunks = await artifact_chunks(bus.js, store.artifacts, ref, stall=0.5)
    with pytest.raises(ArtifactCorrupt, match="short: 0 of"):
        await _drain(chunks, [])


async def test_a_gone_artifact_is_not_found(bus: Bus, tmp_path: Path) -> None:
    """A deleted object is NotFound for readers and a LookupError for the runner."""
    store = await RunStore.open(bus)
    ref = await store.upload("a.bin", _file(tmp_path / "a.bin", 10))
    await store.artifacts.delete(ref.object_name)
    with pytest.raises(NotFound):
        await read_artifact_to(bus, ref, tmp_path / "copy.bin")
    with pytest.raises(LookupError):
        await store.download(ref)

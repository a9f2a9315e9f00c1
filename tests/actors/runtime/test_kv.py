"""TypedBucket: typed get/put/compare-and-set/watch with one not-found and one conflict error."""

from __future__ import annotations

import asyncio
import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.runtime import (
    BadRequest,
    BucketSpec,
    Bus,
    Conflict,
    Entry,
    NotFound,
    TypedBucket,
)
from actors.runtime.codec import Codec, encode, headers_for, stored_encoding
from actors.runtime.testing import eventually
from protocols import headers as h

pytestmark = pytest.mark.integration

BUCKET = BucketSpec(name="test-kv", history=5)


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """A value stored in the test bucket."""

    state: str
    count: int = 0


async def _jobs(bus: Bus, encoding: str = h.MSGPACK) -> TypedBucket[Job]:
    return await TypedBucket.bind(bus, BUCKET, Job, encoding=encoding)


async def test_get_returns_what_put_stored_with_its_revision(bus: Bus) -> None:
    """put returns the revision that get reports with the decoded value."""
    jobs = await _jobs(bus)
    rev = await jobs.put("j1", Job(state="new", count=2))
    entry = await jobs.get("j1")
    assert entry == Entry(
        bucket="test-kv",
        key="j1",
        value=Job(state="new", count=2),
        revision=rev,
        created=entry.created,
    )
    assert entry.created is not None


async def test_missing_deleted_and_purged_keys_are_not_found(bus: Bus) -> None:
    """get raises NotFound for a key never written, deleted or purged; get_or_none is None."""
    jobs = await _jobs(bus)
    with pytest.raises(NotFound):
        await jobs.get("nope")
    await jobs.put("d", Job(state="x"))
    await jobs.delete("d")
    with pytest.raises(NotFound):
        await jobs.get("d")
    await jobs.put("p", Job(state="x"))
    await jobs.purge("p")
    with pytest.raises(NotFound):
        await jobs.get("p")
    assert await jobs.get_or_none("d") is None


async def test_create_conflicts_on_a_live_key_but_not_on_a_deleted_one(bus: Bus) -> None:
    """create raises Conflict over a live key and succeeds over a tombstone."""
    jobs = await _jobs(bus)
    await jobs.create("c", Job(state="one"))
    with pytest.raises(Conflict):
        await jobs.create("c", Job(state="two"))
    await jobs.delete("c")
    rev = await jobs.create("c", Job(state="three"))
    assert (await jobs.get("c")).revision == rev


async def test_update_and_delete_compare_the_revision(bus: Bus) -> None:
    """update and delete at a stale revision raise Conflict; at the current one they apply."""
    jobs = await _jobs(bus)
    first = await jobs.put("u", Job(state="a"))
    second = await jobs.update("u", Job(state="b"), first)
    with pytest.raises(Conflict):
        await jobs.update("u", Job(state="c"), first)
    with pytest.raises(Conflict):
        await jobs.delete("u", revision=first)
    await jobs.delete("u", revision=second)
    assert await jobs.get_or_none("u") is None


async def test_keys_of_an_empty_bucket_is_an_empty_list(bus: Bus) -> None:
    """keys returns [] for an empty bucket and only live keys otherwise."""
    jobs = await _jobs(bus)
    assert await jobs.keys() == []
    await jobs.put("a", Job(state="x"))
    await jobs.put("b", Job(state="x"))
    await jobs.delete("b")
    assert await jobs.keys() == ["a"]


async def test_invalid_keys_are_bad_requests(bus: Bus) -> None:
    """A key NATS cannot store raises BadRequest before anything is sent."""
    jobs = await _jobs(bus)
    for key in ("", "a b", ".a", "a.", "a*"):
        with pytest.raises(BadRequest):
            await jobs.put(key, Job(state="x"))


@pytest.mark.parametrize("encoding", [h.MSGPACK, h.JSON])
async def test_values_carry_their_content_type(bus: Bus, encoding: str) -> None:
    """Every written value carries a Content-Type header naming its encoding."""
    jobs = await _jobs(bus, encoding)
    await jobs.put("e", Job(state="x"))
    raw = await bus.js.get_msg("KV_test-kv", subject="$KV.test-kv.e", direct=True)
    assert raw.headers is not None
    assert raw.headers[h.CONTENT_TYPE] == encoding
    assert Codec.of(Job).decode(raw.data or b"", encoding) == Job(state="x")


async def test_values_written_by_a_plain_client_without_header_are_read(bus: Bus) -> None:
    """JSON (and MessagePack) written by nats-py's own KeyValue without headers decode."""
    jobs = await _jobs(bus)
    kv = await bus.js.key_value("test-kv")
    await kv.put("json", json.dumps({"state": "from-js", "count": 3}).encode())
    await kv.put("packed", msgspec.msgpack.encode({"state": "packed"}))
    assert (await jobs.get("json")).value == Job(state="from-js", count=3)
    assert (await jobs.get("packed")).value == Job(state="packed")


async def test_a_value_that_does_not_decode_is_a_bad_request(bus: Bus) -> None:
    """get raises BadRequest for a stored value that is not a valid Job."""
    jobs = await _jobs(bus)
    kv = await bus.js.key_value("test-kv")
    await kv.put("junk", b'{"state": 5}')
    with pytest.raises(BadRequest):
        await jobs.get("junk")


async def test_concurrent_mutations_lose_no_update(bus: Bus) -> None:
    """Twenty concurrent compare-and-set increments all land."""
    jobs = await _jobs(bus)

    def increment(entry: Entry[Job] | None) -> Job:
        return Job(state="n", count=(entry.value.count if entry else 0) + 1)

    await asyncio.gather(*(jobs.mutate("n", increment, attempts=50) for _ in range(20)))
    assert (await jobs.get("n")).value.count == 20


async def test_mutate_returning_none_leaves_the_key_alone(bus: Bus) -> None:
    """A change that declines writes nothing and returns the current entry."""
    jobs = await _jobs(bus)
    rev = await jobs.put("k", Job(state="keep"))
    entry = await jobs.mutate("k", lambda e: None)
    assert entry is not None
    assert entry.revision == rev
    assert await jobs.mutate("absent", lambda e: None) is None


async def test_update_and_mutate_with_a_ttl_write_revisions_that_expire(bus: Bus) -> None:
    """A TTL given to update, or to mutate (as seconds or per value), makes that revision expire."""
    # One revision per key, so an expired revision leaves no older one behind.
    jobs = await TypedBucket.bind(bus, BucketSpec(name="test-kv-ttl", history=1), Job)
    rev = await jobs.put("ttl-u", Job(state="a"))
    await jobs.update("ttl-u", Job(state="b"), rev, ttl=1.0)
    await jobs.put("ttl-m", Job(state="a"))
    await jobs.mutate("ttl-m", lambda e: Job(state="done"), ttl=1.0)
    await jobs.mutate("ttl-f", lambda e: Job(state="done"), ttl=lambda job: 1.0)
    kept = await jobs.mutate("ttl-k", lambda e: Job(state="open"), ttl=lambda job: None)
    assert kept is not None

    async def expired() -> bool:
        return all([await jobs.get_or_none(k) is None for k in ("ttl-u", "ttl-m", "ttl-f")])

    await eventually(expired, timeout=10.0, interval=0.2)
    assert (await jobs.get("ttl-k")).revision == kept.revision


async def test_watch_yields_initial_values_then_caught_up_then_changes(bus: Bus) -> None:
    """A watch yields live keys, sets caught_up, then yields puts and deletes in order."""
    jobs = await _jobs(bus)
    await jobs.put("a", Job(state="a1"))
    await jobs.put("b", Job(state="b1"))
    await jobs.put("gone", Job(state="x"))
    await jobs.delete("gone")
    kv = await bus.js.key_value("test-kv")
    await kv.put("junk", b"\xc1")  # never valid MessagePack: skipped with a warning
    marks: list[int] = []
    seen: list[Entry[Job | None]] = []

    async def caught_up() -> None:
        marks.append(len(seen))

    async with await jobs.watch(on_caught_up=caught_up) as watch:

        async def read() -> None:
            async for entry in watch:
                seen.append(entry)

        reader = asyncio.create_task(read())
        await asyncio.wait_for(watch.caught_up.wait(), 5.0)
        assert [(e.key, e.value) for e in seen] == [("a", Job(state="a1")), ("b", Job(state="b1"))]
        assert marks == [2]
        await jobs.put("a", Job(state="a2"))
        await jobs.delete("b")
        await eventually(lambda: _after(seen, 4))
        assert [(e.key, e.value, e.operation) for e in seen[2:]] == [
            ("a", Job(state="a2"), "put"),
            ("b", None, "delete"),
        ]
    await asyncio.wait_for(reader, 5.0)


async def _after(seen: list[Entry[Job | None]], n: int) -> bool:
    return len(seen) >= n


async def test_watch_of_an_empty_bucket_is_caught_up_at_once(bus: Bus) -> None:
    """With nothing stored the watch is caught up before any update."""
    jobs = await _jobs(bus)
    watch = await jobs.watch()
    entries: list[Entry[Job | None]] = []

    async def read() -> None:
        async for entry in watch:
            entries.append(entry)

    reader = asyncio.create_task(read())
    await asyncio.wait_for(watch.caught_up.wait(), 5.0)
    assert entries == []
    await jobs.put("x", Job(state="new"))
    await eventually(lambda: _after(entries, 1))
    await watch.close()
    await watch.close()
    await asyncio.wait_for(reader, 5.0)


_values = st.builds(
    Job, state=st.text(max_size=20), count=st.integers(min_value=-(2**63), max_value=2**63 - 1)
)


@given(value=_values, encoding=st.sampled_from([h.MSGPACK, h.JSON]))
def test_stored_values_round_trip_in_either_encoding(value: Job, encoding: str) -> None:
    """What TypedBucket writes (bytes + header) decodes back to the same value."""
    data = encode(value, encoding)
    headers = headers_for(encoding) or {h.CONTENT_TYPE: encoding}
    assert Codec.of(Job).decode(data, stored_encoding(data, headers)) == value

"""The one typed accessor of a KV bucket: :class:`TypedBucket`.

A :class:`TypedBucket` binds a :class:`~actors.runtime.topology.BucketSpec` to
a value type (a msgspec Struct or anything msgspec decodes)::

    jobs = await TypedBucket.bind(bus, JOBS_BUCKET, Job)
    rev = await jobs.create("j-1", Job(state="new"))
    entry = await jobs.get("j-1")                      # Entry[Job]
    await jobs.update("j-1", Job(state="done"), entry.revision)
    await jobs.mutate("j-1", lambda e: ... )           # compare-and-set with retries
    async with jobs.watch() as changes:                # Entry[Job | None]
        async for change in changes: ...

Errors are the runtime's own: a missing, deleted or purged key raises
:class:`~actors.runtime.errors.NotFound`; a create over a live key or an update
or delete at a stale revision raises :class:`~actors.runtime.errors.Conflict`;
an invalid key or a stored value that does not decode raises
:class:`~actors.runtime.errors.BadRequest`.

Values are written with a ``Content-Type`` header (MessagePack by default,
JSON when the bucket is bound with ``encoding=JSON``) by publishing to the
key's ``$KV.<bucket>.<key>`` subject, exactly as nats-py's ``KeyValue`` does
plus the header. Reads use JetStream direct get, which returns headers, so the
writer's content type decides how a value is decoded; a value written without
header is sniffed (a JSON object from a plain client is read as JSON).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from actors.runtime.bus import Bus
from actors.runtime.codec import Codec, Encoding, encode, stored_encoding
from actors.runtime.errors import BadRequest, Conflict, NotFound
from actors.runtime.stream_publish import publish_and_wait
from actors.runtime.topology import BucketSpec
from actors.runtime.watch import BucketWatch, Entry, operation_of
from protocols import headers as h

__all__ = ["Entry", "TypedBucket"]

T = TypeVar("T")

_EXPECTED_LAST = "Nats-Expected-Last-Subject-Sequence"
_WRONG_LAST_SEQUENCE = frozenset({10071, 10164})
_KEY_OK = re.compile(r"^[-/_=.a-zA-Z0-9]+$")


def _check_key(key: str) -> None:
    if not _KEY_OK.match(key) or key.startswith(".") or key.endswith("."):
        raise BadRequest(f"invalid key {key!r}")


class TypedBucket(Generic[T]):
    """Typed get, put, compare-and-set and watch on one KV bucket.

    Build it with :meth:`bind`.

    Args:
        js: JetStream context.
        kv: the nats-py bucket handle.
        spec: the bucket's declaration.
        value_type: type values decode to.
        encoding: encoding of written values.
    """

    def __init__(
        self,
        js: JetStreamContext,
        kv: KeyValue,
        spec: BucketSpec,
        value_type: Any,
        *,
        encoding: Encoding = h.MSGPACK,
    ) -> None:
        self.spec = spec
        self.value_type = value_type
        self.encoding = encoding
        self._js = js
        self._kv = kv
        self._codec: Codec[T] = Codec.of(value_type)
        self._stream = f"KV_{spec.name}"
        self._prefix = f"$KV.{spec.name}."

    @classmethod
    async def bind(
        cls,
        bus: Bus,
        spec: BucketSpec,
        value_type: type[T],
        *,
        encoding: Encoding = h.MSGPACK,
    ) -> TypedBucket[T]:
        """Ensure the bucket exists and return its typed accessor.

        Args:
            bus: a connected bus.
            spec: the bucket.
            value_type: type of its values.
            encoding: :data:`~protocols.headers.MSGPACK` (default) or
                :data:`~protocols.headers.JSON` for written values.
        """
        kv = await bus.key_value(spec)
        return cls(bus.js, kv, spec, value_type, encoding=encoding)

    @property
    def name(self) -> str:
        """The bucket name."""
        return self.spec.name

    # -- reading ---------------------------------------------------------------------

    async def get(self, key: str) -> Entry[T]:
        """Return the current entry of ``key``.

        Raises:
            NotFound: the key does not exist, or was deleted or purged.
            BadRequest: the key is invalid or its value does not decode.
        """
        _check_key(key)
        try:
            msg = await self._js.get_msg(self._stream, subject=self._prefix + key, direct=True)
        except nats.js.errors.NotFoundError:
            raise NotFound(f"{self.name}: no key {key!r}") from None
        headers = dict(msg.headers or {})
        if operation_of(headers) != "put" or msg.seq is None:
            raise NotFound(f"{self.name}: no key {key!r}")
        data = msg.data or b""
        value = self._codec.decode(data, stored_encoding(data, headers))
        created = msg.time.timestamp() if msg.time else None
        return Entry(bucket=self.name, key=key, value=value, revision=msg.seq, created=created)

    async def get_or_none(self, key: str) -> Entry[T] | None:
        """Return the current entry of ``key``, or ``None`` when there is none.

        Raises:
            BadRequest: the key is invalid or its value does not decode.
        """
        try:
            return await self.get(key)
        except NotFound:
            return None

    async def keys(self) -> list[str]:
        """Return the live keys (an empty list for an empty bucket)."""
        try:
            return list(await self._kv.keys())
        except nats.js.errors.NoKeysError:
            return []

    # -- writing ---------------------------------------------------------------------

    async def put(self, key: str, value: T, *, ttl: float | None = None) -> int:
        """Store ``value`` under ``key`` whatever is there; return the new revision.

        Args:
            key: the key.
            value: the value.
            ttl: seconds this revision lives (the bucket must allow per-key TTLs).
        """
        return await self._write(key, value, None, ttl)

    async def create(self, key: str, value: T, *, ttl: float | None = None) -> int:
        """Store ``value`` only if ``key`` has no live value; return the revision.

        Raises:
            Conflict: the key exists (and is not deleted).
        """
        try:
            return await self._write(key, value, 0, ttl)
        except Conflict:
            # A deleted key keeps its tombstone: create over it at its revision.
            tombstone = await self._tombstone(key)
            if tombstone is None:
                raise
        return await self._write(key, value, tombstone, ttl)

    async def update(self, key: str, value: T, revision: int, *, ttl: float | None = None) -> int:
        """Store ``value`` only if ``key`` is still at ``revision``; return the new one.

        Args:
            key: the key.
            value: the value.
            revision: the revision the key must still be at.
            ttl: seconds the new revision lives (the bucket must allow per-key TTLs);
                refreshing a lease is an update with a TTL.

        Raises:
            Conflict: the key moved on from ``revision`` (or never had it, or expired).
        """
        return await self._write(key, value, revision, ttl)

    async def mutate(
        self,
        key: str,
        change: Callable[[Entry[T] | None], T | Awaitable[T | None] | None],
        *,
        attempts: int = 10,
        ttl: float | Callable[[T], float | None] | None = None,
    ) -> Entry[T] | None:
        """Apply ``change`` to the current entry with compare-and-set, retrying on conflict.

        ``change`` gets the current entry (``None`` if there is none) and
        returns the new value, or ``None`` to leave the key as it is. It may be
        called several times, so it must not have side effects.

        Args:
            key: the key.
            change: computes the new value from the current entry.
            attempts: writes tried before giving up.
            ttl: seconds the written revision lives, or a function of the new
                value returning them (``None``: no TTL); the bucket must allow
                per-key TTLs.

        Returns:
            The entry written, or the current one (maybe ``None``) when
            ``change`` declined.

        Raises:
            Conflict: every one of ``attempts`` writes lost a race.
        """
        for _ in range(max(1, attempts)):
            current = await self.get_or_none(key)
            result = change(current)
            new = await result if isinstance(result, Awaitable) else result
            if new is None:
                return current
            seconds = ttl(new) if callable(ttl) else ttl
            try:
                if current is None:
                    revision = await self.create(key, new, ttl=seconds)
                else:
                    revision = await self.update(key, new, current.revision, ttl=seconds)
            except Conflict:
                continue
            return Entry(bucket=self.name, key=key, value=new, revision=revision)
        raise Conflict(f"{self.name}: {key!r} kept changing ({attempts} attempts)")

    async def delete(self, key: str, *, revision: int | None = None) -> None:
        """Delete ``key`` (a tombstone watchers see), optionally only at ``revision``.

        Raises:
            Conflict: ``revision`` was given and the key is no longer at it.
        """
        _check_key(key)
        headers = {"KV-Operation": "DEL"}
        if revision is not None:
            headers[_EXPECTED_LAST] = str(revision)
        await self._publish(key, b"", headers, None)

    async def purge(self, key: str) -> None:
        """Remove ``key`` and all its revisions, leaving one purge marker."""
        _check_key(key)
        await self._publish(key, b"", {"KV-Operation": "PURGE", "Nats-Rollup": "sub"}, None)

    # -- watching --------------------------------------------------------------------

    async def watch(
        self,
        keys: str = ">",
        *,
        initial: bool = True,
        on_caught_up: Callable[[], Awaitable[None]] | None = None,
    ) -> BucketWatch[T]:
        """Watch the keys matching ``keys`` (a subject pattern such as ``>`` or ``a.*``).

        Args:
            keys: key pattern.
            initial: first yield the current value of every live key, then
                set :attr:`BucketWatch.caught_up`.
            on_caught_up: awaited once the initial values have been yielded.

        Returns:
            A started :class:`BucketWatch` yielding ``Entry[T | None]``.
        """
        watch: BucketWatch[T] = BucketWatch(
            self._js,
            bucket=self.name,
            stream=self._stream,
            prefix=self._prefix,
            pattern=keys,
            codec=self._codec,
            initial=initial,
            on_caught_up=on_caught_up,
        )
        return await watch.start()

    # -- plumbing --------------------------------------------------------------------

    async def _tombstone(self, key: str) -> int | None:
        """Return the revision of ``key``'s delete or purge marker, if that is its last."""
        try:
            msg = await self._js.get_msg(self._stream, subject=self._prefix + key, direct=True)
        except nats.js.errors.NotFoundError:
            return None
        if operation_of(dict(msg.headers or {})) == "put":
            return None
        return msg.seq

    async def _write(self, key: str, value: T, last: int | None, ttl: float | None) -> int:
        _check_key(key)
        headers = {h.CONTENT_TYPE: self.encoding}
        if last is not None:
            headers[_EXPECTED_LAST] = str(last)
        return await self._publish(key, encode(value, self.encoding), headers, ttl)

    async def _publish(
        self, key: str, data: bytes, headers: dict[str, str], ttl: float | None
    ) -> int:
        try:
            ack = await publish_and_wait(
                self._js._nc,
                self._prefix + key,
                data,
                headers=headers,
                timeout=self._js._timeout,
                stream=self._stream,
                ttl=ttl,
            )
        except nats.js.errors.APIError as exc:
            if exc.err_code in _WRONG_LAST_SEQUENCE:
                raise Conflict(f"{self.name}: {key!r} is not at the expected revision") from None
            raise
        return ack.seq

"""KV and stream access of the status tracker: views, run durations and history.

* :class:`WorkflowStore` keeps one :class:`WorkflowView` per workflow in the
  ``troupe-workflows`` bucket. Every write is revision-checked (the expected
  last revision of the key travels in ``Nats-Expected-Last-Subject-Sequence``);
  on a conflict the event is re-applied to the fresh view, so several tracker
  replicas never lose an update. A finished workflow's writes carry a
  per-message TTL (``Nats-TTL``): the server expires the key after the
  retention time with no sweep.
* :class:`DurationStore` keeps the latest run durations of each template in
  the ``troupe-history`` bucket, with the same revision checks.
* :func:`mirror` keeps a :class:`~actors.status_tracker.index.WorkflowIndex`
  in step with the bucket through a KV watch.
* :func:`read_history` reads one workflow's events back from the status
  stream: the transition history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from actors.runtime.clock import Clock
from actors.runtime.codec import Codec, encoding_of
from actors.runtime.errors import BadRequest
from actors.status_tracker import eta
from actors.status_tracker import state as sm
from actors.status_tracker.index import WorkflowIndex
from protocols.status import (
    STATUS_STREAM,
    TERMINAL_STATES,
    StatusEvent,
    TemplateDurations,
    WorkflowView,
    event_subject,
)

__all__ = [
    "CasExhausted",
    "DurationStore",
    "Stored",
    "WorkflowStore",
    "mirror",
    "read_history",
]

log = logging.getLogger(__name__)

_WRONG_LAST_SEQUENCE = (10071, 10164)
_view_decoder = msgspec.msgpack.Decoder(WorkflowView)
_durations_decoder = msgspec.msgpack.Decoder(TemplateDurations)
_encoder = msgspec.msgpack.Encoder()


class CasExhausted(Exception):
    """Every revision-checked write attempt met a concurrent writer."""


class _Conflict(Exception):
    """The key's revision moved since it was read."""


@dataclass(frozen=True, slots=True)
class Stored:
    """An applied event and the KV revision its view was written at (0: not written)."""

    applied: sm.Applied
    revision: int


async def _read(kv: KeyValue, key: str) -> tuple[bytes | None, int]:
    """Return the value and revision of ``key``; ``(None, rev)`` when absent or deleted."""
    try:
        entry = await kv.get(key)
    except nats.js.errors.KeyDeletedError as exc:
        return None, (exc.entry.revision or 0) if exc.entry is not None else 0
    except nats.js.errors.NotFoundError:
        return None, 0
    return entry.value, entry.revision or 0


async def _write(
    js: JetStreamContext,
    bucket: str,
    key: str,
    value: bytes,
    *,
    last: int,
    ttl: float | None = None,
) -> int:
    """Write ``value`` only if ``key`` is still at revision ``last``; return the new one.

    Raises:
        _Conflict: another writer got there first.
    """
    headers: dict[str, Any] = {js_api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value: str(last)}
    try:
        ack = await js.publish(
            f"$KV.{bucket}.{key}",
            value,
            headers=headers,
            msg_ttl=max(1.0, ttl) if ttl else None,
        )
    except nats.js.errors.APIError as exc:
        if exc.err_code in _WRONG_LAST_SEQUENCE:
            raise _Conflict(key) from None
        raise
    return int(ack.seq)


class WorkflowStore:
    """Workflow views in the workflows bucket, updated with revision checks.

    Args:
        kv: the ``troupe-workflows`` bucket.
        js: the JetStream context writes go through (for the per-message TTL).
        bucket: the bucket's name.
        retention_s: seconds a finished workflow is kept.
        cas_attempts: write attempts per event before giving up.
        messages_kept: structured messages kept per view.
        cache_size: views this process wrote last, kept to skip a read.
    """

    def __init__(
        self,
        kv: KeyValue,
        js: JetStreamContext,
        bucket: str,
        *,
        retention_s: float,
        cas_attempts: int = 100,
        messages_kept: int = 20,
        cache_size: int = 10_000,
    ) -> None:
        self.kv = kv
        self._js = js
        self._bucket = bucket
        self.retention_s = retention_s
        self.cas_attempts = cas_attempts
        self.messages_kept = messages_kept
        self.cache_size = cache_size
        self.conflicts = 0
        self._locks: dict[str, list[Any]] = {}
        self._recent: OrderedDict[str, tuple[WorkflowView | None, int]] = OrderedDict()

    async def get(self, workflow_id: str) -> tuple[WorkflowView, int] | None:
        """Return the stored view of ``workflow_id`` and its revision, if any."""
        value, revision = await _read(self.kv, workflow_id)
        if value is None:
            return None
        return _view_decoder.decode(value), revision

    @contextlib.asynccontextmanager
    async def _exclusive(self, key: str) -> AsyncIterator[None]:
        # One event per workflow at a time in this process: concurrent handlers
        # would only race each other's revision checks.
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if not entry[1]:
                del self._locks[key]

    def _remember(self, key: str, view: WorkflowView | None, revision: int) -> None:
        self._recent[key] = (view, revision)
        self._recent.move_to_end(key)
        while len(self._recent) > self.cache_size:
            self._recent.popitem(last=False)

    async def apply(self, event: StatusEvent, now: float) -> Stored | None:
        """Fold ``event`` into the stored view and write it if it changed.

        The view this process wrote last is reused instead of re-read; if
        another replica wrote since, the revision check fails and the key is
        read afresh.

        Args:
            event: the status event.
            now: current Unix time (to ignore late events of expired workflows).

        Returns:
            The result, or ``None`` when the event belongs to a workflow that
            already expired (a late redelivery must not bring it back).

        Raises:
            CasExhausted: ``cas_attempts`` writes in a row met a concurrent writer.
        """
        key = event.workflow_id
        async with self._exclusive(key):
            known = self._recent.get(key)
            for attempt in range(self.cas_attempts):
                if known is None:
                    value, revision = await _read(self.kv, key)
                    known = (_view_decoder.decode(value) if value is not None else None, revision)
                view, revision = known
                if view is None and now - event.at > self.retention_s:
                    return None
                applied = sm.apply(view, event, messages_kept=self.messages_kept)
                if not applied.changed:
                    return Stored(applied, 0)
                ttl = self.retention_s if applied.view.state in TERMINAL_STATES else None
                try:
                    new_rev = await _write(
                        self._js,
                        self._bucket,
                        key,
                        _encoder.encode(applied.view),
                        last=revision,
                        ttl=ttl,
                    )
                except _Conflict:
                    self.conflicts += 1
                    known = None
                    self._recent.pop(key, None)
                    # Back off a little after repeated clashes so a hot key's writers spread out.
                    if attempt >= 2:
                        await asyncio.sleep(0.001 * min(attempt, 20))
                    continue
                self._remember(key, applied.view, new_rev)
                return Stored(applied, new_rev)
        raise CasExhausted(f"{key}: {self.cas_attempts} conflicting writes in a row")


class DurationStore:
    """Durations of earlier successful runs per template, cached briefly in memory.

    Args:
        kv: the ``troupe-history`` bucket.
        js: the JetStream context writes go through.
        bucket: the bucket's name.
        clock: time source of the cache.
        keep: samples kept per template.
        cache_s: seconds a template's samples are reused before re-reading.
    """

    def __init__(
        self,
        kv: KeyValue,
        js: JetStreamContext,
        bucket: str,
        clock: Clock,
        *,
        keep: int = 50,
        cache_s: float = 5.0,
    ) -> None:
        self.kv = kv
        self._js = js
        self._bucket = bucket
        self._clock = clock
        self.keep = keep
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, list[float]]] = {}

    async def samples(self, template: str) -> list[float]:
        """Return the recorded durations of ``template`` (oldest first)."""
        cached = self._cache.get(template)
        now = self._clock.monotonic()
        if cached is not None and now - cached[0] < self.cache_s:
            return cached[1]
        value, _ = await _read(self.kv, eta.durations_key(template))
        samples = _durations_decoder.decode(value).samples if value is not None else []
        self._cache[template] = (now, samples)
        return samples

    async def record(self, template: str, duration: float) -> list[float]:
        """Append one run's ``duration`` to ``template``'s samples; return them.

        Raises:
            CasExhausted: too many concurrent writers.
        """
        key = eta.durations_key(template)
        for _ in range(100):
            value, revision = await _read(self.kv, key)
            samples = _durations_decoder.decode(value).samples if value is not None else []
            samples = eta.record(samples, duration, keep=self.keep)
            data = _encoder.encode(TemplateDurations(template=template, samples=samples))
            try:
                await _write(self._js, self._bucket, key, data, last=revision)
            except _Conflict:
                continue
            self._cache[template] = (self._clock.monotonic(), samples)
            return samples
        raise CasExhausted(f"durations of {template}: too many concurrent writers")


async def mirror(kv: KeyValue, index: WorkflowIndex, ready: asyncio.Event) -> None:
    """Keep ``index`` equal to the bucket's content until cancelled.

    ``ready`` is set once the bucket's current content is loaded.
    """
    watcher = await kv.watchall()
    try:
        async for entry in watcher:
            if entry is None:
                ready.set()
                continue
            if entry.operation in (KV_DEL, KV_PURGE):
                index.remove(entry.key)
                continue
            try:
                view = _view_decoder.decode(entry.value)
            except msgspec.DecodeError:
                log.warning("workflows bucket: undecodable value under %s", entry.key)
                continue
            index.put(view, entry.revision)
    finally:
        with contextlib.suppress(Exception):
            await watcher.stop()  # type: ignore[no-untyped-call]


async def read_history(
    js: JetStreamContext, workflow_id: str, *, timeout: float = 5.0
) -> list[StatusEvent]:
    """Read every event of ``workflow_id`` kept in the status stream, in stream order.

    Raises:
        TimeoutError: the stream did not deliver them within ``timeout`` seconds.
    """
    codec: Codec[StatusEvent] = Codec.of(StatusEvent)
    subject = event_subject(workflow_id)
    try:
        info = await js.stream_info(STATUS_STREAM, subjects_filter=subject)
    except nats.js.errors.NotFoundError:
        return []
    total = (info.state.subjects or {}).get(subject, 0)
    events: list[StatusEvent] = []
    if not total:
        return events
    sub = await js.subscribe(subject, stream=STATUS_STREAM, ordered_consumer=True)
    deadline = time.monotonic() + timeout
    try:
        while len(events) < total:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"history of {workflow_id} not read within {timeout}s")
            try:
                msg = await sub.next_msg(timeout=remaining)
            except nats.errors.TimeoutError:
                continue
            try:
                events.append(codec.decode(msg.data, encoding_of(msg.headers)))
            except BadRequest:
                log.debug("history of %s: skipped an undecodable event", workflow_id)
            if msg.metadata.num_pending == 0:
                break
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return events

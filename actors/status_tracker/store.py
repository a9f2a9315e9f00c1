"""KV and stream access of the status tracker: views, run durations and history.

* :class:`WorkflowStore` keeps one :class:`WorkflowView` per workflow in the
  ``troupe-workflows`` bucket through a :class:`~actors.runtime.TypedBucket`.
  Every write is revision-checked; on a
  :class:`~actors.runtime.errors.Conflict` the event is re-applied to the fresh
  view, so several tracker replicas never lose an update. A finished
  workflow's write carries a per-key TTL: the server expires the key after the
  retention time with no sweep.
* :class:`DurationStore` keeps the latest run durations of each template in
  the ``troupe-history`` bucket (:meth:`~actors.runtime.TypedBucket.mutate`);
  durations are kept in memory and written in batches, one write per template.
* :func:`read_history` reads one workflow's events back from the status
  stream: the transition history.

The in-memory index follows the bucket through the actor's
:meth:`~actors.runtime.actor.Actor.add_watch` (see
:meth:`~actors.status_tracker.index.WorkflowIndex.follow`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext

from actors.runtime.clock import Clock, system_clock, wait_tasks
from actors.runtime.codec import Codec, encoding_of
from actors.runtime.errors import BadRequest, Conflict
from actors.runtime.kv import Entry, TypedBucket
from actors.status_tracker import eta
from actors.status_tracker import state as sm
from protocols.status import (
    STATUS_STREAM,
    TERMINAL_STATES,
    StatusEvent,
    TemplateDurations,
    WorkflowTransition,
    WorkflowView,
    durations_key,
    event_subject,
)

__all__ = [
    "CasExhausted",
    "DurationStore",
    "Stored",
    "WorkflowStore",
    "read_history",
]

log = logging.getLogger(__name__)

_MIN_TTL = 1.0
"""The server's smallest per-message TTL, in seconds."""


class CasExhausted(Exception):
    """Every revision-checked write attempt met a concurrent writer."""


@dataclass(frozen=True, slots=True)
class Stored:
    """An applied event and the KV revision its view was written at (0: not written).

    Attributes:
        applied: what the event did to the view.
        revision: revision of the write that holds the event's effect.
        announce: whether this event closes its write: the view written is
            ``applied.view`` and the caller announces it (one event per write).
    """

    applied: sm.Applied
    revision: int
    announce: bool = False


@dataclass(slots=True)
class _Waiting:
    """An event waiting for the write that will hold it."""

    event: StatusEvent
    now: float
    done: asyncio.Future[Stored | None]


@dataclass(slots=True)
class _Key:
    """The events of one workflow waiting for a write, and whether a writer is busy."""

    waiting: list[_Waiting]
    busy: bool = False
    finishing: asyncio.Future[None] | None = None
    """Set while the writer lingers: resolved when a finishing event arrives."""


class WorkflowStore:
    """Workflow views in the workflows bucket, updated with revision checks.

    Events of one workflow are written in groups: while a write of a workflow
    is in flight (or lingering), the events that arrive for it wait and are
    folded together into the next write, so transitions that happen within a
    few milliseconds cost one revision-checked write. Each event's
    :meth:`apply` returns only once a write that holds it is durable.

    Args:
        bucket: the ``troupe-workflows`` bucket.
        retention_s: seconds a finished workflow is kept.
        cas_attempts: write attempts per event before giving up.
        messages_kept: structured messages kept per view.
        cache_size: views this process wrote last, kept to skip a read.
        clock: clock of the back-off between conflicting writes and of the
            linger (real-time waits on the server, so the actor's runtime clock).
        linger_s: seconds a write of a workflow that is not finishing waits
            for more of its events before it is sent (0: never waits); a
            finishing event that arrives meanwhile sends it at once.
    """

    def __init__(
        self,
        bucket: TypedBucket[WorkflowView],
        *,
        retention_s: float,
        cas_attempts: int = 100,
        messages_kept: int = 20,
        cache_size: int = 10_000,
        clock: Clock = system_clock,
        linger_s: float = 0.0,
    ) -> None:
        self.bucket = bucket
        self.retention_s = retention_s
        self.cas_attempts = cas_attempts
        self.messages_kept = messages_kept
        self.cache_size = cache_size
        self.linger_s = linger_s
        self.conflicts = 0
        self.writes = 0
        """Views written (each holds one or more events)."""
        self._clock = clock
        self._keys: dict[str, _Key] = {}
        self._writers: set[asyncio.Task[None]] = set()
        self._recent: OrderedDict[str, Entry[WorkflowView] | None] = OrderedDict()

    def lingering(self, workflow_id: str) -> bool:
        """Whether a write of ``workflow_id`` waits for more of its events right now."""
        slot = self._keys.get(workflow_id)
        return slot is not None and slot.finishing is not None

    async def get(self, workflow_id: str) -> tuple[WorkflowView, int] | None:
        """Return the stored view of ``workflow_id`` and its revision, if any."""
        entry = await self.bucket.get_or_none(workflow_id)
        return None if entry is None else (entry.value, entry.revision)

    def _remember(self, entry: Entry[WorkflowView]) -> None:
        self._recent[entry.key] = entry
        self._recent.move_to_end(entry.key)
        while len(self._recent) > self.cache_size:
            self._recent.popitem(last=False)

    async def _write(self, current: Entry[WorkflowView] | None, view: WorkflowView) -> int:
        """Write ``view`` over ``current`` (create when ``None``); return the revision.

        Raises:
            Conflict: another writer got there first.
        """
        ttl = max(_MIN_TTL, self.retention_s) if view.state in TERMINAL_STATES else None
        if current is None:
            return await self.bucket.create(view.workflow_id, view, ttl=ttl)
        return await self.bucket.update(view.workflow_id, view, current.revision, ttl=ttl)

    async def apply(self, event: StatusEvent, now: float) -> Stored | None:
        """Fold ``event`` into the stored view and write it if it changed.

        The view this process wrote last is reused instead of re-read; if
        another replica wrote since, the revision check fails and the key is
        read afresh. Events of the same workflow that arrive while one of its
        writes is in flight are folded into one next write (in arrival order).

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
        slot = self._keys.get(key)
        if slot is None:
            slot = self._keys[key] = _Key(waiting=[])
        waiting = _Waiting(event, now, asyncio.get_running_loop().create_future())
        slot.waiting.append(waiting)
        if slot.finishing is not None and not slot.finishing.done() and _finishing(event):
            slot.finishing.set_result(None)  # the lingering write goes now
        if not slot.busy:
            slot.busy = True
            # The writer is a task of its own: a handler cancelled while it waits
            # leaves the other events of its workflow in good hands.
            task = asyncio.create_task(self._drain(key, slot), name=f"status-write-{key}")
            self._writers.add(task)
            task.add_done_callback(self._writers.discard)
        return await waiting.done

    async def _drain(self, key: str, slot: _Key) -> None:
        """Write the waiting events of ``key`` in groups until none is left."""
        group: list[_Waiting] = []
        try:
            while slot.waiting:
                if self.linger_s > 0 and not any(_finishing(w.event) for w in slot.waiting):
                    slot.finishing = asyncio.get_running_loop().create_future()
                    try:
                        await wait_tasks({slot.finishing}, self.linger_s, self._clock)
                    finally:
                        slot.finishing = None
                group, slot.waiting = slot.waiting, []
                try:
                    results = await self._commit(key, group)
                except Exception as exc:  # noqa: BLE001 - handed to each event's handler
                    _settle(group, exc)
                    continue
                for w, result in zip(group, results, strict=True):
                    if not w.done.done():
                        w.done.set_result(result)
        finally:
            # Only on cancellation is anything left: hand those events back.
            _settle(group + slot.waiting, CasExhausted(f"{key}: the write was interrupted"))
            slot.waiting = []
            slot.busy = False
            if self._keys.get(key) is slot:
                del self._keys[key]

    async def _commit(self, key: str, group: list[_Waiting]) -> list[Stored | None]:
        """Fold ``group`` into the view of ``key`` and write it once (revision-checked).

        Raises:
            CasExhausted: ``cas_attempts`` writes in a row met a concurrent writer.
        """
        cached = key in self._recent
        current = self._recent.get(key)
        for attempt in range(self.cas_attempts):
            if not cached:
                current = await self.bucket.get_or_none(key)
            cached = False
            start = current.value if current is not None else None
            view = start
            folded: list[sm.Applied | None] = []
            for w in group:
                if view is None and w.now - w.event.at > self.retention_s:
                    folded.append(None)
                    continue
                applied = sm.apply(view, w.event, messages_kept=self.messages_kept)
                folded.append(applied)
                view = applied.view
            last = max((i for i, a in enumerate(folded) if a is not None and a.changed), default=-1)
            if last < 0 or view is None:
                return [None if a is None else Stored(a, 0) for a in folded]
            try:
                revision = await self._write(current, view)
            except Conflict:
                self.conflicts += 1
                self._recent.pop(key, None)
                # Back off a little after repeated clashes so a hot key's writers spread out.
                if attempt >= 2:
                    await self._clock.sleep(0.001 * min(attempt, 20))
                continue
            self.writes += 1
            self._remember(Entry(bucket=self.bucket.name, key=key, value=view, revision=revision))
            return [
                None if a is None else Stored(a, revision if a.changed else 0, announce=i == last)
                for i, a in enumerate(folded)
            ]
        raise CasExhausted(f"{key}: {self.cas_attempts} conflicting writes in a row")


def _settle(group: list[_Waiting], exc: Exception) -> None:
    """Fail the events of ``group`` still waiting with ``exc``."""
    for w in group:
        if not w.done.done():
            w.done.set_exception(exc)


def _finishing(event: StatusEvent) -> bool:
    """Whether ``event`` may end its workflow (its write is never delayed)."""
    return isinstance(event, WorkflowTransition) and event.state in TERMINAL_STATES


class DurationStore:
    """Durations of earlier successful runs per template, cached briefly in memory.

    :meth:`add` keeps a duration in memory (counted by :meth:`samples` at
    once); :meth:`flush` writes those kept, one write per template.

    Args:
        bucket: the ``troupe-history`` bucket.
        clock: time source of the cache.
        keep: samples kept per template.
        cache_s: seconds a template's samples are reused before re-reading.
    """

    def __init__(
        self,
        bucket: TypedBucket[TemplateDurations],
        clock: Clock,
        *,
        keep: int = 50,
        cache_s: float = 5.0,
    ) -> None:
        self.bucket = bucket
        self._clock = clock
        self.keep = keep
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, list[float]]] = {}
        self._unwritten: dict[str, list[float]] = {}

    async def samples(self, template: str) -> list[float]:
        """Return the recorded durations of ``template`` (oldest first), unwritten ones too."""
        cached = self._cache.get(template)
        now = self._clock.monotonic()
        if cached is not None and now - cached[0] < self.cache_s:
            samples = cached[1]
        else:
            entry = await self.bucket.get_or_none(durations_key(template))
            samples = entry.value.samples if entry is not None else []
            self._cache[template] = (now, samples)
        for duration in self._unwritten.get(template, ()):
            samples = eta.record(samples, duration, keep=self.keep)
        return samples

    def add(self, template: str, duration: float) -> None:
        """Keep one run's ``duration`` for the next :meth:`flush`."""
        self._unwritten.setdefault(template, []).append(duration)

    @property
    def unwritten(self) -> int:
        """Durations kept and not written yet."""
        return sum(len(v) for v in self._unwritten.values())

    async def flush(self) -> None:
        """Write the durations kept since the last flush (one write per template).

        A template whose write fails keeps its durations for the next flush.
        """
        pending, self._unwritten = self._unwritten, {}
        for template, durations in pending.items():
            try:
                await self.record(template, *durations)
            except Exception as exc:  # noqa: BLE001 - retried at the next flush
                log.warning("status: durations of %s not recorded yet: %s", template, exc)
                self._unwritten.setdefault(template, [])[:0] = durations

    async def record(self, template: str, *durations: float) -> list[float]:
        """Append runs' ``durations`` to ``template``'s samples (one write); return them.

        Raises:
            CasExhausted: too many concurrent writers.
        """

        def append(entry: Entry[TemplateDurations] | None) -> TemplateDurations:
            samples = entry.value.samples if entry is not None else []
            for duration in durations:
                samples = eta.record(samples, duration, keep=self.keep)
            return TemplateDurations(template=template, samples=samples)

        try:
            written = await self.bucket.mutate(durations_key(template), append, attempts=100)
        except Conflict:
            raise CasExhausted(f"durations of {template}: too many concurrent writers") from None
        assert written is not None  # append never declines
        self._cache[template] = (self._clock.monotonic(), written.value.samples)
        return written.value.samples


async def read_history(
    js: JetStreamContext,
    workflow_id: str,
    *,
    timeout: float = 5.0,
    clock: Clock = system_clock,
) -> list[StatusEvent]:
    """Read every event of ``workflow_id`` kept in the status stream, in stream order.

    Args:
        js: JetStream context.
        workflow_id: the workflow.
        timeout: seconds of ``clock`` to wait for the events.
        clock: clock of the deadline (a real-time wait on the server: the
            runtime clock, never a manual domain clock).

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
    deadline = clock.monotonic() + timeout
    try:
        while len(events) < total:
            remaining = deadline - clock.monotonic()
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

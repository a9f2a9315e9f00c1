"""A runner's local view of the shared breakers, and asynchronous outcome reporting.

:class:`BreakerView` watches :data:`protocols.breakers.BREAKERS_BUCKET` and
keeps the latest :class:`~protocols.breakers.BreakerStatus` of every key in a
dict, so :meth:`BreakerView.allows` is a dictionary lookup and a comparison:
no network round trip. If the supervisor is down the view keeps the last
state it saw and runners keep going. The view is a library object living in
the runner's process, not an actor handler, so it runs its own
:meth:`~actors.runtime.TypedBucket.watch` rather than ``Actor.add_watch``; its
owner starts and stops it (``async with``).

Time: the view and the reporter take the owner's domain clock (when an open
breaker's wait is over, a report's ``at``) and, separately, a runtime clock
for their real-time waits on the server (loading the bucket, publish retries,
flushing, stopping), so a manual domain clock never stalls them.

Half-open probes, without asking the supervisor:

1. ``allows(key)`` is the free pre-check: ``False`` while open (or forced
   open), ``True`` when closed, disabled or unknown; when half-open (or open
   with its wait over, even before the supervisor announced it) it is ``True``
   only while the view still sees an unclaimed probe slot.
2. ``await admit(key)`` is the gate a runner passes before executing work. In
   the closed/disabled/open cases it answers from memory like ``allows``. In
   the half-open case it claims a probe slot by KV ``create`` of
   :func:`~protocols.breakers.probe_kv_key` - one round trip, which only the
   first claimant of each slot wins, so exactly ``half_open_permits`` probes
   run across every runner. The claims are watched too, so a view that sees
   every slot taken says no without a round trip.

:class:`OutcomeReporter` queues :class:`~protocols.breakers.OutcomeReport`
messages and publishes them to the reports stream from a background task,
retrying while NATS is unreachable, so reporting never blocks a step; reports
queued together (within an optional short linger) travel as one message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable

import nats.errors

from actors.runtime.bus import Bus
from actors.runtime.cancellation import cancel_and_wait
from actors.runtime.clock import Clock, system_clock, wait_tasks
from actors.runtime.errors import Conflict, RequestError
from actors.runtime.kv import Entry, TypedBucket
from actors.runtime.watch import BucketWatch
from actors.topology import BREAKER_REPORTS, BREAKERS
from protocols.breakers import (
    MAX_BATCH_REPORTS,
    REPORT_SUBJECT,
    BreakerState,
    BreakerStatus,
    OutcomeReport,
    breaker_key_from_kv,
    breaker_kv_key,
    is_probe_kv_key,
    outcomes_message,
    parse_probe_kv_key,
    probe_kv_key,
)
from protocols.errors import ErrorClass

__all__ = ["BreakerView", "OutcomeReporter"]

log = logging.getLogger(__name__)

BucketValue = BreakerStatus | str
"""What the breakers bucket holds: statuses, and probe claims naming their owner."""


class BreakerView:
    """A watched, in-memory copy of every breaker's published state.

    Args:
        source: a connected :class:`~actors.runtime.bus.Bus` (the bucket is
            created if missing) or the breakers bucket already bound to
            :data:`BucketValue`.
        clock: domain time source, to tell when an open breaker's wait is over.
        owner: written into probe claims (who is probing), for diagnosis.
        runtime_clock: clock of the real-time waits (loading, stopping).
    """

    def __init__(
        self,
        source: Bus | TypedBucket[BucketValue],
        clock: Clock = system_clock,
        *,
        owner: str = "",
        runtime_clock: Clock = system_clock,
    ) -> None:
        self._source = source
        self._clock = clock
        self._runtime_clock = runtime_clock
        self._owner = owner or f"runner-{uuid.uuid4().hex[:8]}"
        self._bucket: TypedBucket[BucketValue] | None = (
            source if isinstance(source, TypedBucket) else None
        )
        self._status: dict[str, BreakerStatus] = {}
        # (kv key of the breaker, epoch) -> claimed probe slots
        self._claims: dict[tuple[str, int], set[int]] = {}
        self._task: asyncio.Task[None] | None = None
        self._watch: BucketWatch[BucketValue] | None = None
        self._listeners: list[Callable[[BreakerStatus], None]] = []
        self.updates = 0
        """Breaker status updates received since start."""

    # -- lifecycle -------------------------------------------------------------------

    async def start(self, timeout: float = 10.0) -> None:
        """Start watching and wait until the current contents are loaded.

        Raises:
            TimeoutError: the initial contents did not arrive within ``timeout``
                seconds of the runtime clock.
        """
        if self._bucket is None:
            assert isinstance(self._source, Bus)
            bus = self._source
            # A union value type: built directly, as bind() takes one class.
            self._bucket = TypedBucket(bus.js, await bus.key_value(BREAKERS), BREAKERS, BucketValue)
        self._watch = watch = await self._bucket.watch()
        self._task = asyncio.create_task(self._follow(watch), name="breaker-view")
        waiter = asyncio.ensure_future(watch.caught_up.wait())
        try:
            late = await wait_tasks({waiter}, timeout, self._runtime_clock)
        finally:
            waiter.cancel()
        if late:
            raise TimeoutError(f"breakers bucket not loaded within {timeout}s")

    async def stop(self) -> None:
        """Stop watching; the last known state stays readable."""
        watch, self._watch = self._watch, None
        if watch is not None:
            await watch.close()
        task, self._task = self._task, None
        if task is not None:
            await wait_tasks({task}, 1.0, self._runtime_clock)
            await cancel_and_wait(task)

    async def __aenter__(self) -> BreakerView:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def add_listener(self, callback: Callable[[BreakerStatus], None]) -> None:
        """Call ``callback`` with every breaker status the view receives."""
        self._listeners.append(callback)

    async def _follow(self, watch: BucketWatch[BucketValue]) -> None:
        # Ends when stop() closes the watch; undecodable values are skipped by the watch.
        async for entry in watch:
            try:
                self._apply(entry)
            except ValueError as exc:
                log.warning("breaker view: ignoring entry %s: %s", entry.key, exc)

    def _apply(self, entry: Entry[BucketValue | None]) -> None:
        if is_probe_kv_key(entry.key):
            breaker, epoch, slot = parse_probe_kv_key(entry.key)
            claims = self._claims.setdefault((breaker, epoch), set())
            if entry.value is None:
                claims.discard(slot)
                if not claims:
                    self._claims.pop((breaker, epoch), None)
            else:
                claims.add(slot)
            return
        if entry.value is None:
            self._status.pop(breaker_key_from_kv(entry.key), None)
            return
        if not isinstance(entry.value, BreakerStatus):
            raise ValueError("not a breaker status")
        status = entry.value
        self._status[status.key] = status
        self.updates += 1
        for callback in self._listeners:
            callback(status)

    # -- queries (no I/O) ------------------------------------------------------------

    def status(self, key: str) -> BreakerStatus | None:
        """The last published status of ``key``, if any."""
        return self._status.get(key)

    def statuses(self) -> list[BreakerStatus]:
        """Every known breaker's last published status."""
        return list(self._status.values())

    def state(self, key: str) -> BreakerState:
        """The effective state of ``key``: ``open`` whose wait is over reads ``half_open``."""
        status = self._status.get(key)
        if status is None:
            return "closed"
        if status.state == "open" and self._wait_over(status):
            return "half_open"
        return status.state

    def allows(self, key: str) -> bool:
        """Whether work guarded by ``key`` may run, from memory (see module docstring)."""
        status = self._status.get(key)
        if status is None:
            return True
        state = status.state
        if state in {"closed", "disabled"}:
            return True
        if state == "forced_open":
            return False
        if state == "open" and not self._wait_over(status):
            return False
        return self._free_slot(status) is not None

    def retry_at(self, key: str) -> float | None:
        """When an open breaker half-opens (Unix time), for a runner that waits for it."""
        status = self._status.get(key)
        if status is None or status.state != "open":
            return None
        return status.open_until

    def _wait_over(self, status: BreakerStatus) -> bool:
        return status.open_until is not None and self._clock.time() >= status.open_until

    def _free_slot(self, status: BreakerStatus, start: int = 0) -> int | None:
        taken = self._claims.get((breaker_kv_key(status.key), status.opened_count), ())
        for slot in range(start, status.half_open_permits):
            if slot not in taken:
                return slot
        return None

    # -- the gate --------------------------------------------------------------------

    async def admit(self, key: str) -> bool:
        """Decide whether to run work guarded by ``key``, claiming a probe if half-open.

        Costs no round trip unless the breaker is half-open and a slot looks
        free; then one KV ``create`` per slot tried.
        """
        if not self.allows(key):
            return False
        status = self._status.get(key)
        if status is None or status.state in ("closed", "disabled"):
            return True
        bucket = self._bucket
        assert bucket is not None, "start() the view first"
        slot = self._free_slot(status)
        while slot is not None:
            claim = probe_kv_key(key, status.opened_count, slot)
            try:
                await bucket.create(claim, self._owner)
            except Conflict:
                self._claims.setdefault((breaker_kv_key(key), status.opened_count), set()).add(slot)
                slot = self._free_slot(status, slot + 1)
                continue
            except (nats.errors.Error, OSError) as exc:
                log.warning("breaker view: cannot claim a probe of %s: %s", key, exc)
                return False
            self._claims.setdefault((breaker_kv_key(key), status.opened_count), set()).add(slot)
            return True
        return False


class OutcomeReporter:
    """Publishes outcome reports in the background, so reporting never blocks work.

    Reports queued together travel as one stream message (one durable write):
    when a report arrives, the publishing task takes everything queued, up to
    ``batch_max`` reports, and lingers at most ``batch_s`` seconds for more
    before it sends them (:func:`~protocols.breakers.outcomes_message`). A
    message that was not stored is re-sent as it was, under the same
    de-duplication id, until the stream takes it.

    Args:
        bus: connected bus.
        clock: domain time source of ``at``.
        max_pending: reports queued before :meth:`report` drops the oldest.
        batch_max: most reports per message, 1 to
            :data:`~protocols.breakers.MAX_BATCH_REPORTS`; ``1`` sends each
            report as a plain :class:`~protocols.breakers.OutcomeReport` (what
            a supervisor older than batches reads).
        batch_s: seconds a message waits for more reports (the runtime clock);
            ``0`` sends what is queued at once. A process killed meanwhile
            loses the reports it held, as it loses any still queued.
        runtime_clock: clock of the real-time waits (publish retries, lingering, flushing).

    Raises:
        ValueError: ``batch_max`` or ``batch_s`` is out of range.
    """

    def __init__(
        self,
        bus: Bus,
        clock: Clock = system_clock,
        *,
        max_pending: int = 10_000,
        batch_max: int = 1,
        batch_s: float = 0.0,
        runtime_clock: Clock = system_clock,
    ) -> None:
        if not 1 <= batch_max <= MAX_BATCH_REPORTS:
            raise ValueError(f"batch_max must be between 1 and {MAX_BATCH_REPORTS}")
        if batch_s < 0:
            raise ValueError("batch_s must not be negative")
        self._bus = bus
        self._clock = clock
        self._runtime_clock = runtime_clock
        self._batch_max = batch_max
        self._batch_s = batch_s
        self._queue: asyncio.Queue[OutcomeReport] = asyncio.Queue(max_pending)
        self._arrived = asyncio.Event()  # a report was queued, or a flush began
        self._flushing = 0  # flush() calls waiting: no lingering meanwhile
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        """Reports the stream acknowledged."""
        self.messages = 0
        """Stream messages those reports travelled in."""
        self.dropped = 0
        """Reports dropped because the queue was full."""

    async def start(self) -> None:
        """Make sure the reports stream exists, then start the publishing task.

        The stream is ensured here too, so reports are kept even before the
        supervisor first starts.
        """
        await self._bus.ensure_stream(BREAKER_REPORTS)
        self._task = asyncio.create_task(self._drain(), name="outcome-reporter")

    async def stop(self, timeout: float = 5.0) -> None:
        """Publish what is queued (within ``timeout`` seconds), then stop."""
        with contextlib.suppress(TimeoutError):
            await self.flush(timeout)
        await cancel_and_wait(self._task)
        self._task = None

    async def __aenter__(self) -> OutcomeReporter:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def report(
        self,
        key: str,
        *,
        ok: bool,
        duration_s: float,
        error_class: ErrorClass | None = None,
        report_id: str = "",
    ) -> OutcomeReport:
        """Queue the outcome of one call guarded by ``key``; return the report."""
        message = OutcomeReport(
            key=key,
            ok=ok,
            duration_s=max(0.0, duration_s),
            at=self._clock.time(),
            error_class=None if ok else error_class,
            report_id=report_id or uuid.uuid4().hex,
        )
        if self._queue.full():
            self._queue.get_nowait()
            self._queue.task_done()
            self.dropped += 1
        self._queue.put_nowait(message)
        self._arrived.set()
        return message

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued report is acknowledged by the stream.

        A message lingering for more reports is sent at once.

        Raises:
            TimeoutError: reports were still queued after ``timeout`` seconds
                of the runtime clock.
        """
        self._flushing += 1
        self._arrived.set()
        joined = asyncio.ensure_future(self._queue.join())
        try:
            late = await wait_tasks({joined}, timeout, self._runtime_clock)
        finally:
            joined.cancel()
            self._flushing -= 1
        if late:
            raise TimeoutError(f"{self._queue.qsize()} outcome reports not stored in {timeout}s")

    async def _drain(self) -> None:
        while True:
            reports = await self._gather()
            message, msg_id = outcomes_message(reports)
            delay = 0.05
            while True:
                try:
                    await self._bus.send(REPORT_SUBJECT, message, msg_id=msg_id)
                    break
                except (RequestError, nats.errors.Error, OSError) as exc:
                    log.warning(
                        "%d outcome reports (first for %s) not stored (%s); retrying",
                        len(reports),
                        reports[0].key,
                        exc,
                    )
                    await self._runtime_clock.sleep(delay)
                    delay = min(delay * 2, 2.0)
            self.sent += len(reports)
            self.messages += 1
            for _ in reports:
                self._queue.task_done()

    async def _gather(self) -> list[OutcomeReport]:
        """Wait for a report, then take what is queued, lingering up to ``batch_s`` for more."""
        reports = [await self._queue.get()]
        deadline = self._runtime_clock.monotonic() + self._batch_s
        while True:
            while len(reports) < self._batch_max and not self._queue.empty():
                reports.append(self._queue.get_nowait())
            left = deadline - self._runtime_clock.monotonic()
            if len(reports) >= self._batch_max or left <= 0 or self._flushing:
                return reports
            self._arrived.clear()
            waiter = asyncio.ensure_future(self._arrived.wait())
            try:
                await wait_tasks({waiter}, left, self._runtime_clock)
            finally:
                waiter.cancel()

"""The breaker supervisor actor: owns every breaker, publishes their state.

* consumes :data:`~protocols.breakers.Outcomes` from the reports stream
  (durable ``breaker-supervisor``): one report, or a runner's batch of them;
  folds each report into its key's breaker, writes the snapshots to KV and
  only then acknowledges the message - so a crash loses nothing, and a
  redelivered message is recognised by its stream sequence (remembered per
  key, once for all the key's reports in it);
* gathers the reports of one key that arrive within
  :attr:`~actors.breaker_supervisor.config.SupervisorConfig.snapshot_batch_s`
  into ONE snapshot write (a group commit): all of them are acknowledged after
  it, none of them if it fails (they are redelivered and recognised);
* stores a report that changes the breaker's state at once, with the reports
  gathered so far, and publishes the new status before acknowledging;
* publishes the status runners watch at once when anything they act on
  changes (state, times, permits, probe epoch); changes of only the window
  counters (``calls``, ``failure_rate``, ``slow_rate``) are published at most
  :attr:`~actors.breaker_supervisor.config.SupervisorConfig.status_refresh_s`
  later, from the last stored snapshot;
* moves open breakers to half-open (and stuck half-open ones back to open)
  from a clock-driven timer, so it happens on time with no traffic;
* announces every transition as a :class:`~protocols.breakers.BreakerTransitionEvent`;
* answers :class:`~protocols.breakers.ListBreakers` (from memory, counters
  fresh) and :class:`~protocols.breakers.BreakerControl` (force open,
  disable, reset; stored and published at once);
* reloads every breaker from its snapshot at start-up and re-publishes every
  status, so a crash before a counter refresh leaves nothing stale.

Run one supervisor: breaker state is folded in one place. Runners keep
working from their watched views while it is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import nats.errors
from opentelemetry.metrics import MeterProvider

from actors.breaker_supervisor.config import SupervisorConfig
from actors.breaker_supervisor.metrics import BreakerMetrics
from actors.breaker_supervisor.scopes import check_key
from actors.breaker_supervisor.state import Breaker, Transition, by_key, status_change
from actors.breaker_supervisor.store import BreakerStore
from actors.runtime.actor import Actor
from actors.runtime.clock import Clock, system_clock, wait_tasks
from actors.runtime.errors import BadRequest, NotFound, Unavailable
from actors.runtime.handlers import MessageContext, RequestContext, consumer, endpoint
from actors.topology import BREAKER_REPORTS, BREAKER_SNAPSHOTS, BREAKERS
from protocols.breakers import (
    CONTROL_SUBJECT,
    LIST_SUBJECT,
    BreakerControl,
    BreakerList,
    BreakerStatus,
    BreakerTransitionEvent,
    ListBreakers,
    OutcomeReport,
    OutcomeReports,
    Outcomes,
    event_subject,
)
from protocols.headers import EVENT_ENCODING

__all__ = ["DURABLE", "BreakerSupervisor"]

log = logging.getLogger(__name__)

DURABLE = "breaker-supervisor"
"""Durable consumer name of the reports stream."""

_MAX_TIMER_SLEEP = 5.0  # re-check deadlines at least this often (wall-clock jumps)
_REFRESH_RETRY_S = 0.5  # a status refresh KV did not take is tried again this much later
_STOP_FLUSH_S = 2.0  # seconds on_stop gives the last counter refreshes


@dataclass(eq=False)
class _Batch:
    """Reports of one key folded into its breaker but not stored yet.

    Attributes:
        stored: resolves when the snapshot holding them is stored (``None``) or
            was not (the error message); every member awaits it.
        size: reports in the batch.
        full: set when the batch should be stored without waiting longer (or
            was settled by another write).
    """

    stored: asyncio.Future[str | None]
    size: int = 0
    full: asyncio.Event = field(default_factory=asyncio.Event)


class BreakerSupervisor(Actor):
    """Keeps sliding-window circuit breakers per key and shares their state.

    Args:
        clock: time source of every breaker and of the half-open timer.
        config: breaker settings (``TROUPE_BREAKERS_CONFIG`` or defaults if omitted).
        meter_provider: OpenTelemetry meter provider (the global one if omitted).
    """

    name = "breaker_supervisor"
    event_loop = "uvloop"
    description = "Circuit breakers per key, shared through KV; outcome reports in"
    streams = (BREAKER_REPORTS,)
    buckets = (BREAKERS, BREAKER_SNAPSHOTS)

    def __init__(
        self,
        *,
        clock: Clock = system_clock,
        config: SupervisorConfig | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        super().__init__(clock=clock)
        self.config = config or SupervisorConfig.from_env()
        self.breakers: dict[str, Breaker] = {}
        self._current: dict[str, BreakerStatus] = {}  # every breaker's status, counters fresh
        self._stored: dict[str, BreakerStatus] = {}  # status of each last stored snapshot
        self._published: dict[str, BreakerStatus] = {}  # what the status bucket holds
        self._stale: dict[str, float] = {}  # key -> runtime monotonic time of its refresh
        self._batches: dict[str, _Batch] = {}  # key -> reports waiting for their snapshot
        self._parked = 0  # messages waiting for their batches to be stored
        self._locks: dict[str, asyncio.Lock] = {}
        self._dirty: set[str] = set()
        self._store: BreakerStore | None = None
        self._wake = asyncio.Event()
        self._stale_wake = asyncio.Event()
        self.metrics = BreakerMetrics(lambda: list(self._current.values()), meter_provider)

    # -- lifecycle -------------------------------------------------------------------

    async def on_start(self) -> None:
        """Reload every breaker, catch up on time, re-publish, start the timer."""
        self._store = await BreakerStore.open(self.bus)
        for snapshot in await self._store.load(clock=self.runtime_clock):
            key = snapshot.status.key
            self.breakers[key] = Breaker.restore(
                snapshot, self.config.for_key(key), dedup_depth=self.config.dedup_depth
            )
        now = self.clock.time()
        for key, breaker in self.breakers.items():
            async with self._lock(key):
                await self._commit(breaker, breaker.advance(now), now)
        log.info("breaker supervisor: %d breakers reloaded", len(self.breakers))
        self.spawn(self._run_timer(), name="breaker-timer")
        self.spawn(self._run_refresh(), name="breaker-status-refresh")

    async def on_stop(self) -> None:
        """Publish the counters still waiting for their refresh (best effort)."""
        if not self._stale or self._store is None:
            return
        flush = asyncio.ensure_future(self._publish_stale(math.inf))
        try:
            if await wait_tasks({flush}, _STOP_FLUSH_S, self.runtime_clock):
                log.warning("breaker supervisor: counter refresh at stop timed out")
        finally:
            flush.cancel()

    def stats_data(self) -> dict[str, dict[str, Any]]:
        """Breaker metrics, shown under the reports consumer in ``$SRV.STATS``."""
        return {DURABLE: self.metrics.stats()}

    # -- handlers --------------------------------------------------------------------

    @consumer(
        BREAKER_REPORTS,
        durable=DURABLE,
        backoff=(0.2, 0.5, 1.0, 2.0, 5.0),
        options=lambda self: {
            "concurrency": self.config.concurrency,
            "ack_wait": self.config.ack_wait_s,
            "max_deliver": self.config.max_deliver,
        },
    )
    async def apply(self, message: Outcomes, ctx: MessageContext) -> None:
        """Fold one report, or every report of a batch, into their breakers; ack once stored.

        The reports of one key in the message are folded together. If they
        change the state they are stored at once; otherwise they join the
        key's batch, stored by one write when the batch is full or
        ``snapshot_batch_s`` after it began. The message is acknowledged once
        every snapshot holding its reports is stored.

        Raises:
            Unavailable: a snapshot holding its reports was not stored (the
                message is redelivered; each key recognises it by its sequence).
        """
        reports = message.reports if isinstance(message, OutcomeReports) else [message]
        errors: list[str] = []
        joined: list[_Batch] = []
        leading: list[tuple[str, _Batch]] = []
        for key, group in by_key(reports).items():
            try:
                batch, leads = await self._fold(key, group, ctx.sequence)
            except Unavailable as exc:  # they changed the state and were not stored
                errors.append(exc.message)
                continue
            if batch is not None:
                joined.append(batch)
                if leads:
                    leading.append((key, batch))
        if joined:
            self._parked += 1
            if self._parked >= self.config.concurrency:
                # The consumer delivers nothing more until one of these is acknowledged.
                for waiting in self._batches.values():
                    waiting.full.set()
            try:
                await asyncio.gather(*(self._store_batch(k, b) for k, b in leading))
                for batch in joined:
                    error = await asyncio.shield(batch.stored)
                    if error is not None:
                        errors.append(error)
            finally:
                self._parked -= 1
        if errors:
            raise Unavailable(errors[0])

    async def _fold(
        self, key: str, reports: list[OutcomeReport], seq: int
    ) -> tuple[_Batch | None, bool]:
        """Fold the reports of ``key`` carried by stream message ``seq``.

        Returns:
            The batch they joined (``None`` when they were stored at once) and
            whether this message started it (and so stores it).

        Raises:
            Unavailable: they changed the state and were not stored.
        """
        async with self._lock(key):
            breaker = self._breaker(key)
            now = self.clock.time()
            transitions = breaker.advance(now)
            if breaker.claim(seq, len(reports)):
                for report in reports:
                    before = breaker.ignored
                    transitions += breaker.record(
                        ok=report.ok,
                        duration=report.duration_s,
                        error_class=report.error_class,
                        at=report.at,
                        now=now,
                    )
                    self._count(breaker, report, ignored=breaker.ignored > before)
            else:  # redelivered: already folded in (and stored, or being retried)
                for report in reports:
                    self._count(breaker, report, ignored=True)
            if transitions or self.config.snapshot_batch_s == 0:
                await self._commit(breaker, transitions, now)
                return None, False
            self._current[key] = breaker.status(now)
            return self._join(key, len(reports))

    @endpoint(LIST_SUBJECT, name="list")
    async def list_breakers(self, request: ListBreakers, ctx: RequestContext) -> BreakerList:
        """Every breaker's state, sorted by key, with fresh counters (from memory)."""
        items = [s for k, s in sorted(self._current.items()) if k.startswith(request.prefix)]
        return BreakerList(items=items)

    @endpoint(CONTROL_SUBJECT, name="control")
    async def control(self, request: BreakerControl, ctx: RequestContext) -> BreakerList:
        """Force open, disable or reset one breaker; answer its new state.

        Raises:
            BadRequest: the key is not ``KIND:NAME`` with a known kind.
            NotFound: resetting a key no breaker has yet (it would only create a
                phantom breaker).
        """
        try:
            check_key(request.key)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        if request.action == "reset" and request.key not in self.breakers:
            raise NotFound(f"no breaker {request.key!r}; 'troupe breakers' lists them")
        async with self._lock(request.key):
            breaker = self._breaker(request.key)
            now = self.clock.time()
            transitions = getattr(breaker, request.action)(now)
            await self._commit(breaker, transitions, now)
            return BreakerList(items=[self._current[request.key]])

    # -- internals -------------------------------------------------------------------

    def _lock(self, key: str) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def _breaker(self, key: str) -> Breaker:
        breaker = self.breakers.get(key)
        if breaker is None:
            breaker = self.breakers[key] = Breaker(
                key,
                self.config.for_key(key),
                self.clock.time(),
                dedup_depth=self.config.dedup_depth,
            )
        return breaker

    def _count(self, breaker: Breaker, report: OutcomeReport, *, ignored: bool) -> None:
        cfg = breaker.config
        if ignored:
            outcome = "ignored"
        elif not report.ok and (
            report.error_class is None or report.error_class in cfg.record_classes
        ):
            outcome = "failure"
        else:
            outcome = "success"
        self.metrics.call(
            report.key, outcome=outcome, slow=report.duration_s > cfg.slow_call_duration
        )

    def _join(self, key: str, reports: int) -> tuple[_Batch, bool]:
        """Add ``reports`` reports to ``key``'s batch; return the batch and whether it is new.

        A batch is full at ``snapshot_batch_max`` reports; all are full once
        ``concurrency`` messages wait (see :meth:`apply`), since the consumer
        delivers no more then.
        """
        batch = self._batches.get(key)
        leads = batch is None
        if batch is None:
            batch = self._batches[key] = _Batch(asyncio.get_running_loop().create_future())
        batch.size += reports
        if batch.size >= self.config.snapshot_batch_max:
            batch.full.set()
        return batch, leads

    async def _store_batch(self, key: str, batch: _Batch) -> None:
        """Wait for ``batch`` to fill (at most ``snapshot_batch_s``), then store it.

        The batch is settled whatever happens: by this write, by an earlier
        commit of the key, or as failed if this task is cancelled first.
        """
        waiter = asyncio.ensure_future(batch.full.wait())
        try:
            try:
                await wait_tasks({waiter}, self.config.snapshot_batch_s, self.runtime_clock)
            finally:
                waiter.cancel()
            async with self._lock(key):
                if self._batches.get(key) is batch:
                    breaker = self.breakers[key]
                    now = self.clock.time()
                    with contextlib.suppress(Unavailable):  # the batch carries the error
                        await self._commit(breaker, breaker.advance(now), now)
        finally:
            if not batch.stored.done():  # cancelled (shutdown) before its write
                self._settle(key, batch, f"breaker state of {key} not stored: stopped")
                self._dirty.add(key)
                self._wake.set()

    def _settle(self, key: str, batch: _Batch | None, error: str | None) -> None:
        """Resolve ``key``'s pending batch (``batch`` if given) with a write's outcome."""
        pending = self._batches.get(key)
        if pending is None or (batch is not None and pending is not batch):
            return
        del self._batches[key]
        pending.stored.set_result(error)
        pending.full.set()  # its leader stops waiting

    async def _commit(self, breaker: Breaker, transitions: list[Transition], now: float) -> None:
        """Store the breaker, clean up probe claims, announce transitions.

        The snapshot holds every report folded so far, so the key's pending
        batch is settled with this write's outcome. The status is written with
        it when anything runners act on changed; a change of counters only is
        left to the refresh.

        Raises:
            Unavailable: KV did not take the write (the caller's message is
                redelivered; the timer retries keys it could not store).
        """
        assert self._store is not None
        key = breaker.key
        snapshot = breaker.snapshot(now)
        change = status_change(self._published.get(key), snapshot.status)
        publish = change == "acted_on" or (
            change == "counters" and self.config.status_refresh_s == 0
        )
        try:
            await self._store.save(snapshot, status=publish)
            for t in transitions:
                if t.from_state in ("open", "half_open") and t.to_state != "half_open":
                    # The claims of the half-open period that just ended.
                    epoch = breaker.opened_count - (1 if t.to_state == "open" else 0)
                    await self._store.purge_probes(
                        breaker.key, epoch, breaker.config.half_open_permits
                    )
        except (nats.errors.Error, OSError) as exc:
            self._dirty.add(key)
            self._wake.set()
            error = f"breaker state of {key} not stored: {exc}"
            self._settle(key, None, error)
            raise Unavailable(error) from exc
        self._dirty.discard(key)
        self._settle(key, None, None)
        self._current[key] = self._stored[key] = snapshot.status
        if publish:
            self._published[key] = snapshot.status
            self._stale.pop(key, None)
        elif change == "none":
            self._stale.pop(key, None)
        elif key not in self._stale:
            self._stale[key] = self.runtime_clock.monotonic() + self.config.status_refresh_s
            self._stale_wake.set()
        if breaker.next_deadline() is not None:
            self._wake.set()
        for t in transitions:
            self.metrics.transition(t.key, t.to_state)
            log.info("breaker %s: %s -> %s (%s)", t.key, t.from_state, t.to_state, t.reason)
            event = BreakerTransitionEvent(
                key=t.key, from_state=t.from_state, to_state=t.to_state, at=t.at, reason=t.reason
            )
            with contextlib.suppress(nats.errors.Error, OSError):
                await self.bus.publish(event_subject(t.to_state), event, encoding=EVENT_ENCODING)

    async def _run_timer(self) -> None:
        """Apply time-driven transitions when they are due, with or without traffic."""
        while True:
            try:
                await self._timer_pass()
            except Exception:  # the timer must outlive any one failure (logged with traceback)
                log.exception("breaker timer failed; retrying")
                await self.runtime_clock.sleep(1.0)

    async def _timer_pass(self) -> None:
        """Commit due or unsaved breakers, then wait for the next deadline or a wake-up."""
        self._wake.clear()
        now = self.clock.time()
        due = [
            k
            for k, b in self.breakers.items()
            if k in self._dirty or ((d := b.next_deadline()) is not None and d <= now)
        ]
        for key in due:
            breaker = self.breakers[key]
            async with self._lock(key):
                now = self.clock.time()
                try:
                    await self._commit(breaker, breaker.advance(now), now)
                except Unavailable as exc:
                    log.warning("breaker timer: %s", exc)
        if self._dirty:
            await self.runtime_clock.sleep(0.5)  # KV unreachable: retry soon, not in a spin
            return
        if due:
            return
        deadlines = [d for b in self.breakers.values() if (d := b.next_deadline()) is not None]
        wait = min(min(deadlines, default=now + _MAX_TIMER_SLEEP) - now, _MAX_TIMER_SLEEP)
        sleeper = asyncio.ensure_future(self.clock.sleep(max(wait, 0.0)))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()

    async def _run_refresh(self) -> None:
        """Publish lagging window counters when their refresh is due."""
        while True:
            try:
                await self._refresh_pass()
            except Exception:  # must outlive any one failure (logged with traceback)
                log.exception("breaker status refresh failed; retrying")
                await self.runtime_clock.sleep(1.0)

    async def _refresh_pass(self) -> None:
        """Wait for the first due refresh (or the first stale key), then publish."""
        if not self._stale:
            self._stale_wake.clear()
            await self._stale_wake.wait()
            return
        now = self.runtime_clock.monotonic()
        first = min(self._stale.values())
        if first > now:
            # Keys that turn stale meanwhile are due later than this one.
            await self.runtime_clock.sleep(first - now)
            return
        await self._publish_stale(now)

    async def _publish_stale(self, now: float) -> None:
        """Publish the stored status of every key whose refresh is due at ``now``."""
        assert self._store is not None
        for key in [k for k, due in self._stale.items() if due <= now]:
            async with self._lock(key):
                if key not in self._stale or self._stale[key] > now:
                    continue  # published (or rescheduled) while waiting for the lock
                status = self._stored[key]
                try:
                    if status != self._published.get(key):
                        await self._store.save_status(status)
                except (nats.errors.Error, OSError) as exc:
                    log.warning("breaker status of %s not refreshed: %s", key, exc)
                    self._stale[key] = self.runtime_clock.monotonic() + _REFRESH_RETRY_S
                    continue
                self._published[key] = status
                del self._stale[key]

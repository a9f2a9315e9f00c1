"""The breaker supervisor actor: owns every breaker, publishes their state.

* consumes :class:`~protocols.breakers.OutcomeReport` from the reports stream
  (durable ``breaker-supervisor``), folds each into its key's breaker, writes
  the snapshot and (when it changed) the status to KV, and only then
  acknowledges - so a crash loses nothing, and a redelivered report is
  recognised by its stream sequence;
* moves open breakers to half-open (and stuck half-open ones back to open)
  from a clock-driven timer, so it happens on time with no traffic;
* announces every transition as a :class:`~protocols.breakers.BreakerTransitionEvent`;
* answers :class:`~protocols.breakers.ListBreakers` and
  :class:`~protocols.breakers.BreakerControl` (force open, disable, reset);
* reloads every breaker from its snapshot at start-up.

Run one supervisor: breaker state is folded in one place. Runners keep
working from their watched views while it is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import nats.errors
from opentelemetry.metrics import MeterProvider

from actors.breaker_supervisor.config import SupervisorConfig
from actors.breaker_supervisor.metrics import BreakerMetrics
from actors.breaker_supervisor.scopes import check_key
from actors.breaker_supervisor.state import Breaker, Transition
from actors.breaker_supervisor.store import BreakerStore
from actors.runtime.actor import Actor
from actors.runtime.clock import Clock, system_clock
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
    event_subject,
)
from protocols.headers import EVENT_ENCODING

__all__ = ["DURABLE", "BreakerSupervisor"]

log = logging.getLogger(__name__)

DURABLE = "breaker-supervisor"
"""Durable consumer name of the reports stream."""

_MAX_TIMER_SLEEP = 5.0  # re-check deadlines at least this often (wall-clock jumps)


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
        self._published: dict[str, BreakerStatus] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._dirty: set[str] = set()
        self._store: BreakerStore | None = None
        self._wake = asyncio.Event()
        self.metrics = BreakerMetrics(lambda: list(self._published.values()), meter_provider)

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
    async def apply(self, report: OutcomeReport, ctx: MessageContext) -> None:
        """Fold one outcome report into its breaker; ack once it is stored."""
        async with self._lock(report.key):
            breaker = self._breaker(report.key)
            now = self.clock.time()
            before = breaker.ignored
            transitions = breaker.record(
                ok=report.ok,
                duration=report.duration_s,
                error_class=report.error_class,
                at=report.at,
                now=now,
                seq=ctx.sequence,
            )
            self._count(breaker, report, ignored=breaker.ignored > before)
            await self._commit(breaker, transitions, now)

    @endpoint(LIST_SUBJECT, name="list")
    async def list_breakers(self, request: ListBreakers, ctx: RequestContext) -> BreakerList:
        """Every breaker's published state, sorted by key."""
        items = [s for k, s in sorted(self._published.items()) if k.startswith(request.prefix)]
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
            return BreakerList(items=[self._published[request.key]])

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

    async def _commit(self, breaker: Breaker, transitions: list[Transition], now: float) -> None:
        """Store the breaker, clean up probe claims, announce transitions.

        Raises:
            Unavailable: KV did not take the write (the caller's message is
                redelivered; the timer retries keys it could not store).
        """
        assert self._store is not None
        snapshot = breaker.snapshot(now)
        try:
            # The status runners watch is written only when it says something new.
            await self._store.save(
                snapshot, status=self._published.get(breaker.key) != snapshot.status
            )
            for t in transitions:
                if t.from_state in ("open", "half_open") and t.to_state != "half_open":
                    # The claims of the half-open period that just ended.
                    epoch = breaker.opened_count - (1 if t.to_state == "open" else 0)
                    await self._store.purge_probes(
                        breaker.key, epoch, breaker.config.half_open_permits
                    )
        except (nats.errors.Error, OSError) as exc:
            self._dirty.add(breaker.key)
            self._wake.set()
            raise Unavailable(f"breaker state of {breaker.key} not stored: {exc}") from exc
        self._dirty.discard(breaker.key)
        self._published[breaker.key] = snapshot.status
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

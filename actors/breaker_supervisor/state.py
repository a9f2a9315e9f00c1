"""One circuit breaker as a pure state machine: no I/O, time passed in.

States and transitions (resilience4j's, plus a shared-state twist)::

    closed --(rates >= threshold, >= minimum calls)--> open
    open --(wait over; clock-driven)--> half_open
    half_open --(permits outcomes, rates below thresholds)--> closed
    half_open --(permits outcomes, a rate at threshold)--> open (longer wait)
    half_open --(no verdict within half_open_max_wait)--> open
    any --force_open--> forced_open    any --disable--> disabled
    any --reset--> closed (window cleared, wait streak back to 0)

Outcomes are classified by the config: ``record_classes`` count as failures,
``ignore_classes`` are not counted, any other class and every success count
as successes; a call longer than ``slow_call_duration`` is also slow. Only a
closed breaker fills its sliding window; a half-open one collects probe
outcomes. Outcomes reported while open, forced open or disabled are calls
that started earlier (reports are asynchronous) and are dropped, as are
half-open outcomes that finished before the half-open period began.

Each outcome is timestamped ``max(min(at, now), previous)``, so time windows
stay ordered even when runners report late or out of order.

:func:`by_key` splits a message's reports per breaker: the reports of one
key in one stream message are remembered under the message's sequence once
(:meth:`Breaker.claim`), so a redelivered message is dropped as a whole.

:func:`status_change` tells what a new status changes for its readers: what
runners act on (state, times, permits, probe epoch), which is published at
once, or only the window counters, which may be published later.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from actors.breaker_supervisor.config import BreakerConfig
from protocols.breakers import (
    BreakerSnapshot,
    BreakerState,
    BreakerStatus,
    OutcomeReport,
    WindowEntry,
)
from protocols.errors import ErrorClass

__all__ = ["COUNTERS", "Breaker", "StatusChange", "Transition", "by_key", "status_change"]

StatusChange = Literal["none", "counters", "acted_on"]
"""What a new status changes: nothing, only the window counters, or what runners act on."""

COUNTERS = frozenset({"calls", "failure_rate", "slow_rate"})
"""The informational fields of :class:`~protocols.breakers.BreakerStatus`: no runner
decision reads them (views admit calls by state, ``open_until``,
``half_open_permits`` and ``opened_count``)."""


def status_change(published: BreakerStatus | None, current: BreakerStatus) -> StatusChange:
    """Compare the published status of a breaker with its current one.

    Args:
        published: what readers have now (``None``: nothing yet).
        current: the breaker's status now.

    Returns:
        ``"acted_on"`` when a field other than :data:`COUNTERS` differs (or
        nothing was published), ``"counters"`` when only counters differ,
        ``"none"`` when they are equal.
    """
    if published is None:
        return "acted_on"
    if published == current:
        return "none"
    for name in current.__struct_fields__:
        if name not in COUNTERS and getattr(published, name) != getattr(current, name):
            return "acted_on"
    return "counters"


def by_key(reports: Iterable[OutcomeReport]) -> dict[str, list[OutcomeReport]]:
    """Group the reports of one message by breaker key.

    Returns:
        Each key's reports in their original order; keys in order of first appearance.
    """
    groups: dict[str, list[OutcomeReport]] = {}
    for report in reports:
        groups.setdefault(report.key, []).append(report)
    return groups


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of state.

    Attributes:
        key: breaker key.
        from_state: previous state.
        to_state: new state.
        at: when it happened (Unix time).
        reason: why.
    """

    key: str
    from_state: BreakerState
    to_state: BreakerState
    at: float
    reason: str


class Breaker:
    """A circuit breaker for one key.

    Args:
        key: what it guards.
        config: how it judges.
        now: creation time (Unix seconds).
        dedup_depth: stream sequences remembered to drop redelivered reports.
    """

    def __init__(
        self, key: str, config: BreakerConfig, now: float, *, dedup_depth: int = 512
    ) -> None:
        self.key = key
        self.config = config
        self.state: BreakerState = "closed"
        self.since = now
        self.open_until: float | None = None
        self.opened_count = 0
        self.open_streak = 0
        self.window: deque[WindowEntry] = deque()
        self.failed = 0
        self.slow = 0
        self.probes: list[WindowEntry] = []
        self._last_ts = now
        self._applied: deque[int] = deque(maxlen=dedup_depth)
        self._applied_set: set[int] = set()
        self.ignored = 0
        """Outcomes dropped (ignored class, wrong state, stale, duplicate)."""

    # -- outcomes --------------------------------------------------------------------

    def record(
        self,
        *,
        ok: bool,
        duration: float,
        error_class: ErrorClass | None,
        at: float,
        now: float,
        seq: int | None = None,
    ) -> list[Transition]:
        """Fold one call outcome into the breaker.

        Args:
            ok: whether the call succeeded.
            duration: how long it took (seconds).
            error_class: classification of a failure.
            at: when it finished (Unix time, the reporter's clock).
            now: the supervisor's current time.
            seq: stream sequence of the report; a sequence seen before is dropped
                (see :meth:`claim`).

        Returns:
            The transitions it caused, time-driven ones first.
        """
        transitions = self.advance(now)
        if seq is not None and not self.claim(seq):
            return transitions
        cfg = self.config
        if not ok and error_class in cfg.ignore_classes:
            self.ignored += 1
            return transitions
        failed = not ok and (error_class is None or error_class in cfg.record_classes)
        slow = duration > cfg.slow_call_duration
        if self.state == "closed":
            ts = max(min(at, now), self._last_ts)
            self._last_ts = ts
            self.window.append(WindowEntry(at=ts, failed=failed, slow=slow))
            self.failed += failed
            self.slow += slow
            self._evict(now)
            if len(self.window) >= cfg.judged_after:
                reason = self._verdict(self.failed, self.slow, len(self.window))
                if reason:
                    transitions.append(self._open(now, reason))
        elif self.state == "half_open" and at >= self.since:
            self.probes.append(
                WindowEntry(at=max(min(at, now), self.since), failed=failed, slow=slow)
            )
            if len(self.probes) >= cfg.half_open_permits:
                n = len(self.probes)
                reason = self._verdict(
                    sum(p.failed for p in self.probes), sum(p.slow for p in self.probes), n
                )
                if reason:
                    transitions.append(self._open(now, f"probe {reason}"))
                else:
                    transitions.append(self._close(now, f"{n} probe calls passed"))
        else:
            self.ignored += 1
        return transitions

    def claim(self, seq: int, outcomes: int = 1) -> bool:
        """Remember the stream message ``seq`` carrying ``outcomes`` of this key.

        The outcomes of one message are folded together (they are stored by one
        snapshot), so the message is remembered once for all of them; record
        them with ``seq=None`` after a successful claim.

        Args:
            seq: stream sequence of the message.
            outcomes: how many of its outcomes belong to this breaker.

        Returns:
            Whether ``seq`` is new; ``False`` for a redelivery, whose outcomes
            are then counted as ignored.
        """
        if seq in self._applied_set:
            self.ignored += outcomes
            return False
        if len(self._applied) == self._applied.maxlen:
            self._applied_set.discard(self._applied[0])
        self._applied.append(seq)
        self._applied_set.add(seq)
        return True

    def _verdict(self, failed: int, slow: int, calls: int) -> str:
        cfg = self.config
        if failed / calls >= cfg.failure_rate_threshold:
            return f"failure rate {failed / calls:.0%} >= {cfg.failure_rate_threshold:.0%}"
        if slow / calls >= cfg.slow_rate_threshold:
            return f"slow-call rate {slow / calls:.0%} >= {cfg.slow_rate_threshold:.0%}"
        return ""

    def _evict(self, now: float) -> None:
        window, cfg = self.window, self.config
        if cfg.window == "count":
            while len(window) > cfg.window_size:
                self._drop_oldest()
        else:
            horizon = now - cfg.window_size
            while window and window[0].at <= horizon:
                self._drop_oldest()

    def _drop_oldest(self) -> None:
        old = self.window.popleft()
        self.failed -= old.failed
        self.slow -= old.slow

    # -- time ------------------------------------------------------------------------

    def advance(self, now: float) -> list[Transition]:
        """Apply the transitions time alone causes up to ``now``."""
        transitions: list[Transition] = []
        # Bounded: each pass moves ``since`` forward by at least one wait.
        for _ in range(64):
            deadline = self.next_deadline()
            if deadline is None or now < deadline:
                break
            if self.state == "open":
                transitions.append(self._move("half_open", deadline, "open wait over"))
                self.open_until = None
                self.probes = []
            else:
                transitions.append(self._open(deadline, "no probe verdict in time"))
        return transitions

    def next_deadline(self) -> float | None:
        """When time alone changes the state next (``None``: it will not)."""
        if self.state == "open":
            return self.open_until
        if self.state == "half_open" and self.config.half_open_max_wait > 0:
            return self.since + self.config.half_open_max_wait
        return None

    # -- manual control --------------------------------------------------------------

    def force_open(self, now: float) -> list[Transition]:
        """Hold the breaker open until :meth:`reset`."""
        self._clear()
        self.open_until = None
        if self.state == "forced_open":
            return []
        return [self._move("forced_open", now, "forced open by operator")]

    def disable(self, now: float) -> list[Transition]:
        """Let every call through and record nothing until :meth:`reset`."""
        self._clear()
        self.open_until = None
        if self.state == "disabled":
            return []
        return [self._move("disabled", now, "disabled by operator")]

    def reset(self, now: float) -> list[Transition]:
        """Back to closed with an empty window and no wait streak."""
        self.open_streak = 0
        if self.state == "closed":
            self._clear()
            return []
        return [self._close(now, "reset by operator")]

    # -- transitions -----------------------------------------------------------------

    def _clear(self) -> None:
        self.window.clear()
        self.failed = self.slow = 0
        self.probes = []

    def _move(self, to: BreakerState, at: float, reason: str) -> Transition:
        transition = Transition(self.key, self.state, to, at, reason)
        self.state = to
        self.since = at
        self._last_ts = max(self._last_ts, at)
        return transition

    def _open(self, at: float, reason: str) -> Transition:
        self._clear()
        self.opened_count += 1
        self.open_streak += 1
        self.open_until = at + self.config.open_wait(self.open_streak)
        return self._move("open", at, reason)

    def _close(self, at: float, reason: str) -> Transition:
        self._clear()
        self.open_until = None
        self.open_streak = 0
        return self._move("closed", at, reason)

    # -- views -----------------------------------------------------------------------

    def status(self, now: float) -> BreakerStatus:
        """The state to publish (time windows are trimmed to ``now`` first)."""
        if self.state == "closed":
            self._evict(now)
            calls, failed, slow = len(self.window), self.failed, self.slow
        else:
            calls = len(self.probes)
            failed = sum(p.failed for p in self.probes)
            slow = sum(p.slow for p in self.probes)
        return BreakerStatus(
            key=self.key,
            state=self.state,
            since=self.since,
            open_until=self.open_until,
            failure_rate=failed / calls if calls else 0.0,
            slow_rate=slow / calls if calls else 0.0,
            calls=calls,
            half_open_permits=self.config.half_open_permits,
            opened_count=self.opened_count,
            open_streak=self.open_streak,
        )

    def snapshot(self, now: float) -> BreakerSnapshot:
        """Everything needed to rebuild this breaker with :meth:`restore`."""
        return BreakerSnapshot(
            status=self.status(now),
            window=list(self.window),
            probes=list(self.probes),
            applied=list(self._applied),
        )

    @classmethod
    def restore(
        cls, snapshot: BreakerSnapshot, config: BreakerConfig, *, dedup_depth: int = 512
    ) -> Breaker:
        """Rebuild a breaker from :meth:`snapshot` (the config may have changed)."""
        status = snapshot.status
        breaker = cls(status.key, config, status.since, dedup_depth=dedup_depth)
        breaker.state = status.state
        breaker.open_until = status.open_until
        breaker.opened_count = status.opened_count
        breaker.open_streak = status.open_streak
        breaker.probes = list(snapshot.probes)
        for entry in snapshot.window:
            breaker.window.append(entry)
            breaker.failed += entry.failed
            breaker.slow += entry.slow
            breaker._last_ts = max(breaker._last_ts, entry.at)
        if config.window == "count":
            breaker._evict(status.since)
        for seq in snapshot.applied:
            if len(breaker._applied) == breaker._applied.maxlen:
                breaker._applied_set.discard(breaker._applied[0])
            breaker._applied.append(seq)
            breaker._applied_set.add(seq)
        return breaker

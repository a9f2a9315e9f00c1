"""The pure breaker: thresholds, windows, waits, probes, manual control, snapshots."""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
from hypothesis import event, given, settings
from hypothesis import strategies as st

from actors.breaker_supervisor.config import BreakerConfig
from actors.breaker_supervisor.state import COUNTERS, Breaker, by_key, status_change
from protocols.breakers import BreakerState, OutcomeReport
from protocols.errors import ERROR_CLASSES, ErrorClass

T0 = 1_000.0


def small(**overrides: object) -> BreakerConfig:
    base: dict[str, object] = {
        "window_size": 4,
        "minimum_calls": 4,
        "failure_rate_threshold": 0.5,
        "wait_open": 10.0,
        "max_wait_open": 10.0,
        "half_open_permits": 2,
    }
    base.update(overrides)
    return BreakerConfig(**base)  # type: ignore[arg-type]


def fail(b: Breaker, now: float, n: int = 1, cls: ErrorClass = "transient") -> list[object]:
    out: list[object] = []
    for _ in range(n):
        out += b.record(ok=False, duration=0.1, error_class=cls, at=now, now=now)
    return out


def succeed(b: Breaker, now: float, n: int = 1, duration: float = 0.1) -> list[object]:
    out: list[object] = []
    for _ in range(n):
        out += b.record(ok=True, duration=duration, error_class=None, at=now, now=now)
    return out


def test_opens_when_failure_rate_reaches_threshold_after_minimum_calls() -> None:
    """Two failures in four calls (50 %) open a breaker whose threshold is 50 %."""
    b = Breaker("k", small(), T0)
    succeed(b, T0, 2)
    assert fail(b, T0, 1) == []
    [t] = fail(b, T0, 1)
    assert (t.from_state, t.to_state) == ("closed", "open")  # type: ignore[attr-defined]
    assert b.open_until == T0 + 10.0
    assert "failure rate 50%" in t.reason  # type: ignore[attr-defined]


def test_does_not_judge_before_minimum_calls() -> None:
    """Failures below the minimum number of calls never open the breaker."""
    b = Breaker("k", small(window_size=10, minimum_calls=5), T0)
    fail(b, T0, 4)
    assert b.state == "closed"
    fail(b, T0, 1)
    assert b.state == "open"


def test_count_window_forgets_calls_beyond_its_size() -> None:
    """Only the last window_size calls are judged."""
    b = Breaker("k", small(failure_rate_threshold=0.75), T0)
    fail(b, T0, 2)
    succeed(b, T0, 2)
    succeed(b, T0, 2)  # the two failures slide out
    assert b.status(T0).failure_rate == 0.0
    fail(b, T0, 2)
    assert b.state == "closed"


def test_time_window_forgets_calls_older_than_the_window() -> None:
    """A time window judges only the calls of its last window_size seconds."""
    b = Breaker("k", small(window="time", window_size=30, minimum_calls=3), T0)
    fail(b, T0, 2)
    succeed(b, T0 + 31, 1)
    assert b.status(T0 + 31).calls == 1
    fail(b, T0 + 32, 1)
    assert b.state == "closed"
    fail(b, T0 + 33, 1)
    assert b.state == "open"


def test_slow_calls_above_the_threshold_open_the_breaker() -> None:
    """Successful but slow calls open a breaker by slow-call rate."""
    b = Breaker("k", small(slow_call_duration=2.0, slow_rate_threshold=0.5), T0)
    succeed(b, T0, 2, duration=1.0)
    succeed(b, T0, 1, duration=3.0)
    assert b.state == "closed"
    [t] = succeed(b, T0, 1, duration=5.0)
    assert t.to_state == "open"  # type: ignore[attr-defined]
    assert "slow-call rate" in t.reason  # type: ignore[attr-defined]


def test_ignored_classes_do_not_count_and_unrecorded_classes_count_as_success() -> None:
    """Cancelled is ignored; a class outside record_classes counts as success."""
    cfg = small(record_classes=frozenset({"unavailable"}))
    b = Breaker("k", cfg, T0)
    fail(b, T0, 5, cls="cancelled")
    assert b.status(T0).calls == 0
    assert b.ignored == 5
    fail(b, T0, 4, cls="permanent")
    assert b.state == "closed"
    assert b.status(T0).failure_rate == 0.0
    b.record(ok=False, duration=0.1, error_class=None, at=T0, now=T0)
    assert b.status(T0).failure_rate == 0.25


def test_open_becomes_half_open_when_the_wait_is_over_without_traffic() -> None:
    """advance() alone moves open to half-open at open_until."""
    b = Breaker("k", small(), T0)
    fail(b, T0, 4)
    assert b.advance(T0 + 9.9) == []
    assert b.next_deadline() == T0 + 10.0
    [t] = b.advance(T0 + 12.0)
    assert (t.to_state, t.at) == ("half_open", T0 + 10.0)
    assert b.since == T0 + 10.0


def test_half_open_closes_after_the_permitted_probes_succeed() -> None:
    """Enough successful probes close the breaker and end the wait streak."""
    b = Breaker("k", small(), T0)
    fail(b, T0, 4)
    b.advance(T0 + 10)
    assert succeed(b, T0 + 11) == []
    [t] = succeed(b, T0 + 11)
    assert t.to_state == "closed"  # type: ignore[attr-defined]
    assert (b.open_streak, b.opened_count) == (0, 1)


def test_failed_probe_reopens_with_an_exponential_capped_wait() -> None:
    """Each consecutive opening waits longer, up to max_wait_open."""
    cfg = small(half_open_permits=1, wait_multiplier=2.0, max_wait_open=25.0)
    b = Breaker("k", cfg, T0)
    fail(b, T0, 4)
    waits = []
    now = T0
    for _ in range(3):
        assert b.open_until is not None
        waits.append(b.open_until - now)
        now = b.open_until
        b.advance(now)
        [t] = fail(b, now)
        assert (t.from_state, t.to_state) == ("half_open", "open")  # type: ignore[attr-defined]
    assert waits == [10.0, 20.0, 25.0]
    assert b.open_streak == 4


def test_half_open_without_a_verdict_in_time_reopens() -> None:
    """Probes whose outcome never arrives do not leave the breaker half-open forever."""
    b = Breaker("k", small(half_open_max_wait=5.0), T0)
    fail(b, T0, 4)
    transitions = b.advance(T0 + 15.0)
    assert [t.to_state for t in transitions] == ["half_open", "open"]
    assert b.open_until == T0 + 15.0 + 10.0


def test_late_reports_while_open_or_before_half_open_are_dropped() -> None:
    """Outcomes of calls from before the open period do not count as probes."""
    b = Breaker("k", small(), T0)
    fail(b, T0, 4)
    fail(b, T0 + 1)
    assert b.ignored == 1
    b.advance(T0 + 10)
    b.record(ok=True, duration=0.1, error_class=None, at=T0 + 5, now=T0 + 11)
    assert b.probes == []
    assert b.state == "half_open"


def test_a_redelivered_report_is_applied_once() -> None:
    """The same stream sequence is folded in only once."""
    b = Breaker("k", small(), T0, dedup_depth=2)
    for seq in (1, 1, 2, 2):
        b.record(ok=False, duration=0.1, error_class="transient", at=T0, now=T0, seq=seq)
    assert b.status(T0).calls == 2
    b.record(ok=False, duration=0.1, error_class="transient", at=T0, now=T0, seq=3)
    b.record(ok=False, duration=0.1, error_class="transient", at=T0, now=T0, seq=1)
    assert b.state == "open"  # seq 1 fell out of the remembered depth


def test_manual_control_forces_open_disables_and_resets() -> None:
    """force_open holds, disable lets all through unrecorded, reset closes."""
    b = Breaker("k", small(), T0)
    [t] = b.force_open(T0)
    assert t.to_state == "forced_open"
    assert b.force_open(T0) == []
    assert b.advance(T0 + 1_000) == []
    fail(b, T0, 10)
    assert b.state == "forced_open"
    [t] = b.disable(T0)
    assert t.to_state == "disabled"
    assert b.disable(T0) == []
    fail(b, T0, 10)
    assert b.status(T0).calls == 0
    [t] = b.reset(T0)
    assert t.to_state == "closed"
    fail(b, T0, 2)
    assert b.reset(T0) == []
    assert b.status(T0).calls == 0


def test_snapshot_restores_window_probes_and_dedup_memory() -> None:
    """A restored breaker behaves exactly like the original."""
    cfg = small(window_size=5, minimum_calls=5)
    b = Breaker("k", cfg, T0)
    fail(b, T0, 3, cls="timeout")
    b.record(ok=True, duration=0.1, error_class=None, at=T0, now=T0, seq=7)
    assert b.state == "closed"
    copy = Breaker.restore(b.snapshot(T0), cfg)
    assert copy.status(T0) == b.status(T0)
    copy.record(ok=True, duration=0.1, error_class=None, at=T0, now=T0, seq=7)
    assert copy.status(T0).calls == 4
    fail(b, T0)
    fail(copy, T0)
    assert copy.state == b.state == "open"
    b.advance(T0 + 10)
    fail(b, T0 + 10)
    again = Breaker.restore(b.snapshot(T0 + 10), cfg)
    assert again.probes == b.probes
    assert again.status(T0 + 10) == b.status(T0 + 10)


# -- model test ---------------------------------------------------------------------


@dataclass
class Model:
    """The simplest breaker that could work: recompute everything from a list."""

    cfg: BreakerConfig
    now: float
    state: BreakerState = "closed"
    since: float = 0.0
    open_until: float | None = None
    opened: int = 0
    streak: int = 0
    calls: list[tuple[float, bool, bool]] = field(default_factory=list)
    probes: list[tuple[bool, bool]] = field(default_factory=list)
    last_ts: float = 0.0

    def __post_init__(self) -> None:
        self.since = self.last_ts = self.now

    def window(self, now: float) -> list[tuple[float, bool, bool]]:
        if self.cfg.window == "count":
            return self.calls[-self.cfg.window_size :]
        return [c for c in self.calls if c[0] > now - self.cfg.window_size]

    def move(self, state: BreakerState, at: float) -> None:
        self.state, self.since = state, at
        self.last_ts = max(self.last_ts, at)
        self.calls, self.probes = [], []

    def open(self, at: float) -> None:
        self.opened += 1
        self.streak += 1
        wait = min(
            self.cfg.max_wait_open,
            self.cfg.wait_open * self.cfg.wait_multiplier ** (self.streak - 1),
        )
        self.open_until = at + wait
        self.move("open", at)

    def bad(self, failed: int, slow: int, n: int) -> bool:
        return (
            failed / n >= self.cfg.failure_rate_threshold
            or slow / n >= self.cfg.slow_rate_threshold
        )

    def advance(self, now: float) -> None:
        while True:
            if self.state == "open" and self.open_until is not None and now >= self.open_until:
                at, self.open_until = self.open_until, None
                self.move("half_open", at)
            elif (
                self.state == "half_open"
                and self.cfg.half_open_max_wait > 0
                and now >= self.since + self.cfg.half_open_max_wait
            ):
                self.open(self.since + self.cfg.half_open_max_wait)
            else:
                return

    def record(
        self, ok: bool, duration: float, cls: ErrorClass | None, at: float, now: float
    ) -> None:
        self.advance(now)
        if not ok and cls in self.cfg.ignore_classes:
            return
        failed = not ok and (cls is None or cls in self.cfg.record_classes)
        slow = duration > self.cfg.slow_call_duration
        if self.state == "closed":
            self.last_ts = max(min(at, now), self.last_ts)
            self.calls.append((self.last_ts, failed, slow))
            w = self.window(now)
            if len(w) >= self.cfg.judged_after and self.bad(
                sum(c[1] for c in w), sum(c[2] for c in w), len(w)
            ):
                self.open(now)
        elif self.state == "half_open" and at >= self.since:
            self.probes.append((failed, slow))
            n = len(self.probes)
            if n >= self.cfg.half_open_permits:
                if self.bad(sum(p[0] for p in self.probes), sum(p[1] for p in self.probes), n):
                    self.open(now)
                else:
                    self.open_until, self.streak = None, 0
                    self.move("closed", now)


configs = st.builds(
    BreakerConfig,
    window=st.sampled_from(["count", "time"]),
    window_size=st.integers(1, 8),
    minimum_calls=st.integers(1, 8),
    failure_rate_threshold=st.sampled_from([0.25, 0.5, 1.0]),
    slow_rate_threshold=st.sampled_from([0.5, 1.0]),
    slow_call_duration=st.just(2.0),
    wait_open=st.sampled_from([1.0, 5.0]),
    wait_multiplier=st.sampled_from([1.0, 2.0]),
    max_wait_open=st.just(12.0),
    half_open_permits=st.integers(1, 3),
    half_open_max_wait=st.sampled_from([0.0, 7.0]),
    record_classes=st.just(frozenset({"transient", "timeout", "resource"})),
)
steps = st.one_of(
    st.tuples(
        st.just("call"),
        st.booleans(),
        st.sampled_from([0.5, 3.0]),
        st.sampled_from([None, *ERROR_CLASSES]),
        st.sampled_from([0.0, 0.5, 3.0]),
        st.sampled_from([0.0, 0.25, 1.0, 4.0]),
    ),
    st.tuples(st.just("tick"), st.sampled_from([0.5, 3.0, 9.0])),
)


@settings(max_examples=250, deadline=None)
@given(cfg=configs, ops=st.lists(steps, max_size=60))
def test_breaker_matches_the_reference_model(
    cfg: BreakerConfig, ops: list[tuple[object, ...]]
) -> None:
    """Under random outcome and time sequences the breaker agrees with the model."""
    now = T0
    breaker, model = Breaker("k", cfg, now), Model(cfg, now)
    for op in ops:
        if op[0] == "tick":
            now += op[1]  # type: ignore[operator]
            breaker.advance(now)
            model.advance(now)
        else:
            _, ok, duration, cls, lag, dt = op
            now += dt  # type: ignore[operator]
            at = now - lag  # type: ignore[operator]
            breaker.record(
                ok=ok,
                duration=duration,
                error_class=cls,
                at=at,  # type: ignore[arg-type]
                now=now,
            )
            model.record(ok, duration, cls, at, now)  # type: ignore[arg-type]
        status = breaker.status(now)
        assert (status.state, status.open_until, status.opened_count, status.open_streak) == (
            model.state,
            model.open_until,
            model.opened,
            model.streak,
        )
        event(f"reached {model.state}")
        if model.state == "closed":
            assert status.calls == len(model.window(now))
        assert breaker.next_deadline() == (
            model.open_until
            if model.state == "open"
            else model.since + cfg.half_open_max_wait
            if model.state == "half_open" and cfg.half_open_max_wait
            else None
        )


def test_advance_applies_at_most_64_transitions_per_call_and_resumes() -> None:
    """After a very long silence one advance() is bounded; the next one carries on."""
    b = Breaker("k", small(half_open_max_wait=5.0), T0)
    fail(b, T0, 4)
    now = T0 + 10_000.0
    first = b.advance(now)
    assert len(first) == 64
    deadline = b.next_deadline()
    assert deadline is not None
    assert deadline <= now
    second = b.advance(now)
    assert len(second) == 64
    assert second[0].from_state == first[-1].to_state
    assert second[0].at >= first[-1].at


def test_snapshot_of_a_time_window_restores_its_calls() -> None:
    """A time-window breaker restored from a snapshot judges the same calls as the original."""
    cfg = small(window="time", window_size=30, minimum_calls=3)
    b = Breaker("k", cfg, T0)
    fail(b, T0)
    succeed(b, T0 + 5)
    copy = Breaker.restore(b.snapshot(T0 + 5), cfg)
    assert copy.status(T0 + 5) == b.status(T0 + 5)
    assert copy.status(T0 + 5).calls == 2
    fail(b, T0 + 20)
    fail(copy, T0 + 20)
    assert copy.state == b.state == "open"


def test_restoring_with_a_smaller_dedup_depth_keeps_the_latest_sequences() -> None:
    """Only the newest ``dedup_depth`` sequences of the snapshot are remembered."""
    cfg = small(window_size=10, minimum_calls=10)
    b = Breaker("k", cfg, T0)
    for seq in (1, 2, 3, 4):
        b.record(ok=True, duration=0.1, error_class=None, at=T0, now=T0, seq=seq)
    copy = Breaker.restore(b.snapshot(T0), cfg, dedup_depth=2)
    for seq in (3, 4):
        copy.record(ok=True, duration=0.1, error_class=None, at=T0, now=T0, seq=seq)
    assert (copy.ignored, copy.status(T0).calls) == (2, 4)
    copy.record(ok=True, duration=0.1, error_class=None, at=T0, now=T0, seq=2)
    assert (copy.ignored, copy.status(T0).calls) == (2, 5)


def test_status_change_tells_what_runners_act_on_from_mere_counters() -> None:
    """State, times, permits and epoch are acted on; calls and rates are only counters."""
    b = Breaker("image:a", small(), T0)
    first = b.status(T0)
    assert status_change(None, first) == "acted_on"
    assert status_change(first, b.status(T0)) == "none"
    succeed(b, T0)
    fail(b, T0)
    counted = b.status(T0)
    assert (counted.calls, counted.failure_rate) == (2, 0.5)
    assert status_change(first, counted) == "counters"
    fail(b, T0, 2)  # 3 of 4 failed: open
    opened = b.status(T0)
    assert status_change(counted, opened) == "acted_on"
    changed = {
        "state": "forced_open",
        "since": T0 + 1,
        "open_until": None,
        "half_open_permits": 5,
        "opened_count": 9,
        "open_streak": 9,
    }
    for name, value in changed.items():
        assert status_change(opened, msgspec.structs.replace(opened, **{name: value})) == (
            "acted_on"
        ), name
    for name in COUNTERS:
        assert status_change(opened, msgspec.structs.replace(opened, **{name: 7})) == "counters"


_outcome = st.tuples(
    st.sampled_from(["image:a", "image:b", "backend:c"]),
    st.booleans(),
    st.floats(0.0, 3.0),
    st.sampled_from([None, "transient", "cancelled", "permanent"]),
)


def _reports(outcomes: list[tuple[str, bool, float, ErrorClass | None]]) -> list[OutcomeReport]:
    return [
        OutcomeReport(key=k, ok=ok, duration_s=d, at=T0 + i, error_class=c, report_id=str(i))
        for i, (k, ok, d, c) in enumerate(outcomes)
    ]


@given(st.lists(_outcome, max_size=30))
def test_by_key_keeps_every_report_once_in_its_original_order_per_key(
    outcomes: list[tuple[str, bool, float, ErrorClass | None]],
) -> None:
    """Grouping a message's reports by key loses none, adds none, and keeps each key's order."""
    reports = _reports(outcomes)
    groups = by_key(reports)
    assert sorted(r.report_id for g in groups.values() for r in g) == sorted(
        r.report_id for r in reports
    )
    for key, group in groups.items():
        assert group == [r for r in reports if r.key == key]
    assert list(groups) == list(dict.fromkeys(r.key for r in reports))


def _fold(breakers: dict[str, Breaker], reports: list[OutcomeReport], seq: int, now: float) -> None:
    """What the supervisor does with one stream message: claim once per key, record each."""
    for key, group in by_key(reports).items():
        breaker = breakers.setdefault(key, Breaker(key, small(slow_call_duration=2.0), T0))
        if breaker.claim(seq, len(group)):
            for r in group:
                breaker.record(
                    ok=r.ok, duration=r.duration_s, error_class=r.error_class, at=r.at, now=now
                )


@settings(max_examples=200)
@given(
    st.lists(_outcome, max_size=40),
    st.lists(st.integers(1, 8), max_size=10),
    st.data(),
)
def test_batches_count_like_single_reports_and_a_redelivered_batch_counts_nothing(
    outcomes: list[tuple[str, bool, float, ErrorClass | None]],
    sizes: list[int],
    data: st.DataObject,
) -> None:
    """Batches of any sizes count like single messages; a redelivered batch counts nothing."""
    reports = _reports(outcomes)
    now = T0 + len(reports) + 1
    singly: dict[str, Breaker] = {}
    for seq, report in enumerate(reports, start=1):
        _fold(singly, [report], seq, now)
    batched: dict[str, Breaker] = {}
    batches, rest = [], reports
    for size in sizes:
        batches.append(rest[:size])
        rest = rest[size:]
    batches = [b for b in [*batches, rest] if b]
    for seq, batch in enumerate(batches, start=1):
        _fold(batched, batch, seq, now)
    for seq in data.draw(st.lists(st.integers(1, len(batches)), max_size=4)) if batches else []:
        event("redelivered")
        ignored = {k: b.ignored for k, b in batched.items()}
        _fold(batched, batches[seq - 1], seq, now)  # same stream sequence: a redelivery
        grew = {k: b.ignored - ignored[k] for k, b in batched.items()}
        assert sum(grew.values()) == len(batches[seq - 1])
    assert batched.keys() == singly.keys()
    for key, breaker in singly.items():
        twin = batched[key]
        assert (twin.snapshot(now).status, twin.snapshot(now).window) == (
            breaker.snapshot(now).status,
            breaker.snapshot(now).window,
        )


def test_a_claimed_message_is_remembered_in_the_snapshot_and_refused_after_a_restore() -> None:
    """claim() is remembered like a report's sequence: a restored breaker refuses it too."""
    b = Breaker("k", small(), T0)
    assert b.claim(5, 3)
    assert not b.claim(5, 3)
    assert b.ignored == 3
    copy = Breaker.restore(b.snapshot(T0), small())
    assert not copy.claim(5)
    assert copy.claim(6)

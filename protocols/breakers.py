"""Circuit breakers: outcome reports, shared breaker state, manual control.

Runners publish :class:`OutcomeReport` on :data:`REPORT_SUBJECT` (captured by
the work-queue stream :data:`REPORTS_STREAM`, so nothing is lost while the
supervisor is down), several at once as one :class:`OutcomeReports` message
(:data:`Outcomes` is either). The breaker supervisor folds them into per-key breakers
and writes each :class:`BreakerStatus` to :data:`BREAKERS_BUCKET`, which every
runner watches for a local, round-trip-free view.

Half-open probes are claimed without asking the supervisor: a runner creates
the key :func:`probe_kv_key` (``key``, the breaker's ``opened_count`` as the
epoch, a slot below ``half_open_permits``) in :data:`BREAKERS_BUCKET`; KV
``create`` succeeds for exactly one claimant per slot. The supervisor purges
the claims of an epoch when the breaker leaves half-open. The supervisor keeps
the full breaker (window included) as a :class:`BreakerSnapshot` in
:data:`SNAPSHOTS_BUCKET`, so a restart loses nothing.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Annotated, Literal, get_args

import msgspec

from protocols.base import Message
from protocols.errors import ErrorClass

__all__ = [
    "BREAKERS_BUCKET",
    "CONTROL_ACTIONS",
    "CONTROL_SUBJECT",
    "EVENTS_SUBJECTS",
    "LIST_SUBJECT",
    "MAX_BATCH_REPORTS",
    "REPORTS_STREAM",
    "REPORT_SUBJECT",
    "SNAPSHOTS_BUCKET",
    "BreakerControl",
    "BreakerList",
    "BreakerSnapshot",
    "BreakerState",
    "BreakerStatus",
    "BreakerTransitionEvent",
    "ControlAction",
    "Key",
    "ListBreakers",
    "OutcomeReport",
    "OutcomeReports",
    "Outcomes",
    "WindowEntry",
    "breaker_key_from_kv",
    "breaker_kv_key",
    "event_subject",
    "is_probe_kv_key",
    "outcomes_message",
    "parse_probe_kv_key",
    "probe_kv_key",
]

REPORT_SUBJECT = "troupe.breakers.report"
"""Subject of :data:`Outcomes` (one :class:`OutcomeReport` or an :class:`OutcomeReports`)."""

MAX_BATCH_REPORTS = 256
"""Most reports one :class:`OutcomeReports` message carries."""

REPORTS_STREAM = "TROUPE_BREAKER_REPORTS"
"""Work-queue stream capturing :data:`REPORT_SUBJECT`."""

BREAKERS_BUCKET = "troupe-breakers"
"""KV bucket: encoded breaker key -> :class:`BreakerStatus`."""

CONTROL_SUBJECT = "troupe.breakers.control"
"""Request subject of :class:`BreakerControl`."""

LIST_SUBJECT = "troupe.breakers.list"
"""Request subject of :class:`ListBreakers`."""

SNAPSHOTS_BUCKET = "troupe-breaker-snapshots"
"""KV bucket: encoded breaker key -> :class:`BreakerSnapshot` (the supervisor's own)."""

EVENTS_SUBJECTS = "troupe.breakers.events.>"
"""Core-NATS subjects of :class:`BreakerTransitionEvent`."""

BreakerState = Literal["closed", "open", "half_open", "forced_open", "disabled"]
"""State of one breaker."""

Key = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


def breaker_kv_key(key: str) -> str:
    """Encode an arbitrary breaker key (``image:python:3.12``) as a KV key."""
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def breaker_key_from_kv(kv_key: str) -> str:
    """Invert :func:`breaker_kv_key`."""
    padded = kv_key + "=" * (-len(kv_key) % 4)
    return base64.urlsafe_b64decode(padded.encode()).decode()


_PROBE_PREFIX = "probe."


def probe_kv_key(key: str, epoch: int, slot: int) -> str:
    """Return the KV key a runner creates to claim half-open probe ``slot``.

    Args:
        key: breaker key.
        epoch: the breaker's ``opened_count`` (one epoch per open period).
        slot: probe slot, ``0 <= slot < half_open_permits``.
    """
    return f"{_PROBE_PREFIX}{breaker_kv_key(key)}.{epoch}.{slot}"


def is_probe_kv_key(kv_key: str) -> bool:
    """Whether ``kv_key`` is a probe claim rather than a breaker status."""
    return kv_key.startswith(_PROBE_PREFIX)


def parse_probe_kv_key(kv_key: str) -> tuple[str, int, int]:
    """Invert :func:`probe_kv_key`: the breaker's KV key, the epoch and the slot.

    Raises:
        ValueError: ``kv_key`` is not a probe claim.
    """
    parts = kv_key.split(".")
    if len(parts) != 4 or parts[0] + "." != _PROBE_PREFIX:
        raise ValueError(f"not a probe claim: {kv_key!r}")
    return parts[1], int(parts[2]), int(parts[3])


def event_subject(state: BreakerState) -> str:
    """Return the subject a transition into ``state`` is announced on."""
    return f"troupe.breakers.events.{state}"


class OutcomeReport(Message, frozen=True, tag="troupe.breakers.v1.outcome"):
    """The outcome of one call guarded by breaker ``key``."""

    key: Key
    """Breaker key, e.g. ``image:alpine:3.20`` or ``backend:dagger``."""
    ok: bool
    """Whether the call succeeded."""
    duration_s: Annotated[float, msgspec.Meta(ge=0)]
    """How long the call took."""
    at: float
    """Unix time the call finished."""
    error_class: ErrorClass | None = None
    """Classification of a failure."""
    report_id: str = ""
    """Unique id (de-duplication of re-sent reports)."""


class OutcomeReports(Message, frozen=True, tag="troupe.breakers.v1.outcomes"):
    """Several outcome reports travelling as one stream message, in the order reported."""

    reports: Annotated[
        list[OutcomeReport], msgspec.Meta(min_length=1, max_length=MAX_BATCH_REPORTS)
    ]
    """The reports, oldest first."""

    @property
    def msg_id(self) -> str:
        """De-duplication id of the message, derived from its reports' ids.

        A re-sent batch of the same reports carries the same id, so the stream
        stores it once.
        """
        digest = hashlib.blake2b(digest_size=16)
        for report in self.reports:
            encoded = report.report_id.encode()
            digest.update(len(encoded).to_bytes(4, "big"))  # no two lists of ids read alike
            digest.update(encoded)
        return f"outcomes-{digest.hexdigest()}"


Outcomes = OutcomeReport | OutcomeReports
"""Anything published on :data:`REPORT_SUBJECT`."""


def outcomes_message(reports: Sequence[OutcomeReport]) -> tuple[Outcomes, str]:
    """The message carrying ``reports`` and its de-duplication id.

    One report travels as itself, under its ``report_id`` (what a reporter
    that never batches sends); several travel as one :class:`OutcomeReports`.

    Args:
        reports: one to :data:`MAX_BATCH_REPORTS` reports, oldest first.

    Returns:
        The message and its ``Nats-Msg-Id``.

    Raises:
        ValueError: no reports, or more than :data:`MAX_BATCH_REPORTS`.
    """
    if not 1 <= len(reports) <= MAX_BATCH_REPORTS:
        raise ValueError(f"{len(reports)} reports; one message carries 1 to {MAX_BATCH_REPORTS}")
    if len(reports) == 1:
        return reports[0], reports[0].report_id
    batch = OutcomeReports(reports=list(reports))
    return batch, batch.msg_id


class BreakerStatus(Message, frozen=True, tag="troupe.breakers.v1.status"):
    """Published state of one breaker."""

    key: str
    """Breaker key."""
    state: BreakerState
    """Current state."""
    since: float
    """Unix time of the last transition."""
    open_until: float | None = None
    """When open: the time it becomes half-open."""
    failure_rate: float = 0.0
    """Failure rate of the current window, 0-1."""
    slow_rate: float = 0.0
    """Slow-call rate of the current window, 0-1."""
    calls: int = 0
    """Calls in the current window."""
    half_open_permits: int = 0
    """Probe calls allowed while half-open (published in every state, so a runner
    can claim probes as soon as ``open_until`` passes)."""
    opened_count: int = 0
    """How many times it ever opened; also the epoch of half-open probe claims."""
    open_streak: int = 0
    """Consecutive openings without closing in between (drives the exponential wait)."""


class BreakerTransitionEvent(Message, frozen=True, tag="troupe.breakers.v1.transition"):
    """A breaker changed state."""

    key: str
    """Breaker key."""
    from_state: BreakerState
    """Previous state."""
    to_state: BreakerState
    """New state."""
    at: float
    """Unix time."""
    reason: str = ""
    """Why (threshold exceeded, manual control, probe result)."""


ControlAction = Literal["force_open", "disable", "reset"]
"""Manual actions: hold open, let everything through unrecorded, back to closed."""

CONTROL_ACTIONS: tuple[ControlAction, ...] = get_args(ControlAction)
"""Every :data:`ControlAction`."""


class BreakerControl(Message, frozen=True, tag="troupe.breakers.v1.control"):
    """Manual control of a breaker."""

    key: Key
    """Breaker key."""
    action: ControlAction
    """What to do."""


class ListBreakers(Message, frozen=True, tag="troupe.breakers.v1.list"):
    """Request every known breaker."""

    prefix: str = ""
    """Only breakers whose key starts with this (e.g. ``image:``)."""


class BreakerList(Message, frozen=True, tag="troupe.breakers.v1.breaker_list"):
    """Answer to :class:`ListBreakers` and :class:`BreakerControl`."""

    items: list[BreakerStatus]
    """Breakers."""


class WindowEntry(msgspec.Struct, frozen=True, array_like=True):
    """One recorded call in a breaker's sliding window."""

    at: float
    """Unix time it was recorded at."""
    failed: bool
    """Counted as a failure."""
    slow: bool
    """Slower than the slow-call duration."""


class BreakerSnapshot(Message, frozen=True, tag="troupe.breakers.v1.snapshot"):
    """Everything the supervisor needs to rebuild one breaker after a restart."""

    status: BreakerStatus
    """The published state."""
    window: list[WindowEntry] = msgspec.field(default_factory=list)
    """Calls of the closed-state sliding window, oldest first."""
    probes: list[WindowEntry] = msgspec.field(default_factory=list)
    """Probe outcomes recorded in the current half-open period."""
    applied: list[int] = msgspec.field(default_factory=list)
    """Stream sequences of the latest reports applied (redelivery de-duplication)."""

"""Retry policies: whether and when a failed unit of work is tried again.

A :class:`RetryPolicy` answers one question, :meth:`RetryPolicy.next_delay`:
after attempt ``n`` failed with class ``c``, how long to wait before the next
attempt, or ``None`` to give up. Delays use exponential backoff with full
jitter (``uniform(0, min(max_delay, base * multiplier ** (n - 1)))``, the
variant that spreads a thundering herd best) from an injectable random source.

The caller schedules the retry through JetStream (``RetryLater(delay)`` naks
the message with that delay), never by sleeping in a handler, so a crash
during the wait loses nothing. Steps name a policy (``StepSpec.retry``);
:func:`policy_named` resolves the name among :data:`POLICIES` and the
pipeline's own policies (:func:`with_pipeline_policies`, built from the
:class:`~protocols.pipelines.RetryPolicySpec` entries of its
``retry_policies``).

Built-in policies
-----------------
=========  ========  ==========  =========  ========  =====================================
name       attempts  base delay  max delay  deadline  retried classes
=========  ========  ==========  =========  ========  =====================================
default    3         1 s         60 s       none      transient, timeout, unavailable
none       1         -           -          -         (never retried)
quick      3         0.2 s       2 s        30 s      transient, timeout, unavailable
patient    8         2 s         300 s      1 h       transient, timeout, unavailable, resource
=========  ========  ==========  =========  ========  =====================================

A step that names no policy is not retried.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, Protocol

from actors.runtime.errors import ConfigError
from protocols.errors import ERROR_CLASSES, ErrorClass
from protocols.pipelines import RetryPolicySpec

__all__ = [
    "DEFAULT_POLICY",
    "NO_RETRY",
    "POLICIES",
    "RandomSource",
    "RetryPolicy",
    "policy_from_spec",
    "policy_named",
    "with_pipeline_policies",
]


class RandomSource(Protocol):
    """What a policy needs from a random generator (``random.Random`` fits)."""

    def random(self) -> float:
        """Return a float in ``[0, 1)``."""
        ...


_shared_rng = random.Random()  # noqa: S311 - jitter, not cryptography

Jitter = Literal["full", "none"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failed unit of work is retried.

    Attributes:
        max_attempts: attempts in all, the first included (1 = never retry).
        base_delay: seconds of the backoff cap before the first retry.
        multiplier: growth of the cap per attempt (1 = constant).
        max_delay: upper bound of any single delay.
        jitter: ``full`` (uniform between 0 and the cap) or ``none`` (the cap).
        retry_on: error classes worth retrying.
        deadline: seconds from the first attempt after which no retry starts
            (``None``: no overall deadline).
    """

    max_attempts: int = 3
    base_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 60.0
    jitter: Jitter = "full"
    retry_on: frozenset[ErrorClass] = frozenset({"transient", "timeout", "unavailable"})
    deadline: float | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError("max_attempts", "must be at least 1")
        if self.base_delay < 0:
            raise ConfigError("base_delay", "must not be negative")
        if self.multiplier < 1:
            raise ConfigError("multiplier", "must be at least 1")
        if self.max_delay < self.base_delay:
            raise ConfigError("max_delay", "must be at least base_delay")
        if self.jitter not in ("full", "none"):
            raise ConfigError("jitter", "must be 'full' or 'none'")
        unknown = set(self.retry_on) - set(ERROR_CLASSES)
        if unknown:
            raise ConfigError("retry_on", f"unknown classes {sorted(unknown)}")
        object.__setattr__(self, "retry_on", frozenset(self.retry_on))
        if self.deadline is not None and self.deadline <= 0:
            raise ConfigError("deadline", "must be positive")

    def retries(self, error_class: ErrorClass | None) -> bool:
        """Whether failures of ``error_class`` are retried at all."""
        return self.max_attempts > 1 and error_class in self.retry_on

    def cap(self, attempt: int) -> float:
        """Return the largest delay allowed after failed attempt ``attempt`` (1-based)."""
        exponent = max(attempt, 1) - 1
        # Bound the exponent so huge attempt numbers cannot overflow a float.
        if exponent > 64:
            return self.max_delay
        return min(self.max_delay, self.base_delay * self.multiplier**exponent)

    def next_delay(
        self,
        attempt: int,
        error_class: ErrorClass | None,
        rng: RandomSource | None = None,
        *,
        elapsed: float = 0.0,
    ) -> float | None:
        """Return the wait before the next attempt, or ``None`` to give up.

        Args:
            attempt: the attempt that just failed, starting at 1.
            error_class: its classification (``None`` counts as not retryable).
            rng: random source of the jitter (a shared ``random.Random`` by default).
            elapsed: seconds since the first attempt started, for :attr:`deadline`.

        Returns:
            Seconds to wait (``0 <= delay <= max_delay``), or ``None`` when the
            class is not retried, attempts are used up, or the next attempt
            would start after the deadline.
        """
        if not self.retries(error_class) or attempt >= self.max_attempts:
            return None
        cap = self.cap(attempt)
        delay = cap if self.jitter == "none" else (rng or _shared_rng).random() * cap
        if self.deadline is not None and elapsed + delay > self.deadline:
            return None
        return delay


NO_RETRY = RetryPolicy(max_attempts=1)
"""Never retry."""

DEFAULT_POLICY = RetryPolicy()
"""3 attempts, 1 s then 2 s caps with full jitter, transient/timeout/unavailable."""

POLICIES: Mapping[str, RetryPolicy] = MappingProxyType(
    {
        "default": DEFAULT_POLICY,
        "none": NO_RETRY,
        "quick": RetryPolicy(max_attempts=3, base_delay=0.2, max_delay=2.0, deadline=30.0),
        "patient": RetryPolicy(
            max_attempts=8,
            base_delay=2.0,
            max_delay=300.0,
            deadline=3600.0,
            retry_on=frozenset({"transient", "timeout", "unavailable", "resource"}),
        ),
    }
)
"""Built-in named policies a step can name in ``retry``."""


def policy_named(name: str | None, policies: Mapping[str, RetryPolicy] = POLICIES) -> RetryPolicy:
    """Resolve a step's ``retry`` name to a policy.

    Args:
        name: the name, or ``None`` for ``default``.
        policies: the known policies.

    Raises:
        ConfigError: no policy has that name.
    """
    key = name or "default"
    try:
        return policies[key]
    except KeyError:
        raise ConfigError(
            "retry", f"unknown retry policy {key!r}; known: {', '.join(sorted(policies))}"
        ) from None


def policy_from_spec(name: str, spec: RetryPolicySpec) -> RetryPolicy:
    """Build the policy a pipeline defines as ``name``.

    Raises:
        ConfigError: a value is out of range (the field is named ``retry_policies.NAME.FIELD``).
    """
    try:
        return RetryPolicy(
            max_attempts=spec.attempts,
            base_delay=spec.base_delay,
            multiplier=spec.multiplier,
            max_delay=spec.max_delay,
            jitter=spec.jitter,
            retry_on=frozenset(spec.retry_on),
            deadline=spec.deadline,
        )
    except ConfigError as exc:
        raise ConfigError(f"retry_policies.{name}.{exc.field}", exc.problem) from None


def with_pipeline_policies(
    defined: Mapping[str, RetryPolicySpec], policies: Mapping[str, RetryPolicy] = POLICIES
) -> Mapping[str, RetryPolicy]:
    """Return ``policies`` plus a pipeline's own, by name.

    Raises:
        ConfigError: a pipeline policy redefines a built-in name or is invalid.
    """
    out = dict(policies)
    for name, spec in defined.items():
        if name in policies:
            raise ConfigError(f"retry_policies.{name}", "redefines a built-in policy")
        out[name] = policy_from_spec(name, spec)
    return MappingProxyType(out)

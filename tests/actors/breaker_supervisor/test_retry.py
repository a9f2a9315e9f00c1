"""Retry policies: attempts, capped exponential backoff with full jitter, deadline."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.breaker_supervisor.retry import (
    DEFAULT_POLICY,
    NO_RETRY,
    POLICIES,
    RetryPolicy,
    policy_named,
)
from actors.runtime.errors import ConfigError
from protocols.errors import ERROR_CLASSES


class Fixed:
    """A random source that always answers the same value."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_next_delay_grows_exponentially_up_to_max_delay() -> None:
    """Without jitter the delays are the caps: base, base*m, ... capped."""
    p = RetryPolicy(max_attempts=6, base_delay=1.0, multiplier=3.0, max_delay=10.0,
                    jitter="none")
    assert [p.next_delay(a, "transient") for a in range(1, 7)] == [1.0, 3.0, 9.0, 10.0, 10.0,
                                                                    None]


def test_full_jitter_draws_between_zero_and_the_cap() -> None:
    """Full jitter scales the cap by the random source."""
    p = RetryPolicy(max_attempts=4, base_delay=2.0, multiplier=2.0, max_delay=60.0)
    assert p.next_delay(3, "timeout", Fixed(0.5)) == 4.0
    assert p.next_delay(1, "timeout", Fixed(0.0)) == 0.0


@given(attempt=st.integers(1, 10_000), draw=st.floats(0, 0.999999), cls=st.sampled_from(
    ERROR_CLASSES))
def test_delay_never_exceeds_max_delay_and_is_none_past_max_attempts(
    attempt: int, draw: float, cls: str
) -> None:
    """Any attempt gives a delay within [0, max_delay] or gives up."""
    p = RetryPolicy(max_attempts=50, retry_on=frozenset(ERROR_CLASSES))
    delay = p.next_delay(attempt, cls, Fixed(draw))  # type: ignore[arg-type]
    if attempt >= 50:
        assert delay is None
    else:
        assert delay is not None
        assert 0.0 <= delay <= p.max_delay


def test_only_retryable_classes_are_retried() -> None:
    """Permanent and cancelled failures are never retried by the default policy."""
    for cls in ("permanent", "cancelled", "resource", None):
        assert DEFAULT_POLICY.next_delay(1, cls) is None  # type: ignore[arg-type]
    for cls in ("transient", "timeout", "unavailable"):
        assert DEFAULT_POLICY.next_delay(1, cls, random.Random(1)) is not None  # type: ignore[arg-type]
    assert NO_RETRY.next_delay(1, "transient") is None


def test_overall_deadline_stops_retries() -> None:
    """No retry starts after the deadline."""
    p = RetryPolicy(max_attempts=10, base_delay=5.0, jitter="none", deadline=12.0)
    assert p.next_delay(1, "transient", elapsed=6.0) == 5.0
    assert p.next_delay(1, "transient", elapsed=8.0) is None


def test_named_policies_resolve_and_unknown_names_fail() -> None:
    """Steps name a policy; None is the default one."""
    assert policy_named(None) is DEFAULT_POLICY
    assert policy_named("none") is NO_RETRY
    assert set(POLICIES) >= {"default", "none", "quick", "patient"}
    with pytest.raises(ConfigError, match="unknown retry policy 'nope'"):
        policy_named("nope")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"), ({"base_delay": -1}, "base_delay"),
        ({"multiplier": 0.5}, "multiplier"), ({"max_delay": 0.1}, "max_delay"),
        ({"jitter": "half"}, "jitter"), ({"retry_on": frozenset({"x"})}, "retry_on"),
        ({"deadline": 0}, "deadline"),
    ],
)
def test_invalid_policies_fail_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    """A bad value fails at construction with the field's name."""
    with pytest.raises(ConfigError, match=field):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]

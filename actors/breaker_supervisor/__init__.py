"""The breaker supervisor: shared circuit breakers, error classification, retry policies.

Other packages use it through :mod:`actors.breaker_supervisor.client` (local,
watched breaker state, outcome reporting, classification, retry policies); the
actor itself lives in :mod:`actors.breaker_supervisor.actor`.
"""

from __future__ import annotations

from actors.breaker_supervisor.client import (
    BreakerView,
    OutcomeReporter,
    RetryPolicy,
    classify_exception,
    classify_exit,
    policy_named,
)

__all__ = [
    "BreakerView",
    "OutcomeReporter",
    "RetryPolicy",
    "classify_exception",
    "classify_exit",
    "policy_named",
]

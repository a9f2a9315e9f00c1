"""The breaker supervisor: shared circuit breakers, error classification, retry policies.

Runners import :class:`~actors.breaker_supervisor.view.BreakerView` (local,
watched breaker state), :class:`~actors.breaker_supervisor.view.OutcomeReporter`,
:func:`~actors.breaker_supervisor.classify.classify_exit`,
:func:`~actors.breaker_supervisor.classify.classify_exception` and
:class:`~actors.breaker_supervisor.retry.RetryPolicy`; the actor itself lives
in :mod:`actors.breaker_supervisor.actor`.
"""

from __future__ import annotations

from actors.breaker_supervisor.classify import classify_exception, classify_exit
from actors.breaker_supervisor.retry import RetryPolicy, policy_named
from actors.breaker_supervisor.view import BreakerView, OutcomeReporter

__all__ = [
    "BreakerView",
    "OutcomeReporter",
    "RetryPolicy",
    "classify_exception",
    "classify_exit",
    "policy_named",
]

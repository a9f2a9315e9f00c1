"""What runners, the CLI and other actors use of the breaker supervisor.

Typed calls to its request subjects (:func:`list_breakers`,
:func:`control_breaker`), the local view of the breakers bucket
(:class:`BreakerView`), the reporter of step outcomes
(:class:`OutcomeReporter`), error classification (exit codes and exceptions
to an error class) and named retry policies. The actor itself lives in
:mod:`actors.breaker_supervisor.actor`.
"""

from __future__ import annotations

from actors.breaker_supervisor.classify import (
    DEFAULT_RULES,
    ClassifyRules,
    classify_exception,
    classify_exit,
)
from actors.breaker_supervisor.retry import (
    NO_RETRY,
    POLICIES,
    RetryPolicy,
    policy_named,
    with_pipeline_policies,
)
from actors.breaker_supervisor.scopes import (
    CIRCUIT_OPEN,
    breaker_ok,
    check_key,
    circuit_open_reason,
    step_breaker_keys,
)
from actors.breaker_supervisor.view import BreakerView, OutcomeReporter
from actors.runtime.bus import Bus
from protocols.breakers import (
    CONTROL_SUBJECT,
    LIST_SUBJECT,
    BreakerControl,
    BreakerList,
    ControlAction,
    ListBreakers,
)

__all__ = [
    "CIRCUIT_OPEN",
    "DEFAULT_RULES",
    "NO_RETRY",
    "POLICIES",
    "BreakerView",
    "ClassifyRules",
    "OutcomeReporter",
    "RetryPolicy",
    "breaker_ok",
    "check_key",
    "circuit_open_reason",
    "classify_exception",
    "classify_exit",
    "control_breaker",
    "list_breakers",
    "policy_named",
    "step_breaker_keys",
    "with_pipeline_policies",
]


async def list_breakers(bus: Bus, prefix: str = "", *, timeout: float = 5.0) -> BreakerList:
    """Ask the supervisor for every breaker whose key starts with ``prefix``.

    Raises:
        RequestError: the supervisor answered with an error, or did not answer.
    """
    return await bus.request(
        LIST_SUBJECT, ListBreakers(prefix=prefix), BreakerList, timeout=timeout
    )


async def control_breaker(
    bus: Bus, key: str, action: ControlAction, *, timeout: float = 5.0
) -> BreakerList:
    """Force breaker ``key`` open, reset it to closed, or disable it; return its new state.

    Raises:
        RequestError: the supervisor refused (``BadRequest``) or did not answer.
    """
    control = BreakerControl(key=key, action=action)
    return await bus.request(CONTROL_SUBJECT, control, BreakerList, timeout=timeout)

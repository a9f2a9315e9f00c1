"""How a workflow run ends: the one model of its final state, with no I/O.

The runner decides a run's outcome with :func:`decide`; :func:`predict` says
what that outcome must be for scripted step outcomes, so the model and the
running system can be checked against each other.

Precedence
----------
1. **failed** - a step failure the run does not retry (its class is not
   retried by the step's policy, its attempts are used up, or the policy's
   deadline has passed) decides the run at once: no retry is scheduled, no
   further step starts, and the run ends ``failed`` with *that* step's reason
   and class. A step's own time-out (``timeout`` on the step) is such a
   failure, of class ``timeout``; it never makes the workflow ``timed_out``.
2. **timed_out** / **cancelled** - otherwise a stop decides: the workflow's
   deadline (``timed_out``) or a cancellation (``cancelled``), whichever came
   first. Steps the stop killed are not failures.
3. **succeeded** - otherwise, when every step succeeded.

A failure that is retried is not an outcome: the run is retried (through
JetStream, after the policy's delay), steps that need the failed step stay
pending - never ``skipped`` - and the retried step's next attempt, when it
succeeds, lets them run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from actors.breaker_supervisor.client import RetryPolicy
from protocols.errors import ErrorClass
from protocols.pipelines import PipelineSpec, RunOutcome, StepResult

__all__ = [
    "FATE_CLASSES",
    "Fate",
    "Prediction",
    "decide",
    "is_failure",
    "predict",
    "step_fate",
]

Fate = Literal["success", "transient", "permanent", "timeout", "crash"]
"""What one attempt of a step does: succeeds, or fails in one of four ways."""

FATE_CLASSES: Mapping[Fate, ErrorClass | None] = {
    "success": None,
    "transient": "transient",  # exit 75 (EX_TEMPFAIL)
    "permanent": "permanent",  # any other exit code
    "timeout": "timeout",  # the step's own time-out
    "crash": "transient",  # killed by SIGKILL from outside
}
"""The error class each fate is classified as."""


def is_failure(result: StepResult, *, stopped: bool) -> bool:
    """Whether ``result`` is a step failure (rather than a success, a skip or a stop).

    Args:
        result: a finished step.
        stopped: whether the run was stopped (cancelled or past its deadline)
            when the step ended; a step killed by the stop is not a failure.
    """
    if result.state == "failed":
        return True
    return result.state == "timed_out" and not stopped


def decide(
    results: Iterable[StepResult],
    *,
    failure: StepResult | None = None,
    stop: tuple[Literal["cancelled", "timed_out"], str] | None = None,
) -> tuple[RunOutcome, str, ErrorClass | None]:
    """Return a run's outcome, reason and error class (see the module docstring).

    Args:
        results: the steps' results, in the order they finished.
        failure: the first failure the run did not retry, if any.
        stop: the stop (kind, reason) that came before any such failure, if any.
    """
    if failure is not None:
        return "failed", _reason(failure), failure.error_class
    if stop is not None:
        kind, reason = stop
        return kind, reason, "cancelled" if kind == "cancelled" else "timeout"
    collected = list(results)
    for result in collected:
        if is_failure(result, stopped=False):
            return "failed", _reason(result), result.error_class
    for result in collected:
        if result.state != "succeeded":
            return "failed", _reason(result), result.error_class
    return "succeeded", "", None


def _reason(result: StepResult) -> str:
    what = result.reason or result.state.replace("_", " ")
    return f"step {result.name}: {what}"


def step_fate(script: Sequence[Fate], policy: RetryPolicy) -> tuple[bool, int]:
    """Return whether a step with ``script`` succeeds under ``policy``, and its attempts.

    ``script[i]`` is what attempt ``i + 1`` does; past its end the last entry repeats.
    The policy's deadline is not modelled (scripts run quickly).
    """
    attempt = 1
    while True:
        fate = script[min(attempt, len(script)) - 1]
        error_class = FATE_CLASSES[fate]
        if error_class is None:
            return True, attempt
        if not policy.retries(error_class) or attempt >= policy.max_attempts:
            return False, attempt
        attempt += 1


@dataclass(frozen=True, slots=True)
class Prediction:
    """What :func:`predict` says about a run.

    Attributes:
        state: the run's final state.
        doomed: steps that end ``failed`` whenever they get to run.
        unreachable: steps that can never succeed because a step they need fails.
    """

    state: RunOutcome
    doomed: frozenset[str]
    unreachable: frozenset[str]


def predict(
    spec: PipelineSpec,
    scripts: Mapping[str, Sequence[Fate]],
    policies: Mapping[str, RetryPolicy],
) -> Prediction:
    """Predict the outcome of a run whose steps behave as ``scripts`` say.

    Args:
        spec: the pipeline (its steps' ``needs`` and ``retry``).
        scripts: step name -> what each attempt does.
        policies: step name -> the step's resolved retry policy.
    """
    doomed = frozenset(
        s.name for s in spec.steps if not step_fate(scripts[s.name], policies[s.name])[0]
    )
    needs = {s.name: set(s.needs) for s in spec.steps}
    unreachable: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, deps in needs.items():
            if name not in unreachable and deps & (doomed | unreachable):
                unreachable.add(name)
                changed = True
    state: RunOutcome = "failed" if doomed else "succeeded"
    return Prediction(state=state, doomed=doomed, unreachable=frozenset(unreachable))

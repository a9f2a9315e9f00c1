"""The run outcome model, alone and against the running actors (runner, tracker, breakers)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.breaker_supervisor.client import NO_RETRY, RetryPolicy
from actors.breaker_supervisor.retry import policy_from_spec
from actors.pipeline_runner.outcome import FATE_CLASSES, Fate, decide, predict, step_fate
from actors.runtime.bus import Bus
from actors.runtime.testing import eventually
from actors.status_tracker import Outcome, apply, fold
from actors.status_tracker.client import get_workflow
from protocols.pipelines import PipelineResult, RetryPolicySpec, StepResult, StepSpec
from protocols.status import TERMINAL_STATES, StepTransition, WorkflowTransition, WorkflowView
from tests.actors.pipeline_runner.conftest import (
    make_run,
    publish,
    status_events,
    wait_result,
)

FAST = RetryPolicySpec(attempts=3, base_delay=0.05, max_delay=0.1, jitter="none")
"""A policy retrying transient, timeout and unavailable failures quickly."""

_COMMANDS: dict[Fate, str] = {
    "success": "exit 0",
    "transient": "exit 75",
    "permanent": "exit 3",
    "timeout": "sleep 30",
    "crash": "kill -KILL $$",
}
_STEP_TIMEOUT = 1.0

fates = st.sampled_from(list(_COMMANDS))


def scripted(
    name: str, script: Sequence[Fate], *, needs: Sequence[str] = (), retry: bool
) -> StepSpec:
    """A step doing ``script[n - 1]`` on its attempt ``n`` (the last entry repeats)."""
    cases = " ".join(f"{i + 1}) {_COMMANDS[f]} ;;" for i, f in enumerate(script[:-1]))
    run = f'case "$TROUPE_ATTEMPT" in {cases} *) {_COMMANDS[script[-1]]} ;; esac'
    return StepSpec(
        name=name,
        run=run,
        needs=list(needs),
        retry="fast" if retry else None,
        timeout=_STEP_TIMEOUT,
        cache=False,
    )


# -- the model alone ----------------------------------------------------------------------


def test_a_failure_not_retried_decides_the_run_whatever_came_after() -> None:
    """failed wins over a later stop, with the reason of that one step only."""
    bad = StepResult(name="b", state="failed", reason="exit code 3", error_class="permanent")
    slow = StepResult(name="c", state="timed_out", reason="step timed out", error_class="timeout")
    assert decide([slow, bad], failure=bad, stop=("cancelled", "user")) == (
        "failed",
        "step b: exit code 3",
        "permanent",
    )


def test_a_stop_before_any_failure_decides_the_run() -> None:
    """Without a decisive failure the stop's kind is the outcome; killed steps do not count."""
    killed = StepResult(name="a", state="timed_out", error_class="timeout")
    assert decide([killed], stop=("timed_out", "workflow deadline passed")) == (
        "timed_out",
        "workflow deadline passed",
        "timeout",
    )
    assert decide([killed], stop=("cancelled", "user"))[:2] == ("cancelled", "user")


def test_a_steps_own_time_out_fails_the_run_instead_of_timing_it_out() -> None:
    """timed_out belongs to the workflow deadline; a step's time-out is a failure."""
    own = StepResult(name="s", state="timed_out", reason="step timed out", error_class="timeout")
    assert decide([own]) == ("failed", "step s: step timed out", "timeout")
    ok = StepResult(name="a", state="succeeded")
    assert decide([ok]) == ("succeeded", "", None)


@given(st.lists(fates, min_size=1, max_size=5), st.integers(min_value=1, max_value=4))
def test_step_fate_stops_at_the_first_success_or_the_first_failure_not_retried(
    script: list[Fate], attempts: int
) -> None:
    """A step succeeds iff a success comes before a failure its policy does not retry."""
    policy = RetryPolicy(max_attempts=attempts, base_delay=0.0, max_delay=0.0)
    ok, used = step_fate(script, policy)
    assert 1 <= used <= attempts
    padded = script + [script[-1]] * attempts
    assert all(
        FATE_CLASSES[f] is not None and policy.retries(FATE_CLASSES[f]) for f in padded[: used - 1]
    )
    assert ok == (FATE_CLASSES[padded[used - 1]] is None)
    assert step_fate(script, NO_RETRY) == (script[0] == "success", 1)


@st.composite
def scripted_pipelines(
    draw: st.DrawFn,
) -> tuple[list[StepSpec], dict[str, list[Fate]], dict[str, bool]]:
    """Random pipelines of 2-8 steps, random dependencies, random fates per attempt."""
    count = draw(st.integers(min_value=2, max_value=8))
    names = [f"s{i}" for i in range(count)]
    steps, scripts, retried = [], {}, {}
    for i, name in enumerate(names):
        needs = draw(st.lists(st.sampled_from(names[:i]), unique=True, max_size=2)) if i else []
        script = draw(st.lists(fates, min_size=1, max_size=3))
        retry = draw(st.booleans())
        steps.append(scripted(name, script, needs=needs, retry=retry))
        scripts[name], retried[name] = script, retry
    return steps, scripts, retried


def _policies(retried: dict[str, bool]) -> dict[str, RetryPolicy]:
    fast = policy_from_spec("fast", FAST)
    return {name: fast if on else NO_RETRY for name, on in retried.items()}


@given(scripted_pipelines())
def test_prediction_fails_exactly_when_a_step_can_never_succeed(
    drawn: tuple[list[StepSpec], dict[str, list[Fate]], dict[str, bool]],
) -> None:
    """The model: succeeded iff every step succeeds; dependants of a doomed step never run."""
    steps, scripts, retried = drawn
    spec = make_run("wf", steps).pipeline
    prediction = predict(spec, scripts, _policies(retried))
    assert (prediction.state == "succeeded") == (not prediction.doomed)
    for step in steps:
        if set(step.needs) & (prediction.doomed | prediction.unreachable):
            assert step.name in prediction.unreachable


# -- the model against the running system ---------------------------------------------------


async def _concluded(bus: Bus, workflow_id: str) -> tuple[PipelineResult, WorkflowView, list[Any]]:
    result = await wait_result(bus, workflow_id, timeout=60)

    async def terminal() -> WorkflowView | None:
        view = await get_workflow(bus, workflow_id)
        return view if view.state in TERMINAL_STATES else None

    view = await eventually(terminal, timeout=30)
    return result, view, await status_events(bus, workflow_id)


def _assert_one_truth(result: PipelineResult, view: WorkflowView, history: list[Any]) -> None:
    """Status view, history and result say the same about the run and each step."""
    assert view.state == result.state, (view.reason, result.reason)
    terminals = [
        e for e in history if isinstance(e, WorkflowTransition) and e.state in TERMINAL_STATES
    ]
    assert {e.state for e in terminals} == {result.state}
    folded = fold(history)
    assert folded is not None
    assert folded.state == view.state
    steps = {s.name: s for s in view.steps}
    for step in result.steps:
        assert steps[step.name].state == step.state, (step.name, steps[step.name], step)
    assert {s.name for s in result.steps} == set(steps)
    assert not [s for s in view.steps if s.state in ("pending", "running", "retrying")]


async def test_a_retried_step_that_succeeds_is_succeeded_and_its_dependants_run(
    bus: Bus, workflow_actors: object
) -> None:
    """flaky fails twice (exit 75), is retried, succeeds; after runs; all three views agree."""
    steps = [
        scripted("flaky", ["transient", "transient", "success"], retry=True),
        scripted("after", ["success"], needs=["flaky"], retry=False),
    ]
    await publish(bus, make_run("wf-truth-retry", steps, retry_policies={"fast": FAST}))
    result, view, history = await _concluded(bus, "wf-truth-retry")
    assert result.state == "succeeded"
    assert [s.state for s in result.steps] == ["succeeded", "succeeded"]
    _assert_one_truth(result, view, history)
    assert {s.name: s.step_attempt for s in view.steps} == {"flaky": 3, "after": 1}
    skipped = [e for e in history if isinstance(e, StepTransition) and e.state == "skipped"]
    assert skipped == []
    retries = [
        i
        for i, e in enumerate(history)
        if isinstance(e, WorkflowTransition) and e.state == "retrying"
    ]
    assert len(retries) == 2
    for i in retries:  # each retry moves the view (and so shows in watch), reason and delay
        applied = apply(fold(history[:i]), history[i])
        assert applied.outcome is Outcome.APPLIED
        shown = applied.view
        assert shown.state == "retrying"
        assert shown.next_attempt_at is not None
        assert shown.reason.startswith("step flaky failed")


async def test_a_permanent_failure_ends_the_run_failed_at_once_with_no_retry(
    bus: Bus, workflow_actors: object
) -> None:
    """exit 3 beside a retryable step and a timing-out one: failed, never retrying."""
    steps = [
        scripted("perm", ["permanent"], retry=True),
        scripted("flaky", ["transient"], retry=True),
        scripted("slow", ["timeout"], retry=True),
    ]
    run = make_run("wf-truth-mixed", steps, retry_policies={"fast": FAST})
    run = msgspec.structs.replace(run, order=[["perm", "flaky", "slow"]])
    await publish(bus, run)
    result, view, history = await _concluded(bus, "wf-truth-mixed")
    assert result.state == "failed"
    _assert_one_truth(result, view, history)
    states = [e.state for e in history if isinstance(e, WorkflowTransition)]
    assert "timed_out" not in states
    perm = next(s for s in result.steps if s.name == "perm")
    assert perm.state == "failed"
    if result.reason == "step perm: exit code 3":
        assert "retrying" not in states
    else:  # flaky failed first and planned a retry; perm's failure then ended the run
        assert result.reason.startswith(("step flaky", "step perm"))


@pytest.mark.timeout(600)
@settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(drawn=scripted_pipelines())
async def test_random_pipelines_end_as_the_model_predicts_with_one_truth(
    bus: Bus,
    workflow_actors: object,
    drawn: tuple[list[StepSpec], dict[str, list[Fate]], dict[str, bool]],
) -> None:
    """2-8 steps, random needs and fates through the real actors: the model's state, one truth."""
    steps, scripts, retried = drawn
    workflow_id = f"wf-model-{uuid.uuid4().hex[:12]}"  # examples share the actors
    run = make_run(workflow_id, steps, retry_policies={"fast": FAST})
    prediction = predict(run.pipeline, scripts, _policies(retried))
    await publish(bus, run)
    result, view, history = await _concluded(bus, workflow_id)
    assert result.state == prediction.state, (scripts, retried, result.reason)
    _assert_one_truth(result, view, history)
    by_name = {s.name: s for s in result.steps}
    for name in prediction.unreachable:
        assert by_name[name].state != "succeeded"
    if prediction.state == "succeeded":
        attempts = {s.name: s.step_attempt for s in view.steps}
        policies = _policies(retried)
        for name, script in scripts.items():
            assert attempts[name] == step_fate(script, policies[name])[1]

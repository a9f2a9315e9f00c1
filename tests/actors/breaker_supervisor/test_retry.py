"""Retry policies: attempts, capped exponential backoff with full jitter, deadline."""

from __future__ import annotations

import asyncio
import itertools
import random
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.breaker_supervisor.classify import classify_exit
from actors.breaker_supervisor.retry import (
    DEFAULT_POLICY,
    NO_RETRY,
    POLICIES,
    RetryPolicy,
    policy_from_spec,
    policy_named,
    with_pipeline_policies,
)
from actors.breaker_supervisor.view import OutcomeReporter
from actors.runtime.actor import Actor
from actors.runtime.bus import Bus
from actors.runtime.errors import ConfigError, RetryLater
from actors.runtime.handlers import MessageContext, consumer
from actors.runtime.testing import eventually
from actors.runtime.topology import StreamSpec
from protocols.base import Message
from protocols.errors import ERROR_CLASSES
from protocols.pipelines import RetryPolicySpec


class Fixed:
    """A random source that always answers the same value."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_next_delay_grows_exponentially_up_to_max_delay() -> None:
    """Without jitter the delays are the caps: base, base*m, ... capped."""
    p = RetryPolicy(max_attempts=6, base_delay=1.0, multiplier=3.0, max_delay=10.0, jitter="none")
    assert [p.next_delay(a, "transient") for a in range(1, 7)] == [1.0, 3.0, 9.0, 10.0, 10.0, None]


def test_full_jitter_draws_between_zero_and_the_cap() -> None:
    """Full jitter scales the cap by the random source."""
    p = RetryPolicy(max_attempts=4, base_delay=2.0, multiplier=2.0, max_delay=60.0)
    assert p.next_delay(3, "timeout", Fixed(0.5)) == 4.0
    assert p.next_delay(1, "timeout", Fixed(0.0)) == 0.0


@given(
    attempt=st.integers(1, 10_000), draw=st.floats(0, 0.999999), cls=st.sampled_from(ERROR_CLASSES)
)
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
        ({"max_attempts": 0}, "max_attempts"),
        ({"base_delay": -1}, "base_delay"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"max_delay": 0.1}, "max_delay"),
        ({"jitter": "half"}, "jitter"),
        ({"retry_on": frozenset({"x"})}, "retry_on"),
        ({"deadline": 0}, "deadline"),
    ],
)
def test_invalid_policies_fail_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    """A bad value fails at construction with the field's name."""
    with pytest.raises(ConfigError, match=field):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# -- retries scheduled through JetStream ------------------------------------------------

FLAKY_STREAM = StreamSpec(name="TEST_FLAKY_STEPS", subjects=("test.steps",), retention="workqueue")


class StepJob(Message, tag="test.breakers.v1.step_job"):
    """A unit of work that fails ``failures`` times with ``exit_code`` first."""

    job_id: str
    failures: int
    exit_code: int


class StepWorker(Actor):
    """Runs jobs as a runner runs steps: classify, report, retry via RetryLater."""

    name = "step_worker"

    def __init__(self, policy: RetryPolicy, reporter: OutcomeReporter) -> None:
        super().__init__()
        self.policy = policy
        self.reporter = reporter
        self.deliveries: dict[str, list[float]] = {}
        self.delays: dict[str, list[float]] = {}
        self.outcome: dict[str, str] = {}

    @consumer(FLAKY_STREAM, durable="step-worker", max_deliver=10)
    async def run(self, job: StepJob, ctx: MessageContext) -> None:
        self.deliveries.setdefault(job.job_id, []).append(time.monotonic())
        attempt = ctx.num_delivered
        error_class = classify_exit(job.exit_code if attempt <= job.failures else 0)
        self.reporter.report(
            f"step:{job.job_id}", ok=error_class is None, duration_s=0.01, error_class=error_class
        )
        if error_class is None:
            self.outcome[job.job_id] = "succeeded"
            return
        delay = self.policy.next_delay(attempt, error_class, Fixed(0.99))
        if delay is None:
            self.outcome[job.job_id] = f"failed:{error_class}"
            return
        self.delays.setdefault(job.job_id, []).append(delay)
        raise RetryLater(delay)


@pytest.mark.integration
async def test_flaky_step_succeeds_after_exactly_two_retries_honouring_backoff(
    bus: Bus, reporter: OutcomeReporter
) -> None:
    """Two transient failures (exit 75), then success: 3 deliveries, delays waited out."""
    policy = RetryPolicy(max_attempts=5, base_delay=0.3, multiplier=2.0, max_delay=2.0)
    worker = StepWorker(policy, reporter)
    async with worker.running(bus):
        await bus.send("test.steps", StepJob(job_id="flaky", failures=2, exit_code=75))
        await eventually(lambda: asyncio.sleep(0, worker.outcome.get("flaky")), timeout=10.0)
    assert worker.outcome["flaky"] == "succeeded"
    times = worker.deliveries["flaky"]
    assert len(times) == 3
    assert worker.delays["flaky"] == pytest.approx([0.297, 0.594])
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for gap, delay in zip(gaps, worker.delays["flaky"], strict=True):
        assert gap >= delay - 0.02


@pytest.mark.integration
async def test_permanent_failure_is_not_retried(bus: Bus, reporter: OutcomeReporter) -> None:
    """Exit code 1 is permanent: one delivery, acknowledged, nothing redelivered."""
    worker = StepWorker(DEFAULT_POLICY, reporter)
    async with worker.running(bus):
        await bus.send("test.steps", StepJob(job_id="broken", failures=9, exit_code=1))
        await eventually(lambda: asyncio.sleep(0, worker.outcome.get("broken")), timeout=10.0)

        async def settled() -> bool:
            info = await bus.js.consumer_info(FLAKY_STREAM.name, "step-worker")
            return info.num_ack_pending == 0 and info.num_pending == 0

        await eventually(settled)
        info = await bus.js.consumer_info(FLAKY_STREAM.name, "step-worker")
    assert worker.outcome["broken"] == "failed:permanent"
    assert len(worker.deliveries["broken"]) == 1
    assert info.num_redelivered == 0


def test_pipeline_policies_are_data_added_to_the_built_ins() -> None:
    """A RetryPolicySpec becomes a policy by name; built-ins stay and cannot be redefined."""
    spec = RetryPolicySpec(attempts=4, base_delay=0.5, max_delay=2.0, jitter="none")
    known = with_pipeline_policies({"mine": spec})
    assert set(POLICIES) < set(known)
    mine = policy_named("mine", known)
    assert mine.max_attempts == 4
    assert [mine.next_delay(n, "transient") for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, None]
    with pytest.raises(ConfigError, match=r"retry_policies\.default"):
        with_pipeline_policies({"default": spec})
    with pytest.raises(ConfigError, match=r"retry_policies\.bad\.max_delay"):
        policy_from_spec("bad", RetryPolicySpec(base_delay=3.0, max_delay=1.0))

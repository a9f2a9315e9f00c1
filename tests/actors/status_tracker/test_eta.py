"""ETA from earlier runs of the same template."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actors.status_tracker import eta
from protocols.status import WorkflowView


def view(state: str = "running", created: float = 100.0, progress: float = 0.0) -> WorkflowView:
    return WorkflowView(
        workflow_id="w", state=state, created_at=created, updated_at=created, progress=progress
    )  # type: ignore[arg-type]


@given(
    samples=st.lists(st.floats(1, 10_000), min_size=1, max_size=50),
    elapsed=st.floats(0, 1),
)
def test_estimate_with_history_falls_within_the_observed_range(
    samples: list[float], elapsed: float
) -> None:
    """Elapsed time plus the ETA lies between the shortest and longest earlier run."""
    elapsed_s = elapsed * min(samples)
    remaining = eta.estimate(view(), samples, now=100.0 + elapsed_s)
    assert remaining is not None
    assert min(samples) - 1e-6 <= elapsed_s + remaining <= max(samples) + 1e-6


def test_estimate_is_the_median_minus_elapsed_and_never_negative() -> None:
    """Median of 10, 12, 40 is 12: 2 s left after 10 s, 0 after 20 s."""
    assert eta.estimate(view(), [10.0, 40.0, 12.0], now=110.0) == 2.0
    assert eta.estimate(view(), [10.0, 40.0, 12.0], now=120.0) == 0.0


def test_estimate_without_history_uses_the_workflows_own_progress() -> None:
    """A quarter done after 10 s: 30 s to go; nothing known before any progress."""
    assert eta.estimate(view(progress=0.25), [], now=110.0) == 30.0
    assert eta.estimate(view(), [], now=110.0) is None


def test_finished_workflow_has_nothing_left() -> None:
    """A terminal workflow's ETA is zero."""
    assert eta.estimate(view("failed"), [5.0], now=500.0) == 0.0
    assert eta.with_eta(view("failed"), [5.0], now=500.0).eta_s == 0.0


def test_record_keeps_the_latest_samples() -> None:
    """Only the newest ``keep`` durations stay, negative ones clamp to zero."""
    assert eta.record([1.0, 2.0, 3.0], 4.0, keep=3) == [2.0, 3.0, 4.0]
    assert eta.record([], -1.0, keep=3) == [0.0]

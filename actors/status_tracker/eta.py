"""Progress and ETA: estimates from the durations of earlier runs of a template, no I/O.

The tracker records, for each template, how long its latest successful runs
took from submission to success (:class:`protocols.status.TemplateDurations`).
A running workflow's estimated total is the median of those samples; its ETA
is that total minus the time elapsed so far. Without history the estimate
falls back on the workflow's own progress: elapsed time scaled by the fraction
still to do.
"""

from __future__ import annotations

import statistics

import msgspec

from protocols.status import TERMINAL_STATES, WorkflowView

__all__ = ["estimate", "record", "with_eta"]


def record(samples: list[float], duration: float, *, keep: int) -> list[float]:
    """Return ``samples`` with ``duration`` appended, keeping the latest ``keep``."""
    return [*samples, max(0.0, duration)][-keep:]


def estimate(view: WorkflowView, samples: list[float], now: float) -> float | None:
    """Return the estimated seconds until ``view`` finishes, or ``None`` if unknown.

    Args:
        view: the workflow.
        samples: total durations of earlier successful runs of its template.
        now: current Unix time.

    Returns:
        ``0`` for a finished workflow; otherwise the median earlier duration
        minus the time elapsed (never negative), or, with no samples, the
        elapsed time scaled by the remaining fraction of steps.
    """
    if view.state in TERMINAL_STATES:
        return 0.0
    elapsed = max(0.0, now - view.created_at)
    if samples:
        return max(0.0, statistics.median(samples) - elapsed)
    if 0.0 < view.progress < 1.0 and elapsed > 0.0:
        return elapsed * (1.0 - view.progress) / view.progress
    return None


def with_eta(view: WorkflowView, samples: list[float], now: float) -> WorkflowView:
    """Return ``view`` with :attr:`~WorkflowView.eta_s` set as of ``now``."""
    eta = estimate(view, samples, now)
    return view if eta == view.eta_s else msgspec.structs.replace(view, eta_s=eta)

"""Performance figures from workflow views, and their charts."""

from __future__ import annotations

from actors.gateway.dashboard import charts
from protocols.status import StepView, WorkflowView


def _view(
    wid: str, state: str, created: float, finished: float | None, **kw: object
) -> WorkflowView:
    return WorkflowView(
        workflow_id=wid,
        state=state,  # type: ignore[arg-type]
        created_at=created,
        updated_at=finished or created,
        finished_at=finished,
        template="t",
        **kw,  # type: ignore[arg-type]
    )


def test_percentile_is_nearest_rank() -> None:
    """p50 and p95 of known samples; no samples is zero."""
    assert charts.percentile([1, 2, 3, 4], 50) == 2
    assert charts.percentile(list(range(1, 101)), 95) == 95
    assert charts.percentile([], 95) == 0.0


def test_throughput_success_waiting_and_cache_come_from_the_views() -> None:
    """Finished per bucket, the succeeded share, workflows waiting for a first step, cache hits."""
    steps = [
        StepView(name="s", state="succeeded", started_at=15.0, finished_at=16.0, duration_s=1.0),
        StepView(name="c", state="succeeded", finished_at=16.0, duration_s=0.0, cache_hit=True),
    ]
    views = [
        _view("a", "succeeded", 10.0, 20.0, steps=steps),
        _view("b", "failed", 12.0, 25.0),
        _view("c", "queued", 30.0, None),
    ]
    m = charts.compute(views, since=0.0, until=40.0, buckets=4)
    assert m.edges == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert m.finished == [0, 0, 2, 0]
    assert m.success == [None, None, 50.0, None]
    assert m.waiting == [1, 1, 1, 1]  # a at 10; b (never started) at 20; c at 30 and 40
    assert m.cache == [None, 50.0, None, None]
    assert m.templates == [("t", 10.0, 10.0, 1)]
    assert ("t/s", 1.0, 1.0, 1) in m.steps


def test_charts_are_svg_with_their_title_and_values() -> None:
    """Bars, lines and p50/p95 rows render as labelled SVG."""
    edges = [0.0, 60.0, 120.0]
    assert 'aria-label="done"' in charts.bars("done", [1, 3], edges)
    line = charts.line("rate", [None, 50.0], edges, "%", top=100)
    assert "<path" in line
    assert "50.0%" in line
    assert "n=4" in charts.hbars("durations", [("t", 1.0, 2.0, 4)])
    assert charts.hbars("nothing", []) == ""


def test_a_bucket_without_a_value_breaks_the_line() -> None:
    """No finished workflow in a bucket is a gap, not a line drawn across it."""
    svg = charts.line("rate", [50.0, None, 60.0], [0.0, 1.0, 2.0, 3.0], "%", top=100)
    path = svg.split('class="line" d="')[1].split('"')[0]
    assert path.count("M") == 2
    assert "L" not in path

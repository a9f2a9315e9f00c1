"""The step graph's layered layout and its SVG."""

from __future__ import annotations

from actors.gateway.dashboard.graph import layout, render_graph
from protocols.status import StepView


def test_each_step_sits_right_of_everything_it_needs() -> None:
    """Columns follow the longest path from a root, so every edge points right."""
    needs = {"b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["d", "a"]}
    found = layout(["a", "b", "c", "d", "e"], needs)
    assert found.columns == [["a"], ["b", "c"], ["d"], ["e"]]
    for need, step in found.edges:
        assert found.position(need)[0] < found.position(step)[0]


def test_unknown_needs_and_cycles_do_not_break_the_layout() -> None:
    """A need naming no step is dropped; a cycle still places every step once."""
    found = layout(["a", "b"], {"a": ["b", "ghost"], "b": ["a"]})
    assert sorted(s for c in found.columns for s in c) == ["a", "b"]
    assert ("ghost", "a") not in found.edges


def test_steps_without_needs_share_the_first_column() -> None:
    """Independent steps stack in one column, in plan order."""
    assert layout(["x", "y", "z"], {}).columns == [["x", "y", "z"]]


def test_nodes_carry_state_duration_attempt_and_cache_hit() -> None:
    """Each node is a link with its state class and the step's figures written in it."""
    views = {
        "a": StepView(name="a", state="succeeded", duration_s=1.25, cache_hit=True),
        "b": StepView(name="b", state="failed", duration_s=0.5, step_attempt=3),
    }
    svg = render_graph(["a", "b", "c"], {"b": ["a"], "c": ["b"]}, views)
    assert svg.startswith("<svg")
    assert 'class="node st-succeeded" data-step="a"' in svg
    assert "succeeded · 1.2s · cached" in svg
    assert "failed · 0.5s · attempt 3" in svg
    assert 'class="node st-pending" data-step="c"' in svg
    assert svg.count('class="edge"') == 2


def test_step_names_are_escaped() -> None:
    """A step name cannot inject markup into the page."""
    svg = render_graph(["<b>"], {}, {})
    assert "<b>" not in svg.replace("<svg", "")
    assert "&lt;b&gt;" in svg


def test_a_workflow_without_a_plan_says_so() -> None:
    """No steps yet: a sentence, not an empty drawing."""
    assert "No plan yet" in render_graph([], {}, {})

"""Step graph planning: stages respect dependencies; every graph defect is named."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.task_manager.errors import TaskRejected
from actors.task_manager.plan import find_cycle, plan
from protocols.pipelines import PipelineSpec, RetryPolicySpec, StepSpec


def _pipeline(*steps: StepSpec) -> PipelineSpec:
    return PipelineSpec(name="p", steps=list(steps))


def _step(
    name: str, *needs: str, inputs: tuple[str, ...] = (), outputs: tuple[str, ...] = ()
) -> StepSpec:
    return StepSpec(
        name=name, run="true", needs=list(needs), inputs=list(inputs), outputs=list(outputs)
    )


def _rejection(pipeline: PipelineSpec) -> TaskRejected:
    with pytest.raises(TaskRejected) as info:
        plan(pipeline)
    return info.value


def test_plan_groups_independent_steps_into_one_stage() -> None:
    """Steps with no dependency between them share a stage; declaration order is kept."""
    stages = plan(_pipeline(_step("a"), _step("c", "a"), _step("b", "a"), _step("d", "b", "c")))
    assert stages == [["a"], ["c", "b"], ["d"]]


def test_plan_places_a_step_after_its_longest_chain() -> None:
    """A step waits for the deepest of its dependencies."""
    stages = plan(_pipeline(_step("z", "y", "a"), _step("a"), _step("x", "a"), _step("y", "x")))
    assert stages == [["a"], ["x"], ["y"], ["z"]]


def test_plan_rejects_an_empty_pipeline() -> None:
    """A pipeline without steps is an invalid definition."""
    assert _rejection(_pipeline()).code == "invalid_definition"


def test_plan_rejects_duplicate_step_names() -> None:
    """Two steps with one name are rejected as duplicate_step, naming it."""
    problem = _rejection(_pipeline(_step("a"), _step("b"), _step("a")))
    assert problem.code == "duplicate_step"
    assert "'a'" in problem.detail


def test_plan_rejects_an_unknown_dependency() -> None:
    """needs naming no step is rejected as unknown_dependency with both names."""
    problem = _rejection(_pipeline(_step("a"), _step("b", "ghost")))
    assert problem.code == "unknown_dependency"
    assert problem.reason == "unknown_dependency: step 'b' needs 'ghost', which is not a step"


def test_plan_rejects_a_cycle_and_names_it() -> None:
    """A dependency loop is rejected as cycle, with the loop spelled out."""
    problem = _rejection(_pipeline(_step("a", "c"), _step("b", "a"), _step("c", "b"), _step("d")))
    assert problem.code == "cycle"
    assert problem.detail.endswith("a -> c -> b -> a")


def test_plan_rejects_a_step_needing_itself() -> None:
    """A self-dependency is the smallest cycle."""
    assert _rejection(_pipeline(_step("a", "a"))).reason == (
        "cycle: steps depend on each other: a -> a"
    )


def test_plan_rejects_an_input_nobody_outputs() -> None:
    """Reading a file no step produces is rejected as missing_input."""
    problem = _rejection(_pipeline(_step("a", outputs=("x",)), _step("b", "a", inputs=("y",))))
    assert problem.code == "missing_input"
    assert "'y'" in problem.detail


def test_plan_rejects_an_input_from_a_step_not_needed() -> None:
    """The producer of an input must be among the steps a step (transitively) needs."""
    problem = _rejection(_pipeline(_step("a", outputs=("x",)), _step("b", inputs=("x",))))
    assert problem.code == "missing_input"
    assert "does not need it" in problem.detail


def test_plan_accepts_inputs_from_transitive_dependencies() -> None:
    """A file from a step two hops back is fine."""
    stages = plan(
        _pipeline(_step("a", outputs=("x",)), _step("b", "a"), _step("c", "b", inputs=("x",)))
    )
    assert stages == [["a"], ["b"], ["c"]]


def test_plan_handles_a_long_chain_without_recursion() -> None:
    """Thousands of chained steps plan without hitting the recursion limit."""
    steps = [_step("s0")] + [_step(f"s{i}", f"s{i - 1}") for i in range(1, 3000)]
    assert len(plan(_pipeline(*reversed(steps)))) == 3000


@st.composite
def _dags(draw: st.DrawFn) -> list[StepSpec]:
    n = draw(st.integers(1, 12))
    steps = []
    for i in range(n):
        needs = draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else set()
        steps.append(_step(f"s{i}", *(f"s{j}" for j in sorted(needs))))
    return draw(st.permutations(steps))


@settings(max_examples=60, deadline=None)
@given(_dags())
def test_plan_orders_every_step_after_all_it_needs(steps: list[StepSpec]) -> None:
    """For any acyclic graph every step appears once, in a later stage than its needs."""
    stages = plan(_pipeline(*steps))
    where = {name: i for i, stage in enumerate(stages) for name in stage}
    assert sorted(where) == sorted(s.name for s in steps)
    assert sum(len(s) for s in stages) == len(steps)
    for step in steps:
        assert all(where[dep] < where[step.name] for dep in step.needs)
    assert all(stages)


@settings(max_examples=60, deadline=None)
@given(_dags(), st.data())
def test_plan_detects_any_back_edge_as_a_cycle(steps: list[StepSpec], data: st.DataObject) -> None:
    """Adding an edge from a step to one of its descendants always yields a cycle."""
    by_name = {s.name: s for s in steps}
    chains = [(s.name, dep) for s in steps for dep in s.needs]
    if not chains:
        return
    child, parent = data.draw(st.sampled_from(chains))
    by_name[parent] = _step(parent, *by_name[parent].needs, child)
    cycle = find_cycle({s.name: list(s.needs) for s in by_name.values()})
    assert cycle is not None
    assert cycle[0] == cycle[-1]
    assert _rejection(_pipeline(*by_name.values())).code == "cycle"


def test_plan_rejects_a_step_naming_an_unknown_retry_policy() -> None:
    """retry = "aggressive" is refused at validation, naming the known policies."""
    spec = PipelineSpec(name="p", steps=[StepSpec(name="a", run="true", retry="aggressive")])
    problem = _rejection(spec)
    assert problem.code == "unknown_retry_policy"
    assert "'aggressive'" in problem.detail
    assert "quick" in problem.detail


def test_plan_accepts_policies_the_pipeline_defines_and_rejects_invalid_ones() -> None:
    """A pipeline's own policy can be named; a bad value or a redefined built-in is refused."""
    fast = RetryPolicySpec(attempts=2, base_delay=0.1)
    ok = PipelineSpec(
        name="p",
        steps=[StepSpec(name="a", run="true", retry="fast")],
        retry_policies={"fast": fast},
    )
    assert plan(ok) == [["a"]]
    bad = msgspec.structs.replace(
        ok, retry_policies={"fast": RetryPolicySpec(base_delay=5.0, max_delay=1.0)}
    )
    assert "retry_policies.fast.max_delay" in _rejection(bad).detail
    shadow = msgspec.structs.replace(ok, retry_policies={"quick": fast})
    assert "redefines a built-in" in _rejection(shadow).detail

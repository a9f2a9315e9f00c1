"""Planning: check a pipeline's step graph and order it into stages. Pure, no I/O.

:func:`plan` returns the stages a runner executes one after another; the steps
of one stage depend only on earlier stages, so they may run concurrently.
Checks, each a :class:`~actors.task_manager.errors.TaskRejected` with its code:

* ``invalid_definition`` - no steps at all;
* ``duplicate_step`` - two steps share a name;
* ``unknown_dependency`` - ``needs`` names a step that does not exist;
* ``cycle`` - steps depend on each other in a loop (the loop is named);
* ``missing_input`` - a step reads a file that none of the steps it
  (transitively) needs outputs: either nobody produces it, or its producer
  might run later;
* ``unknown_retry_policy`` - a step's ``retry`` names no built-in policy and
  none of the pipeline's ``retry_policies``, or a pipeline policy is invalid.
"""

from __future__ import annotations

from collections.abc import Sequence

from actors.breaker_supervisor.client import with_pipeline_policies
from actors.runtime.errors import ConfigError
from actors.task_manager.errors import TaskRejected
from protocols.pipelines import PipelineSpec, StepSpec

__all__ = ["ancestors", "find_cycle", "plan"]


def _check_names(steps: Sequence[StepSpec]) -> None:
    if not steps:
        raise TaskRejected("invalid_definition", "the pipeline has no steps")
    seen: set[str] = set()
    for step in steps:
        if step.name in seen:
            raise TaskRejected("duplicate_step", f"step name {step.name!r} is used twice")
        seen.add(step.name)
    for step in steps:
        for dep in step.needs:
            if dep not in seen:
                raise TaskRejected(
                    "unknown_dependency", f"step {step.name!r} needs {dep!r}, which is not a step"
                )


def find_cycle(needs: dict[str, list[str]]) -> list[str] | None:
    """Return one dependency cycle as a path ``[a, b, ..., a]``, or ``None``.

    Args:
        needs: step name -> names of the steps it needs (all known).
    """
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(needs, white)
    for root, deps in needs.items():
        if colour[root] != white:
            continue
        # Iterative depth-first search: deep chains must not hit the recursion limit.
        path: list[str] = [root]
        iters = [iter(deps)]
        colour[root] = grey
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                colour[path.pop()] = black
                iters.pop()
            elif colour[nxt] == grey:
                return [*path[path.index(nxt) :], nxt]
            elif colour[nxt] == white:
                colour[nxt] = grey
                path.append(nxt)
                iters.append(iter(needs[nxt]))
    return None


def ancestors(needs: dict[str, list[str]], name: str) -> set[str]:
    """Return every step ``name`` transitively needs (graph must be acyclic)."""
    found: set[str] = set()
    todo = list(needs[name])
    while todo:
        dep = todo.pop()
        if dep not in found:
            found.add(dep)
            todo.extend(needs[dep])
    return found


def _check_inputs(steps: Sequence[StepSpec], needs: dict[str, list[str]]) -> None:
    producers: dict[str, list[str]] = {}
    for step in steps:
        for output in step.outputs:
            producers.setdefault(output, []).append(step.name)
    for step in steps:
        if not step.inputs:
            continue
        before = ancestors(needs, step.name)
        for wanted in step.inputs:
            makers = producers.get(wanted, [])
            if not makers:
                raise TaskRejected(
                    "missing_input",
                    f"step {step.name!r} reads {wanted!r}, which no step outputs",
                )
            if not before.intersection(makers):
                raise TaskRejected(
                    "missing_input",
                    f"step {step.name!r} reads {wanted!r} from {makers[0]!r} "
                    f"but does not need it (add {makers[0]!r} to its needs)",
                )


def _check_policies(pipeline: PipelineSpec) -> None:
    try:
        known = with_pipeline_policies(pipeline.retry_policies)
    except ConfigError as exc:
        raise TaskRejected("unknown_retry_policy", str(exc)) from None
    for step in pipeline.steps:
        if step.retry is not None and step.retry not in known:
            raise TaskRejected(
                "unknown_retry_policy",
                f"step {step.name!r} names retry policy {step.retry!r}; "
                f"known: {', '.join(sorted(known))}",
            )


def plan(pipeline: PipelineSpec) -> list[list[str]]:
    """Check the step graph and return its stages.

    Stages follow the longest chain of dependencies; inside a stage steps keep
    their order of declaration, so a plan is deterministic.

    Returns:
        Step names grouped in stages.

    Raises:
        TaskRejected: see the module docstring.
    """
    steps = pipeline.steps
    _check_names(steps)
    needs = {s.name: list(dict.fromkeys(s.needs)) for s in steps}
    cycle = find_cycle(needs)
    if cycle is not None:
        raise TaskRejected("cycle", "steps depend on each other: " + " -> ".join(cycle))
    _check_inputs(steps, needs)
    _check_policies(pipeline)
    level: dict[str, int] = {}

    def depth(name: str) -> int:
        # Iterative so that long chains do not recurse; the graph is acyclic here.
        stack = [name]
        while stack:
            top = stack[-1]
            pending = [d for d in needs[top] if d not in level]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            level[top] = 1 + max((level[d] for d in needs[top]), default=-1)
        return level[name]

    stages: list[list[str]] = []
    for step in steps:
        index = depth(step.name)
        while len(stages) <= index:
            stages.append([])
        stages[index].append(step.name)
    return stages

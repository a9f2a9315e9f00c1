"""Jepsen-style checker of a chaos run: every workflow gets exactly one verdict.

Evidence per workflow: the side-effect file of each step (one ``start`` and
one ``end`` line per execution, with ``TROUPE_ATTEMPT`` and a timestamp), the
stored result, the status view and the history (status events). Verdicts:

* ``ok`` - succeeded; each step executed once; result, status and history agree;
* ``re-executed-after-runner-loss`` - succeeded; a step executed more than
  once, never overlapping, each extra execution a new attempt that result and
  history report with reason ``runner_lost``;
* ``lost`` - no result within the time allowed;
* ``duplicated-concurrently`` - two executions of one step overlapped in time;
* ``failed`` - ended, but not ``succeeded``;
* ``unexpected`` - anything else (an unreported re-execution, a status that
  disagrees with the result, attempts that do not add up).

A run passes with zero ``lost``, ``duplicated-concurrently``, ``failed`` and
``unexpected``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import msgspec
import nats.errors

from actors.runtime.bus import Bus
from actors.runtime.errors import Unavailable
from actors.runtime.kv import TypedBucket
from actors.topology import RESULTS, STATUS_EVENTS, WORKFLOWS
from protocols.pipelines import PipelineResult, step_key
from protocols.status import StatusEvent, StepTransition, WorkflowView

__all__ = ["BAD", "VERDICTS", "Execution", "Observed", "classify", "collect", "table"]

VERDICTS = (
    "ok",
    "re-executed-after-runner-loss",
    "lost",
    "duplicated-concurrently",
    "failed",
    "unexpected",
)
BAD = frozenset({"lost", "duplicated-concurrently", "failed", "unexpected"})

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Execution:
    """One execution of a step, from its side-effect file."""

    attempt: int
    start: float
    end: float | None


@dataclass(slots=True)
class Observed:
    """Everything the checker looks at."""

    ids: list[str]
    steps: dict[str, dict[str, list[Execution]]] = field(default_factory=dict)
    results: dict[str, PipelineResult] = field(default_factory=dict)
    views: dict[str, WorkflowView] = field(default_factory=dict)
    history: dict[str, list[StepTransition]] = field(default_factory=dict)


def executions(path: Path) -> list[Execution]:
    """Parse one step's side-effect file into its executions (by attempt)."""
    starts: dict[int, float] = {}
    ends: dict[int, float] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) != 3:
                continue
            kind, attempt, at = parts[0], int(parts[1]), float(parts[2])
            if kind == "start":
                starts.setdefault(attempt, at)
            else:
                ends[attempt] = at
    return [Execution(a, starts[a], ends.get(a)) for a in sorted(starts)]


def _overlap(runs: list[Execution]) -> bool:
    spans = sorted((r.start, r.end if r.end is not None else r.start) for r in runs)
    return any(b_start < a_end for (_, a_end), (b_start, _) in itertools.pairwise(spans))


def classify(wf: str, seen: Observed) -> str:
    """Return the verdict of one workflow (see the module docstring)."""
    result = seen.results.get(wf)
    if result is None:
        return "lost"
    steps = seen.steps.get(wf, {})
    if any(_overlap(runs) for runs in steps.values()):
        return "duplicated-concurrently"
    if result.state != "succeeded":
        return "failed"
    view = seen.views.get(wf)
    if view is None or view.state != result.state:
        return "unexpected"
    history = seen.history.get(wf, [])
    again = False
    for step in result.steps:
        runs = steps.get(step.name, [])
        if not runs or runs[-1].attempt != step.attempt or runs[-1].end is None:
            return "unexpected"
        reported = {
            e.step_attempt: e.attempt_reason
            for e in history
            if e.step == step.name and e.state == "running"
        }
        if reported.get(step.attempt) != step.attempt_reason:
            return "unexpected"
        for extra in runs[1:]:
            if reported.get(extra.attempt) != "runner_lost":
                return "unexpected"
        again = again or len(runs) > 1
    return "re-executed-after-runner-loss" if again else "ok"


async def _history(bus: Bus) -> dict[str, list[StepTransition]]:
    decoder = msgspec.msgpack.Decoder(StatusEvent)
    found: dict[str, list[StepTransition]] = {}
    sub = await bus.js.subscribe(
        "troupe.status.events.>", ordered_consumer=True, stream=STATUS_EVENTS.name
    )
    try:
        info = await bus.js.stream_info(STATUS_EVENTS.name)
        last = info.state.last_seq
        while True:
            try:
                msg = await sub.next_msg(timeout=5)
            except nats.errors.TimeoutError:
                break
            try:
                event = decoder.decode(msg.data)
            except msgspec.DecodeError:
                event = None
            if isinstance(event, StepTransition):
                found.setdefault(event.workflow_id, []).append(event)
            if msg.metadata.sequence.stream >= last:
                break
    finally:
        await sub.unsubscribe()
    return found


async def _answered(call: Callable[[], Awaitable[T]], *, within: float = 60.0) -> T:
    """``call()``, again (for at most ``within`` s) while the server answers with an error.

    Right after a node of a cluster was killed, a stream whose leader it was
    answers nothing until the others elect a new one.
    """
    deadline = time.monotonic() + within
    while True:
        try:
            return await call()
        except (nats.errors.Error, Unavailable):
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.5)


async def collect(bus: Bus, ids: list[str], side: Path, *, timeout: float) -> Observed:
    """Wait (up to ``timeout`` s) for every workflow's result and view; gather the evidence."""
    results = await _answered(lambda: TypedBucket.bind(bus, RESULTS, PipelineResult))
    views = await _answered(lambda: TypedBucket.bind(bus, WORKFLOWS, WorkflowView))
    seen = Observed(ids=ids)
    deadline = time.monotonic() + timeout
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        for wf in sorted(pending):
            try:
                entry = await results.get_or_none(wf)
                view = await views.get_or_none(wf)
            except Exception:
                break
            if entry is not None:
                seen.results[wf] = entry.value
            if view is not None:
                seen.views[wf] = view.value
            if entry is not None and view is not None and view.value.state == entry.value.state:
                pending.discard(wf)
        if pending:
            await asyncio.sleep(1.0)
    seen.history = await _answered(lambda: _history(bus))
    for wf in ids:
        result = seen.results.get(wf)
        names = [s.name for s in result.steps] if result else []
        seen.steps[wf] = {n: executions(side / step_key(wf, n)) for n in names}
    return seen


def table(seen: Observed) -> tuple[Counter[str], str]:
    """Count the verdicts and render them as a table."""
    counts = Counter(classify(wf, seen) for wf in seen.ids)
    width = max(len(v) for v in VERDICTS)
    lines = [f"{'verdict':<{width}}  workflows", f"{'-' * width}  ---------"]
    lines += [f"{v:<{width}}  {counts.get(v, 0):>9}" for v in VERDICTS]
    lines.append(f"{'total':<{width}}  {sum(counts.values()):>9}")
    return counts, "\n".join(lines)

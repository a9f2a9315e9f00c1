"""Pure logic of a pipeline run: step scheduling, step-output lines, cache keys.

Nothing here does I/O, so every rule is property-tested in isolation.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from protocols.pipelines import PipelineSpec, StepOutcome, StepSpec

__all__ = [
    "DEPENDENCY_FAILED",
    "LineEvent",
    "Schedule",
    "Tail",
    "cache_key",
    "command_argv",
    "parse_line",
]

DEPENDENCY_FAILED = "dependency_failed"
"""Reason of a step skipped because a step it needs did not succeed."""

_PROGRESS = "::progress "
_MESSAGE = "::message "


@dataclass(frozen=True, slots=True)
class LineEvent:
    """A report a step made by printing ``::progress N`` or ``::message <json>``.

    Attributes:
        percent: progress 0-100, when a progress line.
        message: the decoded JSON object, when a message line.
    """

    percent: float | None = None
    message: dict[str, Any] | None = None


def parse_line(line: str) -> LineEvent | None:
    """Return the report carried by one line of step output, if it carries one.

    ``::progress 40`` (clamped to 0-100) and ``::message {"k": "v"}`` (a JSON
    object; anything else is treated as ordinary output) are recognised.
    """
    text = line.strip()
    if text.startswith(_PROGRESS):
        try:
            value = float(text[len(_PROGRESS) :].strip().rstrip("%"))
        except ValueError:
            return None
        if math.isnan(value):
            return None
        return LineEvent(percent=min(100.0, max(0.0, value)))
    if text.startswith(_MESSAGE):
        try:
            decoded = json.loads(text[len(_MESSAGE) :])
        except ValueError:
            return None
        if isinstance(decoded, dict):
            return LineEvent(message=decoded)
    return None


class Tail:
    """The last lines of a stream, bounded in lines and characters.

    Args:
        lines: lines kept.
        chars: characters kept per line (longer lines are cut).
    """

    def __init__(self, lines: int, chars: int = 4096) -> None:
        self._lines: deque[str] = deque(maxlen=lines)
        self._chars = chars

    def add(self, line: str) -> None:
        """Keep ``line`` (without its newline), dropping the oldest if full."""
        self._lines.append(line.rstrip("\n")[: self._chars])

    def text(self) -> str:
        """Return the kept lines joined by newlines."""
        return "\n".join(self._lines)


def command_argv(run: str | Sequence[str]) -> list[str]:
    """Return the argv of a step's ``run``: a string runs through ``/bin/sh -c``."""
    if isinstance(run, str):
        return ["/bin/sh", "-c", run]
    return list(run)


def cache_key(
    *,
    backend: str,
    image: str | None,
    run: str | Sequence[str],
    env: Mapping[str, str],
    inputs: Mapping[str, str],
    outputs: Iterable[str],
) -> str:
    """Return the step cache key: hex sha256 over everything that decides a step's result.

    Args:
        backend: resolved backend name.
        image: container image, if any.
        run: the command.
        env: the step's own environment variables.
        inputs: input path -> ``sha256:<hex>`` digest of its content.
        outputs: declared output paths (a cached result must hold them all).
    """
    canonical = json.dumps(
        {
            "v": 1,
            "backend": backend,
            "image": image,
            "run": run if isinstance(run, str) else list(run),
            "env": sorted(env.items()),
            "inputs": sorted(inputs.items()),
            "outputs": sorted(outputs),
        },
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(slots=True)
class Schedule:
    """Which steps of a pipeline may start, as steps finish.

    A step is ready when every step it needs succeeded; when a needed step
    did not succeed, its dependants are skipped (``dependency_failed``).
    Steps are offered in the planned ``order`` so stage order is kept among
    ready steps.

    Args:
        spec: the pipeline.
        order: planned stages (steps absent from it are appended in definition order).
    """

    spec: PipelineSpec
    order: Sequence[Sequence[str]] = ()
    done: dict[str, StepOutcome] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)
    _steps: dict[str, StepSpec] = field(default_factory=dict, init=False)
    _ranked: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._steps = {s.name: s for s in self.spec.steps}
        ranked = [name for stage in self.order for name in stage if name in self._steps]
        seen = set(ranked)
        ranked += [s.name for s in self.spec.steps if s.name not in seen]
        self._ranked = list(dict.fromkeys(ranked))

    def step(self, name: str) -> StepSpec:
        """Return the step called ``name``."""
        return self._steps[name]

    def finish(self, name: str, outcome: StepOutcome) -> None:
        """Record that ``name`` ended with ``outcome``."""
        self.running.discard(name)
        self.done[name] = outcome

    def start(self, name: str) -> None:
        """Record that ``name`` started."""
        self.running.add(name)

    def blocked(self) -> list[str]:
        """Return pending steps that can never run because a step they (transitively)
        need did not succeed."""
        doomed = {n for n, outcome in self.done.items() if outcome != "succeeded"}
        out: list[str] = []
        changed = True
        while changed:
            changed = False
            for name in self._ranked:
                if name in self.done or name in self.running or name in out:
                    continue
                if any(n in doomed for n in self._steps[name].needs):
                    doomed.add(name)
                    out.append(name)
                    changed = True
        return [n for n in self._ranked if n in out]

    def ready(self) -> list[str]:
        """Return pending steps whose needs all succeeded, in planned order."""
        out = []
        for name in self._ranked:
            if name in self.done or name in self.running:
                continue
            if all(self.done.get(n) == "succeeded" for n in self._steps[name].needs):
                out.append(name)
        return out

    def complete(self) -> bool:
        """Whether every step has an outcome."""
        return len(self.done) == len(self._steps)

    def pending(self) -> list[str]:
        """Return steps with neither an outcome nor a running execution, in planned order."""
        return [n for n in self._ranked if n not in self.done and n not in self.running]

    def producers(self, name: str) -> list[str]:
        """Return the steps ``name`` transitively needs, nearest first."""
        out: list[str] = []
        queue = deque(self._steps[name].needs)
        while queue:
            dep = queue.popleft()
            if dep in out or dep not in self._steps:
                continue
            out.append(dep)
            queue.extend(self._steps[dep].needs)
        return out

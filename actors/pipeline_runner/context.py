"""What a pipeline run shares with its runner: the run context, breaker views, the outcome.

:class:`RunContext` carries what every run of one runner shares (config,
backends, cache, store, clock, the local breaker view and the report queue);
:class:`Outcome` is how a run ended: a result, or a retry to schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from actors.pipeline_runner.backends import Backends
from actors.pipeline_runner.cache import StepCache
from actors.pipeline_runner.config import RunnerConfig
from actors.pipeline_runner.store import RunStore
from actors.runtime.bus import Bus
from actors.runtime.clock import Clock
from protocols.errors import ErrorClass
from protocols.pipelines import PipelineResult

__all__ = ["BreakerGate", "Outcome", "Reporter", "RunContext", "breaker_keys"]


class BreakerGate(Protocol):
    """The breaker check a runner passes before executing work (a local view)."""

    async def admit(self, key: str) -> bool:
        """Whether work guarded by ``key`` may run now."""
        ...


class Reporter(Protocol):
    """Queues outcome reports for the breaker supervisor."""

    def report(
        self,
        key: str,
        *,
        ok: bool,
        duration_s: float,
        error_class: ErrorClass | None = None,
        report_id: str = "",
    ) -> object:
        """Queue the outcome of one call guarded by ``key``."""
        ...


def breaker_keys(backend: str, image: str | None) -> list[str]:
    """Return the breaker keys guarding a step: its backend, and its image if any."""
    keys = [f"backend:{backend}"]
    if image:
        keys.append(f"image:{image}")
    return keys


@dataclass(slots=True)
class RunContext:
    """What every run of one runner shares."""

    config: RunnerConfig
    backends: Backends
    cache: StepCache
    store: RunStore
    clock: Clock
    gate: BreakerGate | None = None
    reporter: Reporter | None = None
    counters: dict[str, int] = field(default_factory=dict)
    bus: Bus | None = None
    """Publishes steps' live output (none without it)."""

    def count(self, name: str) -> None:
        """Add one to counter ``name`` (reported in ``$SRV.STATS``)."""
        self.counters[name] = self.counters.get(name, 0) + 1


@dataclass(slots=True)
class Outcome:
    """How a run ended: a result, or a retry to schedule."""

    result: PipelineResult
    retry_delay: float | None = None
    retry_step: str = ""

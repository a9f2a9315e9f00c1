"""Step backends and the choice between them.

``local`` runs a subprocess per step, ``dagger`` a container per step, and
``auto`` picks Dagger when an engine is reachable, else local. The probe's
answer is reused for a while so a run does not pay for it on every step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from actors.pipeline_runner.backends.base import (
    Backend,
    BackendUnavailable,
    EventSink,
    OutputSink,
    StepExecution,
    StepRequest,
    StopSignal,
)
from actors.pipeline_runner.backends.dagger import DaggerBackend, EngineProbe
from actors.pipeline_runner.backends.local import LocalBackend
from actors.runtime.clock import Clock, system_clock

__all__ = [
    "Backend",
    "BackendChoice",
    "BackendUnavailable",
    "Backends",
    "DaggerBackend",
    "EventSink",
    "LocalBackend",
    "OutputSink",
    "StepExecution",
    "StepRequest",
    "StopSignal",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BackendChoice:
    """The backend a run or step will use, and why.

    Attributes:
        backend: the backend.
        requested: what was asked for (``auto``, ``local``, ``dagger``).
        note: why this backend (the engine probe's answer for ``auto``).
    """

    backend: Backend
    requested: str
    note: str


class Backends:
    """Resolves backend names, probing the Dagger engine for ``auto``.

    Args:
        local: the local backend.
        dagger: the Dagger backend.
        clock: time source of the probe cache.
        probe_ttl: seconds an engine probe answer is reused.
    """

    def __init__(
        self,
        local: LocalBackend,
        dagger: DaggerBackend,
        *,
        clock: Clock = system_clock,
        probe_ttl: float = 30.0,
    ) -> None:
        self.local = local
        self.dagger = dagger
        self._clock = clock
        self._probe_ttl = probe_ttl
        self._probe: tuple[float, EngineProbe] | None = None

    async def probe(self) -> EngineProbe:
        """Return the (cached) engine probe."""
        now = self._clock.monotonic()
        if self._probe is None or now - self._probe[0] > self._probe_ttl:
            self._probe = (now, await self.dagger.probe())
        return self._probe[1]

    async def choose(self, requested: str) -> BackendChoice:
        """Return the backend for ``requested``.

        ``dagger`` is returned even when no engine is reachable: executing then
        fails the step with an ``unavailable`` reason, which is what was asked.
        """
        if requested == "local":
            return BackendChoice(self.local, requested, "local backend requested")
        if requested == "dagger":
            return BackendChoice(self.dagger, requested, "dagger backend requested")
        probe = await self.probe()
        if probe.reachable:
            return BackendChoice(self.dagger, requested, f"auto: {probe.detail}")
        return BackendChoice(self.local, requested, f"auto: local, {probe.detail}")

    async def close(self) -> None:
        """Close both backends."""
        await self.local.close()
        await self.dagger.close()

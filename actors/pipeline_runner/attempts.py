"""The attempt lifecycle of a run's steps: numbered, persisted before they start, leased.

:class:`StepAttempts` is the one place that decides when a step may execute
and which attempt that is. It owns the run's :class:`RunCheckpoint`:

1. **Intent before execution.** Before a step executes, its attempt number is
   counted in ``step_attempts`` and the step is put in ``in_flight`` - both
   persisted - its step lease is taken (create-only, with the runner id, the
   attempt and the run's fencing token) and kept alive with the run lease, and
   the attempt is announced as started. The three writes are in flight
   together; the step starts once all are stored.
2. **Record and release.** A finished step's result goes into the checkpoint
   and out of ``in_flight`` in one write; its lease is released meanwhile.
3. **Recovery.** A delivery that finds a step still ``in_flight`` knows an
   earlier runner started that attempt and died before recording it (the run
   lease it now holds proves that runner is gone; the step's own lease is waited
   out). The step may have run, so it runs again as the next attempt with reason
   ``runner_lost``, which status events, history and the result all show.
4. **Fencing.** Every checkpoint write is compare-and-set on the revision this
   run last wrote: a runner that lost its run to another cannot overwrite what
   the other recorded. A lost lease or a lost write fences the run: its steps
   are killed at once and nothing more of it is recorded or announced.

Every attempt of a step shares one key, :func:`~protocols.pipelines.step_key`,
given to the step as ``TROUPE_STEP_KEY`` for its external effects' idempotency.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from actors.pipeline_runner.backends import StopSignal
from actors.pipeline_runner.leases import Lease, LeaseHeld, LeaseKeeper, LeaseLost, Leases
from actors.pipeline_runner.store import RunStore
from actors.runtime.clock import Clock
from actors.runtime.errors import Conflict
from actors.runtime.kv import Entry
from actors.runtime.overlap import overlapped
from protocols.pipelines import (
    RunCheckpoint,
    StepAttemptReason,
    StepLease,
    StepResult,
    step_key,
)

__all__ = ["Attempt", "Holder", "StepAttempts"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Holder:
    """Who executes a run: this runner's id, its run lease's fencing token, its keeper.

    Attributes:
        runner: id of this runner process.
        token: revision of the run lease (grows with every new holder).
        leases: the leases bucket (``None`` runs without step leases).
        keeper: renews the run's leases (``None`` with ``leases``).
    """

    runner: str
    token: int = 0
    leases: Leases | None = None
    keeper: LeaseKeeper | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One started attempt of a step.

    Attributes:
        step: step name.
        number: attempt number within the run attempt, from 1.
        reason: why it runs.
        key: the step's stable key (``TROUPE_STEP_KEY``).
        lease: its step lease, when leases are in use.
    """

    step: str
    number: int
    reason: StepAttemptReason
    key: str
    lease: Lease | None = None


class StepAttempts:
    """Owns a run's checkpoint and its steps' attempts (see the module docstring).

    Args:
        workflow_id: the workflow.
        store: the runner's buckets.
        holder: this runner's hold on the run.
        stop: the run's stop signal (fired, immediately, when fenced).
        clock: time source of ``acquired_at``.
    """

    def __init__(
        self, workflow_id: str, store: RunStore, holder: Holder, stop: StopSignal, clock: Clock
    ) -> None:
        self.workflow_id = workflow_id
        self.store = store
        self.holder = holder
        self.stop = stop
        self.clock = clock
        self.checkpoint: RunCheckpoint | None = None
        self.fenced = ""
        """Why this run is fenced (empty while it is not)."""
        self._revision: int | None = None
        self._write = asyncio.Lock()
        self._lost: dict[str, int] = {}
        self._started: dict[str, Attempt] = {}

    # -- checkpoint ------------------------------------------------------------------

    async def load(
        self, attempt: int, *, read: Entry[RunCheckpoint] | Literal[False] | None = False
    ) -> RunCheckpoint | None:
        """Take the stored checkpoint; return it when it belongs to run ``attempt``.

        Args:
            attempt: the run attempt executing.
            read: the checkpoint's entry as already read with the run lease held
                (``False``: read it now).
        """
        entry = await self.store.checkpoint_entry(self.workflow_id) if read is False else read
        if entry is None:
            return None
        self._revision = entry.revision
        return entry.value if entry.value.attempt == attempt else None

    async def save(self) -> None:
        """Write the checkpoint (compare-and-set on the revision last written).

        Raises:
            LeaseLost: another runner wrote it since (this run is fenced).
        """
        async with self._write:
            if self.fenced:
                raise LeaseLost(self.fenced)
            assert self.checkpoint is not None
            try:
                self._revision = await self.store.put_checkpoint(self.checkpoint, self._revision)
            except Conflict:
                self.fence("the checkpoint was written by another runner")
                raise LeaseLost(self.fenced) from None

    def fence(self, why: str) -> None:
        """Stop this run for good: kill its steps now, record and announce nothing more."""
        if not self.fenced:
            self.fenced = f"workflow {self.workflow_id} fenced: {why}"
            log.warning("%s", self.fenced)
        self.stop.stop("cancelled", self.fenced, immediate=True)

    def on_lease_lost(self, lease: Lease, why: str) -> None:
        """:class:`LeaseKeeper` callback: a lost lease fences the run."""
        self.fence(why)

    # -- attempts --------------------------------------------------------------------

    def count(self, name: str) -> int:
        """Attempts of step ``name`` started so far in this run attempt."""
        assert self.checkpoint is not None
        return self.checkpoint.step_attempts.get(name, 0)

    def refused(self, name: str) -> None:
        """Count an attempt refused by an open breaker (bounds breaker-waiting retries)."""
        assert self.checkpoint is not None
        counts = dict(self.checkpoint.step_attempts)
        counts[name] = counts.get(name, 0) + 1
        self.checkpoint = msgspec.structs.replace(self.checkpoint, step_attempts=counts)

    async def recover(self) -> None:
        """Find the attempts an earlier runner started and never recorded (it was lost).

        Waits until their step leases are gone; each such step then runs again
        as its next attempt, with reason ``runner_lost``.
        """
        assert self.checkpoint is not None
        for name, number in sorted(self.checkpoint.in_flight.items()):
            leases = self.holder.leases
            if leases is not None:
                await leases.wait_free(step_key(self.workflow_id, name))
            log.warning(
                "workflow %s: step %s attempt %d was started by a runner that was lost "
                "before recording it; it may have run and runs again as attempt %d "
                "(reason runner_lost)",
                self.workflow_id,
                name,
                number,
                self.count(name) + 1,
            )
            self._lost[name] = number
        if self._lost:
            left = {k: v for k, v in self.checkpoint.in_flight.items() if k not in self._lost}
            self.checkpoint = msgspec.structs.replace(self.checkpoint, in_flight=left)

    def lost(self, name: str) -> bool:
        """Whether an attempt of ``name`` was lost with its runner (and not yet redone)."""
        return name in self._lost

    async def begin(
        self,
        name: str,
        *,
        backend: str = "",
        announce: Callable[[int, StepAttemptReason], Awaitable[None]] | None = None,
    ) -> Attempt:
        """Start the next attempt of ``name``: persist the intent, take its lease, announce it.

        The three writes are in flight together; the attempt is returned (and the step
        may start) only once all are stored, so every execution is both recorded as
        intended and reported as started.

        Args:
            name: the step.
            backend: the backend that executes it (written in its lease).
            announce: announces the attempt as started, given its number and reason.

        Raises:
            LeaseLost: this run is fenced.
            Exception: the announcement failed (the intent stays: the step runs again
                as ``runner_lost`` on the next delivery, like an attempt whose runner died).
        """
        assert self.checkpoint is not None
        number = self.count(name) + 1
        reason: StepAttemptReason = (
            "runner_lost" if name in self._lost else "retry" if number > 1 else "first"
        )
        counts = dict(self.checkpoint.step_attempts)
        counts[name] = number
        flight = dict(self.checkpoint.in_flight)
        flight[name] = number
        self.checkpoint = msgspec.structs.replace(
            self.checkpoint, step_attempts=counts, in_flight=flight
        )
        key = step_key(self.workflow_id, name)
        writes: list[Awaitable[Any]] = [self.save(), self._lease(key, number, backend)]
        if announce is not None:
            writes.append(announce(number, reason))
        saved, lease, *announced = await asyncio.gather(*writes, return_exceptions=True)
        failed = next((x for x in (saved, lease, *announced) if isinstance(x, BaseException)), None)
        if failed is not None:
            if isinstance(lease, Lease):
                await self._release(lease)
            raise failed
        held = lease if isinstance(lease, Lease) else None
        attempt = Attempt(step=name, number=number, reason=reason, key=key, lease=held)
        self._started[name] = attempt
        return attempt

    async def _lease(self, key: str, number: int, backend: str) -> Lease | None:
        holder = self.holder
        if holder.leases is None:
            return None
        value = StepLease(
            workflow_id=self.workflow_id,
            runner=holder.runner,
            token=holder.token,
            step=key.removeprefix(f"{self.workflow_id}."),
            attempt=number,
            acquired_at=self.clock.time(),
            host=socket.gethostname(),
            backend=backend,
        )
        while True:
            try:
                lease = await holder.leases.acquire(key, value)
            except LeaseHeld as exc:
                # Only a lost runner's lease can be left: it expires within one TTL.
                log.info("workflow %s: %s; waiting for it to expire", self.workflow_id, exc)
                await holder.leases.wait_free(key)
                continue
            if holder.keeper is not None:
                holder.keeper.hold(lease)
            return lease

    def attempt_of(self, name: str) -> Attempt | None:
        """The attempt of ``name`` started by this delivery, if any."""
        return self._started.get(name)

    async def finish(self, result: StepResult) -> None:
        """Record a finished step (out of ``in_flight``) while its lease is released.

        Raises:
            LeaseLost: this run is fenced.
        """
        assert self.checkpoint is not None
        steps = [s for s in self.checkpoint.steps if s.name != result.name] + [result]
        flight = {k: v for k, v in self.checkpoint.in_flight.items() if k != result.name}
        self.checkpoint = msgspec.structs.replace(self.checkpoint, steps=steps, in_flight=flight)
        attempt = self._started.pop(result.name, None)
        if attempt is not None and attempt.lease is not None:
            # The step is over: its lease goes while its result is written.
            await overlapped(self.save(), self._release(attempt.lease))
        else:
            await self.save()
        self._lost.pop(result.name, None)

    async def _release(self, lease: Lease) -> None:
        holder = self.holder
        if holder.keeper is not None:
            holder.keeper.drop(lease)
        if holder.leases is not None:
            await holder.leases.release(lease)

    async def abandon(self) -> None:
        """Stop renewing the step leases still held (they expire on their own)."""
        for attempt in self._started.values():
            if attempt.lease is not None and self.holder.keeper is not None:
                self.holder.keeper.drop(attempt.lease)

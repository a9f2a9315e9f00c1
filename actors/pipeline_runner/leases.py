"""Run and step leases: who executes a workflow, or one of its steps, right now.

A lease is a key of the leases bucket (:data:`~protocols.pipelines.LEASES_BUCKET`)
written create-only with a per-key TTL, holding a
:class:`~protocols.pipelines.StepLease` (runner id, step attempt, fencing
token). Its holder renews it (an update at the revision it last wrote, with a
fresh TTL) every third of the TTL, so a lease outlives its holder by at most
one TTL: a runner that dies, even by SIGKILL, lets its leases expire on their
own, and a restarted nats-server keeps counting their TTL.

* :meth:`Leases.acquire` fails with :class:`LeaseHeld` while another holder's
  lease is live: a second delivery of a run waits instead of executing.
* :class:`LeaseKeeper` renews every lease of one run in one task. A renewal
  that finds the key moved on (someone else holds it now), or that could not
  be written for over half a TTL (the server was unreachable), means the lease is
  lost: the keeper calls its ``on_lost`` callback, which fences the run (its
  steps are killed at once and nothing more it writes is accepted). A holder
  gives up 0.6 TTL after its last successful renewal, before the lease can
  expire, so two holders never run side by side.
* The fencing token of a run is the revision of its run lease: every new holder
  gets a larger one, and step leases carry it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import nats.errors

from actors.runtime.clock import Clock
from actors.runtime.errors import Conflict, NotFound, RequestError
from actors.runtime.kv import TypedBucket
from protocols.pipelines import StepLease

__all__ = ["Lease", "LeaseHeld", "LeaseKeeper", "LeaseLost", "Leases"]

log = logging.getLogger(__name__)

_TRANSIENT = (nats.errors.Error, OSError, RequestError, asyncio.TimeoutError)
"""Errors of a lease write that say nothing about the lease (the bus is down)."""

_GIVE_UP = 0.6
"""Fraction of the TTL after the last successful renewal at which a holder gives up."""


def _cause(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class LeaseHeld(Exception):
    """Another holder's lease on the key is live.

    Attributes:
        holder: the live lease (``None`` if it ended while being read).
    """

    def __init__(self, key: str, holder: StepLease | None) -> None:
        who = f"runner {holder.runner} (token {holder.token})" if holder else "another runner"
        super().__init__(f"lease {key} is held by {who}")
        self.holder = holder


class LeaseLost(Exception):
    """A lease this runner held is no longer its own (expired or taken over)."""


@dataclass(slots=True)
class Lease:
    """A lease this runner holds.

    Attributes:
        key: its key in the leases bucket.
        value: what it says.
        revision: revision last written (renewals are compare-and-set on it).
        renewed_at: monotonic time the last successful write was sent.
    """

    key: str
    value: StepLease
    revision: int
    renewed_at: float


class Leases:
    """Acquire, renew and release leases in the leases bucket.

    Args:
        bucket: the leases bucket.
        ttl: seconds a lease lives unless renewed (whole seconds, at least 1).
        clock: real-time clock (the server measures the TTL in real time).
    """

    def __init__(self, bucket: TypedBucket[StepLease], *, ttl: float, clock: Clock) -> None:
        if ttl < 1:
            raise ValueError("lease ttl must be at least 1 second")
        self.bucket = bucket
        self.ttl = float(int(ttl))
        self.clock = clock

    async def holder(self, key: str) -> StepLease | None:
        """Return the live lease on ``key``, if any."""
        entry = await self.bucket.get_or_none(key)
        return entry.value if entry is not None else None

    async def acquire(self, key: str, value: StepLease) -> Lease:
        """Take the lease on ``key`` (create-only, with the TTL).

        Raises:
            LeaseHeld: another holder's lease is live.
        """
        sent = self.clock.monotonic()
        try:
            revision = await self.bucket.create(key, value, ttl=self.ttl)
        except Conflict:
            raise LeaseHeld(key, await self.holder(key)) from None
        return Lease(key=key, value=value, revision=revision, renewed_at=sent)

    async def renew(self, lease: Lease) -> None:
        """Extend ``lease`` by one TTL.

        Raises:
            LeaseLost: the key moved on (expired, or someone else holds it).
        """
        sent = self.clock.monotonic()
        try:
            lease.revision = await self.bucket.update(
                lease.key, lease.value, lease.revision, ttl=self.ttl
            )
        except (Conflict, NotFound) as exc:
            raise LeaseLost(f"lease {lease.key} lost: {_cause(exc)}") from None
        lease.renewed_at = sent

    async def release(self, lease: Lease) -> None:
        """Give ``lease`` up (only if still this holder's); failures are logged."""
        try:
            await self.bucket.delete(lease.key, revision=lease.revision)
        except Conflict:
            log.info("lease %s was no longer ours when released", lease.key)
        except _TRANSIENT as exc:
            # It expires on its own within one TTL.
            log.warning("lease %s not released (expires by itself): %s", lease.key, _cause(exc))

    async def wait_free(self, key: str, *, poll: float | None = None) -> None:
        """Wait until nobody holds ``key`` (released, or expired with its holder)."""
        interval = poll if poll is not None else max(0.2, self.ttl / 4)
        while True:
            try:
                if await self.holder(key) is None:
                    return
            except _TRANSIENT as exc:
                log.info("lease %s unreadable, waiting: %s", key, _cause(exc))
            await self.clock.sleep(interval)


class LeaseKeeper:
    """Renews the leases of one run until stopped; reports a lease that is lost.

    Args:
        leases: the bucket access.
        on_lost: called once per lost lease with the lease and why.
    """

    def __init__(self, leases: Leases, on_lost: Callable[[Lease, str], None]) -> None:
        self._leases = leases
        self._on_lost = on_lost
        self._held: dict[str, Lease] = {}
        self._task: asyncio.Task[None] | None = None

    def hold(self, lease: Lease) -> None:
        """Keep ``lease`` alive from now on."""
        self._held[lease.key] = lease

    def drop(self, lease: Lease) -> None:
        """Stop renewing ``lease``."""
        self._held.pop(lease.key, None)

    def start(self) -> None:
        """Start renewing (every third of the TTL)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="lease-keeper")

    async def stop(self) -> None:
        """Stop renewing (the leases stay until released or expired)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        leases = self._leases
        ttl = leases.ttl
        while True:
            await leases.clock.sleep(ttl / 8)
            for lease in list(self._held.values()):
                silent = leases.clock.monotonic() - lease.renewed_at
                if silent > ttl * _GIVE_UP:
                    # A later renewal might land after expiry: give the lease up
                    # (and stop what it guards) before anyone else can take it.
                    self._lost(lease, f"lease {lease.key} not renewed for {silent:.1f}s")
                    continue
                if silent < ttl / 3:
                    continue
                try:
                    await asyncio.wait_for(leases.renew(lease), ttl / 4)
                except LeaseLost as exc:
                    self._lost(lease, str(exc))
                except _TRANSIENT as exc:
                    log.warning("lease %s not renewed yet: %s", lease.key, _cause(exc))

    def _lost(self, lease: Lease, why: str) -> None:
        self._held.pop(lease.key, None)
        log.warning("%s", why)
        self._on_lost(lease, why)

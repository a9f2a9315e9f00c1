"""Continuous pull of a durable JetStream consumer: one open pull request, sized to free slots.

nats-py's ``fetch`` costs a task, a UUID and a timed wait per message, and
often two pull requests per call; a consumer whose messages trickle in pays
that for nearly every message. A :class:`Puller` keeps at most one pull
request open on a private inbox, asking for as many messages as its consumer
has free handler slots, and hands each message over as it arrives. A new
request is sent only when the open one is used up or has ended: expired
(status ``408``), or refused or cut short (any other status, e.g. ``409`` on a
leadership change). So a consumer that is not saturated sends about one pull
request per ``expires`` interval however many messages arrive in between; a
saturated one sends one per freed slot. The wire protocol is JetStream's own
(``$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>`` with ``batch`` and
``expires``), and acknowledgement stays with the consumer.

A request that neither fills nor ends within ``expires`` plus a margin (lost
in a reconnect or a server restart) is given up and a new one sent; should
the lost one deliver after all, its messages are handed over too: the slot
bound is briefly exceeded, no message is dropped. A request that ends with an
error status without delivering anything backs off before the next one
(0.1 s doubling up to 5 s), so a deleted consumer is not polled in a hot loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import Header

from actors.runtime.cancellation import cancel_and_wait
from actors.runtime.clock import Clock, system_clock, wait_tasks

__all__ = ["Puller"]

log = logging.getLogger(__name__)

_LOST_MARGIN = 1.0
"""Seconds past its expiry after which an open request that never ended counts as lost."""

_EXPIRED = "408"
_HEARTBEAT = "100"


class Puller:
    """Pulls a durable consumer's messages and hands them to ``deliver`` (module docstring).

    Args:
        nc: the connection.
        api_prefix: the JetStream API prefix (``$JS.API`` unless a domain is used).
        stream: the stream's name.
        durable: the durable consumer's name.
        capacity: messages handed over and not yet :meth:`done` at most (the
            consumer's handler slots).
        expires: seconds an open request waits for messages before the server ends it.
        deliver: called with every message, in arrival order; the consumer
            calls :meth:`done` once for each when it is settled.
        clock: time source of the lost-request deadline and the back-off.
    """

    def __init__(
        self,
        nc: Client,
        *,
        api_prefix: str,
        stream: str,
        durable: str,
        capacity: int,
        expires: float,
        deliver: Callable[[Msg], None],
        clock: Clock = system_clock,
    ) -> None:
        self.requests = 0
        """Pull requests sent so far."""
        self._nc = nc
        self._subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._capacity = capacity
        self._expires = expires
        self._deliver = deliver
        self._clock = clock
        self._stream = stream
        self._open = 0
        """Messages the open request may still bring (0: no request open)."""
        self._open_delivered = 0
        self._deadline = 0.0
        self._handed = 0
        """Messages handed over and not yet done."""
        self._failures = 0
        self._wake = asyncio.Event()
        self._ended = asyncio.Event()
        self._ended.set()
        self._stopping = False
        self._inbox = ""
        self._sub: Subscription | None = None
        self._loop: asyncio.Task[None] | None = None

    @property
    def handed(self) -> int:
        """Messages handed over and not yet done."""
        return self._handed

    async def start(self) -> None:
        """Subscribe the private inbox and start pulling."""
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_msg)
        self._loop = asyncio.create_task(self._run(), name=f"pull-{self._subject}")

    def done(self) -> None:
        """Count one handed-over message as settled; its slot is free again."""
        self._handed -= 1
        if self._open == 0:
            self._wake.set()

    async def stop(self) -> None:
        """Send no more requests; let the open one end (what it brings is still handed
        over, for the consumer to hand back), then unsubscribe."""
        self._stopping = True
        loop, self._loop = self._loop, None
        if loop is not None:
            await cancel_and_wait(loop)
        if self._open:
            waiter = asyncio.ensure_future(self._ended.wait())
            try:
                left = max(0.0, self._deadline - self._clock.monotonic())
                await wait_tasks({waiter}, left, self._clock)
            finally:
                waiter.cancel()
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError, OSError):
                await sub.unsubscribe()

    async def _on_msg(self, msg: Msg) -> None:
        headers = msg.headers
        if not msg.data and headers and Header.STATUS in headers:
            status = headers[Header.STATUS]
            if status != _HEARTBEAT:
                self._request_ended(status, headers.get(Header.DESCRIPTION, ""))
            return
        if self._open:
            self._open -= 1
            self._open_delivered += 1
            if self._open == 0:
                self._failures = 0
                self._ended.set()
                self._wake.set()
        self._handed += 1
        self._deliver(msg)

    def _request_ended(self, status: str, description: str) -> None:
        if status == _EXPIRED or self._open_delivered:
            self._failures = 0
        else:
            self._failures += 1
            log.warning(
                "pull from %s ended: %s %s", self._stream, status, description or "(no reason)"
            )
        self._open = 0
        self._ended.set()
        self._wake.set()

    async def _run(self) -> None:
        backed_off = False
        while not self._stopping:
            free = self._capacity - self._handed
            if self._open == 0 and free > 0:
                if self._failures and not backed_off:
                    await self._clock.sleep(min(0.1 * 2**self._failures, 5.0))
                    backed_off = True
                    continue  # stopping, or slots taken, meanwhile?
                backed_off = False
                await self._request(free)
            self._wake.clear()
            if self._open == 0:
                await self._wake.wait()
                continue
            waiter = asyncio.ensure_future(self._wake.wait())
            try:
                left = self._deadline - self._clock.monotonic()
                late = await wait_tasks({waiter}, max(0.0, left), self._clock)
            finally:
                waiter.cancel()
            if late and self._open and self._clock.monotonic() >= self._deadline:
                log.debug("pull from %s never ended; sending a new one", self._stream)
                self._open = 0
                self._ended.set()

    async def _request(self, batch: int) -> None:
        expires_ns = int(self._expires * 1e9)
        self._open, self._open_delivered = batch, 0
        self._ended.clear()
        self._deadline = self._clock.monotonic() + self._expires + _LOST_MARGIN
        self.requests += 1
        try:
            await self._nc.publish(
                self._subject,
                b'{"batch":%d,"expires":%d}' % (batch, expires_ns),
                reply=self._inbox,
            )
        except (nats.errors.Error, OSError) as exc:
            self._open = 0
            self._ended.set()
            self._failures += 1
            log.warning("pull from %s not sent: %s", self._stream, str(exc) or type(exc).__name__)

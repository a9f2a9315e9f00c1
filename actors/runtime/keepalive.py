"""Keeping the messages a consumer is handling from redelivery, from one task per consumer.

A JetStream message not acknowledged within the consumer's ``ack_wait`` is
delivered again. A handler that runs longer than that keeps its message with
``in_progress`` (``+WPI``), which restarts the server's timer. Rather than a
timer task per message (created and cancelled for every message, although
almost every handler ends long before the first tick), a consumer has one
:class:`KeepAlive`: handlers :meth:`~KeepAlive.hold` their message while they
run, and one task wakes every half interval and sends ``in_progress`` for each
message held for an interval or more since it was last touched. A message is
therefore touched at most 1.5 intervals apart; the interval is a third of
``ack_wait``. With nothing held, the task sleeps until something is.
"""

from __future__ import annotations

import asyncio
import logging

import nats.errors
from nats.aio.msg import Msg

from actors.runtime.clock import Clock, system_clock

__all__ = ["KeepAlive", "keep_alive_interval"]

log = logging.getLogger(__name__)


def keep_alive_interval(ack_wait: float) -> float:
    """Seconds between two ``in_progress`` of one message: a third of ``ack_wait``, at least 0.5."""
    return max(0.5, ack_wait / 3)


class KeepAlive:
    """Sends ``in_progress`` for the held messages that run long (see the module docstring).

    Args:
        interval: seconds between two touches of one message.
        clock: time source of the ticks.
    """

    def __init__(self, interval: float, clock: Clock = system_clock) -> None:
        self.interval = interval
        self._clock = clock
        self._held: dict[int, tuple[Msg, float]] = {}
        self._busy = asyncio.Event()
        self.touched = 0
        """``in_progress`` sent so far."""

    def hold(self, msg: Msg) -> None:
        """Keep ``msg`` from redelivery until :meth:`release`."""
        self._held[id(msg)] = (msg, self._clock.monotonic())
        if not self._busy.is_set():
            self._busy.set()

    def release(self, msg: Msg) -> None:
        """Stop touching ``msg`` (its handler ended)."""
        self._held.pop(id(msg), None)

    async def run(self) -> None:
        """Touch the long-running messages until cancelled."""
        while True:
            if not self._held:
                self._busy.clear()
                await self._busy.wait()
            await self._clock.sleep(self.interval / 2)
            now = self._clock.monotonic()
            due = [msg for msg, since in self._held.values() if now - since >= self.interval]
            for msg in due:
                if id(msg) not in self._held:
                    continue  # released while an earlier touch was being sent
                self._held[id(msg)] = (msg, now)
                self.touched += 1
                try:
                    await msg.in_progress()
                except (nats.errors.Error, OSError) as exc:
                    log.debug("in_progress not sent: %s", exc)

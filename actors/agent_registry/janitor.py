"""Bounded inbox retention: dead-letter messages that waited too long for an absent agent.

A message to an agent waits in the inbox stream while the agent is away. An
agent that returns dead-letters what is older than the retention itself (see
:mod:`actors.sdk.agent`); for an agent that never returns, the registry's
:class:`InboxJanitor` walks the inbox stream from its oldest message, and for
each message older than the retention whose agent is absent and whose durable
consumer never acknowledged it, copies it to the dead-letter subject with a
reason and removes it from the inbox.
"""

from __future__ import annotations

import logging

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext

from actors.agent_registry.state import AgentIndex
from actors.runtime.clock import Clock
from protocols import headers as h
from protocols.agents import INBOX_STREAM, INBOX_SUBJECTS, inbox_durable
from protocols.errors import dead_letter_subject

__all__ = ["InboxJanitor"]

log = logging.getLogger(__name__)

_INBOX_PREFIX = INBOX_SUBJECTS.rstrip(">")


class InboxJanitor:
    """Dead-letters inbox messages of absent agents once they outlive the retention.

    Args:
        js: JetStream context.
        index: the registry's live index (present agents handle their own inbox).
        retention_s: seconds a message may wait.
        clock: wall-clock source.
        batch: most messages examined per sweep.
    """

    def __init__(
        self,
        js: JetStreamContext,
        index: AgentIndex,
        *,
        retention_s: float,
        clock: Clock,
        batch: int = 10_000,
    ) -> None:
        self._js = js
        self._index = index
        self._retention_s = retention_s
        self._clock = clock
        self._batch = batch
        self._cursor = 0
        self.dead_lettered = 0

    async def run(self, interval: float) -> None:
        """Sweep every ``interval`` seconds until cancelled."""
        while True:
            await self._clock.sleep(interval)
            try:
                await self.sweep()
            except (nats.errors.Error, OSError) as exc:
                log.warning("inbox janitor: sweep failed: %s", exc)

    async def sweep(self) -> int:
        """Examine messages past the retention once; return how many were dead-lettered."""
        info = await self._js.stream_info(INBOX_STREAM)
        seq = max(self._cursor, info.state.first_seq, 1)
        cutoff = self._clock.time() - self._retention_s
        floors: dict[str, int] = {}
        resume: int | None = None
        count = 0
        for _ in range(self._batch):
            if seq > info.state.last_seq:
                break
            try:
                msg = await self._js.get_msg(
                    INBOX_STREAM, seq=seq, subject=INBOX_SUBJECTS, next=True
                )
            except nats.js.errors.NotFoundError:
                break
            assert msg.seq is not None
            assert msg.subject is not None
            if msg.time is None or msg.time.timestamp() > cutoff:
                break
            seq = msg.seq + 1
            agent_id = msg.subject[len(_INBOX_PREFIX) :]
            if agent_id not in floors:
                floors[agent_id] = await self._ack_floor(agent_id)
            if msg.seq <= floors[agent_id]:
                continue
            if agent_id in self._index:
                # A present agent dead-letters stale messages itself when it takes them.
                resume = msg.seq if resume is None else resume
                continue
            await self._dead_letter(msg.subject, msg.seq, msg.data or b"", msg.headers or {})
            count += 1
        self._cursor = resume if resume is not None else seq
        self.dead_lettered += count
        return count

    async def _ack_floor(self, agent_id: str) -> int:
        try:
            info = await self._js.consumer_info(INBOX_STREAM, inbox_durable(agent_id))
        except nats.js.errors.NotFoundError:
            return 0
        return int(info.ack_floor.stream_seq) if info.ack_floor else 0

    async def _dead_letter(
        self, subject: str, seq: int, data: bytes, headers: dict[str, str]
    ) -> None:
        out = dict(headers)
        out.pop(h.MSG_ID, None)
        out[h.DEAD_LETTER_REASON] = (
            f"agent absent: not delivered within the inbox retention of {self._retention_s:g}s"
        )
        out[h.DEAD_LETTER_SUBJECT] = subject
        out[h.DEAD_LETTER_STREAM] = INBOX_STREAM
        await self._js.publish(dead_letter_subject(INBOX_STREAM), data, headers=out)
        await self._js.delete_msg(INBOX_STREAM, seq)
        log.warning("inbox janitor: dead-lettered %s seq %d", subject, seq)

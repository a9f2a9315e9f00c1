"""The last lines each running step printed, kept from the runners' live output.

The runners publish every line a step prints on
:data:`~protocols.pipelines.LOGS_SUBJECTS` (core NATS, not stored); a step's
result keeps only the tails once it ends. So that ``get_logs`` can answer for
a step that is still running, the gateway follows those subjects and keeps,
per step, its latest attempt's last :attr:`LogTails.lines` lines of each
stream, for at most :attr:`LogTails.steps` steps (the least recently written
are forgotten first). Lines printed while no gateway listened are not there.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from actors.runtime.bus import Bus
from actors.runtime.codec import Codec, encoding_of
from actors.runtime.errors import BadRequest
from protocols.pipelines import LOGS_SUBJECTS, StepOutput

__all__ = ["LINES", "STEPS", "LogTails", "StepTail"]

LINES = 200
"""Lines kept per step and stream."""

STEPS = 1024
"""Steps whose lines are kept."""


@dataclass(slots=True)
class StepTail:
    """What one step printed so far in its latest attempt.

    Attributes:
        attempt: the attempt the lines belong to.
        stdout: its last standard output lines.
        stderr: its last standard error lines.
        dropped: lines the runner or this tail left out (rate bound, tail size).
    """

    attempt: int
    stdout: deque[str]
    stderr: deque[str]
    dropped: int = 0

    def text(self, stream: str) -> str:
        """Return one stream's lines joined, each ending in a newline."""
        lines = self.stdout if stream == "stdout" else self.stderr
        return "".join(f"{line}\n" for line in lines)


@dataclass
class LogTails:
    """Follows the live output of every step and keeps a bounded tail of each.

    Args:
        lines: lines kept per step and stream.
        steps: steps kept.
    """

    lines: int = LINES
    steps: int = STEPS
    _tails: OrderedDict[tuple[str, str], StepTail] = field(default_factory=OrderedDict)
    _sub: Subscription | None = None
    _codec: Codec[StepOutput] = field(default_factory=lambda: Codec.of(StepOutput))

    async def start(self, bus: Bus) -> None:
        """Subscribe to every step's live output."""
        self._sub = await bus.nc.subscribe(LOGS_SUBJECTS, cb=self._on_msg)

    async def stop(self) -> None:
        """Unsubscribe."""
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _on_msg(self, msg: Msg) -> None:
        try:
            out = self._codec.decode(msg.data, encoding_of(msg.headers))
        except BadRequest:
            return
        self.add(out)

    def add(self, out: StepOutput) -> None:
        """Keep one printed line (a later attempt starts the step's tail afresh)."""
        key = (out.workflow_id, out.step)
        tail = self._tails.get(key)
        if tail is None or out.attempt > tail.attempt:
            tail = StepTail(out.attempt, deque(maxlen=self.lines), deque(maxlen=self.lines))
            self._tails[key] = tail
        elif out.attempt < tail.attempt:
            return
        self._tails.move_to_end(key)
        lines = tail.stdout if out.stream == "stdout" else tail.stderr
        if len(lines) == lines.maxlen:
            tail.dropped += 1
        lines.append(out.line)
        tail.dropped += out.dropped
        while len(self._tails) > self.steps:
            self._tails.popitem(last=False)

    def tail(self, workflow_id: str, step: str) -> StepTail | None:
        """Return what ``step`` of ``workflow_id`` printed so far, if anything was seen."""
        return self._tails.get((workflow_id, step))

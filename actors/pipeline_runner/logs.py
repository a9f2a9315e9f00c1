"""Live step output: each line a running step prints, published as it is read.

:class:`LogPublisher` takes the lines of one step attempt from the backend
(synchronously, never blocking the pipe reader) and publishes each as a JSON
:class:`~protocols.pipelines.StepOutput` on
:func:`~protocols.pipelines.logs_subject` from a single task, started with the
first line (a step that prints nothing costs no task). It is bounded:

* a line is cut to ``max_line`` characters;
* a token bucket admits ``rate`` lines per second (bursts of ``burst``);
  lines over it are dropped and counted in the next published line's
  ``dropped``;
* at most ``backlog`` lines wait to be published; more are dropped the same way.

Nothing is stored: the stored result keeps each step's last lines. A
publish that fails (the bus is down) loses that line and is logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Literal

from actors.runtime.bus import Bus
from actors.runtime.clock import Clock
from protocols import headers as h
from protocols.pipelines import StepOutput, logs_subject

__all__ = ["LogPublisher"]

log = logging.getLogger(__name__)


class LogPublisher:
    """Publishes one step attempt's output lines live (see the module docstring).

    Args:
        bus: a connected bus.
        workflow_id: the workflow.
        step: the step.
        attempt: the step attempt.
        clock: time source (line times and the rate bound).
        rate: lines per second published at most, on average.
        burst: lines published at once at most.
        backlog: lines waiting to be published at most.
        max_line: characters of a line published at most.
    """

    def __init__(
        self,
        bus: Bus,
        workflow_id: str,
        step: str,
        attempt: int,
        *,
        clock: Clock,
        rate: float = 200.0,
        burst: int = 500,
        backlog: int = 1000,
        max_line: int = 4096,
    ) -> None:
        self._bus = bus
        self._subject = logs_subject(workflow_id, step)
        self._ids = (workflow_id, step, attempt)
        self._clock = clock
        self._rate = rate
        self._burst = burst
        self._backlog = backlog
        self._max_line = max_line
        self._tokens = float(burst)
        self._refilled = clock.monotonic()
        self._queue: asyncio.Queue[StepOutput | None] = asyncio.Queue()
        self._seq = 0
        self._dropped = 0
        self._failed = False
        self._task: asyncio.Task[None] | None = None
        self._open = False
        self.published = 0
        """Lines published so far."""
        self.dropped = 0
        """Lines dropped so far (over the rate or the queue bound)."""

    def start(self) -> LogPublisher:
        """Take lines from now on (the publishing task starts with the first); return ``self``."""
        self._open = True
        if self._task is None and not self._queue.empty():
            self._task = asyncio.create_task(self._run(), name=f"logs {self._subject}")
        return self

    def line(self, stream: Literal["stdout", "stderr"], text: str) -> None:
        """Take one line (an :data:`~actors.pipeline_runner.backends.OutputSink`)."""
        now = self._clock.monotonic()
        self._tokens = min(float(self._burst), self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        if self._tokens < 1.0 or self._queue.qsize() >= self._backlog:
            self._dropped += 1
            self.dropped += 1
            return
        self._tokens -= 1.0
        self._seq += 1
        workflow_id, step, attempt = self._ids
        self._queue.put_nowait(
            StepOutput(
                workflow_id=workflow_id,
                step=step,
                attempt=attempt,
                stream=stream,
                line=text[: self._max_line],
                seq=self._seq,
                at=self._clock.time(),
                dropped=self._dropped,
            )
        )
        self._dropped = 0
        if self._task is None and self._open:
            self._task = asyncio.create_task(self._run(), name=f"logs {self._subject}")

    async def close(self, timeout: float = 2.0) -> None:
        """Publish what waits (within ``timeout`` seconds), then stop."""
        self._open = False
        task, self._task = self._task, None
        if task is None:
            return
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while (item := await self._queue.get()) is not None:
            try:
                await self._bus.publish(self._subject, item, encoding=h.JSON)
                self.published += 1
            except Exception as exc:  # noqa: BLE001 - live output is best effort
                if not self._failed:
                    self._failed = True
                    log.warning("%s: live output not published: %s", self._subject, exc)

"""Small actors the runtime tests run on a real server.

``Echo`` answers requests; ``make_worker`` builds a stream-consuming actor
whose consumer options and handler behaviour each test chooses. Also runnable
as a process (``python -m tests.actors.runtime.workers URL GRACE ACK_WAIT``)
for tests that kill or signal it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from actors.runtime import (
    Actor,
    BadRequest,
    ConnectionConfig,
    MessageContext,
    NotFound,
    RequestContext,
    StreamSpec,
    consumer,
    endpoint,
)
from protocols.base import Message

ECHO_SUBJECT = "test.echo"
JOBS_SUBJECT = "test.jobs"
STARTED_SUBJECT = "test.started"

JOBS = StreamSpec(name="TEST_JOBS", subjects=(JOBS_SUBJECT,), retention="workqueue")


class Ping(Message, tag="troupe.test.v1.ping"):
    """A request the echo actor answers."""

    n: int
    mode: str = "ok"


class Pong(Message, tag="troupe.test.v1.pong"):
    """The echo actor's answer."""

    n: int


class Job(Message, tag="troupe.test.v1.job"):
    """A stream message for the worker actors."""

    id: str


class Echo(Actor):
    """Answers :class:`Ping` with :class:`Pong`; ``mode`` picks a failure."""

    name = "echo"

    @endpoint(ECHO_SUBJECT)
    async def echo(self, request: Ping, ctx: RequestContext) -> Pong:
        """Echo ``n``, or fail as ``mode`` says."""
        if request.mode == "missing":
            raise NotFound(f"no thing {request.n}")
        if request.mode == "bad":
            raise BadRequest("n is odd", details={"field": "n"})
        if request.mode == "crash":
            raise RuntimeError("secret internal detail")
        if request.mode == "slow":
            await asyncio.sleep(0.5)
        return Pong(n=request.n)


Behaviour = Callable[[Job, MessageContext], Awaitable[None]]


async def _ack(job: Job, ctx: MessageContext) -> None:
    """Default behaviour: succeed at once."""


def make_worker(behaviour: Behaviour = _ack, **options: Any) -> Actor:
    """Return a worker actor consuming :data:`JOBS` with ``options`` (see ConsumerSpec).

    Args:
        behaviour: what the handler does with each job.
        options: consumer options (``durable`` defaults to ``"workers"``).
    """
    options.setdefault("durable", "workers")

    class Worker(Actor):
        name = "worker"

        @consumer(JOBS, **options)
        async def handle(self, job: Job, ctx: MessageContext) -> None:
            await behaviour(job, ctx)

    return Worker()


async def _serve_blocking_worker(url: str, grace: float, ack_wait: float) -> None:
    """Run a worker whose handler announces each job, then never returns."""
    worker: Actor

    async def block(job: Job, ctx: MessageContext) -> None:
        await worker.bus.nc.publish(STARTED_SUBJECT, job.id.encode())
        await asyncio.Event().wait()

    worker = make_worker(block, ack_wait=ack_wait)
    worker.grace = grace
    await worker.serve(ConnectionConfig(url=url, connect_timeout=5.0))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    url, grace, ack_wait = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    asyncio.run(_serve_blocking_worker(url, grace, ack_wait))

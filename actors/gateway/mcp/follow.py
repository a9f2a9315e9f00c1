"""Following one workflow until it ends: pushed views, with a poll as a safety net.

The status tracker announces each applied change on
``troupe.status.updates.<id>`` (fire-and-forget); a query every ``poll_s``
seconds covers announcements missed while it restarted. A workflow just
submitted may not be known yet, so "not found" is tolerated for a short grace
period.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from nats.aio.msg import Msg

from actors.gateway.services import Services
from actors.runtime.codec import Codec, encoding_of
from actors.runtime.errors import BadRequest, NotFound
from protocols.status import TERMINAL_STATES, WorkflowView, update_subject

__all__ = ["follow_views", "newer"]

_CODEC: Codec[WorkflowView] = Codec.of(WorkflowView)


def newer(candidate: WorkflowView, latest: WorkflowView | None) -> bool:
    """Whether ``candidate`` is a later view than ``latest``."""
    if latest is None:
        return True
    return (candidate.events, candidate.updated_at) > (latest.events, latest.updated_at)


async def follow_views(
    services: Services,
    workflow_id: str,
    *,
    timeout: float,
    poll_s: float = 1.0,
    unknown_grace_s: float = 10.0,
) -> AsyncIterator[WorkflowView]:
    """Yield each newer view of a workflow until a terminal one or ``timeout`` seconds.

    Raises:
        NotFound: the tracker did not know the workflow within ``unknown_grace_s``.
        BadRequest: the id cannot name a workflow.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + timeout
    updates: asyncio.Queue[WorkflowView] = asyncio.Queue()

    async def on_update(msg: Msg) -> None:
        with contextlib.suppress(BadRequest):
            updates.put_nowait(_CODEC.decode(msg.data, encoding_of(msg.headers)))

    sub = await services.bus.nc.subscribe(update_subject(workflow_id), cb=on_update)
    latest: WorkflowView | None = None
    next_poll = loop.time()
    try:
        while latest is None or latest.state not in TERMINAL_STATES:
            now = loop.time()
            if now >= deadline:
                return
            if now >= next_poll:
                next_poll = now + poll_s
                try:
                    updates.put_nowait(await services.get(workflow_id))
                except NotFound:
                    if latest is None and now - start >= min(unknown_grace_s, timeout):
                        raise
            wait = max(0.0, min(next_poll, deadline) - loop.time())
            try:
                view = await asyncio.wait_for(updates.get(), wait)
            except TimeoutError:
                continue
            if newer(view, latest):
                latest = view
                yield view
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()

"""What the CLI, the gateway and other actors use of the status tracker.

Typed calls to its request subjects (:func:`get_workflow`,
:func:`list_workflows`) and the live feed of one workflow's views
(:func:`watch_workflow`, announced on :func:`protocols.status.update_subject`).
The actor itself lives in :mod:`actors.status_tracker.actor`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from actors.runtime.bus import Bus
from actors.runtime.codec import Codec, encoding_of
from actors.runtime.errors import BadRequest
from protocols.status import (
    GET_SUBJECT,
    LIST_SUBJECT,
    GetWorkflow,
    ListWorkflows,
    WorkflowList,
    WorkflowView,
    update_subject,
)

__all__ = ["WorkflowUpdates", "get_workflow", "list_workflows", "watch_workflow"]


async def get_workflow(bus: Bus, workflow_id: str, *, timeout: float = 5.0) -> WorkflowView:
    """Ask the tracker for one workflow's view, with a fresh ETA.

    Raises:
        BadRequest: the id cannot name a workflow.
        NotFound: no such workflow (never seen, or expired).
        RequestError: any other error answer, or no answer.
    """
    request = GetWorkflow(workflow_id=workflow_id)
    return await bus.request(GET_SUBJECT, request, WorkflowView, timeout=timeout)


async def list_workflows(
    bus: Bus, request: ListWorkflows | None = None, *, timeout: float = 5.0
) -> WorkflowList:
    """Ask the tracker for a page of workflows matching ``request``, newest first.

    Raises:
        BadRequest: the cursor is malformed.
        RequestError: any other error answer, or no answer.
    """
    return await bus.request(
        LIST_SUBJECT, request or ListWorkflows(), WorkflowList, timeout=timeout
    )


class WorkflowUpdates:
    """The views of one workflow as the tracker announces them; use ``async with``.

    Iterate it, or call :meth:`get`; announcements that do not decode are
    skipped. Announcements are not stored: a subscriber sees the views
    announced while it listens (pair it with :func:`get_workflow` for the
    current one).

    Args:
        bus: a connected bus.
        workflow_id: the workflow.
    """

    def __init__(self, bus: Bus, workflow_id: str) -> None:
        self.workflow_id = workflow_id
        self._bus = bus
        self._queue: asyncio.Queue[WorkflowView] = asyncio.Queue()
        self._codec: Codec[WorkflowView] = Codec.of(WorkflowView)
        self._sub: Subscription | None = None

    async def start(self) -> WorkflowUpdates:
        """Subscribe; return ``self``."""
        if self._sub is None:
            self._sub = await self._bus.nc.subscribe(
                update_subject(self.workflow_id), cb=self._on_msg
            )
        return self

    async def _on_msg(self, msg: Msg) -> None:
        with contextlib.suppress(BadRequest):
            self._queue.put_nowait(self._codec.decode(msg.data, encoding_of(msg.headers)))

    async def get(self) -> WorkflowView:
        """Return the next announced view (waiting for it)."""
        return await self._queue.get()

    def __aiter__(self) -> AsyncIterator[WorkflowView]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[WorkflowView]:
        while True:
            yield await self._queue.get()

    async def close(self) -> None:
        """Unsubscribe; idempotent."""
        sub, self._sub = self._sub, None
        if sub is not None:
            await sub.unsubscribe()

    async def __aenter__(self) -> WorkflowUpdates:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def watch_workflow(bus: Bus, workflow_id: str) -> WorkflowUpdates:
    """Return the live feed of ``workflow_id``'s views (start it with ``async with``)."""
    return WorkflowUpdates(bus, workflow_id)

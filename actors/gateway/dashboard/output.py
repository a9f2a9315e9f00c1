"""Live step output for the detail page: the lines running steps print, over SSE.

The browser's ``EventSource`` cannot send a bearer token, so the page follows
``/ui/workflows/{id}/logs`` (the session cookie's twin of the API's
``GET /api/v1/workflows/{id}/logs``). The subscription to the runners' live
output subject is confirmed by the server (a flush) before the first frame
(``event: ready``), so every line printed after the browser sees it reaches
the page. The stream ends when the workflow's event stream ends
(after its terminal transition) with an ``end`` event, which tells the page
to stop rather than reconnect. Lines printed before the page was rendered
come with the page (:func:`lines_so_far`, from the gateway's tails of running
steps); the stored result keeps each step's last lines.

Frames: ``event: ready`` first; then ``data: {"step", "stream", "line",
"seq", "dropped", "at"}`` per line; ``event: end`` last.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from html import escape

import msgspec
from nats.aio.msg import Msg
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from actors.gateway.auth import Principal
from actors.gateway.services import Services
from actors.runtime.codec import Codec, encoding_of
from actors.runtime.errors import BadRequest
from protocols.pipelines import StepOutput, logs_subject
from protocols.status import TERMINAL_STATES, WorkflowView

__all__ = [
    "BACKLOG",
    "KEEPALIVE_S",
    "LIVE_LINES",
    "follow_output",
    "lines_so_far",
    "live_output",
    "output_stream",
]

KEEPALIVE_S = 15.0
"""Seconds between SSE comments on an idle stream."""

BACKLOG = 2000
"""Lines waiting for a slow browser at most; more are dropped (and counted)."""

LIVE_LINES = 500
"""Most lines of live output a page starts with (its script keeps as many)."""

_CODEC: Codec[StepOutput] = Codec.of(StepOutput)
_READY = b"retry: 2000\nevent: ready\ndata: {}\n\n"
_END = b"event: end\ndata: {}\n\n"


class _Line(msgspec.Struct, frozen=True, kw_only=True):
    """What the page needs of one line."""

    step: str
    stream: str
    line: str
    seq: int
    dropped: int
    at: float


def _frame(out: StepOutput, dropped: int) -> bytes:
    line = _Line(
        step=out.step,
        stream=out.stream,
        line=out.line,
        seq=out.seq,
        dropped=out.dropped + dropped,
        at=out.at,
    )
    return b"data: %s\n\n" % msgspec.json.encode(line)


async def follow_output(services: Services, workflow_id: str) -> AsyncIterator[bytes]:
    """Yield the SSE body of a workflow's live output, ending after the workflow ends.

    The first frame (``event: ready``) is sent once the subscription is in
    place (confirmed by the server): every line printed after it is streamed.

    Args:
        services: the gateway's facade.
        workflow_id: the workflow.
    """
    queue: asyncio.Queue[StepOutput] = asyncio.Queue(BACKLOG)
    lost = 0

    async def on_msg(msg: Msg) -> None:
        nonlocal lost
        with contextlib.suppress(BadRequest):
            try:
                queue.put_nowait(_CODEC.decode(msg.data, encoding_of(msg.headers)))
            except asyncio.QueueFull:
                lost += 1

    async def ended() -> None:
        async for _ in await services.follow(workflow_id):
            pass

    nc = services.bus.nc
    sub = await nc.subscribe(logs_subject(workflow_id), cb=on_msg)
    watcher = asyncio.ensure_future(ended())
    try:
        await nc.flush()
        yield _READY
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait(
                {getter, watcher}, timeout=KEEPALIVE_S, return_when=asyncio.FIRST_COMPLETED
            )
            if getter not in done:
                getter.cancel()
                if watcher in done:
                    break
                yield b": keep-alive\n\n"
                continue
            yield _frame(getter.result(), lost)
            lost = 0
        while not queue.empty():
            yield _frame(queue.get_nowait(), lost)
            lost = 0
        yield _END
    finally:
        watcher.cancel()
        with contextlib.suppress(BaseException):
            await watcher
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


def live_output(lines: list[tuple[str, str, str]]) -> str:
    """Return the slot the page's script fills with live step output (kept across updates).

    Args:
        lines: ``(step, stream, line)`` printed so far, shown first.
    """
    shown = "".join(
        f'<span class="{"line stderr" if stream == "stderr" else "line"}">'
        f"{escape(step)} | {escape(line)}\n</span>"
        for step, stream, line in lines
    )
    return (
        '<div id="live-output" class="live-output" data-following="0">'
        '<p class="muted">Lines the running steps print appear here as they are printed.</p>'
        f'<pre class="output" aria-live="off">{shown}</pre></div>'
    )


def lines_so_far(services: Services, view: WorkflowView) -> list[tuple[str, str, str]]:
    """Return the last lines the gateway saw each unfinished step print (stdout, then stderr).

    Lines printed while no gateway listened are not there; at most
    :data:`LIVE_LINES`, the newest.
    """
    if services.tails is None or view.state in TERMINAL_STATES:
        return []
    lines: list[tuple[str, str, str]] = []
    for step in view.steps:
        tail = services.tails.tail(view.workflow_id, step.name)
        if tail is None:
            continue
        lines += [(step.name, "stdout", line) for line in tail.stdout]
        lines += [(step.name, "stderr", line) for line in tail.stderr]
    return lines[-LIVE_LINES:]


async def output_stream(request: Request, services: Services, principal: Principal) -> Response:
    """The live output of a workflow's running steps, as SSE, for the detail page."""
    workflow_id = request.path_params["workflow_id"]
    await services.get(workflow_id)  # NotFound: the page answers 404
    return StreamingResponse(
        follow_output(services, workflow_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

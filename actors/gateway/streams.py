"""Live workflow events over Server-Sent Events and WebSocket.

``GET /api/v1/workflows/{id}/events`` follows one workflow (its history first,
then live, ending after its terminal transition); ``GET /api/v1/events`` is the
firehose of every workflow from now. Each event's id is its status stream
sequence: an SSE client reconnecting with ``Last-Event-ID`` (or a WebSocket
client with ``?after=``) resumes exactly after it, with no gap.

SSE frames are ``id: <seq>``, ``event: <type>`` (``troupe.status.v1.transition``,
``...step``, ``...progress``) and ``data: {"seq": ..., "event": {...}}``; a
WebSocket sends the same JSON objects as text messages.

``GET /api/v1/workflows/{id}/logs`` (SSE; ``?step=S`` for one step) streams the
lines its running steps print, each frame ``event: troupe.pipelines.v1.output``
with a :class:`~protocols.pipelines.StepOutput` as ``data``, ending when the
workflow ends (earlier lines: the stored tails, ``.../steps/{step}/logs``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import msgspec
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from actors.gateway.auth import READ, AuthError
from actors.gateway.events import StreamedEvent
from actors.gateway.http import ApiProblem, bearer_of, error_response, request_trace
from actors.gateway.services import Services
from actors.pipeline_runner.client import follow_logs
from actors.runtime.errors import NotFound
from protocols.pipelines import StepOutput
from protocols.tasks import TASK_ID_PATTERN

__all__ = ["KEEPALIVE_S", "sse_body", "stream_routes"]

KEEPALIVE_S = 15.0
"""Seconds between SSE comment lines that keep idle connections open."""

_ENCODER = msgspec.json.Encoder()

T = TypeVar("T")


def _after(conn: HTTPConnection) -> int | None:
    raw = conn.headers.get("last-event-id") or conn.query_params.get("after")
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 19:
        raise ApiProblem("bad_request", "Last-Event-ID (or after) must be a stream sequence")
    return int(raw)


def _workflow_id(conn: HTTPConnection) -> str | None:
    found = conn.path_params.get("workflow_id")
    if found is None:
        return None
    import re

    if not re.match(TASK_ID_PATTERN, found):
        raise ApiProblem("not_found", f"no workflow {found!r}")
    return str(found)


def _frame(event: StreamedEvent) -> bytes:
    data = _ENCODER.encode(event.to_json())
    kind = str(event.event.__struct_config__.tag)
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.seq, kind.encode(), data)


def _log_frame(out: StepOutput) -> bytes:
    return b"event: troupe.pipelines.v1.output\ndata: %s\n\n" % _ENCODER.encode(out)


async def sse_body(
    events: AsyncIterator[T],
    frame: Callable[[T], bytes] = _frame,  # type: ignore[assignment]
    *,
    preamble: bytes = b": troupe events\nretry: 1000\n\n",
) -> AsyncIterator[bytes]:
    """An SSE body: ``preamble``, then each event as ``frame`` renders it, with keep-alives.

    A comment line goes out every :data:`KEEPALIVE_S` seconds without an event,
    so proxies and clients keep the connection open.
    """
    yield preamble
    iterator = events.__aiter__()
    pending: asyncio.Task[T] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(iterator.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE_S)
            if not done:
                yield b": keep-alive\n\n"
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            finally:
                pending = None
            yield frame(event)
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        with contextlib.suppress(Exception):
            await iterator.aclose()  # type: ignore[attr-defined]


def _sse(services: Services) -> Route:
    async def endpoint(request: Request) -> Response:
        with request_trace(request, f"GET {request.url.path}"):
            try:
                principal = await services.verifier.verify(bearer_of(request))
                await services.verifier.authorize(principal, READ, action="events")
                workflow_id = _workflow_id(request)
                after = _after(request)
            except (AuthError, ApiProblem) as exc:
                return error_response(exc)
        events = await services.follow(workflow_id, after=after)
        return StreamingResponse(
            sse_body(events),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return endpoint  # type: ignore[return-value]


def _logs(services: Services) -> Route:
    async def endpoint(request: Request) -> Response:
        with request_trace(request, f"GET {request.url.path}"):
            try:
                principal = await services.verifier.verify(bearer_of(request))
                await services.verifier.authorize(principal, READ, action="logs")
                workflow_id = _workflow_id(request)
                assert workflow_id is not None
                try:
                    await services.get(workflow_id)
                except NotFound as exc:
                    raise ApiProblem("not_found", str(exc)) from None
            except (AuthError, ApiProblem) as exc:
                return error_response(exc)
        lines = follow_logs(services.bus, workflow_id, step=request.query_params.get("step"))
        return StreamingResponse(
            sse_body(lines, _log_frame),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return endpoint  # type: ignore[return-value]


async def _ws_endpoint(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    try:
        principal = await services.verifier.verify(bearer_of(websocket))
        await services.verifier.authorize(principal, READ, action="events")
        workflow_id = _workflow_id(websocket)
        after = _after(websocket)
    except AuthError as exc:
        await websocket.close(code=4401 if exc.status == 401 else 4403, reason=exc.message)
        return
    except ApiProblem as exc:
        await websocket.close(code=4400, reason=exc.error.message)
        return
    await websocket.accept()

    async def drain() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await websocket.receive_text()

    reader = asyncio.ensure_future(drain())
    try:
        async for event in await services.follow(workflow_id, after=after):
            if reader.done():
                return
            await websocket.send_text(_ENCODER.encode(event.to_json()).decode())
        await websocket.close(code=1000)
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        reader.cancel()


def stream_routes(services: Services) -> list[BaseRoute]:
    """Return the SSE and WebSocket routes of the event streams and the live logs."""
    endpoint = _sse(services)
    return [
        Route("/api/v1/workflows/{workflow_id}/events", endpoint, methods=["GET"]),
        WebSocketRoute("/api/v1/workflows/{workflow_id}/events", _ws_endpoint),
        Route("/api/v1/workflows/{workflow_id}/logs", _logs(services), methods=["GET"]),
        Route("/api/v1/events", endpoint, methods=["GET"]),
        WebSocketRoute("/api/v1/events", _ws_endpoint),
    ]

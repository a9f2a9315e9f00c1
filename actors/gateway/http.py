"""HTTP plumbing shared by the gateway's routes: typed JSON answers and errors, bodies, traces.

Every error is an :class:`~actors.gateway.schemas.ApiError` with troupe's error
code and the matching HTTP status. Each request continues the caller's W3C
trace (``traceparent``), or starts one, so what the gateway publishes joins it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, TypeVar

import msgspec
from opentelemetry import trace
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from actors.gateway.auth import AuthError, Principal
from actors.gateway.schemas import ApiError
from actors.runtime import telemetry
from actors.runtime.errors import RequestError

__all__ = [
    "STATUS_OF",
    "ApiProblem",
    "bearer_of",
    "error_response",
    "json_response",
    "read_body",
    "request_trace",
]

T = TypeVar("T")

STATUS_OF: dict[str, int] = {
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "rejected": 409,
    "too_large": 413,
    "unsupported_media_type": 415,
    "internal": 500,
    "unavailable": 503,
    "timeout": 504,
}
"""HTTP status of each troupe error code."""

_ENCODER = msgspec.json.Encoder()


class ApiProblem(Exception):
    """An error answer to send: a code (see :data:`STATUS_OF`) and a message.

    Args:
        code: troupe error code.
        message: what went wrong.
        retryable: whether retrying may succeed.
    """

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.error = ApiError(code=code, message=message, retryable=retryable)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Encode ``body`` (Structs, builtins) as a JSON response."""
    return Response(
        _ENCODER.encode(body), status_code=status, media_type="application/json", headers=headers
    )


def error_response(exc: BaseException) -> Response:
    """Return the typed JSON error answer of ``exc``."""
    if isinstance(exc, ApiProblem):
        error = exc.error
    elif isinstance(exc, AuthError):
        error = ApiError(code=exc.code, message=exc.message)
    elif isinstance(exc, RequestError):
        error = ApiError(
            code=exc.code, message=exc.message, retryable=exc.retryable, details=exc.details
        )
    else:
        error = ApiError(code="internal", message=f"{type(exc).__name__}: {exc}")
    headers = (
        {"WWW-Authenticate": 'Bearer realm="troupe"'} if error.code == "unauthorized" else None
    )
    return json_response(error, STATUS_OF.get(error.code, 500), headers)


def bearer_of(conn: HTTPConnection) -> str | None:
    """Return the bearer token of a request (the header, or ``access_token`` on a WebSocket)."""
    header = conn.headers.get("authorization")
    if header:
        kind, _, value = header.strip().partition(" ")
        return value.strip() if kind.lower() == "bearer" and value.strip() else None
    if conn.scope["type"] == "websocket":
        return conn.query_params.get("access_token")
    return None


async def read_body(request: Request, body_type: type[T], limit: int) -> T:
    """Read a JSON body of at most ``limit`` bytes and decode it as ``body_type``.

    Raises:
        ApiProblem: too large, not JSON, or not valid.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiProblem("too_large", f"request body over {limit} bytes")
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if kind not in ("application/json", ""):
        raise ApiProblem("unsupported_media_type", "send the body as application/json")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiProblem("too_large", f"request body over {limit} bytes")
        chunks.append(chunk)
    data = b"".join(chunks) or b"{}"
    try:
        return msgspec.json.decode(data, type=body_type)
    except msgspec.ValidationError as exc:
        raise ApiProblem("bad_request", f"invalid body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ApiProblem("bad_request", f"body is not JSON: {exc}") from None


@contextlib.contextmanager
def request_trace(conn: HTTPConnection, name: str) -> Iterator[None]:
    """Continue the caller's trace (``traceparent``) around a request, or start one.

    With an exporter configured this is the gateway's server span; without one
    the incoming (or a fresh, sampled) context is only made current, so the
    workflow still shares the caller's trace id.
    """
    carrier = {k: v for k in ("traceparent", "tracestate") if (v := conn.headers.get(k))}
    if carrier or telemetry.recording():
        with telemetry.process_span(
            conn.url.path, carrier, kind="server", actor="gateway", name=name
        ):
            yield
        return
    context = telemetry.fresh_context()
    with trace.use_span(trace.NonRecordingSpan(context)):
        yield


def who(principal: Principal) -> str:
    """Return how a caller is recorded: ``<name> (<token id>)``."""
    return f"{principal.name} ({principal.token_id})"

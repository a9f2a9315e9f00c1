"""The gateway's ASGI application: the HTTP API, the event streams, and mounted extras (MCP).

:func:`build_app` assembles a Starlette app over a :class:`~actors.gateway.services.Services`
facade. Other doors plug in through ``mounts`` (e.g. ``Mount("/mcp", app=...)``),
sharing the same services and token verification (``app.state.services``). They
are matched first: the router tries routes in order, and a door such as MCP, one
path for every call, should not pay for matching the API's routes before its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from actors.gateway.config import GatewayConfig
from actors.gateway.dashboard import dashboard_routes
from actors.gateway.http import ApiProblem, error_response, json_response
from actors.gateway.openapi import openapi_document
from actors.gateway.routes import routes
from actors.gateway.services import Services
from actors.gateway.streams import stream_routes

__all__ = ["Lifespan", "build_app"]

Lifespan = Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]
"""A Starlette lifespan (a mounted app's, e.g. the MCP session manager's)."""

_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 400: "bad_request"}


async def _health(request: Request) -> Response:
    return json_response({"status": "ok"})


def _openapi(document: dict[str, Any]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        return json_response(document)

    return endpoint


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = _CODES.get(status, "internal" if status >= 500 else "bad_request")
    return error_response(ApiProblem(code, str(getattr(exc, "detail", exc))))


def build_app(
    services: Services,
    *,
    config: GatewayConfig | None = None,
    mounts: Sequence[BaseRoute] = (),
    lifespans: Sequence[Lifespan] = (),
) -> Starlette:
    """Return the gateway's ASGI app.

    Args:
        services: the facade every route answers through.
        config: limits and CORS (default: :meth:`GatewayConfig.from_env`).
        mounts: extra routes, e.g. ``Mount("/mcp", app=mcp_app)``, matched first; their
            paths must not overlap the API's.
        lifespans: lifespans of mounted apps, entered in order while the app runs.
    """
    config = config or GatewayConfig.from_env()
    document = openapi_document()
    middleware: list[Middleware] = []
    if config.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    "Idempotency-Key",
                    "Last-Event-ID",
                    "traceparent",
                    "tracestate",
                ],
            )
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for entered in lifespans:
                await stack.enter_async_context(entered(app))
            yield

    app = Starlette(
        routes=[
            *mounts,
            Route("/api/v1/health", _health, methods=["GET"]),
            Route("/api/openapi.json", _openapi(document), methods=["GET"]),
            *stream_routes(services),
            *routes(services, config),
            *dashboard_routes(services),
        ],
        middleware=middleware,
        exception_handlers={HTTPException: _http_error, Exception: _http_error},
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.config = config
    return app

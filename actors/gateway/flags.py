"""Feature flags over HTTP: ``/api/v1/flags`` (list, get, put, delete).

Reading needs ``workflows:read``; changing needs ``flags:write`` (``admin``).
A ``PUT`` body is a whole :class:`~protocols.flags.Flag` without ``name``,
``updated_by`` and ``updated_at`` (the path, the token's name and the clock
fill them in). Every change is published as an audit event.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from actors.feature_flags.client import FlagStore
from actors.gateway.http import bearer_of, error_response, json_response, read_body
from actors.gateway.services import Services
from actors.runtime.errors import BadRequest, NotFound
from protocols.flags import Flag
from protocols.gateway import Scope

__all__ = ["FlagBody", "flag_routes"]

PATH = "/api/v1/flags"


class FlagBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A ``PUT /api/v1/flags/{name}`` body: the flag's settings."""

    enabled: bool = True
    """Off: the flag never applies."""
    rollout: float = 100.0
    """Percentage of workflow ids the flag applies to, 0-100."""
    on: str = "true"
    """Value where it applies."""
    off: str = "false"
    """Value where it does not."""
    templates: list[str] = msgspec.field(default_factory=list)
    """Only these templates (empty: any)."""
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    """Only workflows with every one of these labels (empty: any)."""
    description: str = ""
    """What the flag is for."""


Handler = Callable[[Request, str], Awaitable[Any]]


def flag_routes(services: Services, store: FlagStore, *, max_body: int) -> list[Route]:
    """Return the flag routes, answering through ``store``."""

    def guarded(scope: Scope, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                principal = await services.verifier.verify(bearer_of(request))
                name = str(request.path_params.get("name", ""))
                await services.verifier.authorize(
                    principal, scope, action=f"{request.method} {PATH}", target=name
                )
                answer = await handler(request, principal.name)
            except Exception as exc:  # noqa: BLE001 - every failure is a typed error answer
                return error_response(exc)
            return answer if isinstance(answer, Response) else json_response(answer)

        return endpoint

    async def list_flags(request: Request, who: str) -> Any:
        return {"items": await store.list()}

    async def get_flag(request: Request, who: str) -> Any:
        name = request.path_params["name"]
        found = await store.get(name)
        if found is None:
            raise NotFound(f"no flag {name}")
        return found

    async def put_flag(request: Request, who: str) -> Any:
        body = await read_body(request, FlagBody, max_body)
        try:
            flag = msgspec.convert(
                {**msgspec.to_builtins(body), "name": request.path_params["name"]}, Flag
            )
        except msgspec.ValidationError as exc:
            raise BadRequest(str(exc)) from None
        return await store.set(flag, by=who, at=time.time(), via="http")

    async def delete_flag(request: Request, who: str) -> Any:
        name = request.path_params["name"]
        if not await store.remove(name, by=who, at=time.time(), via="http"):
            raise NotFound(f"no flag {name}")
        return Response(status_code=204)

    named = f"{PATH}/{{name}}"
    return [
        Route(PATH, guarded("workflows:read", list_flags), methods=["GET"], name="listFlags"),
        Route(named, guarded("workflows:read", get_flag), methods=["GET"], name="getFlag"),
        Route(named, guarded("flags:write", put_flag), methods=["PUT"], name="putFlag"),
        Route(named, guarded("flags:write", delete_flag), methods=["DELETE"], name="deleteFlag"),
    ]

"""The handlers of the HTTP API: each turns an authorised :class:`Call` into an answer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from actors.gateway.auth import Principal
from actors.gateway.config import GatewayConfig
from actors.gateway.http import ApiProblem
from actors.gateway.schemas import (
    CreateTokenRequest,
    ExecutionList,
    History,
    RotateTokenRequest,
    StepLogs,
    Submitted,
    TemplateInfo,
    TemplateList,
)
from actors.gateway.services import Services
from protocols.agents import AgentList
from protocols.breakers import BreakerList
from protocols.gateway import TokenInfo, TokenIssued, TokenList
from protocols.pipelines import PipelineResult
from protocols.status import ListWorkflows, WorkflowList, WorkflowView

__all__ = [
    "Call",
    "Whoami",
    "agents",
    "artifact",
    "breakers",
    "cancel",
    "control",
    "create_token",
    "executions",
    "get_workflow",
    "history",
    "list_workflows",
    "logs",
    "rerun",
    "result",
    "revoke_token",
    "rotate_token",
    "submit",
    "template",
    "templates",
    "tokens",
    "whoami",
]


class Whoami(msgspec.Struct, frozen=True, kw_only=True):
    """The caller as the gateway sees it."""

    token_id: str
    """Id of the token presented."""
    name: str
    """Its name."""
    role: str
    """Its role."""
    scopes: list[str]
    """What it may do."""


@dataclass(slots=True)
class Call:
    """One authorised request, as a handler sees it.

    Attributes:
        request: the Starlette request.
        services: the facade over the actors.
        principal: the verified caller.
        config: the gateway's settings.
        body: the decoded body, if the operation takes one.
    """

    request: Request
    services: Services
    principal: Principal
    config: GatewayConfig
    body: Any = None

    def path(self, name: str) -> str:
        """Return a path parameter."""
        return str(self.request.path_params[name])


def _int(value: str | None, name: str, *, low: int, high: int) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise ApiProblem("bad_request", f"{name} must be an integer") from None
    if not low <= number <= high:
        raise ApiProblem("bad_request", f"{name} must be between {low} and {high}")
    return number


def _float(value: str | None, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise ApiProblem("bad_request", f"{name} must be a number") from None
    if math.isnan(number) or math.isinf(number):
        raise ApiProblem("bad_request", f"{name} must be finite")
    return number


# -- handlers --------------------------------------------------------------------------


async def submit(call: Call) -> Submitted:
    key = call.request.headers.get("idempotency-key")
    return await call.services.submit(call.body, key=key)


async def list_workflows(call: Call) -> WorkflowList:
    q = call.request.query_params
    states = [s for raw in q.getlist("state") for s in raw.split(",") if s]
    try:
        query = msgspec.convert(
            {
                "states": states,
                "template": q.get("template") or None,
                "since": _float(q.get("since"), "since"),
                "until": _float(q.get("until"), "until"),
                "limit": _int(q.get("limit"), "limit", low=1, high=1000) or 100,
                "cursor": q.get("cursor") or None,
            },
            ListWorkflows,
        )
    except msgspec.ValidationError as exc:
        raise ApiProblem("bad_request", f"invalid filter: {exc}") from None
    return await call.services.list(query)


async def get_workflow(call: Call) -> WorkflowView:
    return await call.services.get(call.path("workflow_id"))


async def result(call: Call) -> PipelineResult:
    return await call.services.result(call.path("workflow_id"))


async def artifact(call: Call) -> Response:
    ref, chunks = await call.services.artifact(
        call.path("workflow_id"), call.path("name"), call.request.query_params.get("step")
    )
    filename = ref.name.rsplit("/", 1)[-1].replace('"', "")
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(ref.size),
            "Digest": f"sha-256={ref.digest.removeprefix('sha256:')}",
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )


async def history(call: Call) -> History:
    return await call.services.history(call.path("workflow_id"))


async def logs(call: Call) -> StepLogs:
    return await call.services.logs(call.path("workflow_id"), call.path("step"))


async def cancel(call: Call) -> WorkflowView:
    workflow_id = call.path("workflow_id")
    reason = call.body.reason if call.body else "cancelled by user"
    await call.services.cancel(workflow_id, f"{reason} ({call.principal.name})")
    return await call.services.get(workflow_id)


async def rerun(call: Call) -> Submitted:
    return await call.services.rerun(call.path("workflow_id"))


async def templates(call: Call) -> TemplateList:
    return await call.services.templates()


async def template(call: Call) -> TemplateInfo:
    return await call.services.template(call.path("name"))


async def agents(call: Call) -> AgentList:
    return await call.services.agents(call.request.query_params.get("capability") or None)


async def breakers(call: Call) -> BreakerList:
    return await call.services.breakers(call.request.query_params.get("prefix") or "")


async def control(call: Call) -> BreakerList:
    return await call.services.control_breaker(call.path("key"), call.body.action)


async def executions(call: Call) -> ExecutionList:
    return await call.services.executions()


async def whoami(call: Call) -> Whoami:
    p = call.principal
    return Whoami(token_id=p.token_id, name=p.name, role=p.role, scopes=sorted(p.scopes))


async def tokens(call: Call) -> TokenList:
    revoked = call.request.query_params.get("include_revoked", "") in ("1", "true")
    return TokenList(items=await call.services.tokens.list(include_revoked=revoked))


async def create_token(call: Call) -> TokenIssued:
    body: CreateTokenRequest = call.body
    return await call.services.tokens.create(
        body.name, body.role, body.scopes, ttl_s=body.ttl_s, created_by=call.principal.token_id
    )


async def revoke_token(call: Call) -> TokenInfo:
    return await call.services.tokens.revoke(_token_id(call))


async def rotate_token(call: Call) -> TokenIssued:
    body: RotateTokenRequest | None = call.body
    return await call.services.tokens.rotate(
        _token_id(call),
        ttl_s=body.ttl_s if body else None,
        created_by=call.principal.token_id,
    )


def _token_id(call: Call) -> str:
    token_id = call.path("token_id")
    if len(token_id) != 16 or any(c not in "0123456789abcdef" for c in token_id):
        raise ApiProblem("not_found", f"no token {token_id}")
    return token_id

"""The HTTP API under ``/api/v1``: one table of operations, the source of routes and OpenAPI.

Each :class:`Operation` names its method, path, the scope it needs, its body
and answer types; :func:`routes` turns the table into Starlette routes that
verify the bearer token, check the scope (auditing operator and admin
actions), continue the caller's trace, and answer typed JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from actors.gateway import handlers as h
from actors.gateway.config import GatewayConfig
from actors.gateway.handlers import Call, Whoami
from actors.gateway.http import (
    bearer_of,
    error_response,
    json_response,
    read_body,
    request_trace,
)
from actors.gateway.operation import API, Operation, Param
from actors.gateway.schedules import SCHEDULE_OPERATIONS
from actors.gateway.schemas import (
    BreakerAction,
    CancelRequest,
    CreateTokenRequest,
    ExecutionList,
    History,
    RotateTokenRequest,
    StepLogs,
    SubmitRequest,
    Submitted,
    TemplateInfo,
    TemplateList,
)
from actors.gateway.services import Services
from protocols.agents import AgentList
from protocols.breakers import BreakerList
from protocols.gateway import TokenInfo, TokenIssued, TokenList
from protocols.pipelines import PipelineResult
from protocols.status import WorkflowList, WorkflowState, WorkflowView

__all__ = ["OPERATIONS", "Call", "Operation", "Param", "Whoami", "routes"]


_STATES = {"type": "string", "enum": list(WorkflowState.__args__)}  # type: ignore[attr-defined]
_WF = f"{API}/workflows/{{workflow_id}}"

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "POST",
        f"{API}/workflows",
        "submitWorkflow",
        "Submit a workflow",
        "workflows:submit",
        h.submit,
        SubmitRequest,
        Submitted,
        202,
    ),
    Operation(
        "GET",
        f"{API}/workflows",
        "listWorkflows",
        "List workflows, newest first",
        "workflows:read",
        h.list_workflows,
        None,
        WorkflowList,
        query=(
            Param("state", _STATES, "only these states (repeatable or comma-separated)"),
            Param("template", {"type": "string"}, "only this template"),
            Param("since", {"type": "number"}, "created at or after (Unix time)"),
            Param("until", {"type": "number"}, "created before (Unix time)"),
            Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"),
            Param("cursor", {"type": "string"}, "next_cursor of the previous page"),
        ),
    ),
    Operation(
        "GET",
        _WF,
        "getWorkflow",
        "A workflow's state, steps, progress and ETA",
        "workflows:read",
        h.get_workflow,
        None,
        WorkflowView,
    ),
    Operation(
        "GET",
        f"{_WF}/result",
        "getResult",
        "A finished workflow's result",
        "workflows:read",
        h.result,
        None,
        PipelineResult,
    ),
    Operation(
        "GET",
        f"{_WF}/artifacts/{{name:path}}",
        "getArtifact",
        "Download a file a step produced (streamed)",
        "workflows:read",
        h.artifact,
        media="application/octet-stream",
        query=(Param("step", {"type": "string"}, "take it from this step"),),
    ),
    Operation(
        "GET",
        f"{_WF}/history",
        "getHistory",
        "Every status event of a workflow",
        "workflows:read",
        h.history,
        None,
        History,
    ),
    Operation(
        "GET",
        f"{_WF}/steps/{{step}}/logs",
        "getStepLogs",
        "A step's output: its tails, or its last lines so far while it runs",
        "workflows:read",
        h.logs,
        None,
        StepLogs,
    ),
    Operation(
        "POST",
        f"{_WF}/cancel",
        "cancelWorkflow",
        "Cancel a workflow",
        "workflows:cancel",
        h.cancel,
        CancelRequest,
        WorkflowView,
        202,
    ),
    Operation(
        "POST",
        f"{_WF}/rerun",
        "rerunWorkflow",
        "Run a workflow's inputs again as a new workflow",
        "workflows:submit",
        h.rerun,
        None,
        Submitted,
        202,
    ),
    Operation(
        "GET",
        f"{API}/templates",
        "listTemplates",
        "Templates and their parameters",
        "workflows:read",
        h.templates,
        None,
        TemplateList,
        tags=("catalogue",),
    ),
    Operation(
        "GET",
        f"{API}/templates/{{name}}",
        "getTemplate",
        "One template",
        "workflows:read",
        h.template,
        None,
        TemplateInfo,
        tags=("catalogue",),
    ),
    Operation(
        "GET",
        f"{API}/agents",
        "listAgents",
        "Live agents",
        "workflows:read",
        h.agents,
        None,
        AgentList,
        tags=("catalogue",),
        query=(Param("capability", {"type": "string"}, "only agents with it"),),
    ),
    Operation(
        "GET",
        f"{API}/executions",
        "listExecutions",
        "Steps running now",
        "workflows:read",
        h.executions,
        None,
        ExecutionList,
        tags=("catalogue",),
    ),
    Operation(
        "GET",
        f"{API}/breakers",
        "listBreakers",
        "Circuit breakers",
        "workflows:read",
        h.breakers,
        None,
        BreakerList,
        tags=("breakers",),
        query=(Param("prefix", {"type": "string"}, "only keys starting with it"),),
    ),
    Operation(
        "POST",
        f"{API}/breakers/{{key:path}}",
        "controlBreaker",
        "Force open, disable or reset a breaker",
        "breakers:control",
        h.control,
        BreakerAction,
        BreakerList,
        tags=("breakers",),
    ),
    Operation(
        "GET",
        f"{API}/whoami",
        "whoami",
        "The caller's token, role and scopes",
        "workflows:read",
        h.whoami,
        None,
        Whoami,
        tags=("tokens",),
    ),
    Operation(
        "GET",
        f"{API}/tokens",
        "listTokens",
        "API tokens",
        "tokens:manage",
        h.tokens,
        None,
        TokenList,
        tags=("tokens",),
        query=(Param("include_revoked", {"type": "boolean"}, "list dead ones too"),),
    ),
    Operation(
        "POST",
        f"{API}/tokens",
        "createToken",
        "Issue a token (shown once)",
        "tokens:manage",
        h.create_token,
        CreateTokenRequest,
        TokenIssued,
        201,
        tags=("tokens",),
    ),
    Operation(
        "DELETE",
        f"{API}/tokens/{{token_id}}",
        "revokeToken",
        "Revoke a token at once",
        "tokens:manage",
        h.revoke_token,
        None,
        TokenInfo,
        tags=("tokens",),
    ),
    Operation(
        "POST",
        f"{API}/tokens/{{token_id}}/rotate",
        "rotateToken",
        "Replace a token and revoke it",
        "tokens:manage",
        h.rotate_token,
        RotateTokenRequest,
        TokenIssued,
        201,
        tags=("tokens",),
    ),
    *SCHEDULE_OPERATIONS,
)
"""Every operation of the API (the event streams live in :mod:`actors.gateway.streams`)."""


def _endpoint(
    op: Operation, services: Services, config: GatewayConfig
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        with request_trace(request, f"{op.method} {op.path}"):
            try:
                principal = await services.verifier.verify(bearer_of(request))
                target = next(iter(request.path_params.values()), "")
                await services.verifier.authorize(
                    principal, op.scope, action=f"{op.method} {op.path}", target=str(target)
                )
                body: Any = None
                if op.body is not None:
                    body = await read_body(request, op.body, config.max_body)
                call = Call(request, services, principal, config, body)
                answer = await op.handler(call)
            except Exception as exc:  # noqa: BLE001 - every failure is a typed error answer
                return error_response(exc)
            if isinstance(answer, Response):
                return answer
            return json_response(answer, op.status)

    endpoint.__name__ = op.name
    return endpoint


def routes(services: Services, config: GatewayConfig) -> list[BaseRoute]:
    """Return the Starlette routes of :data:`OPERATIONS`."""
    return [
        Route(op.path, _endpoint(op, services, config), methods=[op.method], name=op.name)
        for op in OPERATIONS
    ]

"""The OpenAPI 3.1 document of the API, made from the operation table and msgspec schemas."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from actors.gateway.routes import OPERATIONS, Operation
from actors.gateway.schemas import ApiError, HistoryEntry

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{name}"
_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def _path(op: Operation) -> str:
    return _PARAM.sub(r"{\1}", op.path)


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(name="ApiError")}}},
    }


def _operation(op: Operation, refs: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": _path_schema(name)}
        for name in _PARAM.findall(op.path)
    ]
    params += [
        {
            "name": p.name,
            "in": "query",
            "required": False,
            "schema": p.schema,
            "description": p.description,
        }
        for p in op.query
    ]
    if op.body is not None and op.method == "POST" and op.name == "submitWorkflow":
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": _path_schema("workflow_id"),
                "description": "idempotency key (the body's idempotency_key wins)",
            }
        )
    if op.media:
        ok: dict[str, Any] = {
            "description": "the content",
            "content": {op.media: {"schema": {"type": "string", "format": "binary"}}},
        }
    else:
        ok = {
            "description": op.summary,
            "content": {"application/json": {"schema": refs[op.response]}},
        }
    spec: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "tags": list(op.tags),
        "parameters": params,
        "security": [{"bearer": [op.scope]}],
        "responses": {
            str(op.status): ok,
            "400": _error("invalid request"),
            "401": _error("no, bad, expired or revoked token"),
            "403": _error(f"the token lacks scope {op.scope}"),
            "404": _error("no such thing"),
            "409": _error("refused in the current state"),
            "413": _error("body too large"),
            "415": _error("body not JSON"),
            "503": _error("no actor answered"),
            "504": _error("an actor did not answer in time"),
        },
    }
    if op.body is not None:
        spec["requestBody"] = {
            "required": op.name not in ("cancelWorkflow", "rotateToken"),
            "content": {"application/json": {"schema": refs[op.body]}},
        }
    return spec


def _path_schema(name: str) -> dict[str, Any]:
    if name == "workflow_id":
        from protocols.tasks import TASK_ID_PATTERN

        return {"type": "string", "pattern": TASK_ID_PATTERN}
    if name == "token_id":
        return {"type": "string", "pattern": "^[0-9a-f]{16}$"}
    if name == "schedule":
        from protocols.schedules import SCHEDULE_NAME_PATTERN

        return {"type": "string", "pattern": SCHEDULE_NAME_PATTERN}
    return {"type": "string", "minLength": 1}


def _events(summary: str, path_params: bool) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {
            "name": "Last-Event-ID",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
            "description": "resume after this event id",
        },
        {
            "name": "after",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
            "description": "resume after this event id (WebSocket clients)",
        },
    ]
    if path_params:
        params.insert(
            0,
            {
                "name": "workflow_id",
                "in": "path",
                "required": True,
                "schema": _path_schema("workflow_id"),
            },
        )
    return {
        "get": {
            "operationId": "followWorkflow" if path_params else "followAll",
            "summary": summary,
            "description": "Server-Sent Events (or a WebSocket on the same path); each event's "
            "id is its status stream sequence and its data a HistoryEntry.",
            "tags": ["events"],
            "parameters": params,
            "security": [{"bearer": ["workflows:read"]}],
            "responses": {
                "200": {
                    "description": "event stream",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                "400": _error("bad Last-Event-ID"),
                "401": _error("no, bad, expired or revoked token"),
                "403": _error("the token lacks scope workflows:read"),
                "404": _error("bad workflow id"),
            },
        }
    }


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of every operation and event stream."""
    types: list[Any] = [ApiError, HistoryEntry]
    for op in OPERATIONS:
        for t in (op.body, op.response):
            if t is not None and t not in types:
                types.append(t)
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    refs = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(_path(op), {})[op.method.lower()] = _operation(op, refs)
    paths["/api/v1/workflows/{workflow_id}/events"] = _events("Follow one workflow", True)
    paths["/api/v1/events"] = _events("Follow every workflow from now", False)
    paths["/api/v1/health"] = {
        "get": {
            "operationId": "health",
            "summary": "Liveness (no token needed)",
            "tags": ["health"],
            "security": [],
            "responses": {
                "200": {
                    "description": "alive",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "troupe gateway",
            "version": "1",
            "description": "Create, run and follow troupe workflows over HTTP.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }

"""MCP tools that validate, submit, follow, cancel, re-run and inspect workflows.

Each tool takes typed arguments, checks the caller's scope (reads need
``workflows:read``, submitting and re-running ``workflows:submit``, cancelling
``workflows:cancel``) and answers a pydantic model from
:mod:`actors.gateway.mcp.models`, or a tool error with troupe's error code.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any
from urllib.parse import quote

import msgspec
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from actors.gateway import client as gateway_client
from actors.gateway.mcp import models
from actors.gateway.mcp.errors import ToolFailure, Unsupported
from actors.gateway.mcp.follow import follow_views
from actors.gateway.mcp.tools import ToolKit
from actors.gateway.schemas import SubmitRequest
from actors.gateway.services import Services
from actors.runtime.errors import NotFound
from actors.task_manager.client import TaskRejected, validate_task
from protocols.pipelines import PipelineSpec
from protocols.status import TERMINAL_STATES
from protocols.tasks import TaskSubmitted

__all__ = ["add_workflow_tools", "validate"]

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)

WorkflowId = Annotated[str, Field(description="workflow id", min_length=1, max_length=128)]
Template = Annotated[
    str | None, Field(description="template name (see list_templates); or give pipeline")
]
Pipeline = Annotated[
    dict[str, Any] | None,
    Field(
        description="inline pipeline definition: {name, steps: [{name, run, needs, inputs, "
        "outputs, image, timeout, ...}], params, backend, timeout}; or give template"
    ),
]
Params = Annotated[
    dict[str, str | int | float | bool] | None,
    Field(description="template parameters by name"),
]
Requires = Annotated[
    str | None, Field(description="capability an agent must have to take the task")
]


def _spec(pipeline: dict[str, Any] | None) -> PipelineSpec | None:
    if pipeline is None:
        return None
    try:
        return msgspec.convert(pipeline, PipelineSpec)
    except msgspec.ValidationError as exc:
        raise TaskRejected("invalid_definition", str(exc)) from None


async def validate(
    services: Services,
    template: str | None,
    pipeline: dict[str, Any] | None,
    params: dict[str, Any],
) -> models.ValidationOut:
    """Have the task manager render and plan a template or an inline definition.

    Raises:
        ToolFailure: neither or both of ``template`` and ``pipeline`` were given.
    """
    if (template is None) == (pipeline is None):
        raise ToolFailure("bad_request", "give exactly one of 'template' and 'pipeline'")
    name = template or str((pipeline or {}).get("name", "")) or None
    try:
        spec = _spec(pipeline)
    except TaskRejected as exc:
        return models.ValidationOut(
            valid=False, pipeline=name, problems=[models.Problem(code=exc.code, message=exc.detail)]
        )
    task = TaskSubmitted(task_id="validation", template=template, pipeline=spec, params=params)
    plan = await validate_task(services.bus, task)
    if not plan.valid or plan.pipeline is None:
        problem = models.Problem(code=plan.code or "invalid_task", message=plan.problem)
        return models.ValidationOut(valid=False, pipeline=name, problems=[problem])
    rendered, stages = plan.pipeline, plan.stages
    stage_of = {step: n for n, stage in enumerate(stages) for step in stage}
    steps = [
        models.PlannedStep(
            name=s.name, stage=stage_of[s.name], needs=list(s.needs), image=s.image, run=s.run
        )
        for s in sorted(rendered.steps, key=lambda s: stage_of[s.name])
    ]
    return models.ValidationOut(valid=True, pipeline=rendered.name, stages=stages, steps=steps)


def add_workflow_tools(server: MCPServer[Any], kit: ToolKit) -> None:
    """Register the workflow tools on ``server``."""
    _add_submission_tools(server, kit)
    _add_following_tools(server, kit)
    _add_outcome_tools(server, kit)


def _add_submission_tools(server: MCPServer[Any], kit: ToolKit) -> None:
    services = kit.services

    @server.tool(annotations=READ_ONLY)
    async def validate_workflow(
        template: Template = None,
        pipeline: Pipeline = None,
        params: Params = None,
        requires: Requires = None,
    ) -> Annotated[CallToolResult, models.ValidationOut]:
        """Check a template or inline pipeline without running anything.

        Returns the plan (steps in stages) or the precise problems that would
        make troupe reject it.
        """

        async def body() -> models.ValidationOut:
            out = await validate(services, template, pipeline, dict(params or {}))
            if requires and not (await services.agents(requires)).agents:
                out.valid = False
                out.problems.append(
                    models.Problem(
                        code="no_capable_agent", message=f"no live agent offers {requires!r}"
                    )
                )
            return out

        return await kit.run("validate_workflow", "workflows:read", body)

    @server.tool(annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=True))
    async def submit_workflow(
        *,
        template: Template = None,
        pipeline: Pipeline = None,
        params: Params = None,
        labels: Annotated[dict[str, str] | None, Field(description="labels to record")] = None,
        idempotency_key: Annotated[
            str | None,
            Field(description="also the workflow id; the same key again creates nothing new"),
        ] = None,
        requires: Requires = None,
    ) -> Annotated[CallToolResult, models.SubmittedOut]:
        """Submit a workflow from a template or an inline pipeline; return its id at once.

        Follow it with wait_for_workflow or by subscribing to its resource URI.
        """

        async def body() -> models.SubmittedOut:
            try:
                spec = _spec(pipeline)
            except TaskRejected as exc:
                raise ToolFailure("bad_request", exc.reason) from None
            request = SubmitRequest(
                template=template,
                pipeline=spec,
                params=dict(params or {}),
                labels=dict(labels or {}),
                idempotency_key=idempotency_key,
                requires=requires,
            )
            return models.from_submitted(await services.submit(request))

        return await kit.run("submit_workflow", "workflows:submit", body)

    @server.tool(annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=False))
    async def rerun_workflow(
        workflow_id: WorkflowId,
    ) -> Annotated[CallToolResult, models.SubmittedOut]:
        """Submit a workflow's inputs again as a new workflow, labelled rerun_of=<old id>."""

        async def body() -> models.SubmittedOut:
            return models.from_submitted(await services.rerun(workflow_id))

        return await kit.run("rerun_workflow", "workflows:submit", body, target=workflow_id)


def _add_following_tools(server: MCPServer[Any], kit: ToolKit) -> None:
    services = kit.services

    @server.tool(annotations=READ_ONLY)
    async def get_status(workflow_id: WorkflowId) -> Annotated[CallToolResult, models.WorkflowOut]:
        """Return a workflow's state, steps, progress and ETA."""

        async def body() -> models.WorkflowOut:
            return models.from_view(await services.get(workflow_id))

        return await kit.run("get_status", "workflows:read", body, target=workflow_id)

    @server.tool(annotations=READ_ONLY)
    async def wait_for_workflow(
        workflow_id: WorkflowId,
        ctx: Context,
        timeout_s: Annotated[float, Field(gt=0, le=3600, description="seconds to wait")] = 300,
    ) -> Annotated[CallToolResult, models.WorkflowOut]:
        """Wait until a workflow ends (or timeout_s passes), sending progress notifications.

        Returns its latest status; `finished` says whether it ended.
        """

        async def body() -> models.WorkflowOut:
            latest = None
            sent = -1.0
            async for view in follow_views(services, workflow_id, timeout=timeout_s):
                latest = view
                percent = round(view.progress * 100, 2)
                if percent > sent or view.state in TERMINAL_STATES:
                    sent = max(sent, percent)
                    step = f", step {view.current_step}" if view.current_step else ""
                    await ctx.report_progress(sent, 100, f"{view.state}{step}")
            if latest is None:
                raise NotFound(f"no workflow {workflow_id}")
            return models.from_view(latest)

        return await kit.run("wait_for_workflow", "workflows:read", body, target=workflow_id)

    @server.tool(annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=True))
    async def cancel_workflow(
        workflow_id: WorkflowId,
        reason: Annotated[str, Field(max_length=500)] = "cancelled through MCP",
    ) -> Annotated[CallToolResult, models.CancelOut]:
        """Cancel a workflow; its running steps are stopped and it ends `cancelled`."""

        async def body() -> models.CancelOut:
            return models.CancelOut(workflow_id=await services.cancel(workflow_id, reason))

        return await kit.run("cancel_workflow", "workflows:cancel", body, target=workflow_id)


def _add_outcome_tools(server: MCPServer[Any], kit: ToolKit) -> None:
    services = kit.services

    @server.tool(annotations=READ_ONLY)
    async def get_result(workflow_id: WorkflowId) -> Annotated[CallToolResult, models.ResultOut]:
        """Return a finished workflow's result: each step's outcome, exit code and artifacts."""

        async def body() -> models.ResultOut:
            return models.from_result(await services.result(workflow_id))

        return await kit.run("get_result", "workflows:read", body, target=workflow_id)

    @server.tool(annotations=READ_ONLY)
    async def get_artifact(
        workflow_id: WorkflowId,
        name: Annotated[str, Field(description="artifact path, as listed by get_result")],
        ctx: Context,
        step: Annotated[str | None, Field(description="the step that wrote it")] = None,
    ) -> Annotated[CallToolResult, models.ArtifactOut]:
        """Return an artifact: inline when small, else a download link to the gateway's HTTP API."""

        async def body() -> models.ArtifactOut:
            ref, chunks = await services.artifact(workflow_id, name, step)
            out = models.ArtifactOut(
                workflow_id=workflow_id,
                name=ref.name,
                size=ref.size,
                digest=ref.digest,
                inline=False,
            )
            if ref.size <= kit.inline_limit:
                data = b"".join([chunk async for chunk in chunks])
                try:
                    out.text = data.decode("utf-8")
                except UnicodeDecodeError:
                    out.base64 = base64.b64encode(data).decode()
                out.inline = True
                return out
            base = await _gateway_base(kit, getattr(ctx.request_context.request, "base_url", None))
            query = f"?step={quote(step)}" if step else ""
            out.url = f"{base}/api/v1/workflows/{quote(workflow_id)}/artifacts/{quote(name)}{query}"
            return out

        return await kit.run("get_artifact", "workflows:read", body, target=workflow_id)

    @server.tool(annotations=READ_ONLY)
    async def get_logs(
        workflow_id: WorkflowId,
        step: Annotated[str, Field(description="step name")],
    ) -> Annotated[CallToolResult, models.LogsOut]:
        """Return a step's output (the last lines of stdout and stderr) to diagnose it.

        While the step runs this is its output so far (`running` is true; call
        again for more); once the workflow ends, the tails kept in its result.
        """

        async def body() -> models.LogsOut:
            return models.from_logs(await services.logs(workflow_id, step))

        return await kit.run("get_logs", "workflows:read", body, target=workflow_id)


async def _gateway_base(kit: ToolKit, request_base: object) -> str:
    """Return the gateway's HTTP base URL: the request's, the configured one, or the gateway's."""
    if request_base is not None:
        return str(request_base).rstrip("/")
    if kit.gateway_url:
        return kit.gateway_url.rstrip("/")
    try:
        info = await gateway_client.gateway_info(kit.services.bus, timeout=2.0)
    except Exception:  # noqa: BLE001 - no gateway answering: no link to give
        info = None
    if info is None or not info.url:
        raise Unsupported(
            "the artifact is too large to return inline and no gateway serves HTTP to "
            "download it from; start the gateway (troupe up) or use 'troupe artifact'"
        )
    return info.url.rstrip("/")

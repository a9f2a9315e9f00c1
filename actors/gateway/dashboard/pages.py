"""The dashboard's Starlette routes: pages, fragments for live updates, forms, SSE, assets.

Every page verifies the session cookie (see :mod:`.session`) and asks the
actors through the gateway's :class:`~actors.gateway.services.Services`; every
form checks the request's origin and the caller's scope (the API's scopes,
audited the same way). Live updates reach the browser over SSE from the
gateway's event hub: the list and detail pages re-fetch their fragment when an
event arrives, never on a timer.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, quote

import msgspec
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from actors.gateway.auth import AuthError, Principal
from actors.gateway.dashboard import ops, session
from actors.gateway.dashboard.detail import load_detail, render_detail, render_live
from actors.gateway.dashboard.doc_pages import DocsHolder, doc_routes
from actors.gateway.dashboard.output import output_stream
from actors.gateway.dashboard.responses import html, problem
from actors.gateway.dashboard.views import page
from actors.gateway.dashboard.workflows import Filters, list_page, load_rows, rows_html
from actors.gateway.events import StreamedEvent
from actors.gateway.services import Services
from actors.gateway.streams import sse_body
from actors.runtime.errors import NotFound, RequestError
from protocols.status import WorkflowTransition
from protocols.tasks import TASK_ID_PATTERN

__all__ = ["STATIC_DIR", "dashboard_routes"]

STATIC_DIR = Path(__file__).parent / "static"
"""The dashboard's ES modules and CSS, served from the installed package."""

KEEPALIVE_S = 15.0
"""Seconds between SSE comments on an idle stream."""

Page = Callable[[Request, Services, Principal], Awaitable[Response]]

_WORKFLOW_ID = re.compile(TASK_ID_PATTERN.removeprefix("^").removesuffix("$"))


def _guard(handler: Page, *, form: bool = False) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        services: Services = request.app.state.services
        principal: Principal | None = None
        try:
            if form:
                session.check_origin(request)
            principal = await session.principal_of(request, services)
            workflow_id = request.path_params.get("workflow_id")
            if workflow_id is not None and not _WORKFLOW_ID.fullmatch(workflow_id):
                raise NotFound(f"no workflow {workflow_id!r}")
            return await handler(request, services, principal)
        except session.SignedOut:
            return session.to_login(request)
        except Exception as exc:  # noqa: BLE001 - every failure is a page saying why
            return problem(exc, principal)

    endpoint.__name__ = handler.__name__
    return endpoint


async def _form(request: Request, limit: int = 16 * 1024) -> dict[str, str]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            break
    parsed = parse_qs(body[:limit].decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


# -- sign in -----------------------------------------------------------------------------


def _login_form(error: str = "", target: str = "/") -> str:
    alert = f'<p class="error" role="alert">{error}</p>' if error else ""
    return page(
        "Sign in",
        f'{alert}<form method="post" action="/login" class="login">'
        f'<input type="hidden" name="next" value="{target}">'
        '<label for="token">API token</label>'
        '<input id="token" name="token" type="password" autocomplete="off" required autofocus '
        'spellcheck="false">'
        '<button type="submit">Sign in</button></form>'
        "<p class=muted><code>troupe up</code> prints a token; "
        "<code>troupe token create NAME --role viewer</code> makes another.</p>",
        principal=None,
        kind="login",
    )


def _safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/"


async def login_page(request: Request) -> Response:
    """Show the sign-in form."""
    target = _safe_next(request.query_params.get("next", "/"))
    return html(_login_form(target=quote(target, safe="/")))


async def login(request: Request) -> Response:
    """Verify the token and keep it in the session cookie."""
    services: Services = request.app.state.services
    try:
        session.check_origin(request)
        fields = await _form(request)
        token = fields.get("token", "").strip()
        await services.verifier.verify(token)
    except AuthError as exc:
        return html(_login_form(f"Sign-in refused: {exc.message}"), exc.status)
    response = RedirectResponse(_safe_next(fields.get("next", "/")), status_code=303)
    session.set_cookie(response, request, token)
    return response


async def logout(request: Request) -> Response:
    """Forget the session cookie."""
    try:
        session.check_origin(request)
    except AuthError as exc:
        return problem(exc, None)
    response = RedirectResponse("/login", status_code=303)
    session.clear_cookie(response, request)
    return response


# -- workflows ---------------------------------------------------------------------------


async def _template_names(services: Services) -> list[str]:
    """Return the template names the filter offers (none when the task manager is away)."""
    try:
        return [t.name for t in (await services.templates()).items]
    except RequestError:
        return []


async def workflows(request: Request, services: Services, principal: Principal) -> Response:
    """The live workflow list."""
    filters = Filters.parse(request.query_params)
    (rows, cursor, scanned), names = await asyncio.gather(
        load_rows(services, filters), _template_names(services)
    )
    body = list_page(filters, rows, cursor, scanned, names)
    data = {"first": "1" if not filters.cursor else "0"}
    return html(page("Workflows", body, principal=principal, active="/", kind="list", data=data))


async def rows(request: Request, services: Services, principal: Principal) -> Response:
    """The list's ``<tbody>`` content for the same filters (fetched on live events)."""
    found, _, _ = await load_rows(services, Filters.parse(request.query_params))
    return html(rows_html(found))


async def detail(request: Request, services: Services, principal: Principal) -> Response:
    """One workflow."""
    workflow_id = request.path_params["workflow_id"]
    found = await load_detail(services, workflow_id)
    docs = DocsHolder.of(request).links
    body = render_detail(found, principal, docs)
    data = {"id": workflow_id, "state": found.view.state}
    title = f"Workflow {workflow_id}"
    return html(page(title, body, principal=principal, active="/", kind="detail", data=data))


async def live(request: Request, services: Services, principal: Principal) -> Response:
    """The live part of the detail page."""
    found = await load_detail(services, request.path_params["workflow_id"])
    return html(render_live(found, principal, DocsHolder.of(request).links))


async def cancel(request: Request, services: Services, principal: Principal) -> Response:
    """Cancel a workflow (operators), then show it."""
    workflow_id = request.path_params["workflow_id"]
    await session.require(
        services, principal, "workflows:cancel", action="cancel", target=workflow_id
    )
    await services.cancel(workflow_id, f"cancelled from the dashboard ({principal.name})")
    return RedirectResponse(f"/workflows/{quote(workflow_id)}", status_code=303)


async def rerun(request: Request, services: Services, principal: Principal) -> Response:
    """Submit a workflow's inputs again (operators), then show the new one."""
    workflow_id = request.path_params["workflow_id"]
    await session.require(
        services, principal, "workflows:submit", action="rerun", target=workflow_id
    )
    submitted = await services.rerun(workflow_id)
    return RedirectResponse(f"/workflows/{quote(submitted.workflow_id)}", status_code=303)


async def artifact(request: Request, services: Services, principal: Principal) -> Response:
    """Download a file a step produced."""
    ref, chunks = await services.artifact(
        request.path_params["workflow_id"],
        request.path_params["name"],
        request.query_params.get("step"),
    )
    filename = ref.name.rsplit("/", 1)[-1].replace('"', "")
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(ref.size),
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


# -- operations --------------------------------------------------------------------------


async def performance(request: Request, services: Services, principal: Principal) -> Response:
    """Charts of what troupe kept."""
    span = request.query_params.get("range", "1h")
    span = span if span in ops.PERF_RANGES else "1h"
    cache = getattr(request.app.state, "dashboard_perf", None)
    if cache is None:
        cache = request.app.state.dashboard_perf = ops.PerfCache()
    body = await ops.performance_page(services, span, cache)
    return html(page("Performance", body, principal=principal, active="/performance", kind="perf"))


async def agents(request: Request, services: Services, principal: Principal) -> Response:
    """Live agents."""
    body = await ops.agents_page(services)
    return html(page("Agents", body, principal=principal, active="/agents", kind="agents"))


async def breakers(request: Request, services: Services, principal: Principal) -> Response:
    """Circuit breakers."""
    body = await ops.breakers_page(services, principal)
    return html(page("Breakers", body, principal=principal, active="/breakers", kind="ops"))


async def control(request: Request, services: Services, principal: Principal) -> Response:
    """Force open or reset a breaker (operators)."""
    key = request.path_params["key"]
    await session.require(services, principal, "breakers:control", action="breaker", target=key)
    action = (await _form(request)).get("action", "")
    try:
        await services.control_breaker(key, action)
    except msgspec.ValidationError:
        raise NotFound(f"no breaker action {action!r}") from None
    return RedirectResponse("/breakers", status_code=303)


async def executions(request: Request, services: Services, principal: Principal) -> Response:
    """Steps running now."""
    body = await ops.executions_page(services, principal)
    return html(page("Executions", body, principal=principal, active="/executions", kind="ops"))


# -- live events -------------------------------------------------------------------------


def _sse_frame(event: StreamedEvent) -> bytes:
    found = event.event
    state = found.state if isinstance(found, WorkflowTransition) else ""
    kind = str(found.__struct_config__.tag).rsplit(".", 1)[-1]
    data = msgspec.json.encode({"id": event.workflow_id, "kind": kind, "state": state})
    return b"id: %d\ndata: %s\n\n" % (event.seq, data)


def _sse(events: AsyncIterator[StreamedEvent]) -> AsyncIterator[bytes]:
    return sse_body(events, _sse_frame, preamble=b": troupe dashboard\nretry: 2000\n\n")


async def events(request: Request, services: Services, principal: Principal) -> Response:
    """Every workflow's events from now (or one workflow's), as SSE, for the live pages."""
    workflow_id = request.path_params.get("workflow_id")
    raw = request.headers.get("last-event-id", "")
    after = int(raw) if raw.isdigit() and len(raw) < 19 else None
    stream = await services.follow(workflow_id, after=after)
    return StreamingResponse(
        _sse(stream),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def dashboard_routes(services: Services, docs_root: Path | None = None) -> list[BaseRoute]:
    """Return the dashboard's routes (mounted at ``/`` by the gateway's app factory).

    Args:
        services: the gateway's facade (the app also keeps it in ``app.state``).
        docs_root: where the guides are (default: the packaged ``docs/``).
    """
    holder = DocsHolder.start(docs_root)
    wf = "/workflows/{workflow_id}"
    return [
        Route("/", _guard(workflows), methods=["GET"]),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/ui/rows", _guard(rows), methods=["GET"]),
        Route("/ui/events", _guard(events), methods=["GET"]),
        Route(f"/ui{wf}/events", _guard(events), methods=["GET"]),
        Route(f"/ui{wf}/live", _guard(live), methods=["GET"]),
        Route(f"/ui{wf}/logs", _guard(output_stream), methods=["GET"]),
        Route(wf, _guard(detail), methods=["GET"]),
        Route(f"{wf}/cancel", _guard(cancel, form=True), methods=["POST"]),
        Route(f"{wf}/rerun", _guard(rerun, form=True), methods=["POST"]),
        Route(f"{wf}/artifacts/{{name:path}}", _guard(artifact), methods=["GET"]),
        Route("/performance", _guard(performance), methods=["GET"]),
        Route("/agents", _guard(agents), methods=["GET"]),
        Route("/breakers", _guard(breakers), methods=["GET"]),
        Route("/breakers/{key:path}", _guard(control, form=True), methods=["POST"]),
        Route("/executions", _guard(executions), methods=["GET"]),
        *doc_routes(holder),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]

"""HTML answers of the dashboard: security headers, and the page that says what went wrong."""

from __future__ import annotations

from starlette.responses import HTMLResponse, Response

from actors.gateway.auth import AuthError, Principal
from actors.gateway.dashboard.views import empty, page
from actors.runtime.errors import NotFound, RequestError

__all__ = ["HEADERS", "html", "problem"]

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
"""Sent with every page: no inline script or style, no framing, nothing from elsewhere."""


def html(body: str, status: int = 200) -> HTMLResponse:
    """Return an HTML answer with the dashboard's security headers."""
    return HTMLResponse(body, status_code=status, headers=HEADERS)


def problem(exc: Exception, principal: Principal | None) -> Response:
    """Return the page explaining ``exc`` with its HTTP status (403, 404, 409, 503, 500)."""
    if isinstance(exc, AuthError):
        status, title = exc.status, "Not allowed" if exc.status == 403 else "Signed out"
        message = exc.message
    elif isinstance(exc, NotFound):
        status, title, message = 404, "Not found", exc.message
    elif isinstance(exc, RequestError):
        status = 409 if exc.code in ("conflict", "rejected") else 503
        title, message = "Could not do that", exc.message
    else:
        status, title, message = 500, "Something went wrong", type(exc).__name__
    return html(page(title, empty(message), principal=principal), status)

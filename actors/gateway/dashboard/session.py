"""Dashboard sign-in: the API token kept in a cookie, and the guards of every page and form.

The login form takes an API token (any role), verifies it with the gateway's
:class:`~actors.gateway.auth.TokenVerifier`, and keeps it in a cookie that is
``HttpOnly``, ``SameSite=Strict`` and, over https, ``Secure``. Every page
verifies it again (so a revocation signs the browser out at once), and every
``POST`` must come from the dashboard's own origin (``Origin``, or ``Referer``
when a browser sends no ``Origin``): with the strict cookie that makes forms
safe from cross-site requests without a CSRF token.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response

from actors.gateway.auth import READ, AuthError, Forbidden, Principal
from actors.gateway.services import Services
from protocols.gateway import Scope

__all__ = [
    "COOKIE",
    "MAX_AGE_S",
    "SignedOut",
    "check_origin",
    "clear_cookie",
    "principal_of",
    "require",
    "set_cookie",
]

COOKIE = "troupe_session"
"""Name of the cookie holding the API token."""

MAX_AGE_S = 12 * 3600
"""How long the browser keeps the cookie (the token's own expiry still applies)."""


class SignedOut(Exception):
    """No valid session: the page answers with a redirect to the login form."""


def _secure(conn: HTTPConnection) -> bool:
    forwarded = conn.headers.get("x-forwarded-proto", "")
    return conn.url.scheme in ("https", "wss") or forwarded == "https"


def set_cookie(response: Response, conn: HTTPConnection, token: str) -> None:
    """Keep ``token`` in the session cookie of ``response``."""
    response.set_cookie(
        COOKIE,
        token,
        max_age=MAX_AGE_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(conn),
    )


def clear_cookie(response: Response, conn: HTTPConnection) -> None:
    """Remove the session cookie."""
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(conn))


async def principal_of(conn: HTTPConnection, services: Services) -> Principal:
    """Return the caller the session cookie identifies, allowed to read.

    Raises:
        SignedOut: no cookie, or a token that no longer verifies.
        Forbidden: the token may not read workflows.
    """
    token = conn.cookies.get(COOKIE)
    if not token:
        raise SignedOut
    try:
        principal = await services.verifier.verify(token)
    except AuthError:
        raise SignedOut from None
    await services.verifier.authorize(principal, READ, action="dashboard", via="http")
    return principal


async def require(
    services: Services, principal: Principal, scope: Scope, *, action: str, target: str = ""
) -> None:
    """Check (and audit) an operator action taken from the dashboard.

    Raises:
        Forbidden: the caller's role lacks ``scope``.
    """
    await services.verifier.authorize(
        principal, scope, action=f"dashboard {action}", target=target, via="http"
    )


def check_origin(request: Request) -> None:
    """Refuse a ``POST`` that does not come from this dashboard's own pages.

    Raises:
        Forbidden: ``Origin`` (or, without it, ``Referer``) names another site,
            or neither is present.
    """
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        referer = request.headers.get("referer")
        if not referer:
            raise Forbidden("cross-site request refused (no Origin or Referer)")
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    own = f"{request.url.scheme}://{request.url.netloc}"
    host = request.headers.get("host")
    allowed = {own} | ({f"{request.url.scheme}://{host}"} if host else set())
    if request.headers.get("x-forwarded-proto") == "https" and host:
        allowed.add(f"https://{host}")
    if origin not in allowed:
        raise Forbidden(f"cross-site request refused (origin {origin})")


def to_login(conn: HTTPConnection) -> RedirectResponse:
    """Redirect to the login form, coming back here afterwards."""
    path = conn.url.path
    target = "/login" if path in ("/", "/login") else f"/login?next={path}"
    return RedirectResponse(target, status_code=303)

"""Dashboard sessions: the cookie's flags and the origin check of every form."""

from __future__ import annotations

import pytest
from starlette.requests import Request
from starlette.responses import Response

from actors.gateway.auth import Forbidden
from actors.gateway.dashboard.session import COOKIE, check_origin, set_cookie


def _request(headers: dict[str, str], scheme: str = "http") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request(
        {
            "type": "http",
            "method": "POST",
            "scheme": scheme,
            "server": ("127.0.0.1", 8765),
            "path": "/workflows/x/cancel",
            "query_string": b"",
            "headers": [(b"host", b"127.0.0.1:8765"), *raw],
        }
    )


def test_a_post_from_the_dashboard_itself_passes() -> None:
    """Same origin (or, without Origin, a same-origin Referer) is accepted."""
    check_origin(_request({"Origin": "http://127.0.0.1:8765"}))
    check_origin(_request({"Referer": "http://127.0.0.1:8765/workflows/x"}))


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Referer": "http://evil.example/page"},
        {},
        {"Origin": "https://127.0.0.1:8765"},
    ],
)
def test_a_cross_site_or_anonymous_post_is_refused(headers: dict[str, str]) -> None:
    """Another origin, an opaque one, or none at all is a 403."""
    with pytest.raises(Forbidden):
        check_origin(_request(headers))


def test_the_cookie_is_http_only_strict_and_secure_over_https() -> None:
    """HttpOnly and SameSite=Strict always; Secure when the request came over https."""
    plain, tls = Response(), Response()
    set_cookie(plain, _request({}), "trp_x")
    set_cookie(tls, _request({}, scheme="https"), "trp_x")
    cookie = plain.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=trp_x")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" not in cookie
    assert "Secure" in tls.headers["set-cookie"]

"""HTML of the dashboard's frame and small shared pieces: layout, badges, times, tables.

Pages are rendered on the server as plain HTML (escaped with :func:`html.escape`);
``/static/app.js`` (a small ES module) adds live updates and formats every
``<time data-ts>`` in the viewer's own time zone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from html import escape

from actors.gateway.auth import Principal

__all__ = [
    "NAV",
    "badge",
    "duration",
    "empty",
    "page",
    "table",
    "timestamp",
]

NAV: tuple[tuple[str, str], ...] = (
    ("/", "Workflows"),
    ("/performance", "Performance"),
    ("/agents", "Agents"),
    ("/breakers", "Breakers"),
    ("/executions", "Executions"),
    ("/docs", "Docs"),
)
"""The navigation bar: ``(path, label)``."""

ASSET_VERSION = "2"
"""Appended to asset URLs so a new release is not served from a stale cache."""


def timestamp(ts: float | None, *, relative: bool = False) -> str:
    """Return a ``<time>`` the browser shows in the viewer's time zone (UTC until then)."""
    if ts is None:
        return '<span class="muted">&ndash;</span>'
    when = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    iso = when.isoformat(timespec="seconds").replace("+00:00", "Z")
    kind = ' data-relative="1"' if relative else ""
    return (
        f'<time datetime="{iso}" data-ts="{ts:.3f}"{kind}>'
        f"{when.strftime('%Y-%m-%d %H:%M:%S')} UTC</time>"
    )


def duration(seconds: float | None) -> str:
    """Return ``seconds`` as ``1.2s``, ``3m04s`` or ``2h05m``."""
    if seconds is None:
        return "&ndash;"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def badge(state: str, href: str | None = None) -> str:
    """Return a state badge (a link to its documentation when ``href`` is given)."""
    label = escape(state.replace("_", " "))
    if href:
        return f'<a class="badge st-{escape(state)}" href="{escape(href)}">{label}</a>'
    return f'<span class="badge st-{escape(state)}">{label}</span>'


def empty(message: str, hint: str = "") -> str:
    """Return the clear empty state of a section."""
    extra = f"<p>{hint}</p>" if hint else ""
    return (
        f'<div class="empty" role="status"><p><strong>{escape(message)}</strong></p>{extra}</div>'
    )


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, caption: str = "", tbody_id: str = ""
) -> str:
    """Return a ``<table>``; cells are HTML already escaped by the caller."""
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    tid = f' id="{tbody_id}"' if tbody_id else ""
    return (
        f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody{tid}>{body}</tbody></table></div>"
    )


def page(
    title: str,
    body: str,
    *,
    principal: Principal | None,
    active: str = "",
    kind: str = "",
    data: dict[str, str] | None = None,
    title_h1: bool = True,
) -> str:
    """Return a whole HTML page in the dashboard's frame.

    Args:
        title: the page's title.
        body: its main content (HTML).
        principal: the signed-in caller (``None`` on the login page).
        active: path of the navigation entry to highlight.
        kind: ``data-page`` of ``<body>``, which the ES module keys its behaviour on.
        data: more ``data-*`` attributes of ``<body>``.
        title_h1: whether to head the content with the title (a guide has its own).
    """
    attrs = "".join(f' data-{k}="{escape(v)}"' for k, v in (data or {}).items())
    nav = ""
    if principal is not None:
        links = "".join(
            f'<li><a href="{href}"{" aria-current=page" if href == active else ""}>{label}</a></li>'
            for href, label in NAV
        )
        nav = (
            f'<nav aria-label="main"><ul>{links}</ul></nav>'
            f'<div class="who"><span title="token {escape(principal.token_id)}">'
            f"{escape(principal.name)} · {escape(principal.role)}</span>"
            '<form method="post" action="/logout"><button type="submit" class="link">'
            "Sign out</button></form></div>"
        )
    heading = f"<h1>{escape(title)}</h1>" if title_h1 else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · troupe</title>"
        f'<link rel="stylesheet" href="/static/style.css?v={ASSET_VERSION}">'
        f'<script type="module" src="/static/app.js?v={ASSET_VERSION}"></script>'
        f'</head><body data-page="{escape(kind)}"{attrs}>'
        '<a class="skip" href="#main">Skip to content</a>'
        f'<header class="top"><a class="brand" href="/">troupe</a>{nav}</header>'
        f'<main id="main" tabindex="-1">{heading}{body}</main></body></html>'
    )

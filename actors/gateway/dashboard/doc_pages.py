"""The dashboard's documentation pages: the guides, their search, and links from states and errors.

The library is built once, in a thread, when the routes are created (rendering
and indexing every guide takes a fraction of a second); the first request
waits for it. The docs are readable without signing in: they hold no data.
"""

from __future__ import annotations

import asyncio
import threading
from html import escape
from pathlib import Path
from typing import ClassVar

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from actors.gateway.auth import Principal
from actors.gateway.dashboard import session
from actors.gateway.dashboard.docs import DocsLibrary
from actors.gateway.dashboard.responses import html, problem
from actors.gateway.dashboard.views import empty, page
from actors.runtime.errors import NotFound
from protocols.status import WORKFLOW_STATES

__all__ = ["TROUBLESHOOTING", "DocsHolder", "doc_routes"]

TROUBLESHOOTING = "guides/troubleshooting"
"""The page errors link to (``#<error class or code>``)."""

_FALLBACK = "/docs/architecture#status-tracker"

STATES = frozenset(WORKFLOW_STATES) | {"pending", "skipped"}


class DocsHolder:
    """A :class:`DocsLibrary` built in the background, and the doc links of states and errors."""

    _shared: ClassVar[DocsHolder | None] = None

    def __init__(self, root: Path | None) -> None:
        self._root = root
        self._library: DocsLibrary | None = None
        self._ready = threading.Event()
        self._anchors: dict[str, str] = {}

    @classmethod
    def start(cls, root: Path | None = None) -> DocsHolder:
        """Start building the library in a thread; the holder is shared by the pages."""
        holder = cls(root)
        threading.Thread(target=holder._build, name="docs-index", daemon=True).start()
        cls._shared = holder
        return holder

    @classmethod
    def of(cls, request: Request) -> DocsHolder:
        """Return the holder of the running dashboard."""
        if cls._shared is None:
            cls.start()
        assert cls._shared is not None
        return cls._shared

    def _build(self) -> None:
        try:
            library = DocsLibrary(self._root)
            anchors: dict[str, str] = {}
            pages = sorted(library.pages.values(), key=lambda p: p.path != TROUBLESHOOTING)
            for doc in pages:
                for _, _, anchor in doc.headings:
                    anchors.setdefault(anchor, f"/docs/{doc.path}#{anchor}")
            self._library, self._anchors = library, anchors
        finally:
            self._ready.set()

    def library(self) -> DocsLibrary:
        """Return the library, waiting for it to be built."""
        self._ready.wait()
        if self._library is None:
            self._library = DocsLibrary(Path("/nonexistent"))
        return self._library

    def links(self, *kinds: str) -> str:
        """Return the documentation URL of the first of ``kinds`` that has a section.

        ``kinds`` are error codes, step reasons, error classes or states, most
        specific first. A heading whose anchor is the kind wins (the
        troubleshooting guide's first); a state without one links to the status
        tracker's section, anything else to the troubleshooting guide.
        """
        self._ready.wait()
        for kind in kinds:
            found = self._anchors.get(kind)
            if found:
                return found
        if kinds and kinds[0] in STATES:
            return _FALLBACK
        if self._library is not None and TROUBLESHOOTING in self._library.pages:
            return f"/docs/{TROUBLESHOOTING}"
        return _FALLBACK


async def _who(request: Request) -> Principal | None:
    try:
        return await session.principal_of(request, request.app.state.services)
    except Exception:  # noqa: BLE001 - the docs are public; signed out shows no navigation
        return None


def _search_form(query: str = "") -> str:
    return (
        '<form class="search" method="get" action="/docs/search" role="search">'
        '<label for="q">Search the docs</label> '
        f'<input id="q" type="search" name="q" value="{escape(query)}" required>'
        '<button type="submit">Search</button></form>'
    )


def doc_routes(holder: DocsHolder) -> list[BaseRoute]:
    """Return the routes of ``/docs``: the index, search, each page and its images."""

    async def library() -> DocsLibrary:
        return await asyncio.to_thread(holder.library)

    async def index(request: Request) -> Response:
        found = await library()
        groups: dict[str, list[str]] = {}
        for doc in sorted(found.pages.values(), key=lambda p: p.path):
            group = doc.path.split("/")[0] if "/" in doc.path else "overview"
            groups.setdefault(group, []).append(
                f'<li><a href="/docs/{escape(doc.path)}">{escape(doc.title)}</a></li>'
            )
        body = "".join(
            f"<h2>{escape(name.capitalize())}</h2><ul>{''.join(items)}</ul>"
            for name, items in sorted(groups.items())
        ) or empty("No guides are packaged with this installation.")
        principal = await _who(request)
        return html(page("Docs", _search_form() + body, principal=principal, active="/docs"))

    async def search(request: Request) -> Response:
        query = request.query_params.get("q", "")[:200]
        hits = (await library()).search(query)
        items = "".join(
            f'<li><a href="/docs/{escape(h.path)}#{escape(h.anchor)}">'
            f"{escape(h.title)} &rsaquo; {escape(h.heading)}</a><p>{h.snippet}</p></li>"
            for h in hits
        )
        body = _search_form(query) + (
            f'<ol class="hits">{items}</ol>' if items else empty(f"Nothing matches “{query}”.")
        )
        principal = await _who(request)
        return html(page("Search", body, principal=principal, active="/docs", kind="search"))

    async def show(request: Request) -> Response:
        path = request.path_params["path"].removesuffix(".md").strip("/")
        found = await library()
        if path.endswith((".png", ".svg")) and found.root is not None:
            file = (found.root / path).resolve()
            if file.is_file() and found.root.resolve() in file.parents:
                return FileResponse(file)
        doc = found.pages.get(path)
        principal = await _who(request)
        if doc is None:
            return problem(NotFound(f"no guide {path!r}"), principal)
        toc = "".join(
            f'<li class="l{level}"><a href="#{escape(anchor)}">{escape(text)}</a></li>'
            for level, text, anchor in doc.headings[1:]
            if level <= 3
        )
        body = (
            _search_form()
            + f'<div class="doc"><nav class="toc" aria-label="on this page"><ul>{toc}</ul></nav>'
            f'<article class="markdown">{doc.html}</article></div>'
        )
        return html(
            page(doc.title, body, principal=principal, active="/docs", kind="doc", title_h1=False)
        )

    return [
        Route("/docs", index, methods=["GET"]),
        Route("/docs/search", search, methods=["GET"]),
        Route("/docs/{path:path}", show, methods=["GET"]),
    ]

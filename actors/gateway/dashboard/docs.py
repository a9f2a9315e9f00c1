"""The dashboard's documentation: every ``docs/**/*.md`` rendered to HTML, with full-text search.

:class:`DocsLibrary` reads the packaged guides once (an installed wheel carries
them as ``actors/gateway/dashboard/bundled-docs``; a checkout reads the
repository's ``docs/``), renders each with markdown-it-py, gives every heading
an ``id`` (GitHub's slug rules, so ``troubleshooting.md#not_found`` works in
both places) and indexes every section in an in-memory SQLite FTS5 table.
A search answers sections, best match first, each linking to its heading.
"""

from __future__ import annotations

import html
import re
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

__all__ = ["DocPage", "DocsLibrary", "SearchHit", "docs_dir", "slugify"]

_DROP = re.compile(r"[^\w\- ]", re.UNICODE)
_WORD = re.compile(r"\w+", re.UNICODE)
_LINK = re.compile(r'href="(?!https?:|#|/|mailto:)([^"#]*?)\.md(#[^"]*)?"')


def docs_dir() -> Path | None:
    """Return the directory of the packaged guides, if present."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "bundled-docs", here.parents[2] / "docs"):
        if candidate.is_dir():
            return candidate
    return None


def slugify(text: str) -> str:
    """Return GitHub's anchor of a heading: lower case, punctuation dropped, spaces to ``-``."""
    return _DROP.sub("", text.strip().lower()).replace(" ", "-")


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One matching section.

    Attributes:
        path: the page (``guides/troubleshooting``).
        title: the page's title.
        heading: the section's heading.
        anchor: the heading's id.
        snippet: matching text, HTML-escaped, matches in ``<mark>``.
    """

    path: str
    title: str
    heading: str
    anchor: str
    snippet: str


@dataclass(slots=True)
class DocPage:
    """One rendered guide.

    Attributes:
        path: its path under ``docs/`` without ``.md``.
        title: its first heading.
        html: the rendered body.
        headings: ``(level, text, anchor)`` of each heading, in order.
    """

    path: str
    title: str
    html: str
    headings: list[tuple[int, str, str]] = field(default_factory=list)


def _inline_text(token: Token) -> str:
    return "".join(c.content for c in token.children or () if c.type in ("text", "code_inline"))


class DocsLibrary:
    """The rendered guides and their full-text index.

    Args:
        root: the docs directory (default: :func:`docs_dir`); missing means an
            empty library.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else docs_dir()
        self.pages: dict[str, DocPage] = {}
        self._md = MarkdownIt("commonmark", {"html": False}).enable("table")
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute(
            "CREATE VIRTUAL TABLE sections USING fts5("
            "path UNINDEXED, title, heading, anchor UNINDEXED, body, tokenize='unicode61')"
        )
        if self.root is not None:
            for file in sorted(self.root.rglob("*.md")):
                self._add(file.relative_to(self.root).with_suffix("").as_posix(), file)
        self._db.commit()

    def _add(self, path: str, file: Path) -> None:
        tokens = self._md.parse(file.read_text(encoding="utf-8"))
        headings: list[tuple[int, str, str]] = []
        seen: dict[str, int] = {}
        sections: list[tuple[str, str, list[str]]] = [("", "", [])]
        for index, token in enumerate(tokens):
            if token.type == "heading_open":
                text = _inline_text(tokens[index + 1])
                anchor = slugify(text)
                if anchor in seen:
                    seen[anchor] += 1
                    anchor = f"{anchor}-{seen[anchor]}"
                else:
                    seen[anchor] = 0
                token.attrSet("id", anchor)
                headings.append((int(token.tag[1]), text, anchor))
                sections.append((text, anchor, []))
            elif token.type in ("inline", "fence", "code_block") and not (
                index and tokens[index - 1].type == "heading_open"
            ):
                sections[-1][2].append(token.content)
        body = self._md.renderer.render(tokens, self._md.options, {})
        body = re.sub(
            r'(<h([1-6]) id="([^"]+)">)',
            r'\1<a class="anchor" href="#\3" aria-label="link to this section">#</a> ',
            body,
        )
        body = body.replace("<table>", '<div class="scroll"><table>').replace(
            "</table>", "</table></div>"
        )
        body = _LINK.sub(lambda m: f'href="{_target(path, m.group(1))}{m.group(2) or ""}"', body)
        title = headings[0][1] if headings else path.rsplit("/", 1)[-1]
        self.pages[path] = DocPage(path=path, title=title, html=body, headings=headings)
        for heading, anchor, parts in sections:
            if not heading and not parts:
                continue
            self._db.execute(
                "INSERT INTO sections VALUES (?, ?, ?, ?, ?)",
                (path, title, heading or title, anchor, "\n".join(parts)),
            )

    def search(self, query: str, limit: int = 20) -> list[SearchHit]:
        """Return the sections matching every word of ``query``, best first.

        Args:
            query: free text; each word matches as a prefix, punctuation is ignored.
            limit: most sections to answer.
        """
        words = _WORD.findall(query)[:12]
        if not words:
            return []
        match = " ".join(f'"{w}"*' for w in words)
        with self._lock:
            rows = self._db.execute(
                "SELECT path, title, heading, anchor, "
                "snippet(sections, 4, char(1), char(2), ' … ', 16) "
                "FROM sections WHERE sections MATCH ? ORDER BY bm25(sections, 0, 4, 8, 0, 1) "
                "LIMIT ?",
                (match, limit),
            ).fetchall()
        return [
            SearchHit(
                path=row[0],
                title=row[1],
                heading=row[2],
                anchor=row[3],
                snippet=html.escape(row[4]).replace("\x01", "<mark>").replace("\x02", "</mark>"),
            )
            for row in rows
        ]


def _target(path: str, link: str) -> str:
    """Resolve a relative ``.md`` link of page ``path`` to its dashboard URL."""
    parts = path.split("/")[:-1]
    for piece in link.split("/"):
        if piece == "..":
            if parts:
                parts.pop()
        elif piece and piece != ".":
            parts.append(piece)
    return "/docs/" + "/".join(parts)

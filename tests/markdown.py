"""The docs as data: checked command blocks, headings' anchors and relative links of Markdown.

A guide marks a block as runnable with an HTML comment on the line before it::

    <!-- checked -->
    ```sh
    troupe submit hello --wait
    ```

A ``sh`` block is run as it is; in a ``console`` block the lines starting with
``$ `` are the commands (a trailing backslash continues one) and the other lines
are sample output, not compared. ``tests/actors/test_guides.py`` runs every
checked block of a guide, in order, as one script against a real troupe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CHECKED_MARK",
    "REPO",
    "Block",
    "Link",
    "anchors",
    "checked_blocks",
    "checked_script",
    "docs_files",
    "links",
    "slug",
]

REPO = Path(__file__).resolve().parents[1]
"""The repository root."""

CHECKED_MARK = "<!-- checked -->"
"""The comment that marks the next fenced block as run by the test suite."""

_FENCE = re.compile(r"^\s*(```|~~~)\s*([\w-]*)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_HTML_ID = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_INLINE_CODE = re.compile(r"(`+).*?\1")


@dataclass(frozen=True, slots=True)
class Block:
    """A fenced block marked as checked.

    Attributes:
        language: the fence's language, ``sh`` or ``console``.
        line: 1-based line of the opening fence.
        commands: the shell text to run.
    """

    language: str
    line: int
    commands: str


@dataclass(frozen=True, slots=True)
class Link:
    """A link in a Markdown file.

    Attributes:
        target: the link's destination as written.
        line: 1-based line it is on.
    """

    target: str
    line: int


def docs_files() -> list[Path]:
    """Return every Markdown file of ``docs/`` and the README, sorted."""
    return sorted([*(REPO / "docs").rglob("*.md"), REPO / "README.md"])


def _console_commands(body: list[str]) -> str:
    commands: list[str] = []
    continuing = False
    for line in body:
        if continuing or line.startswith("$ "):
            text = line if continuing else line[2:]
            commands.append(text)
            continuing = text.rstrip().endswith("\\")
    return "\n".join(commands) + "\n"


def checked_blocks(text: str) -> list[Block]:
    """Return the blocks of ``text`` marked with :data:`CHECKED_MARK`, in order.

    Raises:
        ValueError: a mark is not followed by a ``sh`` or ``console`` block.
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    for index, line in enumerate(lines):
        if line.strip() != CHECKED_MARK:
            continue
        start = index + 1
        fence = _FENCE.match(lines[start]) if start < len(lines) else None
        if fence is None or fence.group(2) not in ("sh", "console"):
            raise ValueError(f"line {index + 1}: {CHECKED_MARK} must precede a sh or console block")
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].strip() == fence.group(1)), None
        )
        if end is None:
            raise ValueError(f"line {start + 1}: the checked block is not closed")
        body = lines[start + 1 : end]
        commands = "\n".join(body) + "\n" if fence.group(2) == "sh" else _console_commands(body)
        blocks.append(Block(language=fence.group(2), line=start + 1, commands=commands))
    return blocks


def checked_script(text: str) -> str:
    """Return every checked block of ``text`` as one script, each headed by its line number."""
    return "".join(f"# line {b.line}\n{b.commands}" for b in checked_blocks(text))


def _outside_fences(text: str) -> list[tuple[int, str]]:
    """Return ``(line number, line)`` of every line not inside a fenced block."""
    kept: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(line)
        if match and (fence is None or match.group(1) == fence):
            fence = None if fence else match.group(1)
            continue
        if fence is None:
            kept.append((number, line))
    return kept


def slug(heading: str) -> str:
    """Return the anchor GitHub gives a heading (before de-duplication)."""
    text = _INLINE_CODE.sub(lambda m: m.group(0).strip("`"), heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Return the anchors of a Markdown text: headings (``-1``, ``-2`` on repeats), ``<a id>``."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in _outside_fences(text):
        found.update(_HTML_ID.findall(line))
        match = _HEADING.match(line)
        if match is None:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(text: str) -> list[Link]:
    """Return the links of a Markdown text outside code blocks and inline code."""
    found: list[Link] = []
    for number, line in _outside_fences(text):
        for match in _LINK.finditer(_INLINE_CODE.sub("", line)):
            found.append(Link(target=match.group(1), line=number))
    return found

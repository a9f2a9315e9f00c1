"""The docs' promises: links and anchors resolve, every code and setting is documented.

The commands of the guides' checked blocks are run by ``tests/actors/test_guides.py``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import pytest

from actors.cli import build_parser
from actors.cli.follow import EXIT_CODES
from actors.cli.options import EXIT_UNAVAILABLE, EXIT_USAGE
from actors.cli.status import EXIT_WATCH_TIMEOUT
from actors.gateway.http import STATUS_OF
from actors.pipeline_runner.state import DEPENDENCY_FAILED
from actors.status_tracker.config import ENV_PREFIX, TrackerConfig
from protocols.errors import ERROR_CLASSES, ErrorCode
from protocols.pipelines import StepAttemptReason
from protocols.tasks import REJECTION_CODES
from tests.markdown import REPO, anchors, checked_blocks, docs_files, links, slug

DOCS = REPO / "docs"
GUIDES = DOCS / "guides"
CONFIGURATION = (GUIDES / "configuration.md").read_text()
TROUBLESHOOTING = GUIDES / "troubleshooting.md"

CHECKED_GUIDES = (
    "getting-started.md",
    "pipeline-file.md",
    "writing-a-workflow.md",
    "agents.md",
    "retries-and-breakers.md",
    "deployment.md",
    "http-api.md",
    "mcp.md",
    "security.md",
    "troubleshooting.md",
    "cluster.md",
    "monitoring.md",
    "feature-flags.md",
    "reliability.md",
    "writing-an-actor.md",
)
"""Guides whose commands the test suite runs (each has at least one checked block)."""

CONNECTION_FLAGS = frozenset(
    {"--nats-url", "--user", "--password", "--token", "--creds", "--password-file", "--ca"}
)
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
_VARIABLE = re.compile(r"\bTROUPE_[A-Z0-9_]+\b")


def _relative_links() -> Iterator[tuple[Path, int, str]]:
    for path in docs_files():
        for link in links(path.read_text()):
            if not _EXTERNAL.match(link.target):
                yield path, link.line, link.target


def test_every_relative_link_and_anchor_in_the_docs_resolves() -> None:
    """Each relative link of docs/ and the README names an existing file and, if any, anchor."""
    broken: list[str] = []
    for path, line, target in _relative_links():
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(REPO)}:{line}: {target}"
        if not dest.exists():
            broken.append(f"{where} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            broken.append(f"{where} (no such anchor)")
    assert not broken, "\n".join(broken)


def test_slug_follows_github_anchors() -> None:
    """Headings get GitHub's anchors: lower case, punctuation dropped, spaces to hyphens."""
    assert slug("circuit_open") == "circuit_open"
    assert slug("Retries and breakers") == "retries-and-breakers"
    assert slug("`troupe agents find`") == "troupe-agents-find"
    assert slug("Exit 69") == "exit-69"
    assert anchors("# A\n## A\n```sh\n# not a heading\n```\n") == {"a", "a-1"}


def _troubleshooting_codes() -> set[str]:
    reasons = {DEPENDENCY_FAILED, "circuit_open"}
    reasons |= set(get_args(StepAttemptReason)) - {"first", "retry"}
    return (
        set(get_args(ErrorCode)) | set(STATUS_OF) | set(REJECTION_CODES) | set(ERROR_CLASSES)
    ) | reasons


def test_every_error_code_has_a_troubleshooting_section() -> None:
    """Each wire and HTTP error code, rejection, error class and step reason is a heading."""
    found = anchors(TROUBLESHOOTING.read_text())
    missing = sorted(_troubleshooting_codes() - found)
    assert not missing, f"no '## <code>' section in {TROUBLESHOOTING.name}: {missing}"


def test_every_cli_exit_code_has_a_troubleshooting_section() -> None:
    """Each exit code the CLI documents has an ``exit-N`` section."""
    codes = {1, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_WATCH_TIMEOUT} | set(EXIT_CODES.values())
    found = anchors(TROUBLESHOOTING.read_text())
    missing = sorted(code for code in codes - {0} if f"exit-{code}" not in found)
    assert not missing, f"no '### exit-N' section for {missing}"


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], list[argparse.Action]]]:
    flags = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if flags or not groups:  # a bare group (`troupe token`) has no flags of its own
        yield path, flags
    for group in groups:
        for name, sub in group.choices.items():
            yield from _commands(sub, (*path, name))


def _sections(text: str) -> dict[str, str]:
    """Return the text under each ``###`` heading of the configuration guide."""
    parts = re.split(r"^### (.+)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_cli_flag_is_in_the_configuration_guide() -> None:
    """Each command has a section in the configuration guide that names each of its flags."""
    sections = _sections(CONFIGURATION)
    connection = sections["Connection options"]
    missing: list[str] = []
    for path, actions in _commands(build_parser()):
        title = f"`{' '.join(('troupe', *path))}`"
        section = sections.get(title)
        if section is None:
            missing.append(f"{title}: no section")
            continue
        takes_connection = any("--user" in a.option_strings for a in actions)
        if takes_connection and "connection options" not in section:
            missing.append(f"{title}: does not point at the connection options")
        for action in actions:
            for flag in action.option_strings:
                shared = takes_connection and flag in CONNECTION_FLAGS
                if f"`{flag}" not in (connection if shared else section):
                    missing.append(f"{title}: {flag}")
    assert not missing, "\n".join(missing)


def _protocol_names() -> set[str]:
    """Stream and bucket names (string constants of ``protocols/``), which are no variables."""
    names: set[str] = set()
    for path in (REPO / "protocols").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)
    return names


def code_variables() -> set[str]:
    """Every ``TROUPE_*`` environment variable the code reads or sets."""
    found: set[str] = set()
    for path in (REPO / "actors").rglob("*.py"):
        found.update(_VARIABLE.findall(path.read_text()))
    found |= {ENV_PREFIX + f.name.upper() for f in dataclasses.fields(TrackerConfig)}
    return {name for name in found if not name.endswith("_")} - _protocol_names()


def test_every_troupe_variable_is_in_the_configuration_guide() -> None:
    """Each TROUPE_* variable in the code is documented in the configuration guide."""
    variables = code_variables()
    assert {"TROUPE_NATS_URL", "TROUPE_RUNNER_CONCURRENCY", "TROUPE_STATUS_RETENTION_S"} <= (
        variables
    )
    missing = sorted(v for v in variables if f"`{v}`" not in CONFIGURATION)
    assert not missing, f"not in docs/guides/configuration.md: {missing}"


def test_every_adr_is_in_the_adr_index() -> None:
    """docs/adr/README.md links every decision record."""
    index = (DOCS / "adr" / "README.md").read_text()
    records = sorted(p.name for p in (DOCS / "adr").glob("[0-9][0-9][0-9][0-9]-*.md"))
    assert records
    missing = [name for name in records if f"]({name})" not in index]
    assert not missing, missing


def test_every_guide_is_in_the_docs_index() -> None:
    """docs/README.md links every guide, the architecture and the ADR index."""
    index = (DOCS / "README.md").read_text()
    pages = [f"guides/{p.name}" for p in sorted(GUIDES.glob("*.md"))]
    pages += ["architecture.md", "adr/README.md", "json-clients.md"]
    missing = [page for page in pages if f"]({page})" not in index]
    assert not missing, missing


@pytest.mark.parametrize("guide", CHECKED_GUIDES)
def test_guide_has_checked_commands(guide: str) -> None:
    """Each user guide marks commands the test suite runs."""
    assert checked_blocks((GUIDES / guide).read_text())


def test_every_checked_mark_precedes_a_shell_block() -> None:
    """A ``<!-- checked -->`` not followed by a sh or console block is an error, not a skip."""
    for path in docs_files():
        checked_blocks(path.read_text())
    with pytest.raises(ValueError, match="must precede"):
        checked_blocks("<!-- checked -->\n```python\nprint()\n```\n")


def test_console_blocks_run_only_the_prompted_lines() -> None:
    """In a console block, ``$ `` lines (and their continuations) are run, output is not."""
    text = "<!-- checked -->\n```console\n$ troupe ls \\\n  --limit 1\nID  STATE\n$ true\n```\n"
    (block,) = checked_blocks(text)
    assert block.commands == "troupe ls \\\n  --limit 1\ntrue\n"

"""Tool errors: troupe's code, a message and a troubleshooting section that exists."""

from __future__ import annotations

import re
from pathlib import Path

from actors.gateway.auth import Forbidden
from actors.gateway.mcp.errors import ERROR_CODES, ToolFailure, docs_anchor, failure_of, tool_error
from actors.runtime.errors import NotFound, Unavailable

ROOT = Path(__file__).resolve().parents[4]


def test_every_error_code_has_a_troubleshooting_section() -> None:
    """Each code a tool error carries is a heading of docs/guides/troubleshooting.md."""
    text = (ROOT / "docs/guides/troubleshooting.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^#{2,4} (\S+)\s*$", text, flags=re.MULTILINE))
    assert set(ERROR_CODES) <= headings


def test_failures_keep_troupes_code_and_retryability() -> None:
    """Request and auth errors keep their code; anything else is internal without its repr."""
    assert failure_of(NotFound("no workflow x")).code == "not_found"
    assert failure_of(Unavailable("tracker away")).retryable is True
    assert failure_of(Forbidden("lacks scope")).code == "forbidden"
    assert failure_of(TimeoutError()).code == "timeout"
    crash = failure_of(ZeroDivisionError("secret detail"))
    assert crash.code == "internal"
    assert "secret detail" not in crash.message


def test_a_tool_error_is_an_error_result_with_the_docs_anchor() -> None:
    """The result is flagged as an error and its structured content names code and docs."""
    result = tool_error(ToolFailure("rejected", "cycle: a -> b -> a"))
    assert result.is_error is True
    assert result.structured_content == {
        "code": "rejected",
        "message": "cycle: a -> b -> a",
        "retryable": False,
        "docs": "docs/guides/troubleshooting.md#rejected",
    }
    assert docs_anchor("no-such-code") == "docs/guides/troubleshooting.md#internal"

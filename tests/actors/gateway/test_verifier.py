"""The token verifier's audit: every use beyond reading is recorded; an outage refuses nothing."""

from __future__ import annotations

import logging

import pytest

from actors.gateway.auth import READ, Forbidden, Principal, TokenVerifier
from protocols.gateway import AuditEvent, TokenRecord

OPERATOR = Principal(
    token_id="0123456789abcdef",
    name="ci",
    role="operator",
    scopes=frozenset({"workflows:read", "workflows:submit"}),
)


async def _no_record(token_id: str) -> TokenRecord | None:
    return None


async def test_a_use_beyond_reading_is_recorded_with_the_token_and_the_action() -> None:
    """An operator's submit publishes one event naming the token, scope and action."""
    published: list[AuditEvent] = []

    async def audit(event: AuditEvent) -> None:
        published.append(event)

    verifier = TokenVerifier(_no_record, audit)
    await verifier.authorize(OPERATOR, "workflows:submit", action="mcp submit_workflow", via="mcp")
    assert [(e.token_id, e.name, e.scope, e.action, e.via) for e in published] == [
        ("0123456789abcdef", "ci", "workflows:submit", "mcp submit_workflow", "mcp")
    ]


async def test_reads_and_refusals_are_not_audited() -> None:
    """Reading is never audited; a missing scope raises before anything is recorded."""
    published: list[AuditEvent] = []

    async def audit(event: AuditEvent) -> None:
        published.append(event)

    verifier = TokenVerifier(_no_record, audit)
    await verifier.authorize(OPERATOR, READ, action="GET /api/v1/workflows")
    with pytest.raises(Forbidden, match="tokens:manage"):
        await verifier.authorize(OPERATOR, "tokens:manage", action="token create")
    assert published == []


async def test_an_audit_outage_is_logged_and_the_action_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failing publish is logged with the action's name; ``authorize`` does not raise."""

    async def broken(event: AuditEvent) -> None:
        raise ConnectionError("no bus")

    verifier = TokenVerifier(_no_record, broken)
    with caplog.at_level(logging.ERROR, logger="actors.gateway.auth"):
        await verifier.authorize(OPERATOR, "workflows:submit", action="POST /api/v1/workflows")
        assert "could not publish the audit event of POST /api/v1/workflows" in caplog.text

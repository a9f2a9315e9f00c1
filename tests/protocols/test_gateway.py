"""Wire helpers of the gateway: audit subjects."""

from __future__ import annotations

from protocols.gateway import audit_subject


def test_audit_subject_turns_a_scoped_action_into_subject_tokens() -> None:
    """``workflows:cancel`` is audited on ``troupe.audit.workflows.cancel``."""
    assert audit_subject("workflows:cancel") == "troupe.audit.workflows.cancel"
    assert audit_subject("tokens") == "troupe.audit.tokens"

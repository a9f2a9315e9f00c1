"""Flag evaluation: pure functions, no I/O.

A workflow's place in a rollout is a stable hash of the flag name and the
workflow id mapped to ``[0, 100)``: the same workflow always gets the same
answer from the same flag, different flags split workflows independently, and
raising the rollout only adds workflows (none that had the flag lose it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from protocols.flags import Flag

__all__ = ["applies", "share", "value"]

_SCALE = 2**64


def share(flag_name: str, workflow_id: str) -> float:
    """Return the workflow's stable position in ``[0, 100)`` for ``flag_name``."""
    digest = hashlib.sha256(f"{flag_name}\x00{workflow_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") * 100.0 / _SCALE


def applies(
    flag: Flag,
    workflow_id: str,
    *,
    template: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> bool:
    """Whether ``flag`` applies to the workflow.

    Args:
        flag: the flag.
        workflow_id: the workflow (its rollout position is hashed from it).
        template: the workflow's template, for template targeting.
        labels: the workflow's labels, for label targeting.

    Returns:
        ``True`` when the flag is enabled, the targeting matches and the
        workflow falls within the rollout percentage.
    """
    if not flag.enabled or flag.rollout <= 0.0:
        return False
    if flag.templates and template not in flag.templates:
        return False
    have = labels or {}
    if any(have.get(key) != wanted for key, wanted in flag.labels.items()):
        return False
    return flag.rollout >= 100.0 or share(flag.name, workflow_id) < flag.rollout


def value(
    flag: Flag,
    workflow_id: str,
    *,
    template: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """Return :attr:`Flag.on` where the flag applies to the workflow, else :attr:`Flag.off`."""
    on = applies(flag, workflow_id, template=template, labels=labels)
    return flag.on if on else flag.off

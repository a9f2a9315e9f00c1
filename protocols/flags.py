"""Feature flags: the :class:`Flag` record kept in :data:`FLAGS_BUCKET`, one key per flag.

A flag *applies* to a workflow when it is enabled, the workflow's template and
labels match its targeting, and the workflow id falls in its rollout share
(a stable hash of flag name and workflow id, so one workflow always gets the
same answer). Its value is then :attr:`Flag.on`, otherwise :attr:`Flag.off`.
Actors watch the bucket, so a change takes effect without a restart; every
change also goes out as an audit event on :func:`flag_audit_subject`.

:data:`BACKEND_FLAG` steers the pipeline runner: with ``on = "dagger"`` and
``off = "local"``, ``rollout`` is the share of pipelines sent to Dagger and 0
rolls back.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from protocols.base import Message

__all__ = [
    "BACKEND_FLAG",
    "FLAGS_BUCKET",
    "FLAG_NAME_PATTERN",
    "Flag",
    "flag_audit_subject",
]

FLAGS_BUCKET = "troupe-flags"
"""KV bucket of every flag, keyed by name; its history keeps earlier versions."""

FLAG_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
"""What a flag name may be (also a valid KV key)."""

BACKEND_FLAG = "runner.backend"
"""The flag the pipeline runner asks which backend runs a pipeline that names none."""


def flag_audit_subject(action: str) -> str:
    """Return the audit subject of a flag change (``set`` or ``rm``)."""
    return f"troupe.audit.flags.{action}"


class Flag(Message, frozen=True, tag="troupe.flags.v1.flag"):
    """One feature flag and its targeting."""

    name: Annotated[str, msgspec.Meta(pattern=FLAG_NAME_PATTERN)]
    """Flag name (the bucket key)."""
    enabled: bool = True
    """Off: the flag never applies (its value is :attr:`off`)."""
    rollout: Annotated[float, msgspec.Meta(ge=0.0, le=100.0)] = 100.0
    """Percentage of workflow ids the flag applies to (0 applies to none)."""
    on: str = "true"
    """Value where the flag applies (``dagger`` for :data:`BACKEND_FLAG`)."""
    off: str = "false"
    """Value where it does not (``local`` for :data:`BACKEND_FLAG`)."""
    templates: list[str] = msgspec.field(default_factory=list)
    """Only workflows of these templates (empty: any template)."""
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    """Only workflows carrying every one of these labels (empty: any)."""
    description: str = ""
    """What the flag is for."""
    updated_by: str = ""
    """Who made this version (user or token name)."""
    updated_at: float = 0.0
    """Unix time of this version."""

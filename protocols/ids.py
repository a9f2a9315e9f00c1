"""Identifiers shared by every concern: one pattern for task, workflow and agent ids.

Ids double as KV keys and subject tokens, so they are limited to letters,
digits, ``_`` and ``-``. :data:`ID_PATTERN` is the one pattern (also the JSON
Schema ``pattern`` of :data:`Identifier` fields); :func:`is_id` checks a
string that arrives in an untyped field.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec

__all__ = ["ID_PATTERN", "Identifier", "is_id"]

ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
"""Task, workflow and agent ids: they double as KV keys and subject tokens."""

Identifier = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
"""A string matching :data:`ID_PATTERN`."""

_ID = re.compile(ID_PATTERN)


def is_id(value: str) -> bool:
    """Return whether ``value`` matches :data:`ID_PATTERN`."""
    return _ID.match(value) is not None

"""The message base: versioned type ids read from a message class's tag."""

from __future__ import annotations

import msgspec
import pytest

from protocols import agents, ids, tasks
from protocols.base import Message, type_id
from protocols.tasks import TaskSubmitted


class _NumberTagged(Message, frozen=True, tag=7):
    """A message whose tag is an integer, which troupe never uses on the wire."""


def test_type_id_is_the_versioned_tag_of_a_message_class() -> None:
    """A concrete message's type id is the tag it declares."""
    assert type_id(TaskSubmitted) == "troupe.tasks.v1.submit"


def test_type_id_refuses_a_message_without_a_string_tag() -> None:
    """A class tagged with a non-string has no type id."""
    with pytest.raises(TypeError, match="_NumberTagged has no string tag"):
        type_id(_NumberTagged)


def test_one_id_pattern_checks_typed_and_untyped_ids() -> None:
    """is_id and the Identifier type accept and refuse the same strings."""
    assert tasks.TASK_ID_PATTERN == agents.AGENT_ID_PATTERN == ids.ID_PATTERN
    for good in ("wf-1", "A_b-9", "x" * 128):
        assert ids.is_id(good)
        assert msgspec.json.decode(f'"{good}"'.encode(), type=ids.Identifier) == good
    for bad in ("", "a=b", "a.b", "x" * 129, "a b"):
        assert not ids.is_id(bad)
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(f'"{bad}"'.encode(), type=ids.Identifier)

"""The message base: versioned type ids read from a message class's tag."""

from __future__ import annotations

import pytest

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

"""The base of every wire message: a frozen, keyword-only, tagged msgspec Struct.

Each concrete message names a versioned type id as its tag (for example
``"troupe.tasks.v1.submit"``); the tag travels in the ``type`` field, so a
receiver can tell message kinds and schema versions apart, and a tagged union
of messages decodes without guessing.
"""

from __future__ import annotations

import msgspec

__all__ = ["TAG_FIELD", "Message", "type_id"]

TAG_FIELD = "type"
"""Name of the field that carries a message's versioned type id."""


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field=TAG_FIELD):
    """Base class of all troupe wire messages."""


def type_id(message_type: type[Message]) -> str:
    """Return the versioned type id (the tag) of a message class.

    Args:
        message_type: a concrete subclass of :class:`Message`.

    Returns:
        The tag, e.g. ``"troupe.tasks.v1.submit"``.

    Raises:
        TypeError: if the class has no string tag.
    """
    tag = msgspec.inspect.type_info(message_type)
    if isinstance(tag, msgspec.inspect.StructType) and isinstance(tag.tag, str):
        return tag.tag
    raise TypeError(f"{message_type.__name__} has no string tag")

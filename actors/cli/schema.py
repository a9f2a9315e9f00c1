"""``troupe schema``: the JSON Schema of every message, where it travels and how it is stored.

Everything a client in any language needs besides the README: each message's
type id, subject, pattern (stream, request, reply, event or stored value), the
reply type of each request, the encoding troupe publishes or stores it in, the
key format of each stored value, and its JSON Schema. The ``type`` field is
optional wherever one message type travels alone (troupe accepts messages
without it there) and required only where several share a subject.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

import msgspec

from protocols import headers as h
from protocols.base import TAG_FIELD, Message, type_id
from protocols.catalog import CATALOG, Route
from protocols.errors import ErrorReply

__all__ = ["message_schema", "register", "schema_document"]

ENCODING_NOTE = (
    "Every message troupe publishes or stores names its encoding in the "
    f"'{h.CONTENT_TYPE}' header: '{h.MSGPACK}' (the default between actors) or '{h.JSON}'. "
    f"Send '{h.CONTENT_TYPE}: {h.JSON}' and troupe decodes JSON and answers requests in JSON, "
    "saying so; a message without the header is read as MessagePack (a stored value without "
    "it whose first byte is '{' as JSON), and a MessagePack answer carries none. Events "
    "clients may subscribe to are published as JSON."
)


def _shared_subjects() -> set[tuple[str, str]]:
    """(subject, pattern) pairs that carry more than one message type."""
    counts = Counter((route.subject, route.pattern) for route in CATALOG)
    return {pair for pair, n in counts.items() if n > 1}


def message_schema(message: type[Message], *, tag_required: bool) -> dict[str, Any]:
    """Return the JSON Schema of ``message``.

    Args:
        message: the message class.
        tag_required: whether its ``type`` field is required (several message
            types share its subject); nested messages never require it.
    """
    schema = msgspec.json.schema(message)
    top = str(schema.get("$ref", "")).rsplit("/", 1)[-1]
    for name, definition in schema.get("$defs", {}).items():
        required = definition.get("required")
        if required is None or TAG_FIELD not in definition.get("properties", {}):
            continue
        if tag_required and name == top:
            continue
        required = [field for field in required if field != TAG_FIELD]
        if required:
            definition["required"] = required
        else:
            del definition["required"]
    return schema


def _entry(route: Route, shared: set[tuple[str, str]]) -> dict[str, Any]:
    tag_required = (route.subject, route.pattern) in shared
    entry: dict[str, Any] = {
        "type": type_id(route.message),
        "name": route.message.__name__,
        "subject": route.subject,
        "pattern": route.pattern,
        "stream": route.stream,
        "encoding": route.encoding,
        "type_required": tag_required,
    }
    if route.reply is not None:
        entry["reply"] = type_id(route.reply)
    if route.key is not None:
        entry["bucket"] = route.subject
        entry["key"] = route.key
    entry["schema"] = message_schema(route.message, tag_required=tag_required)
    return entry


def schema_document() -> dict[str, Any]:
    """Return every message's type id, subject, pattern, encoding and JSON Schema.

    Besides ``messages`` (one entry per route), ``requests`` maps each request
    subject to its request and reply type, and ``stored`` lists every stored
    value with its bucket, key format and encoding.
    """
    shared = _shared_subjects()
    return {
        "encoding": ENCODING_NOTE,
        "requests": [
            {
                "subject": route.subject,
                "request": type_id(route.message),
                "reply": type_id(route.reply),
                "error": type_id(ErrorReply),
            }
            for route in CATALOG
            if route.pattern == "request" and route.reply is not None
        ],
        "stored": [
            {
                "bucket": route.subject,
                "key": route.key,
                "type": type_id(route.message),
                "encoding": route.encoding,
            }
            for route in CATALOG
            if route.pattern == "kv"
        ],
        "messages": [_entry(route, shared) for route in CATALOG],
    }


def _run(args: argparse.Namespace) -> int:
    doc = schema_document()
    if args.type:
        doc["messages"] = [m for m in doc["messages"] if args.type in (m["type"], m["name"])]
        if not doc["messages"]:
            print(f"troupe schema: no message type {args.type!r}")
            return 2
    print(json.dumps(doc, indent=2))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``schema``."""
    p = sub.add_parser(
        "schema", help="print the JSON Schema of every message and its subject", description=__doc__
    )
    p.add_argument("type", nargs="?", help="only this message (type id or class name)")
    p.set_defaults(handler=_run)

"""``troupe schema``: the JSON Schema of every message and the subject it travels on."""

from __future__ import annotations

import argparse
import json
from typing import Any

import msgspec

from protocols.base import type_id
from protocols.catalog import CATALOG

__all__ = ["register", "schema_document"]


def schema_document() -> dict[str, Any]:
    """Return every message's type id, subject, pattern and JSON Schema."""
    messages = []
    for route in CATALOG:
        messages.append(
            {
                "type": type_id(route.message),
                "name": route.message.__name__,
                "subject": route.subject,
                "pattern": route.pattern,
                "stream": route.stream,
                "schema": msgspec.json.schema(route.message),
            }
        )
    return {
        "encoding": "MessagePack by default; JSON with header 'Content-Type: application/json'",
        "messages": messages,
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

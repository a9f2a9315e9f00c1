"""The official NATS micro JSON schemas (``io.nats.micro.v1.*_response``) and a checker.

The schemas are the ones published under ``https://nats.io/schemas/micro/v1/``
(draft-07), written out here so the tests need no network and no schema
library. :func:`violations` checks the subset of JSON Schema they use:
``type``, ``const``, ``required``, ``properties``, ``additionalProperties``,
``items``, ``oneOf``, ``pattern``, ``minLength``, ``minimum``, ``maximum`` and
``format: date-time``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

__all__ = ["INFO_RESPONSE", "PING_RESPONSE", "STATS_RESPONSE", "violations"]

_NAME = {"type": "string", "pattern": r"^[a-zA-Z0-9_-]+$", "minLength": 1}
_SEMVER = {
    "type": "string",
    "pattern": (
        r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
        r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
        r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
    ),
    "minLength": 5,
}
_ID = {"type": "string", "minLength": 1}
_METADATA = {
    "oneOf": [
        {"type": "object", "additionalProperties": {"type": "string"}},
        {"type": "null"},
    ]
}
_INT64 = {"type": "integer", "maximum": 9223372036854775807, "minimum": -9223372036854775807}


def _common(kind: str) -> dict[str, Any]:
    return {
        "type": {"type": "string", "const": f"io.nats.micro.v1.{kind}_response"},
        "name": _NAME,
        "id": _ID,
        "version": _SEMVER,
        "metadata": _METADATA,
    }


PING_RESPONSE: dict[str, Any] = {
    "title": "io.nats.micro.v1.ping_response",
    "type": "object",
    "required": ["type", "name", "id", "version"],
    "properties": _common("ping"),
}
"""Schema of a ``$SRV.PING`` answer."""

INFO_RESPONSE: dict[str, Any] = {
    "title": "io.nats.micro.v1.info_response",
    "type": "object",
    "required": ["type", "name", "id", "version", "description"],
    "properties": {
        **_common("info"),
        "description": {"type": "string"},
        "endpoints": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "subject"],
                "properties": {
                    "name": _NAME,
                    "subject": {"type": "string", "minLength": 1},
                    "metadata": _METADATA,
                    "queue_group": {"type": "string"},
                },
            },
        },
    },
}
"""Schema of a ``$SRV.INFO`` answer."""

STATS_RESPONSE: dict[str, Any] = {
    "title": "io.nats.micro.v1.stats_response",
    "type": "object",
    "required": ["type", "name", "id", "version", "started", "endpoints"],
    "properties": {
        **_common("stats"),
        "started": {"type": "string", "format": "date-time"},
        "endpoints": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "name",
                    "subject",
                    "num_requests",
                    "num_errors",
                    "last_error",
                    "processing_time",
                    "average_processing_time",
                ],
                "properties": {
                    "name": _NAME,
                    "subject": {"type": "string", "minLength": 1},
                    "num_requests": _INT64,
                    "num_errors": _INT64,
                    "last_error": {"type": "string"},
                    "processing_time": _INT64,
                    "average_processing_time": _INT64,
                    "data": {"type": "object"},
                },
            },
        },
    },
}
"""Schema of a ``$SRV.STATS`` answer."""

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
    "boolean": (bool,),
    "number": (int, float),
}


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number" and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[kind])


def _date_time(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return "T" in value and bool(re.search(r"(Z|[+-]\d\d:\d\d)$", value))


def violations(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Return every way ``value`` breaks ``schema`` (empty when it is valid)."""
    found: list[str] = []
    if "oneOf" in schema:
        matching = [s for s in schema["oneOf"] if not violations(value, s, path)]
        if len(matching) != 1:
            found.append(f"{path}: matches {len(matching)} of oneOf")
        return found
    kind = schema.get("type")
    if kind is not None and not _is(value, kind):
        return [f"{path}: {value!r} is not of type {kind}"]
    if "const" in schema and value != schema["const"]:
        found.append(f"{path}: {value!r} != {schema['const']!r}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            found.append(f"{path}: shorter than {schema['minLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            found.append(f"{path}: {value!r} does not match {schema['pattern']}")
        if schema.get("format") == "date-time" and not _date_time(value):
            found.append(f"{path}: {value!r} is not an RFC 3339 date-time")
    if _is(value, "integer") and not (
        schema.get("minimum", value) <= value <= schema.get("maximum", value)
    ):
        found.append(f"{path}: {value} out of range")
    if isinstance(value, dict):
        found += [f"{path}: missing {k!r}" for k in schema.get("required", ()) if k not in value]
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                found += violations(item, properties[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                found += violations(item, extra, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += violations(item, schema["items"], f"{path}[{i}]")
    return found

"""Pipeline definitions as files: parse TOML, YAML or JSON into a :class:`PipelineSpec`, and back.

A definition file holds one pipeline (see :class:`protocols.pipelines.PipelineSpec`)::

    name = "hello"
    [[params]]
    name = "who"
    default = "world"
    [[steps]]
    name = "greet"
    run = "echo hello {{ who }}"

The format follows the file suffix (``.toml``, ``.yaml``/``.yml``, ``.json``).
Parsing stops at plain data (:func:`parse_document`), because a template's
``{{ param }}`` placeholders must be rendered before the typed structure is
checked (:func:`to_pipeline`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec
import tomli_w
import yaml

from actors.task_manager.errors import TaskRejected
from protocols.pipelines import PipelineSpec

__all__ = [
    "FORMATS",
    "SUFFIXES",
    "Format",
    "dump_pipeline",
    "format_of",
    "load_document",
    "load_pipeline",
    "parse_document",
    "to_document",
    "to_pipeline",
]

Format = Literal["toml", "yaml", "json"]
"""A definition file format."""

FORMATS: tuple[Format, ...] = ("toml", "yaml", "json")
"""Every supported format."""

SUFFIXES: dict[str, Format] = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json"}
"""File suffix -> format."""


def format_of(path: Path) -> Format:
    """Return the format of a definition file from its suffix.

    Raises:
        TaskRejected: ``invalid_definition`` for an unknown suffix.
    """
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise TaskRejected(
            "invalid_definition",
            f"{path.name}: unknown definition format (use {', '.join(sorted(SUFFIXES))})",
        )
    return fmt


def parse_document(text: str, fmt: Format, *, source: str = "definition") -> dict[str, Any]:
    """Parse a definition into plain data (placeholders left as they are).

    Args:
        text: the file's content.
        fmt: its format.
        source: name used in error messages (usually the file name).

    Returns:
        The top-level mapping.

    Raises:
        TaskRejected: ``invalid_definition`` when the text does not parse or is
            not a mapping.
    """
    try:
        data: Any
        if fmt == "toml":
            data = tomllib.loads(text)
        elif fmt == "yaml":
            data = yaml.safe_load(text)
        else:
            data = msgspec.json.decode(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError, msgspec.DecodeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TaskRejected(
            "invalid_definition", f"{source}: not valid {fmt}: {first_line}"
        ) from None
    if not isinstance(data, dict):
        raise TaskRejected("invalid_definition", f"{source}: the top level must be a mapping")
    return data


def load_document(path: Path) -> dict[str, Any]:
    """Read and parse a definition file (see :func:`parse_document`).

    Raises:
        TaskRejected: ``invalid_definition`` when it cannot be read or parsed.
    """
    fmt = format_of(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskRejected("invalid_definition", f"{path}: cannot read: {exc}") from None
    return parse_document(text, fmt, source=path.name)


def to_pipeline(
    document: dict[str, Any], *, source: str = "definition", lenient: bool = False
) -> PipelineSpec:
    """Check plain data against :class:`PipelineSpec` and return the typed pipeline.

    Args:
        document: parsed definition.
        source: name used in error messages.
        lenient: accept numeric text for numeric fields (rendered placeholders are text).

    Raises:
        TaskRejected: ``invalid_definition`` naming the offending field.
    """
    try:
        return msgspec.convert(document, PipelineSpec, strict=not lenient)
    except msgspec.ValidationError as exc:
        raise TaskRejected("invalid_definition", f"{source}: {exc}") from None


def load_pipeline(path: Path) -> PipelineSpec:
    """Read a definition file without placeholders into a :class:`PipelineSpec`.

    Raises:
        TaskRejected: ``invalid_definition`` when it cannot be read, parsed or checked.
    """
    return to_pipeline(load_document(path), source=path.name)


def _drop_none(value: Any) -> Any:
    # TOML has no null: an absent key decodes back to the field's default (None).
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def to_document(spec: PipelineSpec) -> dict[str, Any]:
    """Return ``spec`` as plain data, fields set to ``None`` left out."""
    document: dict[str, Any] = _drop_none(msgspec.to_builtins(spec))
    return document


def dump_pipeline(spec: PipelineSpec, fmt: Format) -> str:
    """Serialize ``spec`` as a definition file that :func:`parse_document` reads back."""
    document = to_document(spec)
    if fmt == "toml":
        return tomli_w.dumps(document)
    if fmt == "yaml":
        dumped: str = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
        return dumped
    return msgspec.json.format(msgspec.json.encode(document)).decode()

"""Definition files: formats by suffix, precise parse errors, typed checking."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.task_manager.definitions import (
    FORMATS,
    dump_pipeline,
    format_of,
    load_pipeline,
    parse_document,
    to_pipeline,
)
from actors.task_manager.errors import TaskRejected
from actors.task_manager.templates import TemplateRegistry

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.mark.parametrize(
    ("filename", "fmt"),
    [("a.toml", "toml"), ("a.YAML", "yaml"), ("a.yml", "yaml"), ("a.json", "json")],
)
def test_format_of_follows_the_suffix(filename: str, fmt: str) -> None:
    """The suffix decides the format, case-insensitively."""
    assert format_of(Path(filename)) == fmt


def test_format_of_rejects_an_unknown_suffix() -> None:
    """An unknown suffix is an invalid definition naming the accepted ones."""
    with pytest.raises(TaskRejected, match=r"\.json, \.toml, \.yaml, \.yml"):
        format_of(Path("pipeline.ini"))


@pytest.mark.parametrize(
    ("text", "fmt"), [("name = ", "toml"), ("a: [", "yaml"), ("{", "json"), ("- 1", "yaml")]
)
def test_parse_document_rejects_malformed_or_non_mapping_text(text: str, fmt: str) -> None:
    """Bad syntax or a non-mapping top level is invalid_definition naming the source."""
    with pytest.raises(TaskRejected) as info:
        parse_document(text, fmt, source="x.def")  # type: ignore[arg-type]
    assert info.value.code == "invalid_definition"
    assert info.value.detail.startswith("x.def: ")


def test_to_pipeline_names_the_offending_field() -> None:
    """A field of the wrong type is reported with its path."""
    with pytest.raises(TaskRejected, match=r"\$\.steps\[0\]\.timeout"):
        to_pipeline({"name": "p", "steps": [{"name": "a", "run": "x", "timeout": -1}]})


def test_to_pipeline_refuses_unknown_fields() -> None:
    """A misspelt key (``need`` for ``needs``) is not silently ignored."""
    with pytest.raises(TaskRejected, match="need"):
        to_pipeline({"name": "p", "steps": [{"name": "a", "run": "x", "need": []}]})


def test_rendered_examples_dump_and_load_back_unchanged(tmp_path: Path) -> None:
    """Each bundled example, rendered, survives a TOML, YAML and JSON file round trip."""
    for template in TemplateRegistry([EXAMPLES]).templates():
        spec = template.render({})
        for fmt in FORMATS:
            copy = tmp_path / f"{template.name}.{fmt}"
            copy.write_text(dump_pipeline(spec, fmt))
            assert load_pipeline(copy) == spec

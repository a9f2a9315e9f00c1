"""Templates: typed parameters, structure-safe rendering, and the registry's directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from actors.task_manager.errors import TaskRejected
from actors.task_manager.templates import (
    TEMPLATES_ENV,
    TemplateRegistry,
    bundled_templates_dir,
    coerce_param,
    render,
)
from protocols.pipelines import ParamSpec

DOC = {
    "name": "greet",
    "timeout": "{{ limit }}",
    "params": [
        {"name": "who", "type": "str"},
        {"name": "times", "type": "int", "default": 2},
        {"name": "loud", "type": "bool", "default": False},
        {"name": "limit", "type": "float", "default": 30},
    ],
    "steps": [
        {
            "name": "say",
            "run": ["sh", "-c", "echo {{who}} x{{ times }}"],
            "env": {"LOUD": "{{ loud }}", "{{ who }}_SEEN": "1"},
        }
    ],
}


def _reject(doc: dict[str, object], params: dict[str, object]) -> TaskRejected:
    with pytest.raises(TaskRejected) as info:
        render(doc, params)  # type: ignore[arg-type]
    return info.value


def test_render_substitutes_values_and_defaults() -> None:
    """Placeholders take given values, else defaults; numeric fields accept rendered text."""
    spec = render(DOC, {"who": "ada", "loud": "yes", "limit": "12.5"})
    step = spec.steps[0]
    assert step.run == ["sh", "-c", "echo ada x2"]
    assert step.env == {"LOUD": "true", "ada_SEEN": "1"}
    assert spec.timeout == 12.5


def test_render_keeps_a_value_inside_its_string() -> None:
    """Quotes, newlines and braces in a value cannot change the pipeline's structure."""
    nasty = 'x"]\nsteps = []\n{{ times }}'
    spec = render(DOC, {"who": nasty})
    assert spec.steps[0].run[2] == f"echo {nasty} x2"
    assert len(spec.steps) == 1


def test_render_rejects_a_missing_required_parameter() -> None:
    """A parameter without default must be given."""
    problem = _reject(DOC, {})
    assert problem.reason == "missing_parameter: required parameter 'who' has no value"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("times", "two"),
        ("times", True),
        ("times", 1.5),
        ("loud", "maybe"),
        ("limit", "inf"),
        ("who", 3),
        ("limit", [1]),
    ],
)
def test_render_rejects_an_ill_typed_parameter(name: str, value: object) -> None:
    """A value that does not convert to the declared type is invalid_parameter."""
    problem = _reject(DOC, {"who": "ada", name: value})
    assert problem.code == "invalid_parameter"
    assert problem.detail.startswith(f"parameter {name!r} expects")


def test_render_rejects_an_undeclared_parameter_value() -> None:
    """Giving a value nobody declared is unknown_parameter, listing the declared ones."""
    problem = _reject(DOC, {"who": "ada", "colour": "red"})
    assert problem.code == "unknown_parameter"
    assert "colour" in problem.detail
    assert "limit, loud, times, who" in problem.detail


def test_render_rejects_a_placeholder_without_declaration() -> None:
    """A placeholder naming no declared parameter is undefined_parameter, with its place."""
    doc = {"name": "p", "steps": [{"name": "a", "run": "echo {{ nope }}"}]}
    problem = _reject(doc, {})
    assert problem.code == "undefined_parameter"
    assert "steps[0].run" in problem.detail


def test_render_rejects_a_default_of_the_wrong_type() -> None:
    """A template whose default does not fit its type is an invalid definition."""
    doc = {
        "name": "p",
        "params": [{"name": "n", "type": "int", "default": "x"}],
        "steps": [{"name": "a", "run": "true"}],
    }
    assert _reject(doc, {}).code == "invalid_definition"


def test_render_rejects_a_parameter_declared_twice() -> None:
    """Duplicate parameter declarations are an invalid definition."""
    doc = {
        "name": "p",
        "params": [{"name": "n"}, {"name": "n"}],
        "steps": [{"name": "a", "run": "true"}],
    }
    assert "declared twice" in _reject(doc, {"n": "1"}).detail


def test_render_rejects_a_rendered_value_that_breaks_the_schema() -> None:
    """A rendered step name that is not a valid name is an invalid definition."""
    doc = {"name": "p", "params": [{"name": "s"}], "steps": [{"name": "{{ s }}", "run": "true"}]}
    problem = _reject(doc, {"s": "bad name!"})
    assert problem.code == "invalid_definition"
    assert "$.steps[0].name" in problem.detail


@pytest.mark.parametrize(
    ("kind", "given", "expected"),
    [
        ("int", "-42", -42),
        ("int", 7, 7),
        ("float", 3, 3.0),
        ("float", " 2.5 ", 2.5),
        ("bool", "ON", True),
        ("bool", "0", False),
        ("bool", False, False),
        ("str", "", ""),
    ],
)
def test_coerce_param_converts_text_and_native_values(
    kind: str, given: object, expected: object
) -> None:
    """Text from the command line converts to the declared type."""
    value = coerce_param(ParamSpec(name="p", type=kind), given)  # type: ignore[arg-type]
    assert value == expected
    assert type(value) is type(expected)


def _write(directory: Path, filename: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_text(text)
    return path


def test_registry_finds_the_bundled_examples() -> None:
    """The bundled directory holds hello, data-pipeline and fanout, all valid."""
    builtin = bundled_templates_dir()
    assert builtin is not None
    registry = TemplateRegistry([builtin])
    assert {"hello", "data-pipeline", "fanout"} <= {t.name for t in registry.templates()}
    assert registry.errors == {}
    for template in registry.templates():
        assert template.render({}).steps


def test_registry_reads_every_format_and_later_directories_win(tmp_path: Path) -> None:
    """TOML, YAML and JSON templates load; a later directory replaces a same-named one."""
    first, second = tmp_path / "first", tmp_path / "second"
    _write(
        first, "a.toml", 'name = "a"\ndescription = "old"\n[[steps]]\nname = "s"\nrun = "true"\n'
    )
    _write(first, "b.yaml", "name: b\nsteps:\n  - name: s\n    run: 'true'\n")
    _write(
        second,
        "a.json",
        '{"name": "a", "description": "new", "steps": [{"name": "s", "run": "true"}]}',
    )
    registry = TemplateRegistry([first, second])
    assert [t.name for t in registry.templates()] == ["a", "b"]
    assert registry.get("a").description == "new"


def test_registry_reports_broken_files_and_skips_them(tmp_path: Path) -> None:
    """A file that does not parse is listed in errors; asking for it says it is broken."""
    _write(tmp_path, "broken.toml", "name = \n")
    _write(tmp_path, "notes.txt", "not a template")
    registry = TemplateRegistry([tmp_path])
    assert len(registry) == 0
    assert list(registry.errors) == [tmp_path / "broken.toml"]
    with pytest.raises(TaskRejected) as info:
        registry.get("broken")
    assert info.value.code == "invalid_template"


def test_registry_rejects_an_unknown_template_listing_known_ones(tmp_path: Path) -> None:
    """Asking for a missing template is unknown_template, with the known names."""
    _write(tmp_path, "a.toml", 'name = "a"\n[[steps]]\nname = "s"\nrun = "true"\n')
    with pytest.raises(TaskRejected) as info:
        TemplateRegistry([tmp_path]).get("nope")
    assert info.value.reason == "unknown_template: no template 'nope' (known: a)"


def test_registry_picks_up_a_template_added_later(tmp_path: Path) -> None:
    """A miss reads the directories again, so new files need no restart."""
    registry = TemplateRegistry([tmp_path])
    _write(tmp_path, "late.toml", 'name = "late"\n[[steps]]\nname = "s"\nrun = "true"\n')
    assert registry.get("late").name == "late"


def test_registry_default_reads_troupe_templates(tmp_path: Path) -> None:
    """TROUPE_TEMPLATES directories come after the bundled ones."""
    _write(
        tmp_path,
        "hello.toml",
        'name = "hello"\ndescription = "mine"\n[[steps]]\nname = "s"\nrun = "true"\n',
    )
    registry = TemplateRegistry.default(env={TEMPLATES_ENV: os.pathsep.join(["", str(tmp_path)])})
    assert registry.get("hello").description == "mine"
    assert "fanout" in registry


def test_every_example_template_is_shipped_in_the_wheel() -> None:
    """pyproject's force-include maps each examples/ template into the bundled directory."""
    import tomllib

    repo = Path(__file__).resolve().parents[3]
    config = tomllib.loads((repo / "pyproject.toml").read_text())
    shipped = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    for path in sorted((repo / "examples").iterdir()):
        if path.suffix in {".toml", ".yaml", ".yml", ".json"}:
            key = f"examples/{path.name}"
            assert shipped.get(key) == f"actors/task_manager/bundled/{path.name}", key

"""Templates: pipeline definitions found in directories, rendered with ``{{ param }}`` values.

A template is a definition file (see :mod:`actors.task_manager.definitions`)
whose strings may contain ``{{ name }}``. Rendering works on the parsed data,
never on the file's text, so a parameter value cannot change the structure of
the pipeline (quotes or newlines in a value stay inside the string). Each
placeholder is replaced by the value's text (``true``/``false`` for booleans);
numeric fields then accept numeric text, so ``timeout = "{{ limit }}"`` works.

Parameter values are checked against the declared types; strings are converted
(``"3"`` to ``3`` for an ``int``), so values from the command line just work.

The :class:`TemplateRegistry` reads, in order, the bundled templates, each
directory of ``TROUPE_TEMPLATES`` (``os.pathsep``-separated) and any directory
given explicitly; a later directory's template replaces an earlier one of the
same name. Bundled templates are the ``examples/`` directory of a checkout,
shipped inside the wheel as ``actors/task_manager/bundled``.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from actors.task_manager.definitions import SUFFIXES, load_document, to_pipeline
from actors.task_manager.errors import TaskRejected
from protocols.pipelines import NAME_PATTERN, ParamSpec, ParamValue, PipelineSpec

__all__ = [
    "TEMPLATES_ENV",
    "Template",
    "TemplateRegistry",
    "bundled_templates_dir",
    "coerce_param",
    "declared_params",
    "render",
    "resolve_params",
]

log = logging.getLogger(__name__)

TEMPLATES_ENV = "TROUPE_TEMPLATES"
"""Environment variable listing extra template directories."""

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]*)\s*\}\}")
_NAME = re.compile(NAME_PATTERN)
_INT = re.compile(r"^[+-]?\d+$")
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


# -- parameters ---------------------------------------------------------------------


def _describe(value: object) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def _to_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None


def _to_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INT.match(value.strip()):
        return int(value.strip())
    return None


def _to_float(value: object) -> float | None:
    number: float
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def coerce_param(spec: ParamSpec, value: object) -> ParamValue:
    """Check ``value`` against the parameter's type and convert it.

    Strings are parsed for ``int``, ``float`` and ``bool`` parameters (``bool``
    accepts true/false, yes/no, on/off, 1/0); an ``int`` is accepted for a
    ``float``; nothing else is converted, and a ``str`` parameter takes only text.

    Raises:
        TaskRejected: ``invalid_parameter`` naming the parameter, the expected
            type and the value received.
    """
    converted: ParamValue | None
    if spec.type == "str":
        converted = value if isinstance(value, str) else None
    elif spec.type == "bool":
        converted = _to_bool(value)
    elif spec.type == "int":
        converted = _to_int(value)
    else:
        converted = _to_float(value)
    if converted is None:
        raise TaskRejected(
            "invalid_parameter",
            f"parameter {spec.name!r} expects {spec.type}, got {_describe(value)}",
        )
    return converted


def declared_params(document: Mapping[str, Any], *, source: str) -> list[ParamSpec]:
    """Return the parameters a definition declares, defaults checked against their types.

    Raises:
        TaskRejected: ``invalid_definition`` for a malformed declaration, a
            duplicate name or a default of the wrong type.
    """
    try:
        params = msgspec.convert(document.get("params", []), list[ParamSpec])
    except msgspec.ValidationError as exc:
        raise TaskRejected("invalid_definition", f"{source}: params: {exc}") from None
    seen: set[str] = set()
    for param in params:
        if param.name in seen:
            raise TaskRejected(
                "invalid_definition", f"{source}: parameter {param.name!r} declared twice"
            )
        seen.add(param.name)
        if param.default is not None:
            try:
                coerce_param(param, param.default)
            except TaskRejected as exc:
                raise TaskRejected(
                    "invalid_definition", f"{source}: default of {exc.detail}"
                ) from None
    return params


def resolve_params(
    declared: Sequence[ParamSpec], given: Mapping[str, ParamValue]
) -> dict[str, ParamValue]:
    """Merge given values over defaults, checking names and types.

    Returns:
        Every declared parameter's typed value.

    Raises:
        TaskRejected: ``unknown_parameter`` for a value nobody declared,
            ``missing_parameter`` for a required one not given,
            ``invalid_parameter`` for a value of the wrong type.
    """
    names = {p.name for p in declared}
    unknown = sorted(set(given) - names)
    if unknown:
        known = ", ".join(sorted(names)) or "none"
        raise TaskRejected(
            "unknown_parameter",
            f"parameter {unknown[0]!r} is not declared (declared: {known})",
        )
    values: dict[str, ParamValue] = {}
    missing: list[str] = []
    for param in declared:
        if param.name in given:
            values[param.name] = coerce_param(param, given[param.name])
        elif param.default is not None:
            values[param.name] = coerce_param(param, param.default)
        else:
            missing.append(param.name)
    if missing:
        raise TaskRejected(
            "missing_parameter",
            f"required parameter {missing[0]!r} has no value"
            + (f" (also missing: {', '.join(missing[1:])})" if missing[1:] else ""),
        )
    return values


# -- rendering ----------------------------------------------------------------------


def _text(value: ParamValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _render_str(text: str, values: Mapping[str, ParamValue], where: str) -> str:
    if "{{" not in text:
        return text

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise TaskRejected(
                "undefined_parameter",
                f"{where} uses {{{{ {name} }}}} but no parameter {name!r} is declared",
            )
        return _text(values[name])

    return _PLACEHOLDER.sub(substitute, text)


def _render(value: Any, values: Mapping[str, ParamValue], where: str) -> Any:
    if isinstance(value, str):
        return _render_str(value, values, where)
    if isinstance(value, list):
        return [_render(v, values, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            new_key = _render_str(key, values, where) if isinstance(key, str) else key
            out[new_key] = _render(item, values, f"{where}.{key}")
        return out
    return value


def render(
    document: Mapping[str, Any], given: Mapping[str, ParamValue], *, source: str = "pipeline"
) -> PipelineSpec:
    """Render a definition's placeholders with parameter values and check the result.

    The ``params`` declarations themselves are not rendered; everything else is.

    Args:
        document: the parsed definition (plain data).
        given: parameter values from the task.
        source: name used in error messages.

    Returns:
        The rendered, typed pipeline.

    Raises:
        TaskRejected: ``unknown_parameter``, ``missing_parameter``,
            ``invalid_parameter``, ``undefined_parameter`` or
            ``invalid_definition``.
    """
    declared = declared_params(document, source=source)
    values = resolve_params(declared, given)
    rendered = {
        key: (value if key == "params" else _render(value, values, key))
        for key, value in document.items()
    }
    return to_pipeline(rendered, source=source, lenient=True)


# -- registry -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Template:
    """A template found in a templates directory.

    Attributes:
        name: the definition's ``name``, what tasks refer to.
        path: the file.
        document: its parsed content (placeholders not rendered).
        params: declared parameters.
        description: the definition's ``description``.
    """

    name: str
    path: Path
    document: Mapping[str, Any]
    params: tuple[ParamSpec, ...]
    description: str = ""

    def render(self, given: Mapping[str, ParamValue]) -> PipelineSpec:
        """Render this template with ``given`` values (see :func:`render`)."""
        return render(self.document, given, source=f"template {self.name!r}")


def bundled_templates_dir() -> Path | None:
    """Return the directory of the templates shipped with troupe, if present.

    An installed wheel carries them as ``actors/task_manager/bundled``; a
    checkout (or editable install) reads the repository's ``examples/``.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "bundled", here.parents[1] / "examples"):
        if candidate.is_dir():
            return candidate
    return None


def _read_template(path: Path) -> Template:
    document = load_document(path)
    name = document.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise TaskRejected("invalid_definition", f"{path.name}: 'name' must match {NAME_PATTERN}")
    params = declared_params(document, source=path.name)
    description = document.get("description", "")
    return Template(
        name=name,
        path=path,
        document=document,
        params=tuple(params),
        description=description if isinstance(description, str) else "",
    )


class TemplateRegistry:
    """Templates by name, read from an ordered list of directories.

    Args:
        directories: searched in order; a later directory wins a name clash.
    """

    def __init__(self, directories: Iterable[Path]) -> None:
        self.directories = tuple(directories)
        self._templates: dict[str, Template] = {}
        self.errors: dict[Path, str] = {}
        """Files that look like definitions but could not be read, with why."""
        self.reload()

    @classmethod
    def default(
        cls,
        extra: Iterable[Path] = (),
        *,
        env: Mapping[str, str] | None = None,
        bundled: bool = True,
    ) -> TemplateRegistry:
        """Return the registry of bundled templates, ``TROUPE_TEMPLATES`` and ``extra``."""
        env = os.environ if env is None else env
        directories: list[Path] = []
        if bundled and (builtin := bundled_templates_dir()) is not None:
            directories.append(builtin)
        directories += [Path(p) for p in env.get(TEMPLATES_ENV, "").split(os.pathsep) if p]
        directories += list(extra)
        return cls(directories)

    def reload(self) -> None:
        """Read every directory again."""
        templates: dict[str, Template] = {}
        errors: dict[Path, str] = {}
        for directory in self.directories:
            try:
                files = sorted(p for p in directory.iterdir() if p.suffix.lower() in SUFFIXES)
            except OSError as exc:
                errors[directory] = f"cannot list templates: {exc.strerror or exc}"
                continue
            for path in files:
                if not path.is_file():
                    continue
                try:
                    template = _read_template(path)
                except TaskRejected as exc:
                    errors[path] = exc.detail
                    continue
                templates[template.name] = template
        for path, problem in errors.items():
            log.warning("template %s skipped: %s", path, problem)
        self._templates = templates
        self.errors = errors

    def __contains__(self, name: object) -> bool:
        return name in self._templates

    def __len__(self) -> int:
        return len(self._templates)

    def templates(self) -> list[Template]:
        """Every template, sorted by name."""
        return [self._templates[name] for name in sorted(self._templates)]

    def get(self, name: str) -> Template:
        """Return the template called ``name``, reading the directories again on a miss.

        Raises:
            TaskRejected: ``unknown_template`` (``invalid_template`` when a file
                of that name exists but is broken).
        """
        if name not in self._templates:
            self.reload()
        template = self._templates.get(name)
        if template is not None:
            return template
        for path, problem in self.errors.items():
            if path.stem == name:
                raise TaskRejected("invalid_template", f"template {name!r} is broken: {problem}")
        known = ", ".join(sorted(self._templates)) or "none"
        raise TaskRejected("unknown_template", f"no template {name!r} (known: {known})")

    def render(self, name: str, given: Mapping[str, ParamValue]) -> PipelineSpec:
        """Render the template called ``name`` (see :func:`render`)."""
        return self.get(name).render(given)

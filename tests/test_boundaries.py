"""Concern boundaries: nothing crosses actor packages but a client module.

A module in ``actors/<pkg>/`` may import its own package, the runtime
(``actors.runtime``), ``actors.topology``, the wire contract (``protocols``)
and the ``client`` module of another actor package. The runtime and the wire
contract import no actor package; ``protocols`` imports nothing from
``actors``. Only ``actors/roster.py``, ``actors/__main__.py`` (and the CLI,
through the roster) load actor classes.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_SHARED = ("actors.runtime", "actors.topology")
_LOADERS = {"actors/roster.py", "actors/__main__.py"}
_EXTRA = {"cli": ("actors.roster",)}
"""Top-level modules a package may use beyond the shared ones."""


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _imports(path: Path, module: str) -> Iterator[tuple[int, str]]:
    """Yield ``(line, imported module)`` for every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            names = [f"{base}.{a.name}" for a in node.names if a.name != "*"]
            # ``from actors.x import client`` names a module; ``from m import f`` names m.
            for name in names or [base]:
                yield node.lineno, name if name.endswith(".client") else base


def allowed(source: str, imported: str) -> bool:
    """Whether module ``source`` (a file path relative to the root) may import ``imported``.

    Args:
        source: path of the importing file, e.g. ``actors/cli/tasks.py``.
        imported: dotted name of the imported module.
    """
    if not (_within(imported, "actors") or _within(imported, "protocols")):
        return True
    parts = source.split("/")
    if parts[0] == "protocols":
        return _within(imported, "protocols")
    if source in _LOADERS:
        return True
    if len(parts) == 2:  # actors/topology.py and other top-level modules
        return _within(imported, "protocols") or _within(imported, "actors.runtime")
    package = parts[1]
    if package == "runtime":
        return _within(imported, "protocols") or _within(imported, "actors.runtime")
    if _within(imported, "protocols") or imported in ("actors", "protocols"):
        return True
    if _within(imported, f"actors.{package}"):
        return True
    if any(_within(imported, shared) for shared in (*_SHARED, *_EXTRA.get(package, ()))):
        return True
    pieces = imported.split(".")
    return len(pieces) >= 3 and pieces[2] == "client" and len(pieces) == 3


def violations(root: Path = ROOT) -> list[str]:
    """Return ``file:line import`` for every import across a boundary under ``root``."""
    found: list[str] = []
    for path in sorted([*root.glob("actors/**/*.py"), *root.glob("protocols/**/*.py")]):
        source = path.relative_to(root).as_posix()
        module = source.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        for line, imported in _imports(path, module):
            if not allowed(source, imported):
                found.append(f"{source}:{line} import {imported}")
    return found


def test_no_module_imports_across_a_concern_boundary() -> None:
    """Actor packages reach each other only through client modules."""
    assert violations() == []


def test_the_check_names_the_offending_file_line_and_import(tmp_path: Path) -> None:
    """A runner importing the breaker's internals, or protocols importing actors, is listed."""
    runner = tmp_path / "actors" / "pipeline_runner"
    runner.mkdir(parents=True)
    (runner / "bad.py").write_text(
        "from actors.breaker_supervisor.view import BreakerView\n"
        "from actors.breaker_supervisor.client import BreakerView as Ok\n"
        "from actors.breaker_supervisor import client\n"
        "from . import cache\n"
        "from ..status_tracker import store\n"
    )
    wire = tmp_path / "protocols"
    wire.mkdir()
    (wire / "bad.py").write_text("import actors.runtime.codec\n")
    assert violations(tmp_path) == [
        "actors/pipeline_runner/bad.py:1 import actors.breaker_supervisor.view",
        "actors/pipeline_runner/bad.py:5 import actors.status_tracker",
        "protocols/bad.py:1 import actors.runtime.codec",
    ]


def test_the_sdk_cli_and_actors_may_use_client_modules_runtime_and_protocols() -> None:
    """The allowed imports of a concern module, one of each kind."""
    assert allowed("actors/sdk/agent.py", "actors.agent_registry.client")
    assert allowed("actors/cli/up.py", "actors.roster")
    assert allowed("actors/task_manager/actor.py", "actors.runtime.kv")
    assert allowed("actors/task_manager/actor.py", "actors.topology")
    assert allowed("actors/task_manager/actor.py", "protocols.tasks")
    assert not allowed("actors/sdk/agent.py", "actors.agent_registry.state")
    assert not allowed("actors/runtime/actor.py", "actors.status_tracker")
    assert not allowed("actors/topology.py", "actors.status_tracker")
    assert allowed("actors/__main__.py", "actors.cli")

"""``__all__`` lists exactly what is public, in protocols and in actors.runtime."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import types
from pathlib import Path

import pytest

import actors.runtime
import protocols

PROTOCOL_MODULES = sorted(f"protocols.{m.name}" for m in pkgutil.iter_modules(protocols.__path__))


def _defined_public_names(module: types.ModuleType) -> set[str]:
    """Top-level names a module defines itself (not imports), without a leading underscore."""
    tree = ast.parse(Path(module.__file__ or "").read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_")}


@pytest.mark.parametrize("module_name", PROTOCOL_MODULES)
def test_protocol_module_all_matches_its_public_names(module_name: str) -> None:
    """Every public name a protocol module defines is in its __all__, and nothing else."""
    module = importlib.import_module(module_name)
    assert set(module.__all__) == _defined_public_names(module)


@pytest.mark.parametrize("package", [protocols, actors.runtime], ids=lambda p: p.__name__)
def test_package_all_matches_what_it_exposes(package: types.ModuleType) -> None:
    """A package's __all__ names every public attribute; submodules may be listed too."""
    public = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    listed = set(package.__all__)
    modules = {n for n in listed if isinstance(getattr(package, n, None), types.ModuleType)}
    assert listed - modules == public
    for name in modules:
        assert getattr(package, name).__name__ == f"{package.__name__}.{name}"


@pytest.mark.parametrize("module_name", [*PROTOCOL_MODULES, "protocols", "actors.runtime"])
def test_all_has_no_duplicates(module_name: str) -> None:
    """Each name appears once in __all__."""
    names = importlib.import_module(module_name).__all__
    assert len(names) == len(set(names))

"""``make bench``: every benchmark module imports and exposes ``run(report)``.

Running them is ``make bench``'s job (they measure, which a test must not); this
keeps a module that no longer imports, or lost its entry point, from reaching it.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

BENCHMARKS = sorted(
    p.stem for p in (Path(__file__).parent.parent / "benchmarks").glob("bench_*.py")
)


def test_there_are_benchmarks() -> None:
    """The glob finds the benchmark modules (an empty list would make the next test vacuous)."""
    assert "bench_e2e" in BENCHMARKS
    assert "bench_mcp" in BENCHMARKS


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_module_imports_and_has_run_taking_report(name: str) -> None:
    """``benchmarks.<name>`` imports and its ``run`` takes the ``report`` callback."""
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(module.run)
    assert list(inspect.signature(module.run).parameters)[:1] == ["report"]

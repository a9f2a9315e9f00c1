"""``python -m benchmarks`` (``make bench``): run every ``benchmarks/bench_*.py`` and print a table.

Each module exposes ``run(report)`` (plain or ``async``); ``report(name, value,
unit, note="")`` prints a line as soon as a figure is measured, and the table
at the end collects them all. A module that fails is reported and skipped.
Pass module names (``python -m benchmarks runtime``) to run only some.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def _modules(only: list[str]) -> list[str]:
    here = Path(__file__).parent
    names = sorted(p.stem for p in here.glob("bench_*.py"))
    if only:
        wanted = {n if n.startswith("bench_") else f"bench_{n}" for n in only}
        names = [n for n in names if n in wanted]
    return names


def main(argv: list[str]) -> int:
    """Run the benchmarks named in ``argv`` (all by default); return the exit code."""
    rows: list[tuple[str, str, float, str, str]] = []
    failed: list[str] = []
    for name in _modules(argv):
        print(f"== {name}", flush=True)

        def report(metric: str, value: float, unit: str, note: str = "", _m: str = name) -> None:
            rows.append((_m, metric, value, unit, note))
            print(f"   {metric:<58} {value:>14,.2f} {unit:<10} {note}", flush=True)

        started = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            result: Any = module.run(report)
            if inspect.isawaitable(result):
                asyncio.run(_await(result))
        except Exception as exc:
            failed.append(name)
            print(f"   FAILED: {type(exc).__name__}: {exc}", flush=True)
            traceback.print_exc(limit=3)
        print(f"   ({time.perf_counter() - started:.1f}s)", flush=True)
    print()
    print(f"{'benchmark':<18} {'metric':<58} {'value':>14} {'unit':<10} note")
    print("-" * 120)
    for module_name, metric, value, unit, note in rows:
        short = module_name.removeprefix("bench_")
        print(f"{short:<18} {metric:<58} {value:>14,.2f} {unit:<10} {note}")
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


async def _await(result: Any) -> None:
    await result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Fail the build unless ``protocols/`` and every ``actors/*/state.py`` are fully covered.

The wire contract and the pure state machines have no excuse for an untested
line or branch, so they are held to 100 % while the suite as a whole has a lower
floor (pytest-cov's ``--cov-fail-under`` in the Makefile). Run after pytest: it
reads the coverage data pytest-cov left (``.coverage`` at the root), prints
nothing when every file is complete, and otherwise lists the missing lines and
branches and exits 1.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import coverage

ROOT = Path(__file__).resolve().parent.parent
FULLY_COVERED = ("protocols/*.py", "actors/*/state.py")
"""Globs (relative to the repository root) held to 100 % line and branch coverage."""


def main() -> int:
    """Check the floor; return the process exit code."""
    # The same file pytest-cov writes: $COVERAGE_FILE if set, else .coverage at the root.
    data_file = Path(os.environ.get("COVERAGE_FILE", ROOT / ".coverage"))
    if not data_file.exists():
        print(f"coverage floor: no coverage data at {data_file}; run pytest with --cov first")
        return 1
    files = sorted(str(path) for pattern in FULLY_COVERED for path in ROOT.glob(pattern))
    cov = coverage.Coverage(data_file=str(data_file), config_file=str(ROOT / "pyproject.toml"))
    cov.load()
    table = io.StringIO()
    # A file no test imported has no data and reports 0 %, so it fails too.
    total = cov.report(morfs=files, show_missing=True, skip_covered=True, file=table)
    if total < 100.0:
        print(table.getvalue(), end="")
        print(f"coverage floor: {', '.join(FULLY_COVERED)} must be at 100 %, got {total:.2f} %")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

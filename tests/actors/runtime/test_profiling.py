"""The profiling switch: a pstats file per actor process when asked, nothing otherwise."""

from __future__ import annotations

import os
import pstats
from pathlib import Path

from actors.runtime.profiling import PROFILE_DIR_ENV, profiled


def _work() -> int:
    return sum(i * i for i in range(10_000))


def test_a_profile_is_written_when_the_variable_names_a_directory(tmp_path: Path) -> None:
    """The block's calls end up in ``<dir>/<name>-<pid>.prof``, readable by pstats."""
    target = tmp_path / "profiles"
    with profiled("runner", {PROFILE_DIR_ENV: str(target)}) as path:
        _work()
    assert path == target / f"runner-{os.getpid()}.prof"
    stats = pstats.Stats(str(path))
    assert any(name == "_work" for (_, _, name) in stats.stats)  # type: ignore[attr-defined]


def test_nothing_is_profiled_without_the_variable(tmp_path: Path) -> None:
    """Unset or empty: no profiler, no file."""
    with profiled("runner", {}) as path:
        _work()
    assert path is None
    with profiled("runner", {PROFILE_DIR_ENV: ""}) as path:
        _work()
    assert path is None
    assert list(tmp_path.iterdir()) == []

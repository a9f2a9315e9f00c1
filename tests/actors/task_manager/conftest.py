"""Fixtures of the task manager tests: a running manager with a templates directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actors.runtime.bus import Bus
from actors.runtime.consumer import ConsumerRuntime
from actors.runtime.testing import ManualClock
from actors.task_manager.actor import TaskManager
from actors.task_manager.config import TaskManagerConfig

TWO_STEPS = """\
name = "two"
timeout = 90
[[params]]
name = "n"
type = "int"
default = 1
[[steps]]
name = "first"
run = "echo {{ n }} > n.txt"
outputs = ["n.txt"]
[[steps]]
name = "second"
needs = ["first"]
inputs = ["n.txt"]
run = "cat n.txt"
"""


@pytest.fixture(autouse=True)
def quick_shutdown(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorter fetches, so stopping an actor after each test takes tenths of a second."""
    monkeypatch.setattr(ConsumerRuntime, "fetch_timeout", 0.2)


@pytest.fixture
def templates_dir(tmp_path: Path) -> Path:
    """A directory holding the template ``two`` (steps first -> second, int param n)."""
    directory = tmp_path / "templates"
    directory.mkdir()
    (directory / "two.toml").write_text(TWO_STEPS)
    return directory


@pytest.fixture
def clock() -> ManualClock:
    """The manager's clock."""
    return ManualClock(start=1_000.0)


@pytest.fixture
def manager_factory(templates_dir: Path, clock: ManualClock) -> type[TaskManager]:
    """Build task managers reading the bundled templates and ``templates_dir``."""

    def make() -> TaskManager:
        return TaskManager(clock=clock, config=TaskManagerConfig(template_dirs=(templates_dir,)))

    return make  # type: ignore[return-value]


@pytest.fixture
async def manager(bus: Bus, manager_factory: type[TaskManager]) -> AsyncIterator[TaskManager]:
    """A task manager running in-process on the per-test server."""
    actor = manager_factory()
    async with actor.running(bus):
        yield actor

"""``troupe templates``: the task manager's templates over NATS, or template files offline."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from actors.cli import main
from actors.cli.options import EXIT_UNAVAILABLE
from actors.runtime.bus import Bus
from actors.runtime.server import free_port
from actors.task_manager.actor import TaskManager
from actors.task_manager.config import TaskManagerConfig

TYPED = """\
name = "typed"
description = "a typed template"
[[params]]
name = "limit"
type = "int"
[[steps]]
name = "a"
run = "true"
"""


def _run(*argv: str) -> asyncio.Future[int]:
    return asyncio.ensure_future(asyncio.to_thread(main, list(argv)))


@pytest.mark.integration
async def test_templates_lists_what_the_task_manager_knows(
    bus: Bus, nats_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The list, one template and its JSON come from the task manager, not from files here."""
    (tmp_path / "typed.toml").write_text(TYPED)
    url = ["--nats-url", nats_url]
    manager = TaskManager(config=TaskManagerConfig(template_dirs=(tmp_path,), bundled=False))
    async with manager.running(bus):
        assert await _run("templates", *url) == 0
        out = capsys.readouterr().out
        assert out.splitlines() == [
            "typed  a typed template",
            "         --param limit=<int>  (required)",
        ]
        assert await _run("templates", "typed", "--json", *url) == 0
        [typed] = json.loads(capsys.readouterr().out)
        assert typed["steps"] == ["a"]
        assert typed["path"] is None
        assert typed["params"][0]["name"] == "limit"
        assert await _run("templates", "hello", *url) == 2
        assert "hello" in capsys.readouterr().err


def test_templates_with_a_directory_reads_files_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--templates DIR`` lists bundled and extra templates with no server to ask."""
    (tmp_path / "typed.toml").write_text(TYPED)
    url = f"nats://127.0.0.1:{free_port()}"
    assert main(["templates", "--templates", str(tmp_path), "--nats-url", url]) == 0
    out = capsys.readouterr().out
    for expected in (
        "hello",
        "data-pipeline",
        "fanout",
        "typed",
        "--param limit=<int>  (required)",
    ):
        assert expected in out
    assert main(["templates", "typed", "--json", "--templates", str(tmp_path)]) == 0
    [typed] = json.loads(capsys.readouterr().out)
    assert typed["path"] == str(tmp_path / "typed.toml")


def test_templates_without_a_troupe_exits_69_naming_the_url(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Nothing at the URL: one line naming it, exit 69."""
    url = f"nats://127.0.0.1:{free_port()}"
    assert main(["templates", "--nats-url", url]) == EXIT_UNAVAILABLE
    err = capsys.readouterr().err
    assert url in err
    assert err.startswith("troupe templates: ")

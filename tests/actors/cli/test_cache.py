"""``troupe cache ls|stats|clear``: the shared step cache's entries against a real runner."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import msgspec
import pytest

from actors.cli import main
from actors.cli.cache import format_stats, format_table
from actors.pipeline_runner import PipelineRunner, RunnerConfig
from actors.pipeline_runner.client import CacheEntry
from actors.runtime.bus import Bus
from protocols.pipelines import StepResult, StepSpec
from tests.actors.pipeline_runner.conftest import make_run, publish, wait_result


def test_tables_show_each_entry_and_the_totals() -> None:
    """ls: key prefix, step, template, size, artifacts, age; stats: counts, bytes and ages."""
    entries = [
        CacheEntry(
            key="a" * 64, step="build", size=300, stored_at=100.0, artifacts=2, template="ci"
        ),
        CacheEntry(key="b" * 64, step="test", size=200, stored_at=3700.0, artifacts=0),
    ]
    lines = format_table(entries, now=3730.0).splitlines()
    assert lines[0].split() == ["KEY", "STEP", "TEMPLATE", "SIZE", "ARTIFACTS", "AGE"]
    assert lines[1].split() == ["a" * 16, "build", "ci", "300", "2", "60m"]
    assert lines[2].split() == ["b" * 16, "test", "-", "200", "0", "30s"]
    assert format_table([], now=0.0) == "the step cache is empty"
    assert format_stats(entries, now=3730.0).splitlines() == [
        "entries: 2",
        "bytes: 500",
        "steps: 2",
        "templates: 1",
        "artifacts: 2",
        "oldest: 60m",
        "newest: 30s",
    ]


@pytest.mark.integration
async def test_cache_ls_and_stats_show_what_a_runner_stored(
    bus: Bus, nats_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cached step is listed by ls (and --step), counted by stats; clear empties both."""

    async def cli(*argv: str) -> tuple[int, str]:
        code = await asyncio.to_thread(main, ["cache", *argv, "--nats-url", nats_url])
        return code, capsys.readouterr().out

    config = RunnerConfig(workspace_root=tmp_path / "ws", backend="local", step_user="")
    async with PipelineRunner(config=config).running(bus):
        assert await cli("ls") == (0, "the step cache is empty\n")
        steps = [StepSpec(name="make", run="echo hi > out.txt", outputs=["out.txt"])]
        await publish(bus, make_run("wf-cache-ls", steps))
        assert (await wait_result(bus, "wf-cache-ls")).state == "succeeded"
        code, out = await cli("ls")
        assert code == 0
        row = out.splitlines()[1].split()
        assert (row[1], row[4]) == ("make", "1")
        code, out = await cli("ls", "--step", "other")
        assert out.strip() == "the step cache is empty"
        code, out = await cli("stats")
        assert out.splitlines()[:4] == [
            "entries: 1",
            out.splitlines()[1],
            "steps: 1",
            "templates: 0",
        ]
        assert await cli("clear") == (0, "step cache cleared (1 entries removed)\n")
        code, out = await cli("stats")
        assert out.splitlines()[0] == "entries: 0"


@pytest.mark.integration
async def test_cache_clear_removes_one_key_or_a_templates_entries(
    bus: Bus, nats_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """clear KEY removes that entry, --template T its entries; an unknown key removes nothing."""

    async def cli(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, ["cache", *argv, "--nats-url", nats_url])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    async def listed() -> list[dict[str, object]]:
        code, out, _ = await cli("ls", "--json")
        assert code == 0
        entries: list[dict[str, object]] = json.loads(out)
        return entries

    async def run(workflow_id: str, template: str, text: str) -> StepResult:
        step = StepSpec(name="say", run=f"echo {text} > out.txt", outputs=["out.txt"])
        await publish(
            bus, msgspec.structs.replace(make_run(workflow_id, [step]), template=template)
        )
        return (await wait_result(bus, workflow_id)).steps[0]

    config = RunnerConfig(workspace_root=tmp_path / "ws", backend="local", step_user="")
    async with PipelineRunner(config=config).running(bus):
        await run("wf-a1", "alpha", "one")
        await run("wf-a2", "alpha", "two")
        await run("wf-b1", "beta", "three")
        entries = await listed()
        assert sorted(str(e["template"]) for e in entries) == ["alpha", "alpha", "beta"]
        code, out, _ = await cli("ls")
        assert out.splitlines()[0].split() == [
            "KEY",
            "STEP",
            "TEMPLATE",
            "SIZE",
            "ARTIFACTS",
            "AGE",
        ]

        code, out, err = await cli("clear", "0" * 64)
        assert (code, out) == (2, "")
        assert f"no step cache entry has the key {'0' * 64!r}" in err
        assert len(await listed()) == 3

        beta = next(str(e["key"]) for e in entries if e["template"] == "beta")
        assert await cli("clear", beta[:16]) == (0, f"removed step cache entry {beta[:16]}\n", "")
        assert sorted(str(e["template"]) for e in await listed()) == ["alpha", "alpha"]
        # The runner's own in-process copy went too: the step runs again.
        assert (await run("wf-b2", "beta", "three")).cache_hit is False

        code, out, _ = await cli("clear", "--template", "alpha")
        assert (code, out) == (0, "removed 2 step cache entries of template alpha\n")
        assert [e["template"] for e in await listed()] == ["beta"]

        with pytest.raises(SystemExit) as usage:
            main(["cache", "clear", beta, "--template", "beta", "--nats-url", nats_url])
        assert usage.value.code == 2
        assert "not allowed with" in capsys.readouterr().err

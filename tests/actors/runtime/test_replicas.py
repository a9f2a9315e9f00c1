"""Actor replicas in ``troupe up``: ``--replicas ACTOR=N`` runs N processes of an actor."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from actors.cli.init import troupe_topology
from actors.cli.up import _roster, parse_replicas
from actors.runtime.launcher import Member, Troupe
from actors.runtime.server import free_port


def test_parse_replicas_reads_actor_counts() -> None:
    """NAME=N pairs, comma-separated; a bad pair is refused."""
    assert parse_replicas("pipeline_runner=3, status_tracker=2") == {
        "pipeline_runner": 3,
        "status_tracker": 2,
    }
    assert parse_replicas(None) == {}
    for bad in ("pipeline_runner", "x=0", "x=17", "=2", "x=two"):
        with pytest.raises(ValueError, match="--replicas"):
            parse_replicas(bad)


def test_roster_repeats_each_replicated_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    """The roster lists a replicated actor N times; an unknown actor exits 2."""
    monkeypatch.delenv("TROUPE_ACTORS", raising=False)
    members = _roster(argparse.Namespace(actor=None, replicas="pipeline_runner=3"))
    assert [m.name for m in members].count("pipeline_runner") == 3
    assert [m.name for m in members].count("task_manager") == 1
    with pytest.raises(SystemExit) as exited:
        _roster(argparse.Namespace(actor=None, replicas="nobody=2"))
    assert exited.value.code == 2


def test_troupe_counts_replicas_once_per_actor() -> None:
    """A replicated actor is one name in Troupe.actors with its process count."""
    runner = Member.builtin("pipeline_runner")
    troupe = Troupe([runner, runner, "task_manager"], state_dir=Path("unused"))
    assert troupe.actors == ("pipeline_runner", "task_manager")
    assert troupe.replicas["pipeline_runner"] == 2


@pytest.mark.integration
async def test_two_runner_processes_both_answer_ping(tmp_path: Path) -> None:
    """With pipeline_runner twice, troupe waits for, and finds, two runner processes."""
    runner = Member.builtin("pipeline_runner")
    members = [runner, runner]
    topology = troupe_topology(members, tmp_path)
    troupe = Troupe(members, state_dir=tmp_path, port=free_port(), topology=topology)
    async with troupe:
        counts = await troupe.wait_ready(timeout=60.0)
        assert counts["pipeline_runner"] == 2
        # Both children are supervised, each under its own name and log file.
        children = set(troupe.restarts())
        assert {"pipeline_runner", "pipeline_runner-2"} <= children
        assert (tmp_path / "logs" / "pipeline_runner-2.log").exists()

"""A JSON-only client (nats-py and json, no troupe, no MessagePack) does what the CLI does.

``tests/actors/json_client.py`` runs as its own process against the session's
``troupe up``: it discovers every actor with ``$SRV.PING/INFO/STATS``, submits a
template and an inline workflow, follows one live by its JSON update events,
reads its result, gets typed errors for bad input (an invalid submit included)
and registers an agent by writing JSON heartbeats itself. This test checks its
report, and the micro answers against the official NATS micro schemas.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest

from actors.roster import ACTORS
from actors.runtime.credentials import read_passwords
from tests.actors.conftest import RunningTroupe
from tests.actors.processes import REPO
from tests.actors.runtime.micro_schemas import (
    INFO_RESPONSE,
    PING_RESPONSE,
    STATS_RESPONSE,
    violations,
)

CLIENT = REPO / "tests" / "actors" / "json_client.py"

pytestmark = [pytest.mark.integration, pytest.mark.processes]


def test_json_client_imports_only_nats_and_the_standard_library() -> None:
    """The script imports nats, json and stdlib modules: nothing of troupe, no MessagePack."""
    tree = ast.parse(CLIENT.read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported <= {"asyncio", "json", "sys", "time", "uuid", "nats"}, imported


@pytest.fixture(scope="module")
def report(troupe_up: RunningTroupe) -> dict[str, Any]:
    """The JSON client's report of one run against the session troupe."""
    name = f"json-agent-{uuid.uuid4().hex[:8]}"
    issued = subprocess.run(
        [sys.executable, "-m", "actors", "agents", "add", name],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TROUPE_STATE_DIR": str(troupe_up.state_dir)},
    )
    assert issued.returncode == 0, issued.stderr
    users = ["client", f"agent-{name}"]
    client, agent = (read_passwords(troupe_up.state_dir, users)[u] for u in users)
    result = subprocess.run(
        [sys.executable, str(CLIENT), troupe_up.url, client, name, agent],
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=CLIENT.parent,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def test_client_process_never_loaded_troupe_or_msgpack(report: dict[str, Any]) -> None:
    """sys.modules of the client holds neither actors, protocols, msgpack nor msgspec."""
    assert report["modules"] == []


@pytest.mark.parametrize(
    ("verb", "schema"),
    [("PING", PING_RESPONSE), ("INFO", INFO_RESPONSE), ("STATS", STATS_RESPONSE)],
)
def test_client_discovers_every_actor_with_valid_micro_answers(
    report: dict[str, Any], verb: str, schema: dict[str, Any]
) -> None:
    """Each of the five actors answers, and every answer fits the official micro schema."""
    answers = report[verb]
    assert {a["name"] for a in answers} >= set(ACTORS)
    for answer in answers:
        assert violations(answer, schema) == [], answer["name"]


def test_client_follows_a_workflow_live_by_json_events(report: dict[str, Any]) -> None:
    """Updates on troupe.status.updates.<id> are JSON, say so, and end in succeeded."""
    live = report["live"]
    assert live["content_types"] == ["application/json"]
    assert live["states"][-1] == "succeeded"
    assert "running" in live["states"]
    assert live["progress_rose"]


def test_client_reads_the_result_in_json(report: dict[str, Any]) -> None:
    """The stored result comes back as a typed JSON PipelineResult."""
    assert report["result"] == {
        "content_type": "application/json",
        "error": None,
        "type": "troupe.pipelines.v1.result",
        "state": "succeeded",
        "steps": ["greet", "shout"],
    }


def test_client_runs_an_inline_pipeline(report: dict[str, Any]) -> None:
    """An inline definition in JSON runs to success."""
    assert report["inline"] == "succeeded"


def test_client_gets_typed_errors_for_bad_input(report: dict[str, Any]) -> None:
    """Bad ids, unknown ids and wrong types get micro error codes; an invalid submit is rejected."""
    assert report["errors"] == {
        "bad_id": ["400", "bad_request"],
        "unknown": ["404", "not_found"],
        "wrong_type": ["400", "bad_request"],
        "invalid_submit": ["rejected", "invalid_task"],
    }


def test_client_registers_an_agent_by_writing_json_heartbeats(report: dict[str, Any]) -> None:
    """The agent role's JSON heartbeats make the agent listed and findable by capability."""
    assert report["agent"] == {"listed": True, "found": True}

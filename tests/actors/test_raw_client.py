"""A plain nats-py client (examples/raw_client.py, no troupe imports) runs a task to success."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.actors.processes import REPO, actor_processes, wait_for_ping

EXAMPLE = REPO / "examples" / "raw_client.py"
NEEDED = ["task_manager", "pipeline_runner", "status_tracker"]


def test_example_client_imports_nothing_from_troupe() -> None:
    """The example only needs nats-py and the standard library."""
    tree = ast.parse(EXAMPLE.read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (
            node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
        )
    }
    assert imported <= {"asyncio", "json", "sys", "time", "uuid", "nats"}, imported


@pytest.mark.integration
@pytest.mark.processes
async def test_raw_json_client_submits_a_task_and_sees_it_succeed(
    nats_url: str, tmp_path: Path
) -> None:
    """JSON in, JSON out: the example submits 'hello' and polls status until succeeded."""
    logs = tmp_path / "logs"
    with actor_processes(NEEDED, nats_url, logs) as procs:
        await wait_for_ping(nats_url, procs, logs)
        result = subprocess.run(
            [sys.executable, str(EXAMPLE), nats_url],
            check=False,
            capture_output=True,
            text=True,
            timeout=90,
            cwd=tmp_path,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(": succeeded")

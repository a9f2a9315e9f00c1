"""End to end: ``troupe up --cluster 3`` runs three authorized nodes, the actors and R3 data."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.actors.processes import REPO

pytestmark = [pytest.mark.cluster, pytest.mark.processes, pytest.mark.integration]


def _troupe(
    *args: str, timeout: float, state: Path | None = None
) -> subprocess.CompletedProcess[str]:
    local = {"TROUPE_STATE_DIR": str(state)} if state else {}
    return subprocess.run(
        [sys.executable, "-m", "actors", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={
            **os.environ,
            "TROUPE_NATS_URL": "",
            "TROUPE_ACTORS": "",
            "TROUPE_REPLICAS": "",
            **local,
        },
        cwd=REPO,
    )


@pytest.mark.timeout(240)
def test_cluster_up_answers_lists_three_nodes_runs_a_workflow_and_stops_with_down(
    tmp_path: Path,
) -> None:
    """``up --cluster 3 --detach``: status shows 3 nodes up and R3 data, a workflow succeeds,
    ``down`` stops every node and actor."""
    state = tmp_path / "state"
    up = _troupe(
        "up",
        "--cluster",
        "3",
        "--detach",
        "--state-dir",
        str(state),
        "--port",
        "0",
        "--http-port",
        "0",
        "--ready-timeout",
        "150",
        timeout=200,
    )
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        urls = (state / "troupe.pid").read_text().split()[1].split(",")
        assert len(urls) == 3
        assert len(set(urls)) == 3  # --port 0: a free port for every node

        status = _troupe("cluster", "status", "--json", "--state-dir", str(state), timeout=60)
        assert status.returncode == 0, status.stderr + status.stdout
        found = json.loads(status.stdout)
        assert sorted(n["name"] for n in found["nodes"]) == ["n1", "n2", "n3"]
        assert all(n["up"] for n in found["nodes"])
        streams = {s["stream"]: s for s in found["streams"]}
        assert streams["TROUPE_TASKS"]["replicas"] == 3
        assert streams["KV_troupe-workflows"]["replicas"] == 3
        assert all(s["healthy"] for s in found["streams"])

        for node in ("n1", "n2", "n3"):
            conf = state / "nodes" / node / "node.conf"
            assert stat.S_IMODE(conf.stat().st_mode) == 0o600
            assert (state / "nodes" / node / "jetstream").is_dir()
        route_password = (state / "secrets" / "route.password").read_text().strip()
        assert stat.S_IMODE((state / "secrets" / "route.password").stat().st_mode) == 0o600
        assert route_password not in (state / "troupe.log").read_text()

        # `troupe init` without --replicas keeps the cluster's R3 instead of resetting it to 1.
        init = _troupe("init", "--state-dir", str(state), timeout=120)
        assert init.returncode == 0, init.stderr + init.stdout
        again = _troupe("cluster", "status", "--json", "--state-dir", str(state), timeout=60)
        replicas = {s["stream"]: s["replicas"] for s in json.loads(again.stdout)["streams"]}
        assert replicas["TROUPE_TASKS"] == replicas["KV_troupe-workflows"] == 3

        submit = _troupe(
            "submit",
            "hello",
            "--wait",
            "--timeout",
            "120",
            "--nats-url",
            ",".join(urls),
            timeout=150,
            state=state,
        )
        assert submit.returncode == 0, submit.stderr + submit.stdout
        assert "succeeded" in submit.stderr
    finally:
        down = _troupe("down", "--state-dir", str(state), timeout=90)
    assert down.returncode == 0, down.stderr
    leftover = subprocess.run(
        ["pgrep", "-f", str(state)], check=False, capture_output=True, text=True
    ).stdout.split()
    assert leftover == []


def test_cluster_with_an_external_url_or_too_few_nodes_exits_2(tmp_path: Path) -> None:
    """``--cluster`` runs its own nodes (no ``--nats-url``) and needs at least three."""
    with_url = _troupe(
        "up",
        "--cluster",
        "3",
        "--nats-url",
        "nats://127.0.0.1:1",
        "--state-dir",
        str(tmp_path),
        timeout=60,
    )
    assert with_url.returncode == 2
    assert "--nats-url" in with_url.stderr
    too_few = _troupe("up", "--cluster", "2", "--state-dir", str(tmp_path), timeout=60)
    assert too_few.returncode == 2
    assert "3 to 7" in too_few.stderr

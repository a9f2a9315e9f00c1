"""``troupe cluster status``: replica health per stream and the nodes, on a real cluster."""

from __future__ import annotations

import asyncio
import json

import pytest

from actors.cli import main
from actors.cli.cluster import Probe, StreamHealth, format_status, nodes_of, probe_nodes
from actors.runtime.bootstrap import Topology, apply_topology
from actors.runtime.bus import Bus
from actors.runtime.config import ConnectionConfig
from actors.runtime.testing import eventually, nats_cluster, nats_server
from actors.topology import STATUS_EVENTS, TASKS, WORKFLOWS


def test_a_stream_missing_a_current_follower_is_degraded() -> None:
    """Healthy needs a leader and replicas-1 current followers; nodes count leads and follows."""
    ok = StreamHealth("TROUPE_TASKS", 3, "n0", current=["n1", "n2"])
    degraded = StreamHealth("TROUPE_STATUS", 3, "n1", current=["n0"], behind=["n2"])
    assert ok.healthy
    assert not degraded.healthy
    assert not StreamHealth("TROUPE_X", 1, "").healthy
    assert [(n.name, n.leads, n.follows) for n in nodes_of([ok, degraded])] == [
        ("n0", 1, 1),
        ("n1", 1, 1),
        ("n2", 0, 2),
    ]
    table = format_status([ok, degraded])
    assert "DEGRADED" in table
    assert table.splitlines()[1].split() == ["TROUPE_TASKS", "3", "n0", "n1,n2", "-", "ok"]


def test_a_node_seen_only_as_an_offline_follower_is_down_and_a_silent_url_is_listed() -> None:
    """Up: answered its URL, or leads or follows currently; a URL that did not answer is DOWN."""
    streams = [StreamHealth("TROUPE_TASKS", 3, "n1", current=["n2"], behind=["n3"])]
    probes = [Probe("nats://127.0.0.1:1", "n1"), Probe("nats://127.0.0.1:2")]
    nodes = {n.name: n for n in nodes_of(streams, probes)}
    assert (nodes["n1"].up, nodes["n1"].url, nodes["n1"].leads) == (True, "nats://127.0.0.1:1", 1)
    assert nodes["n2"].up
    assert not nodes["n3"].up
    table = format_status(streams, probes)
    assert table.splitlines()[-1].split() == ["-", "DOWN", "nats://127.0.0.1:2"]
    assert [line.split()[:4] for line in table.splitlines() if line.startswith("n3")] == [
        ["n3", "0", "1", "DOWN"]
    ]


async def test_probing_a_port_where_nothing_listens_reports_it_down() -> None:
    """The probe reads the greeting without a login; a closed port is simply down."""
    with nats_server() as server:
        probes = await probe_nodes([server.url, "nats://127.0.0.1:1"])
    assert probes[0].up
    assert probes[0].name
    assert not probes[1].up


@pytest.mark.cluster
async def test_cluster_status_shows_three_current_replicas_on_three_nodes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """After an R3 topology settles, status exits 0 and names the three nodes."""
    with nats_cluster(3) as urls:
        url = ",".join(urls)
        bus = await Bus.connect(ConnectionConfig(url=url, connect_timeout=10.0))
        try:
            part = Topology(streams=(TASKS, STATUS_EVENTS), buckets=(WORKFLOWS,)).with_replicas(3)

            async def applied() -> bool:
                await apply_topology(bus.js, part)
                return True

            await eventually(applied, timeout=60.0, interval=0.5, ignoring=(Exception,))
        finally:
            await bus.close()

        async def healthy() -> dict[str, object] | None:
            code = await asyncio.to_thread(main, ["cluster", "status", "--json", "--nats-url", url])
            out = capsys.readouterr().out
            return json.loads(out) if code == 0 else None

        status = await eventually(healthy, timeout=60.0, interval=0.5, what="healthy replicas")
    streams = {s["stream"]: s for s in status["streams"]}  # type: ignore[attr-defined]
    assert {"TROUPE_TASKS", "TROUPE_STATUS", "KV_troupe-workflows"} <= set(streams)
    assert all(len(s["current"]) == 2 for s in streams.values())
    assert len(status["nodes"]) == 3  # type: ignore[arg-type]


async def test_a_single_server_troupe_is_healthy(capsys: pytest.CaptureFixture[str]) -> None:
    """One server, one copy of everything: nothing is degraded and status exits 0."""
    with nats_server() as server:
        bus = await Bus.connect(ConnectionConfig(url=server.url))
        try:
            await apply_topology(bus.js, Topology(streams=(TASKS,), buckets=(WORKFLOWS,)))
        finally:
            await bus.close()
        code = await asyncio.to_thread(
            main, ["cluster", "status", "--json", "--nats-url", server.url]
        )
    status = json.loads(capsys.readouterr().out)
    assert code == 0, status
    assert {s["stream"] for s in status["streams"]} >= {"TROUPE_TASKS", "KV_troupe-workflows"}
    assert all(s["healthy"] for s in status["streams"])
    assert len(status["nodes"]) == 1  # the server that answered leads every stream
    assert {s["leader"] for s in status["streams"]} == {status["nodes"][0]["name"]}

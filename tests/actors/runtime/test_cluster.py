"""The loopback cluster of ``troupe up --cluster``: ports, replicas, node configurations, routes."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from actors.runtime.access import agent_user
from actors.runtime.agent_logins import issue_agent, reload_server, server_running
from actors.runtime.cluster import (
    ROUTE_USER,
    ClusterTroupe,
    cluster_replicas,
    plan_nodes,
    write_node_configs,
)
from actors.runtime.credentials import password_path
from actors.runtime.server import write_server_config
from actors.runtime.testing import connect_once, eventually


def test_nodes_take_client_ports_from_the_given_port_upward_then_their_route_ports(
    tmp_path: Path,
) -> None:
    """--port 5000 with three nodes: clients on 5000-5002, routes on 5003-5005."""
    nodes = plan_nodes(tmp_path, 3, 5000)
    assert [(n.name, n.port, n.route_port) for n in nodes] == [
        ("n1", 5000, 5003),
        ("n2", 5001, 5004),
        ("n3", 5002, 5005),
    ]
    assert nodes[1].directory == tmp_path / "nodes" / "n2"
    assert nodes[0].url(tls=True) == "tls://127.0.0.1:5000"


def test_port_zero_picks_six_distinct_free_ports(tmp_path: Path) -> None:
    """Without a port every client and route port is a free one."""
    nodes = plan_nodes(tmp_path, 3, 0)
    ports = [p for n in nodes for p in (n.port, n.route_port)]
    assert len(set(ports)) == 6
    assert all(ports)


@pytest.mark.parametrize(("size", "port"), [(2, 0), (8, 0), (3, 65532)])
def test_a_cluster_of_fewer_than_three_or_past_the_last_port_is_refused(
    tmp_path: Path, size: int, port: int
) -> None:
    """Fewer than three nodes cannot keep a quorum when one dies; ports stop at 65535."""
    with pytest.raises(ValueError, match="--"):
        plan_nodes(tmp_path, size, port)


def test_replicas_default_to_three_and_follow_troupe_replicas() -> None:
    """R3 by default (R1..R5 through TROUPE_REPLICAS, never more than the nodes)."""
    assert cluster_replicas(3, {}) == 3
    assert cluster_replicas(5, {}) == 3
    assert cluster_replicas(5, {"TROUPE_REPLICAS": "5"}) == 5
    assert cluster_replicas(3, {"TROUPE_REPLICAS": "1"}) == 1
    for bad in ("4", "0", "three"):
        with pytest.raises(ValueError, match="TROUPE_REPLICAS"):
            cluster_replicas(3, {"TROUPE_REPLICAS": bad})


def test_node_configs_are_private_include_the_shared_config_and_hash_the_route_password(
    tmp_path: Path,
) -> None:
    """Each node.conf (0600) includes the one server config, routes to the two others,
    and authorizes routes by the bcrypt hash of a password kept in secrets/ (0600)."""
    nodes = plan_nodes(tmp_path, 3, 7000)
    configs = write_node_configs(tmp_path, nodes)
    password = password_path(tmp_path, ROUTE_USER).read_text().strip()
    assert stat.S_IMODE(password_path(tmp_path, ROUTE_USER).stat().st_mode) == 0o600
    text = configs["n2"].read_text()
    assert stat.S_IMODE(configs["n2"].stat().st_mode) == 0o600
    assert 'include "../../nats.conf"' in text
    assert "server_name: n2" in text
    assert 'listen: "127.0.0.1:7004"' in text
    assert f"{ROUTE_USER}:{password}@127.0.0.1:7003" in text
    assert f"{ROUTE_USER}:{password}@127.0.0.1:7005" in text
    assert '127.0.0.1:7004"\n  ]' not in text  # no route to itself
    authorization = next(line for line in text.splitlines() if "authorization" in line)
    assert password not in authorization
    assert '"$2a$' in authorization
    assert (tmp_path / "nats.conf").exists()
    again = write_node_configs(tmp_path, nodes)
    assert again["n2"].read_text() == text, "same password and hash on every start"


async def _route_login(port: int, credentials: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await asyncio.wait_for(reader.readline(), 5.0)  # INFO
        writer.write(f"CONNECT {{{credentials}}}\r\nPING\r\n".encode())
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 5.0)
    finally:
        writer.close()


@pytest.mark.cluster
@pytest.mark.integration
async def test_a_route_without_the_route_password_is_refused(tmp_path: Path) -> None:
    """The three nodes form their cluster, and a stranger cannot join it as a route."""
    async with ClusterTroupe([], state_dir=tmp_path, nodes=3) as troupe:
        port = troupe.nodes[0].route_port
        assert b"Authorization Violation" in await _route_login(port, "")
        wrong = f'"user":"{ROUTE_USER}","pass":"not-the-password"'
        assert b"Authorization Violation" in await _route_login(port, wrong)
        assert set(troupe.restarts()) == {"nats-server-n1", "nats-server-n2", "nats-server-n3"}


@pytest.mark.cluster
@pytest.mark.integration
async def test_an_agent_issued_while_the_cluster_runs_logs_in_on_every_node(
    tmp_path: Path,
) -> None:
    """Issuing an agent rewrites the shared configuration and reloads every node."""
    async with ClusterTroupe([], state_dir=tmp_path, nodes=3) as troupe:
        password = issue_agent(tmp_path, "scout")
        write_server_config(tmp_path)
        assert reload_server(tmp_path)
        assert server_running(tmp_path)
        for node in troupe.nodes:

            async def logs_in(url: str = node.url()) -> bool:
                nc = await connect_once(url, user=agent_user("scout"), password=password)
                await nc.close()
                return True

            await eventually(logs_in, timeout=20.0, interval=0.2, ignoring=(Exception,))
    assert not server_running(tmp_path), "the stopped nodes leave no pid file behind"

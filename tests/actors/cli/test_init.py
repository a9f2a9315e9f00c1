"""``troupe init``: the topology created and migrated as admin, idempotently."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest
from nats.js import api as js_api

from actors.cli import main
from actors.cli.creds import PID_FILE
from actors.cli.init import troupe_topology
from actors.roster import build_roster
from actors.runtime.credentials import read_passwords
from actors.runtime.server import NatsServer
from actors.topology import TASKS
from protocols.tasks import TASKS_STREAM

pytestmark = pytest.mark.integration


async def _inventory(server: NatsServer) -> tuple[set[str], set[tuple[str, str]], str]:
    """Stream names, (stream, durable) pairs and TROUPE_TASKS's description, as admin."""
    password = read_passwords(server.state_dir, ["admin"])["admin"]
    nc = await nats.connect(server.url, user="admin", password=password)
    try:
        js = nc.jetstream()
        streams = {str(s.config.name) for s in await js.streams_info()}
        consumers = {
            (stream, str(c.name)) for stream in streams for c in await js.consumers_info(stream)
        }
        description = (await js.stream_info(TASKS_STREAM)).config.description or ""
        return streams, consumers, description
    finally:
        await nc.close()


def test_init_creates_the_whole_topology_and_changes_nothing_when_run_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On the running troupe: every stream, bucket, store and consumer; a second run is a no-op."""
    with NatsServer(tmp_path, port=0) as server:
        (tmp_path / PID_FILE).write_text(f"1\n{server.url}\n")
        assert main(["init", "--state-dir", str(tmp_path)]) == 0
        first = asyncio.run(_inventory(server))
        assert main(["init", "--state-dir", str(tmp_path)]) == 0
        assert asyncio.run(_inventory(server)) == first
    assert capsys.readouterr().out.count("topology ready") == 2
    streams, consumers, _ = first
    expected = troupe_topology(build_roster(), tmp_path)
    assert {s.name for s in expected.streams} <= streams
    assert {f"KV_{b.name}" for b in expected.buckets} <= streams
    assert {f"OBJ_{o.name}" for o in expected.object_stores} <= streams
    assert {(c.stream.name, c.durable) for c in expected.consumers} <= consumers


async def _old_troupe_stream(url: str) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().add_stream(
            js_api.StreamConfig(
                name=TASKS_STREAM,
                subjects=list(TASKS.subjects),
                retention=js_api.RetentionPolicy.WORK_QUEUE,
                description="made by an older troupe",
            )
        )
    finally:
        await nc.close()


def test_init_migrates_the_state_directory_of_an_older_troupe(tmp_path: Path) -> None:
    """Old passwords file and streams: the logins carry over, streams get their declaration.

    ``troupe init`` starts the embedded server for the time it takes (no troupe runs).
    """
    with NatsServer(tmp_path, port=0, use_config=False) as plain:
        asyncio.run(_old_troupe_stream(plain.url))
    (tmp_path / "secrets.env").write_text("TROUPE_CLIENT_PASSWORD=pOldClientPassword\n")
    assert main(["init", "--state-dir", str(tmp_path)]) == 0
    assert read_passwords(tmp_path, ["client"]) == {"client": "pOldClientPassword"}
    with NatsServer(tmp_path, port=0) as server:
        _, _, description = asyncio.run(_inventory(server))
    assert description == TASKS.description

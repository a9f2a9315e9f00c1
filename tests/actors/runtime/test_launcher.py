"""The troupe launcher: probing an external server, quiet pings, roles of user actors."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import tempfile
from pathlib import Path

import pytest

from actors.runtime.config import ConnectionConfig
from actors.runtime.errors import ConnectError, ServerError
from actors.runtime.launcher import (
    USER_ACTOR_ROLE,
    Member,
    Troupe,
    ping_actors,
    probe_server,
    workspaces_for,
)
from actors.runtime.server import free_port
from actors.runtime.testing import nats_server


async def test_probe_of_a_port_where_nothing_listens_fails_naming_the_url() -> None:
    """probe_server raises ConnectError with the URL instead of retrying for ever."""
    url = f"nats://127.0.0.1:{free_port()}"
    with pytest.raises(ConnectError, match=url):
        await probe_server(url, timeout=2.0)


@pytest.mark.integration
async def test_probe_of_a_running_server_succeeds(nats_url: str) -> None:
    """A NATS server's INFO greeting is enough: no credentials needed."""
    await probe_server(nats_url)


async def test_troupe_with_an_unreachable_external_server_fails_to_start(tmp_path: Path) -> None:
    """Troupe.start with --nats-url of a dead port raises ServerError and starts no actor."""
    url = f"nats://127.0.0.1:{free_port()}"
    troupe = Troupe(["status_tracker"], state_dir=tmp_path, nats_url=url)
    with pytest.raises(ServerError, match=rf"{url}.*TROUPE_NATS_URL"):
        async with troupe:
            pass
    assert troupe.supervisor is None


async def test_ping_without_a_server_fails_at_once_and_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ping_actors raises ConnectError on the first refusal, without warning noise."""
    config = ConnectionConfig(url=f"nats://127.0.0.1:{free_port()}")
    with caplog.at_level(logging.WARNING), pytest.raises(ConnectError):
        await ping_actors(config, timeout=0.5)
    assert not caplog.records


def test_builtin_members_log_in_as_their_own_role() -> None:
    """A name given to Troupe is a built-in actor with the role of its name."""
    troupe = Troupe(
        ["task_manager", Member("notifier", "x.py:Notifier", USER_ACTOR_ROLE)],
        state_dir=Path("unused"),
    )
    assert troupe.members[0] == Member("task_manager", "task_manager", "task_manager")
    assert troupe.actors == ("task_manager", "notifier")


@pytest.mark.integration
@pytest.mark.chaos
async def test_a_killed_embedded_server_is_restarted_on_its_port_and_clients_reconnect(
    tmp_path: Path,
) -> None:
    """SIGKILL of nats-server: back on the same port with its state; a client reconnects."""
    import os
    import signal

    from actors.runtime.bus import Bus
    from actors.runtime.launcher import SERVER_CHILD
    from actors.runtime.testing import eventually
    from actors.topology import AGENTS, RESULTS, TROUPE

    troupe = Troupe([], state_dir=tmp_path, port=free_port(), topology=TROUPE)
    async with troupe, await Bus.connect(troupe.client_config("admin")) as bus:
        kv = await bus.key_value(RESULTS)
        await kv.put("before", b"kept")
        server = troupe.restarts()[SERVER_CHILD]
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGKILL)
        await eventually(lambda: server.restarts == 1 and server.ready, timeout=5)
        assert server.last_exit == "killed by SIGKILL"

        async def kept() -> bool:
            entry = await kv.get("before")
            return entry.value == b"kept"

        await eventually(kept, timeout=15, ignoring=(Exception,))

        async def presence_bucket_back() -> bool:
            # Memory storage died with the server: the topology is applied again.
            return bool(await bus.js.stream_info(f"KV_{AGENTS.name}"))

        await eventually(presence_bucket_back, timeout=15, ignoring=(Exception,))


def _open_sockets() -> int:
    """How many sockets this process holds open."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


@pytest.mark.integration
async def test_a_refused_ping_leaves_no_socket_open() -> None:
    """ping_actors closes the connection whose login the server refused, at once."""
    with nats_server(with_config=True) as server:
        config = ConnectionConfig(url=server.url, user="admin", password="not-the-password")
        gc.disable()  # the leak shows before a collection would close it
        try:
            before = _open_sockets()
            for _ in range(3):
                with pytest.raises(ConnectError):
                    await ping_actors(config, timeout=0.5)
            assert _open_sockets() == before
        finally:
            gc.enable()


def test_each_troupe_gets_its_own_workspace_root(tmp_path: Path) -> None:
    """Two state directories, two roots under the temp directory; one directory, one root."""
    first, second = tmp_path / "a", tmp_path / "b"
    assert workspaces_for(first) != workspaces_for(second)
    assert workspaces_for(first) == workspaces_for(tmp_path / "b" / ".." / "a")
    assert workspaces_for(first).parent == Path(tempfile.gettempdir())

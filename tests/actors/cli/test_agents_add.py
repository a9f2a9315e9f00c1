"""``troupe agents add NAME``: an agent's own login, live on a running troupe."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nats
import pytest

from actors.cli import main
from actors.cli.creds import PID_FILE
from actors.runtime.access import agent_user
from actors.runtime.agent_logins import issued_agents
from actors.runtime.credentials import read_passwords
from actors.runtime.server import NatsServer
from actors.runtime.testing import connect_once
from protocols.agents import INBOX_STREAM, inbox_durable

pytestmark = pytest.mark.integration


@pytest.fixture
def troupe(tmp_path: Path) -> Iterator[NatsServer]:
    """A troupe server running from ``tmp_path``, its URL in the pid file like ``troupe up``."""
    with NatsServer(tmp_path, port=0) as server:
        (tmp_path / PID_FILE).write_text(f"1\n{server.url}\n")
        yield server


async def _login(server: NatsServer, user: str) -> None:
    password = read_passwords(server.state_dir, [user])[user]
    nc = await connect_once(server.url, user=user, password=password)
    await nc.close()


def test_an_added_agent_logs_in_at_once_without_a_restart(
    troupe: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server reloads its configuration; the agent's inbox consumer exists."""
    pid = troupe.proc.pid if troupe.proc else None
    assert main(["agents", "add", "bob", "--state-dir", str(troupe.state_dir)]) == 0
    assert "issued on the running troupe" in capsys.readouterr().out
    asyncio.run(_login(troupe, agent_user("bob")))
    assert troupe.proc is not None
    assert troupe.proc.pid == pid

    async def inbox_exists() -> str:
        admin = read_passwords(troupe.state_dir, ["admin"])["admin"]
        nc = await nats.connect(troupe.url, user="admin", password=admin)
        try:
            info = await nc.jetstream().consumer_info(INBOX_STREAM, inbox_durable("bob"))
            return str(info.name)
        finally:
            await nc.close()

    assert asyncio.run(inbox_exists()) == "agent-bob"


def test_adding_an_issued_agent_again_changes_nothing_and_keeps_its_connections(
    troupe: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Re-running ``agents add`` (as a README line does) neither reloads nor drops anyone."""
    args = ["agents", "add", "bob", "--state-dir", str(troupe.state_dir)]
    assert main(args) == 0
    conf = (troupe.state_dir / "nats.conf").read_text()
    hashes = (troupe.state_dir / "secrets" / "passwords.conf").read_text()

    async def held_through_re_adds() -> list[str]:
        events: list[str] = []

        async def disconnected() -> None:
            events.append("disconnected")

        password = read_passwords(troupe.state_dir, [agent_user("bob")])[agent_user("bob")]
        nc = await nats.connect(
            troupe.url, user=agent_user("bob"), password=password, disconnected_cb=disconnected
        )
        try:
            for _ in range(5):
                assert await asyncio.to_thread(main, args) == 0
            await nc.flush(timeout=10)
        finally:
            await nc.close()
        return events[:-1] if events[-1:] == ["disconnected"] else events

    assert asyncio.run(held_through_re_adds()) == []
    assert (troupe.state_dir / "nats.conf").read_text() == conf
    assert (troupe.state_dir / "secrets" / "passwords.conf").read_text() == hashes
    assert capsys.readouterr().out.count("issued on the running troupe") == 6


def test_an_invalid_agent_name_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name that is not one subject token exits 2 and issues nothing."""
    assert main(["agents", "add", "a.b", "--state-dir", str(tmp_path)]) == 2
    assert "agent name" in capsys.readouterr().err


def test_agents_added_at_the_same_time_are_all_issued(tmp_path: Path) -> None:
    """Concurrent ``troupe agents add`` calls take turns: each agent gets its login."""
    names = [f"a{i}" for i in range(6)]
    with ThreadPoolExecutor(len(names)) as pool:
        codes = list(
            pool.map(lambda n: main(["agents", "add", n, "--state-dir", str(tmp_path)]), names)
        )
    assert codes == [0] * len(names)
    assert issued_agents(tmp_path) == names
    assert set(read_passwords(tmp_path, [agent_user(n) for n in names])) == {
        agent_user(n) for n in names
    }

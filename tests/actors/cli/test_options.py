"""Client commands fail fast: no server, or a server with no troupe, is one line and exit 69."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from actors.cli.creds import PID_FILE
from actors.cli.options import EXIT_UNAVAILABLE, connection_config
from actors.runtime.credentials import password_path
from actors.runtime.server import free_port
from tests.actors.conftest import RunningTroupe

pytestmark = [pytest.mark.integration, pytest.mark.processes]

TROUPE = str(Path(sys.executable).with_name("troupe"))
DOES_NOT_HANG = 15.0
"""Generous bound on one failing command: it proves "does not hang", not speed."""

CLIENT_COMMANDS = (
    ("ls",),
    ("status", "some-id"),
    ("watch", "some-id"),
    ("templates",),
    ("submit", "hello"),
    ("submit", "hello", "--wait"),
    ("result", "some-id"),
    ("artifact", "some-id", "report.md"),
    ("cancel", "some-id"),
    ("agents",),
    ("agents", "find", "text.stats"),
    ("breakers",),
)


@dataclass(frozen=True)
class Ran:
    """One finished command."""

    code: int
    out: str
    err: str
    seconds: float


async def _troupe(*args: str, url: str) -> Ran:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TROUPE_")}
    env["TROUPE_NATS_URL"] = url
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        TROUPE,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), DOES_NOT_HANG * 4)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"troupe {' '.join(args)} hung") from None
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode(), time.monotonic() - started)


async def _run_beside_a_reference(url: str) -> tuple[list[Ran], Ran]:
    """Run every client command at once, plus ``ls --help`` as the cost of starting one.

    On a loaded machine starting Python alone can take seconds; a command's
    time beyond the reference's is what it spent waiting on the bus.
    """
    *runs, reference = await asyncio.gather(
        *(_troupe(*command, url=url) for command in CLIENT_COMMANDS),
        _troupe("ls", "--help", url=url),
    )
    assert reference.code == 0, reference
    return runs, reference


def _assert_one_line_pointing_elsewhere(
    ran: Ran, command: tuple[str, ...], url: str, reference: Ran
) -> None:
    assert ran.code == EXIT_UNAVAILABLE, (command, ran)
    assert ran.seconds - reference.seconds < DOES_NOT_HANG, (command, ran.seconds, reference)
    lines = ran.err.splitlines()
    assert len(lines) == 1, (command, ran.err)
    assert lines[0].startswith(f"troupe {command[0]}: "), lines[0]
    assert url in lines[0]
    assert "--nats-url" in lines[0]
    assert "TROUPE_NATS_URL" in lines[0]


async def test_every_client_command_fails_fast_when_no_server_listens() -> None:
    """Nothing at the URL: each command prints one line naming it and exits 69, no retry spam."""
    url = f"nats://127.0.0.1:{free_port()}"
    runs, reference = await _run_beside_a_reference(url)
    for command, ran in zip(CLIENT_COMMANDS, runs, strict=True):
        _assert_one_line_pointing_elsewhere(ran, command, url, reference)
        assert "cannot reach NATS" in ran.err


async def test_every_client_command_fails_fast_when_no_actor_answers(nats_url: str) -> None:
    """A server with no troupe on it: each command says nobody answers and exits 69."""
    runs, reference = await _run_beside_a_reference(nats_url)
    for command, ran in zip(CLIENT_COMMANDS, runs, strict=True):
        _assert_one_line_pointing_elsewhere(ran, command, nats_url, reference)
        assert "no actor answers" in ran.err or "no stream captures" in ran.err


async def test_help_of_every_client_command_names_its_exit_codes_and_variables() -> None:
    """``--help`` documents the arguments, the TROUPE_NATS_* variables and exit code 69."""
    commands = {command[:1] for command in CLIENT_COMMANDS} | {("cache", "clear")}
    runs = await asyncio.gather(
        *(_troupe(*command, "--help", url="nats://127.0.0.1:1") for command in sorted(commands))
    )
    for command, ran in zip(sorted(commands), runs, strict=True):
        assert ran.code == 0, (command, ran.err)
        text = " ".join(ran.out.split())
        assert "TROUPE_NATS_URL" in text, command
        assert "69" in text, command


def test_a_client_finds_the_local_troupe_on_its_own_port(troupe_up: RunningTroupe) -> None:
    """Without --nats-url or TROUPE_NATS_URL, the state directory says where the troupe is."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TROUPE_NATS_")}
    env["TROUPE_STATE_DIR"] = str(troupe_up.state_dir)
    assert not troupe_up.url.endswith(":4222")
    ran = subprocess.run(
        [TROUPE, "ls"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == 0, ran.stderr


def test_nats_url_given_wins_over_the_local_troupe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TROUPE_NATS_URL, then --nats-url, are used as given whatever the state directory says."""
    (tmp_path / PID_FILE).write_text("1\nnats://127.0.0.1:4999\n")
    monkeypatch.delenv("TROUPE_NATS_URL", raising=False)
    args = argparse.Namespace(state_dir=str(tmp_path), nats_url=None)
    assert connection_config(args).url == "nats://127.0.0.1:4999"
    monkeypatch.setenv("TROUPE_NATS_URL", "nats://127.0.0.1:4888")
    assert connection_config(args).url == "nats://127.0.0.1:4888"
    args.nats_url = "nats://127.0.0.1:4777"
    assert connection_config(args).url == "nats://127.0.0.1:4777"


def test_a_refused_login_says_how_to_log_in(troupe_up: RunningTroupe) -> None:
    """Wrong credentials: exit 69 with the refusal and how to log in, not "start a troupe"."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TROUPE_NATS_")}
    env.update(
        TROUPE_NATS_URL=troupe_up.url, TROUPE_NATS_USER="client", TROUPE_NATS_PASSWORD="wrong"
    )
    ran = subprocess.run(
        [TROUPE, "ls"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == EXIT_UNAVAILABLE
    assert "refused the credentials" in ran.stderr
    assert "troupe creds client" in ran.stderr
    assert "troupe up" not in ran.stderr


def test_a_command_the_login_may_not_send_fails_at_once_saying_so(
    troupe_up: RunningTroupe,
) -> None:
    """A client login clearing the cache (an operator's request): refused, not timed out."""
    password = password_path(troupe_up.state_dir, "client").read_text().strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TROUPE_NATS_")}
    env.update(
        TROUPE_NATS_URL=troupe_up.url, TROUPE_NATS_USER="client", TROUPE_NATS_PASSWORD=password
    )
    ran = subprocess.run(
        [TROUPE, "cache", "clear"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == EXIT_UNAVAILABLE, ran.stderr
    assert "does not let user client publish on" in ran.stderr
    assert "troupe creds operator" in ran.stderr
    assert "no reply" not in ran.stderr

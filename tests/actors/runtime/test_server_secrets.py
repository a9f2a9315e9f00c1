"""The embedded server holds no password in its environment, command line or open files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from actors.runtime.testing import nats_server

pytestmark = pytest.mark.integration


def test_server_process_shows_no_password_and_writes_private_files(tmp_path: Path) -> None:
    """/proc/<nats-server>/environ and cmdline hold no role password; state 0700, log 0600."""
    with nats_server(with_config=True, state_dir=tmp_path / "state") as server:
        assert server.proc is not None
        pid = server.proc.pid
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        config = (server.state_dir / "nats.conf").read_text()
        hashes = (server.state_dir / "secrets" / "passwords.conf").read_text()
        assert server.passwords
        for var, password in server.passwords.items():
            assert password.encode() not in environ, var
            assert password.encode() not in cmdline, var
            assert password not in config, var
            if var != "TROUPE_CLIENT_PASSWORD":  # the anonymous login, see credentials
                assert password not in hashes, var
        assert b"_PASSWORD=" not in environ
        state = server.state_dir
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert stat.S_IMODE((state / "nats-server.log").stat().st_mode) == 0o600
        assert stat.S_IMODE((state / "nats.conf").stat().st_mode) == 0o600

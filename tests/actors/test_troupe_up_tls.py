"""``troupe up --tls``: a server requiring TLS, verified by actors and CLI with the local CA."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from actors.runtime.server import free_port

pytestmark = pytest.mark.integration


def _troupe(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actors", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_troupe_up_tls_serves_the_cli_over_verified_tls(tmp_path: Path) -> None:
    """up --tls --detach starts over TLS; `ls` finds the CA in the state dir; a plain URL fails."""
    state_dir = tmp_path / "state"
    port = free_port()
    env = {
        **os.environ,
        "TROUPE_NATS_URL": "",
        "TROUPE_NATS_CA": "",
        "TROUPE_STATE_DIR": str(state_dir),
    }
    up = _troupe("up", "--tls", "--detach", "--port", str(port), env=env)
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        assert f"tls://127.0.0.1:{port}" in up.stdout
        assert (state_dir / "tls" / "ca.pem").is_file()
        url = f"tls://127.0.0.1:{port}"
        listed = _troupe("ls", "--nats-url", url, env=env)
        assert listed.returncode == 0, listed.stderr
        elsewhere = {**env, "TROUPE_STATE_DIR": str(tmp_path / "no-such-state")}
        unverified = _troupe("ls", "--nats-url", url, env=elsewhere)
        assert unverified.returncode != 0
        assert "TROUPE_NATS_CA" in unverified.stderr
    finally:
        down = _troupe("down", "--state-dir", str(state_dir), env=env)
        assert down.returncode == 0, down.stderr

"""``troupe creds``: the login of a role, from the state directory of ``troupe up``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from actors.cli import main
from actors.cli.creds import PID_FILE, role_url
from actors.runtime.agent_logins import issue_agent
from actors.runtime.config import ConnectionConfig
from actors.runtime.server import load_secrets


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """A state directory as ``troupe up`` leaves it: secrets and a pid file with the URL."""
    load_secrets(tmp_path)
    (tmp_path / PID_FILE).write_text("12345\nnats://127.0.0.1:4999\n")
    return tmp_path


def test_creds_prints_shell_lines_that_log_in_as_the_role(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``eval "$(troupe creds operator)"`` sets the TROUPE_NATS_* variables the CLI reads."""
    assert main(["creds", "operator", "--state-dir", str(state_dir)]) == 0
    values = _exported(capsys.readouterr().out)
    password = load_secrets(state_dir)["TROUPE_OPERATOR_PASSWORD"]
    assert values == {
        "TROUPE_NATS_URL": "nats://127.0.0.1:4999",
        "TROUPE_NATS_USER": "operator",
        "TROUPE_NATS_PASSWORD": password,
    }
    config = ConnectionConfig.from_env(values)
    assert (config.user, config.password) == ("operator", password)


def _exported(script: str) -> dict[str, str]:
    env = subprocess.run(
        ["bash", "-c", f"{script}\nenv"],
        check=True,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "TROUPE_NATS_TOKEN": "stale"},
    ).stdout
    return dict(line.split("=", 1) for line in env.splitlines() if line.startswith("TROUPE_"))


def test_creds_of_an_issued_agent_log_in_as_its_own_user(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``troupe creds agent NAME`` exports the agent's own user and its id."""
    password = issue_agent(state_dir, "textstats-1")
    assert main(["creds", "agent", "textstats-1", "--state-dir", str(state_dir)]) == 0
    values = _exported(capsys.readouterr().out)
    assert values["TROUPE_NATS_USER"] == "agent-textstats-1"
    assert values["TROUPE_NATS_PASSWORD"] == password
    assert values["TROUPE_AGENT_ID"] == "textstats-1"


def test_creds_url_carries_the_role_in_the_url(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--url`` prints nats://ROLE:PASSWORD@host:port."""
    assert main(["creds", "actor", "--url", "--state-dir", str(state_dir)]) == 0
    password = load_secrets(state_dir)["TROUPE_ACTOR_PASSWORD"]
    assert capsys.readouterr().out.strip() == f"nats://actor:{password}@127.0.0.1:4999"


def test_role_url_rewrites_every_server_of_a_cluster_url() -> None:
    """Each comma-separated server gets the credentials; an old userinfo is replaced."""
    assert role_url("nats://a:1,nats://old@b:2", "agent", "pw") == (
        "nats://agent:pw@a:1,nats://agent:pw@b:2"
    )


def test_creds_without_a_troupe_says_to_start_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No secrets in the state directory: exit 1 and say what to do."""
    assert main(["creds", "client", "--state-dir", str(tmp_path)]) == 1
    assert "troupe up" in capsys.readouterr().err


def test_creds_of_an_agent_never_issued_says_how_to_issue_it(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An agent without a login: exit 1 and name 'troupe agents add'."""
    assert main(["creds", "agent", "nobody", "--state-dir", str(state_dir)]) == 1
    assert "troupe agents add nobody" in capsys.readouterr().err


def test_creds_without_a_role_lists_the_roles(capsys: pytest.CaptureFixture[str]) -> None:
    """Every role is listed with what it may do."""
    assert main(["creds"]) == 0
    out = capsys.readouterr().out
    for role in ("client", "operator", "agent", "actor", "admin", "task_manager"):
        assert role in out

"""Agent identities: one NATS user per agent, issued by ``troupe agents add NAME``.

An issued agent logs in as ``agent-<NAME>`` (see :func:`actors.runtime.access.agent_role`):
it heartbeats under its own key only and fetches from its own inbox durable
only. Its password sits in ``<state-dir>/secrets/agent-<NAME>.password``
(0600) and its name in ``<state-dir>/secrets/agents``; the server
configuration carries only the bcrypt hash. A running server is told to
reload its configuration (SIGHUP through its pid file), so issuing an agent
needs no restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
from collections.abc import Iterator
from pathlib import Path

from actors.runtime import access
from actors.runtime.credentials import (
    SECRETS_DIR,
    ensure_passwords,
    read_passwords,
    secure_state_dir,
    stable_hashes,
)

__all__ = [
    "AGENTS_FILE",
    "PID_FILE",
    "config_text",
    "issue_agent",
    "issued_agents",
    "issuing",
    "process_alive",
    "read_pid",
    "reload_server",
    "server_running",
]

AGENTS_FILE = "agents"
"""File in ``<state-dir>/secrets/`` listing the issued agents, one name a line."""

PID_FILE = "nats-server.pid"
"""File in the state directory where the embedded server writes its pid."""


@contextlib.contextmanager
def issuing(state_dir: Path) -> Iterator[None]:
    """Hold the state directory's issuing lock: one ``troupe agents add`` at a time.

    Issuing writes the password files, the agents list and the server
    configuration; two at once would overwrite each other's files.
    """
    secure_state_dir(state_dir)
    fd = os.open(Path(state_dir) / SECRETS_DIR / ".issuing.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def issued_agents(state_dir: Path) -> list[str]:
    """Return the names of the agents issued in ``state_dir``, sorted."""
    path = Path(state_dir) / SECRETS_DIR / AGENTS_FILE
    try:
        lines = path.read_text().split()
    except FileNotFoundError:
        return []
    return sorted(set(lines))


def issue_agent(state_dir: Path, name: str) -> str:
    """Issue (or re-read) the identity of agent ``name``; return its password.

    Raises:
        ValueError: ``name`` is not a valid agent name.
    """
    user = access.agent_role(name).name
    secure_state_dir(state_dir)
    password = ensure_passwords(state_dir, [user])[user]
    names = issued_agents(state_dir)
    if name not in names:
        path = Path(state_dir) / SECRETS_DIR / AGENTS_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.writelines(f"{n}\n" for n in sorted({*names, name}))
    return password


def config_text(state_dir: Path, base: Path, *, default: Path) -> str:
    """Return the configuration text a server of ``state_dir`` runs.

    The default configuration is rendered from the role table with the issued
    agents added and a pid file for reloads; any other file is used as it is.
    """
    if Path(base) != Path(default):
        return Path(base).read_text()
    names = issued_agents(state_dir)
    users = [access.agent_user(n) for n in names]
    passwords = read_passwords(state_dir, users)
    by_user = stable_hashes(state_dir, {u: passwords[u] for u in users if u in passwords})
    hashes = {n: by_user[u] for n, u in zip(names, users, strict=True) if u in by_user}
    pid_file = (Path(state_dir) / PID_FILE).resolve()
    return access.render_config(agent_hashes=hashes) + f'\npid_file: "{pid_file}"\n'


def read_pid(path: Path) -> int | None:
    """Return the pid a pid file starts with (more lines may follow it).

    Returns:
        ``None`` when the file is missing or does not start with a pid.
    """
    try:
        return int(Path(path).read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def process_alive(pid: int) -> bool:
    """Return whether a process ``pid`` exists (another user's process counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _server_pids(state_dir: Path) -> list[int]:
    """Pids of the server of ``state_dir``, or of each node of its loopback cluster."""
    files = [Path(state_dir) / PID_FILE, *sorted(Path(state_dir).glob(f"nodes/*/{PID_FILE}"))]
    return [pid for pid in map(read_pid, files) if pid is not None]


def server_running(state_dir: Path) -> bool:
    """Return whether the server of ``state_dir`` (per its pid files) is running."""
    return any(process_alive(pid) for pid in _server_pids(state_dir))


def reload_server(state_dir: Path) -> bool:
    """Ask the server of ``state_dir`` (every node of a loopback cluster) to reload (SIGHUP).

    Returns:
        ``True`` if a running server was signalled, ``False`` if none runs.
    """
    signalled = False
    for pid in _server_pids(state_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGHUP)
            signalled = True
    return signalled

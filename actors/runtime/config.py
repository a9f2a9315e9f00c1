"""Connection settings shared by every actor and CLI command.

Values come from flags or ``TROUPE_*`` environment variables; objects are
frozen and validated on construction, so a bad value fails at start-up with
the field's name in the message.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from actors.runtime.credentials import PASSWORD_FILE_ENV, read_password_file
from actors.runtime.errors import ConfigError

__all__ = [
    "CA_ENV",
    "CLIENT_CONNECT_TIMEOUT",
    "DEFAULT_NATS_URL",
    "URL_ENV",
    "ConnectionConfig",
    "add_connection_arguments",
]

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
"""Where a troupe started by ``troupe up`` listens by default."""

CA_ENV = "TROUPE_NATS_CA"
"""Variable naming the CA certificate clients verify the server's TLS certificate with."""

URL_ENV = "TROUPE_NATS_URL"
"""Variable naming the NATS server(s), comma-separated."""

CLIENT_CONNECT_TIMEOUT = 3.0
"""First-connect budget of a command-line client: it fails rather than waits."""

_SCHEMES = frozenset({"nats", "tls", "ws", "wss"})


@dataclass(frozen=True, slots=True)
class ConnectionConfig:
    """How to reach NATS.

    Attributes:
        url: server URL(s), comma-separated for a cluster.
        user: user name (with ``password``).
        password: password for ``user``.
        token: token authentication, exclusive with ``user``.
        creds: path of a NATS ``.creds`` file.
        password_file: file holding the password for ``user`` (read on
            construction when ``password`` is not given): how a process gets its
            secret without it sitting in its environment or command line.
        ca: CA certificate (PEM) the server's TLS certificate is verified
            against; the system's trust store when ``None``.
        name: client name shown by the server (``nats server report connections``).
        connect_timeout: the first-connect budget: seconds to keep trying to reach
            a server before giving up with :class:`~actors.runtime.errors.ConnectError`.
            Actors use the default, long enough to start before their server;
            command-line clients use :data:`CLIENT_CONNECT_TIMEOUT`.
        reconnect: once connected, reconnect for ever when the connection drops
            (actors). ``False`` closes the connection on the first drop, so a
            client fails at once instead of waiting for a server that may not return.
    """

    url: str = DEFAULT_NATS_URL
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    creds: str | None = None
    password_file: str | None = None
    ca: str | None = None
    name: str = "troupe"
    connect_timeout: float = 30.0
    reconnect: bool = True

    def __post_init__(self) -> None:
        servers = self.servers
        if not servers:
            raise ConfigError("url", "no server URL given")
        for server in servers:
            parts = urlsplit(server)
            if parts.scheme not in _SCHEMES or not parts.hostname:
                raise ConfigError("url", f"{server!r} is not a nats://host:port URL")
            try:
                _ = parts.port
            except ValueError:
                raise ConfigError("url", f"{server!r} has an invalid port") from None
        if self.password_file and self.password is None:
            object.__setattr__(self, "password", read_password_file(self.password_file))
        if self.ca is not None and not os.path.isfile(self.ca):
            raise ConfigError("ca", f"{self.ca} is not a file")
        if self.token and self.user:
            raise ConfigError("token", "use either token or user/password, not both")
        if (self.user is None) != (self.password is None):
            raise ConfigError("password", "user and password go together")
        if self.connect_timeout <= 0:
            raise ConfigError("connect_timeout", "must be positive")

    def for_client(self) -> ConnectionConfig:
        """Return these settings for a short-lived client: fail fast, never reconnect.

        The first-connect budget is capped at :data:`CLIENT_CONNECT_TIMEOUT`.
        """
        return replace(
            self,
            connect_timeout=min(self.connect_timeout, CLIENT_CONNECT_TIMEOUT),
            reconnect=False,
        )

    @property
    def tls_required(self) -> bool:
        """Whether a ``tls://`` URL is given: then plain text is refused, never fallen back to."""
        return any(urlsplit(s).scheme in ("tls", "wss") for s in self.servers)

    @property
    def inbox_prefix(self) -> str:
        """Prefix of this connection's reply inboxes: ``_INBOX_<user>`` for a user.

        troupe's server configuration lets each user subscribe to its own prefix
        only, so nobody listens on (or publishes into) another role's inboxes.
        """
        return f"_INBOX_{self.user}" if self.user else "_INBOX"

    @property
    def servers(self) -> list[str]:
        """The server URLs as a list."""
        return [s.strip() for s in self.url.split(",") if s.strip()]

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, **overrides: str | float | bool | None
    ) -> ConnectionConfig:
        """Build from ``TROUPE_NATS_URL``, ``TROUPE_NATS_USER``, ``TROUPE_NATS_PASSWORD``,
        ``TROUPE_NATS_PASSWORD_FILE``, ``TROUPE_NATS_TOKEN``, ``TROUPE_NATS_CREDS`` and
        ``TROUPE_NATS_CA``; non-``None`` overrides win.

        Raises:
            ConfigError: a value is invalid.
        """
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "url": env.get(URL_ENV) or DEFAULT_NATS_URL,
            "user": env.get("TROUPE_NATS_USER") or None,
            "password": env.get("TROUPE_NATS_PASSWORD") or None,
            "token": env.get("TROUPE_NATS_TOKEN") or None,
            "creds": env.get("TROUPE_NATS_CREDS") or None,
            "password_file": env.get(PASSWORD_FILE_ENV) or None,
            "ca": env.get(CA_ENV) or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def from_args(
        cls,
        args: argparse.Namespace,
        env: Mapping[str, str] | None = None,
        **overrides: str | float | None,
    ) -> ConnectionConfig:
        """Build from the options of :func:`add_connection_arguments` over the environment.

        A flag given on the command line wins over its ``TROUPE_NATS_*`` variable;
        ``overrides`` (e.g. ``name``) win over both.

        Raises:
            ConfigError: a value is invalid.
        """
        flags = {
            "url": getattr(args, "nats_url", None),
            "user": getattr(args, "user", None),
            "password": getattr(args, "password", None),
            "token": getattr(args, "token", None),
            "creds": getattr(args, "creds", None),
            "password_file": getattr(args, "password_file", None),
            "ca": getattr(args, "ca", None),
        }
        return cls.from_env(env, **{**flags, **overrides})


def add_connection_arguments(
    parser: argparse.ArgumentParser, *, ca_help: str | None = None
) -> None:
    """Add ``--nats-url``, ``--user``, ``--password``, ``--token``, ``--creds``,
    ``--password-file`` and ``--ca`` to ``parser``.

    Read them back with :meth:`ConnectionConfig.from_args`; unset flags fall back
    to the ``TROUPE_NATS_*`` variables.
    """
    group = parser.add_argument_group("connection (defaults from TROUPE_NATS_* variables)")
    group.add_argument(
        "--nats-url",
        metavar="URL",
        help="NATS server URL(s), comma-separated (env TROUPE_NATS_URL; default: the URL of "
        f"the troupe running from the state directory, else {DEFAULT_NATS_URL})",
    )
    group.add_argument("--user", help="NATS user (env TROUPE_NATS_USER)")
    group.add_argument("--password", help="NATS password (env TROUPE_NATS_PASSWORD)")
    group.add_argument("--token", help="NATS token (env TROUPE_NATS_TOKEN)")
    group.add_argument("--creds", metavar="FILE", help="NATS .creds file (env TROUPE_NATS_CREDS)")
    group.add_argument(
        "--password-file",
        metavar="FILE",
        help=f"read the NATS password from FILE (env {PASSWORD_FILE_ENV})",
    )
    group.add_argument(
        "--ca",
        metavar="FILE",
        help=ca_help or f"CA certificate to verify the server's TLS with (env {CA_ENV})",
    )

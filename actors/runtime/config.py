"""Connection settings shared by every actor and CLI command.

Values come from flags or ``TROUPE_*`` environment variables; objects are
frozen and validated on construction, so a bad value fails at start-up with
the field's name in the message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from actors.runtime.errors import ConfigError

__all__ = ["DEFAULT_NATS_URL", "ConnectionConfig"]

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
"""Where a troupe started by ``troupe up`` listens by default."""

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
        name: client name shown by the server (``nats server report connections``).
        connect_timeout: seconds to wait for a first connection before giving up.
    """

    url: str = DEFAULT_NATS_URL
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    creds: str | None = None
    name: str = "troupe"
    connect_timeout: float = 30.0

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
        if self.token and self.user:
            raise ConfigError("token", "use either token or user/password, not both")
        if (self.user is None) != (self.password is None):
            raise ConfigError("password", "user and password go together")
        if self.connect_timeout <= 0:
            raise ConfigError("connect_timeout", "must be positive")

    @property
    def servers(self) -> list[str]:
        """The server URLs as a list."""
        return [s.strip() for s in self.url.split(",") if s.strip()]

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, **overrides: str | float | None
    ) -> ConnectionConfig:
        """Build from ``TROUPE_NATS_URL``, ``TROUPE_NATS_USER``, ``TROUPE_NATS_PASSWORD``,
        ``TROUPE_NATS_TOKEN`` and ``TROUPE_NATS_CREDS``; non-``None`` overrides win.

        Raises:
            ConfigError: a value is invalid.
        """
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "url": env.get("TROUPE_NATS_URL") or DEFAULT_NATS_URL,
            "user": env.get("TROUPE_NATS_USER") or None,
            "password": env.get("TROUPE_NATS_PASSWORD") or None,
            "token": env.get("TROUPE_NATS_TOKEN") or None,
            "creds": env.get("TROUPE_NATS_CREDS") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

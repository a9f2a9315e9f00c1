"""The gateway's settings: where it listens, request limits and CORS, from ``TROUPE_GATEWAY_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from actors.runtime.errors import ConfigError

__all__ = ["DEFAULT_HOST", "DEFAULT_PERF_IDLE_S", "DEFAULT_PORT", "GatewayConfig"]

DEFAULT_HOST = "127.0.0.1"
"""Loopback only unless configured."""

DEFAULT_PORT = 8765
"""The default HTTP port."""

DEFAULT_PERF_IDLE_S = 600.0
"""Seconds the performance page's watch of the workflows bucket outlives its last read."""


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """How the gateway serves HTTP.

    Attributes:
        host: interface (``TROUPE_GATEWAY_HOST``).
        port: TCP port, 0 for any free one (``TROUPE_GATEWAY_PORT``).
        max_body: largest request body accepted, bytes (``TROUPE_GATEWAY_MAX_BODY``).
        cors_origins: origins allowed by CORS; empty turns CORS off
            (``TROUPE_GATEWAY_CORS_ORIGINS``, comma-separated).
        token_cache_s: seconds a verified token's record is reused
            (``TROUPE_GATEWAY_TOKEN_CACHE``); revocations take effect at once anyway.
        perf_idle_s: seconds the watch of the workflows bucket that the performance
            page reads from is kept after its last read (``TROUPE_GATEWAY_PERF_IDLE``).

    Raises:
        ConfigError: ``perf_idle_s`` is not positive.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_body: int = 1024 * 1024
    cors_origins: tuple[str, ...] = ()
    token_cache_s: float = 5.0
    perf_idle_s: float = DEFAULT_PERF_IDLE_S

    def __post_init__(self) -> None:
        if not self.perf_idle_s > 0:
            raise ConfigError("perf_idle_s", "must be positive")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewayConfig:
        """Read the ``TROUPE_GATEWAY_*`` variables.

        Raises:
            ConfigError: a value is not a number where one is needed.
        """
        env = os.environ if env is None else env
        try:
            return cls(
                host=env.get("TROUPE_GATEWAY_HOST") or DEFAULT_HOST,
                port=int(env.get("TROUPE_GATEWAY_PORT") or DEFAULT_PORT),
                max_body=int(env.get("TROUPE_GATEWAY_MAX_BODY") or 1024 * 1024),
                cors_origins=tuple(
                    o.strip()
                    for o in (env.get("TROUPE_GATEWAY_CORS_ORIGINS") or "").split(",")
                    if o.strip()
                ),
                token_cache_s=float(env.get("TROUPE_GATEWAY_TOKEN_CACHE") or 5.0),
                perf_idle_s=float(env.get("TROUPE_GATEWAY_PERF_IDLE") or DEFAULT_PERF_IDLE_S),
            )
        except ValueError as exc:
            raise ConfigError("gateway", f"bad TROUPE_GATEWAY_* value: {exc}") from None

"""Configuration of the agent registry: frozen, validated, read from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from actors.runtime.errors import ConfigError

__all__ = ["DispatchConfig", "RegistryConfig"]

_ENV = {
    "sweep_interval_s": "TROUPE_AGENTS_SWEEP_INTERVAL",
    "suspect_after": "TROUPE_AGENTS_SUSPECT_AFTER",
    "expiry_grace_s": "TROUPE_AGENTS_EXPIRY_GRACE",
    "snapshot_timeout_s": "TROUPE_AGENTS_SNAPSHOT_TIMEOUT",
    "inbox_retention_s": "TROUPE_AGENTS_INBOX_RETENTION",
    "janitor_interval_s": "TROUPE_AGENTS_JANITOR_INTERVAL",
}


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    """How the registry judges presence.

    Attributes:
        sweep_interval_s: how often heartbeats are checked against their TTL.
        suspect_after: heartbeat intervals without one before an agent is ``suspect``.
        expiry_grace_s: seconds past an agent's TTL before the registry declares it
            gone on its own; the bucket's expiry marker normally comes first.
        snapshot_timeout_s: seconds to wait for the bucket's current state at start.
        inbox_retention_s: seconds a message waits in the inbox of an agent that is
            not present before it is dead-lettered.
        janitor_interval_s: how often inboxes of absent agents are checked.
    """

    sweep_interval_s: float = 0.1
    suspect_after: float = 1.5
    expiry_grace_s: float = 0.5
    snapshot_timeout_s: float = 10.0
    inbox_retention_s: float = 3600.0
    janitor_interval_s: float = 30.0

    def __post_init__(self) -> None:
        for name in (
            "sweep_interval_s",
            "suspect_after",
            "snapshot_timeout_s",
            "inbox_retention_s",
            "janitor_interval_s",
        ):
            if not getattr(self, name) > 0:
                raise ConfigError(name, "must be positive")
        if self.expiry_grace_s < 0:
            raise ConfigError("expiry_grace_s", "must not be negative")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RegistryConfig:
        """Build the configuration from ``TROUPE_AGENTS_*`` variables over the defaults.

        Raises:
            ConfigError: a variable is not a number, or its value is out of range.
        """
        env = os.environ if env is None else env
        values: dict[str, float] = {}
        for name, var in _ENV.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            try:
                values[name] = float(raw)
            except ValueError:
                raise ConfigError(name, f"{var}={raw!r} is not a number") from None
        return cls(**values)


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    """How long and how often the dispatcher tries.

    Attributes:
        deadline_s: seconds a task waits for a capable agent before the workflow fails.
        poll_interval_s: how often open tasks are re-examined (departures wake it sooner).
        departure_grace_s: an assigned agent missing from the bucket for this long is
            taken as gone even if its departure was not seen (e.g. during a restart).
        find_limit: candidates asked of the registry.
        source: ``source`` of the status events.
    """

    deadline_s: float = 60.0
    poll_interval_s: float = 1.0
    departure_grace_s: float = 10.0
    find_limit: int = 16
    source: str = "task_manager"

    def __post_init__(self) -> None:
        for name in ("deadline_s", "poll_interval_s", "departure_grace_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(name, "must be positive")
        if self.find_limit < 1:
            raise ConfigError("find_limit", "must be at least 1")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DispatchConfig:
        """Read ``TROUPE_AGENT_DEADLINE`` and ``TROUPE_AGENT_POLL_INTERVAL`` over the defaults.

        Raises:
            ConfigError: a value is not a positive number.
        """
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            deadline_s=_env_float(env, "TROUPE_AGENT_DEADLINE", "deadline_s", defaults.deadline_s),
            poll_interval_s=_env_float(
                env, "TROUPE_AGENT_POLL_INTERVAL", "poll_interval_s", defaults.poll_interval_s
            ),
        )


def _env_float(env: Mapping[str, str], var: str, name: str, default: float) -> float:
    raw = env.get(var)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(name, f"{var}={raw!r} is not a number") from None

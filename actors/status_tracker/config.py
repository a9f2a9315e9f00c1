"""The status tracker's configuration: frozen, validated on construction, readable from env."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from actors.runtime.errors import ConfigError

__all__ = ["ENV_PREFIX", "TrackerConfig"]

ENV_PREFIX = "TROUPE_STATUS_"
"""Environment variables ``TROUPE_STATUS_<FIELD>`` override the defaults."""

DAY = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """Settings of one status tracker process.

    Attributes:
        retention_s: seconds a finished workflow stays in the KV bucket (its
            last write carries this per-message TTL).
        sweep_interval_s: seconds between two deadline sweeps.
        durations_kept: earlier run durations kept per template for ETAs.
        messages_kept: structured step messages kept per workflow.
        cas_attempts: revision-checked write attempts before the event is
            handed back for redelivery.
        eta_cache_s: seconds a template's durations are cached in memory.
        ready_timeout_s: seconds to wait for the in-memory index to load at start.
        concurrency: status events applied at once by one process.
        ack_wait_s: seconds before an unacknowledged event is redelivered; short,
            so events a killed tracker had in flight come back within seconds (a
            slow handler keeps its message with in-progress acks).
        max_deliver: deliveries of one event before it is dead-lettered.
        coalesce_s: seconds a workflow's write waits for more of its events
            (one write and one announcement for all); a terminal transition
            is written at once, and sends a lingering write with it. 0 writes
            each event as it comes (still one write for the events that arrive
            while the previous write is in flight).
        durations_flush_s: seconds between two writes of the durations of
            successful runs (used for ETAs); a crash loses at most those.
    """

    retention_s: float = 7 * DAY
    sweep_interval_s: float = 1.0
    durations_kept: int = 50
    messages_kept: int = 20
    cas_attempts: int = 100
    eta_cache_s: float = 5.0
    ready_timeout_s: float = 60.0
    concurrency: int = 16
    ack_wait_s: float = 5.0
    max_deliver: int = 5
    coalesce_s: float = 0.02
    durations_flush_s: float = 1.0

    def __post_init__(self) -> None:
        if self.retention_s < 1:
            raise ConfigError("retention_s", "must be at least 1 second")
        if self.sweep_interval_s <= 0:
            raise ConfigError("sweep_interval_s", "must be positive")
        if self.durations_kept < 1:
            raise ConfigError("durations_kept", "must be at least 1")
        if self.messages_kept < 0:
            raise ConfigError("messages_kept", "must not be negative")
        if self.cas_attempts < 1:
            raise ConfigError("cas_attempts", "must be at least 1")
        if self.eta_cache_s < 0:
            raise ConfigError("eta_cache_s", "must not be negative")
        if self.ready_timeout_s <= 0:
            raise ConfigError("ready_timeout_s", "must be positive")
        for name in ("concurrency", "max_deliver"):
            if getattr(self, name) < 1:
                raise ConfigError(name, "must be at least 1")
        if self.ack_wait_s < 1:
            raise ConfigError("ack_wait_s", "must be at least 1 second")
        if not 0 <= self.coalesce_s <= 1:
            raise ConfigError("coalesce_s", "must be between 0 and 1 second")
        if self.durations_flush_s <= 0:
            raise ConfigError("durations_flush_s", "must be positive")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TrackerConfig:
        """Build the configuration from ``TROUPE_STATUS_*`` variables over the defaults.

        Raises:
            ConfigError: a variable is not a number, or its value is invalid.
        """
        env = os.environ if env is None else env
        values: dict[str, float | int] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            try:
                values[f.name] = int(raw) if f.type == "int" else float(raw)
            except ValueError:
                raise ConfigError(f.name, f"{raw!r} is not a number") from None
        return cls(**values)  # type: ignore[arg-type]

"""Breaker configuration: frozen, validated settings and the defaults per key prefix.

A breaker key names what it guards (``image:alpine:3.20``, ``backend:dagger``,
``agent:coder-1``, ``step:build``); the longest matching prefix in
:attr:`SupervisorConfig.prefixes` picks its :class:`BreakerConfig`, else
:attr:`SupervisorConfig.default`. A YAML file named by
``TROUPE_BREAKERS_CONFIG`` can override both (see :meth:`SupervisorConfig.from_mapping`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from actors.runtime.errors import ConfigError
from protocols.errors import ERROR_CLASSES, ErrorClass

__all__ = ["DEFAULT_PREFIXES", "BreakerConfig", "SupervisorConfig", "WindowType"]

WindowType = Literal["count", "time"]

_ALL_BUT_CANCELLED: frozenset[ErrorClass] = frozenset(ERROR_CLASSES) - {"cancelled"}


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """How one breaker judges calls (resilience4j's settings, in seconds and ratios).

    Attributes:
        window: ``count`` (the last ``window_size`` calls) or ``time`` (calls of
            the last ``window_size`` seconds).
        window_size: calls or seconds, per :attr:`window`.
        minimum_calls: calls in the window before rates are judged (a count
            window judges once it holds ``min(minimum_calls, window_size)``).
        failure_rate_threshold: open at or above this failure ratio (0-1].
        slow_rate_threshold: open at or above this slow-call ratio (0-1].
        slow_call_duration: a call longer than this many seconds is slow.
        wait_open: seconds open before half-open, the first time.
        wait_multiplier: growth of the wait per consecutive open (1: fixed).
        max_wait_open: cap of the open wait.
        half_open_permits: probe calls allowed while half-open.
        half_open_max_wait: seconds half-open may last without a verdict
            before re-opening (0: for ever); covers probes whose runner died.
        record_classes: error classes counted as failures.
        ignore_classes: error classes not counted at all; any other class
            counts as a success (the call reached the guarded thing and it answered).
    """

    window: WindowType = "count"
    window_size: int = 20
    minimum_calls: int = 10
    failure_rate_threshold: float = 0.5
    slow_rate_threshold: float = 1.0
    slow_call_duration: float = 60.0
    wait_open: float = 30.0
    wait_multiplier: float = 1.0
    max_wait_open: float = 600.0
    half_open_permits: int = 3
    half_open_max_wait: float = 120.0
    record_classes: frozenset[ErrorClass] = _ALL_BUT_CANCELLED
    ignore_classes: frozenset[ErrorClass] = frozenset({"cancelled"})

    def __post_init__(self) -> None:
        if self.window not in ("count", "time"):
            raise ConfigError("window", "must be 'count' or 'time'")
        if self.window_size < 1:
            raise ConfigError("window_size", "must be at least 1")
        if self.minimum_calls < 1:
            raise ConfigError("minimum_calls", "must be at least 1")
        for name in ("failure_rate_threshold", "slow_rate_threshold"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ConfigError(name, "must be in (0, 1]")
        self._check_waits()
        self._check_classes()

    def _check_waits(self) -> None:
        for name in ("slow_call_duration", "wait_open"):
            if getattr(self, name) <= 0:
                raise ConfigError(name, "must be positive")
        if self.wait_multiplier < 1:
            raise ConfigError("wait_multiplier", "must be at least 1 (1 = fixed wait)")
        if self.max_wait_open < self.wait_open:
            raise ConfigError("max_wait_open", "must be at least wait_open")
        if self.half_open_permits < 1:
            raise ConfigError("half_open_permits", "must be at least 1")
        if self.half_open_max_wait < 0:
            raise ConfigError("half_open_max_wait", "must not be negative")

    def _check_classes(self) -> None:
        for name in ("record_classes", "ignore_classes"):
            value = frozenset(getattr(self, name))
            unknown = value - set(ERROR_CLASSES)
            if unknown:
                raise ConfigError(name, f"unknown classes {sorted(unknown)}")
            object.__setattr__(self, name, value)
        both = self.record_classes & self.ignore_classes
        if both:
            raise ConfigError("ignore_classes", f"{sorted(both)} also in record_classes")

    @property
    def judged_after(self) -> int:
        """Calls the window must hold before its rates are judged."""
        if self.window == "count":
            return min(self.minimum_calls, self.window_size)
        return self.minimum_calls

    def open_wait(self, streak: int) -> float:
        """Seconds to stay open after the ``streak``-th consecutive opening (1-based)."""
        exponent = min(max(streak, 1) - 1, 64)
        return min(self.max_wait_open, self.wait_open * self.wait_multiplier**exponent)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], base: BreakerConfig | None = None, *, where: str = "breaker"
    ) -> BreakerConfig:
        """Build a config from plain data (YAML), over ``base``'s values.

        Raises:
            ConfigError: an unknown field or a bad value (named with ``where``).
        """
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"{where}.{sorted(unknown)[0]}", "unknown setting")
        values: dict[str, Any] = dict(data)
        for name in ("record_classes", "ignore_classes"):
            if name in values:
                values[name] = frozenset(values[name])
        try:
            return replace(base or cls(), **values)
        except ConfigError as exc:
            raise ConfigError(f"{where}.{exc.field}", exc.problem) from None
        except TypeError as exc:
            raise ConfigError(where, str(exc)) from None


DEFAULT_PREFIXES: Mapping[str, BreakerConfig] = MappingProxyType(
    {
        # A broken image fails every step that uses it: judge quickly, back off
        # exponentially so a long outage is probed ever more rarely.
        "image:": BreakerConfig(
            window_size=10,
            minimum_calls=5,
            wait_open=30.0,
            wait_multiplier=2.0,
            max_wait_open=600.0,
        ),
        # A backend (engine) failing for user reasons is not the engine's fault:
        # only infrastructure classes count, over a time window.
        "backend:": BreakerConfig(
            window="time",
            window_size=60,
            minimum_calls=5,
            wait_open=15.0,
            wait_multiplier=2.0,
            max_wait_open=300.0,
            record_classes=frozenset({"transient", "timeout", "resource", "unavailable"}),
        ),
        # Opt-in breakers of a user's own step or pipeline: every failure counts.
        "step:": BreakerConfig(
            window_size=10,
            minimum_calls=5,
            wait_open=30.0,
            wait_multiplier=2.0,
            max_wait_open=600.0,
        ),
        "template:": BreakerConfig(
            window_size=20,
            minimum_calls=5,
            wait_open=30.0,
            wait_multiplier=2.0,
            max_wait_open=600.0,
        ),
        "agent:": BreakerConfig(
            window="time",
            window_size=60,
            minimum_calls=3,
            wait_open=10.0,
            wait_multiplier=2.0,
            max_wait_open=120.0,
        ),
    }
)
"""Built-in defaults per key prefix."""


@dataclass(frozen=True, slots=True)
class SupervisorConfig:
    """The breaker supervisor's settings.

    Attributes:
        default: config of keys no prefix matches.
        prefixes: key prefix -> config; the longest matching prefix wins.
        dedup_depth: stream sequences remembered per key to drop redeliveries.
        concurrency: outcome reports folded at once by one process.
        ack_wait_s: seconds before an unacknowledged report is redelivered; folding
            one takes milliseconds, so a killed supervisor's in-flight reports come
            back after seconds.
        max_deliver: deliveries of one report before it is dead-lettered.
        snapshot_batch_s: seconds the reports of one key are gathered before their
            one snapshot write (a group commit: all are acknowledged after it);
            ``0`` writes one snapshot per report. A report that changes the
            breaker's state is stored at once, with the reports gathered so far.
        snapshot_batch_max: reports of one key that end a gathering early.
        status_refresh_s: seconds a published status may lag behind the window
            counters (``calls``, ``failure_rate``, ``slow_rate``); everything a
            runner acts on (state, times, permits, epoch) is published at once.
            ``0`` publishes every counter change at once.
    """

    default: BreakerConfig = field(default_factory=BreakerConfig)
    prefixes: Mapping[str, BreakerConfig] = field(default_factory=lambda: DEFAULT_PREFIXES)
    dedup_depth: int = 512
    concurrency: int = 16
    ack_wait_s: float = 5.0
    max_deliver: int = 20
    snapshot_batch_s: float = 0.05
    snapshot_batch_max: int = 64
    status_refresh_s: float = 1.0

    def __post_init__(self) -> None:
        if any(not p for p in self.prefixes):
            raise ConfigError("prefixes", "an empty prefix is the 'default' setting")
        for name in ("dedup_depth", "concurrency", "max_deliver", "snapshot_batch_max"):
            if getattr(self, name) < 1:
                raise ConfigError(name, "must be at least 1")
        if self.ack_wait_s < 1:
            raise ConfigError("ack_wait_s", "must be at least 1 second")
        if not 0 <= self.snapshot_batch_s <= self.ack_wait_s / 4:
            # Gathered reports wait unacknowledged: keep far from redelivery.
            raise ConfigError("snapshot_batch_s", "must be between 0 and ack_wait_s / 4")
        if self.status_refresh_s < 0:
            raise ConfigError("status_refresh_s", "must not be negative")
        ordered = sorted(self.prefixes.items(), key=lambda kv: -len(kv[0]))
        object.__setattr__(self, "prefixes", MappingProxyType(dict(ordered)))

    def for_key(self, key: str) -> BreakerConfig:
        """Return the config of breaker ``key`` (longest prefix match)."""
        for prefix, config in self.prefixes.items():
            if key.startswith(prefix):
                return config
        return self.default

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SupervisorConfig:
        """Build from plain data: ``{default: {...}, prefixes: {"image:": {...}}}``.

        Prefix entries start from the built-in prefix default when there is one,
        else from ``default``.

        Raises:
            ConfigError: unknown or invalid settings (the message names them).
        """
        unknown = set(data) - {
            "default",
            "prefixes",
            "dedup_depth",
            "concurrency",
            "ack_wait_s",
            "max_deliver",
            "snapshot_batch_s",
            "snapshot_batch_max",
            "status_refresh_s",
        }
        if unknown:
            raise ConfigError(sorted(unknown)[0], "unknown setting")
        default = BreakerConfig.from_mapping(data.get("default") or {}, where="default")
        prefixes = dict(DEFAULT_PREFIXES)
        for prefix, settings in (data.get("prefixes") or {}).items():
            base = DEFAULT_PREFIXES.get(prefix, default)
            prefixes[prefix] = BreakerConfig.from_mapping(
                settings or {}, base, where=f"prefixes[{prefix}]"
            )
        builtin = cls()
        return cls(
            default=default,
            prefixes=prefixes,
            dedup_depth=int(data.get("dedup_depth", builtin.dedup_depth)),
            concurrency=int(data.get("concurrency", builtin.concurrency)),
            ack_wait_s=float(data.get("ack_wait_s", builtin.ack_wait_s)),
            max_deliver=int(data.get("max_deliver", builtin.max_deliver)),
            snapshot_batch_s=float(data.get("snapshot_batch_s", builtin.snapshot_batch_s)),
            snapshot_batch_max=int(data.get("snapshot_batch_max", builtin.snapshot_batch_max)),
            status_refresh_s=float(data.get("status_refresh_s", builtin.status_refresh_s)),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SupervisorConfig:
        """Load the YAML file named by ``TROUPE_BREAKERS_CONFIG``, or the defaults.

        Raises:
            ConfigError: the file cannot be read or holds bad settings.
        """
        env = os.environ if env is None else env
        path = env.get("TROUPE_BREAKERS_CONFIG", "").strip()
        if not path:
            return cls()
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError("TROUPE_BREAKERS_CONFIG", f"cannot read {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError("TROUPE_BREAKERS_CONFIG", "must hold a mapping")
        return cls.from_mapping(data)

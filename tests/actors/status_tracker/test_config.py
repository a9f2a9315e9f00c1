"""The tracker's configuration validates on construction."""

from __future__ import annotations

import pytest

from actors.runtime.errors import ConfigError
from actors.status_tracker.config import TrackerConfig


def test_defaults_are_valid() -> None:
    """Seven days of retention, a sweep every second."""
    config = TrackerConfig()
    assert config.retention_s == 7 * 24 * 3600
    assert config.sweep_interval_s == 1.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("retention_s", 0.5),
        ("sweep_interval_s", 0),
        ("durations_kept", 0),
        ("messages_kept", -1),
        ("cas_attempts", 0),
        ("eta_cache_s", -1),
        ("ready_timeout_s", 0),
    ],
)
def test_bad_value_names_the_field(field: str, value: float) -> None:
    """Each invalid value fails with the field's name."""
    with pytest.raises(ConfigError, match=field):
        TrackerConfig(**{field: value})  # type: ignore[arg-type]


def test_from_env_reads_troupe_status_variables() -> None:
    """TROUPE_STATUS_<FIELD> overrides a default; non-numbers are refused."""
    config = TrackerConfig.from_env(
        {"TROUPE_STATUS_RETENTION_S": "60", "TROUPE_STATUS_DURATIONS_KEPT": "7"}
    )
    assert (config.retention_s, config.durations_kept) == (60.0, 7)
    with pytest.raises(ConfigError, match="sweep_interval_s"):
        TrackerConfig.from_env({"TROUPE_STATUS_SWEEP_INTERVAL_S": "soon"})

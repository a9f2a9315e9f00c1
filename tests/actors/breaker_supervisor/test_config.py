"""Breaker configuration: validation, per-prefix defaults, YAML overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.breaker_supervisor.config import DEFAULT_PREFIXES, BreakerConfig, SupervisorConfig
from actors.runtime.errors import ConfigError


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"window": "sliding"}, "window"),
        ({"window_size": 0}, "window_size"),
        ({"minimum_calls": 0}, "minimum_calls"),
        ({"failure_rate_threshold": 0}, "failure_rate_threshold"),
        ({"slow_rate_threshold": 1.5}, "slow_rate_threshold"),
        ({"slow_call_duration": 0}, "slow_call_duration"),
        ({"wait_open": -1}, "wait_open"),
        ({"wait_multiplier": 0.5}, "wait_multiplier"),
        ({"max_wait_open": 1}, "max_wait_open"),
        ({"half_open_permits": 0}, "half_open_permits"),
        ({"half_open_max_wait": -1}, "half_open_max_wait"),
        ({"record_classes": frozenset({"flaky"})}, "record_classes"),
        ({"ignore_classes": frozenset({"transient"})}, "ignore_classes"),
    ],
)
def test_invalid_breaker_config_fails_naming_the_field(
    kwargs: dict[str, object], field: str
) -> None:
    """A bad value fails at construction with the field's name."""
    with pytest.raises(ConfigError, match=field):
        BreakerConfig(**kwargs)  # type: ignore[arg-type]


def test_open_wait_is_fixed_or_exponential_and_capped() -> None:
    """wait_multiplier 1 keeps the wait fixed; above 1 it grows up to the cap."""
    assert BreakerConfig(wait_open=5).open_wait(4) == 5
    grow = BreakerConfig(wait_open=5, wait_multiplier=3, max_wait_open=100)
    assert [grow.open_wait(n) for n in (1, 2, 3, 4, 500)] == [5, 15, 45, 100, 100]


def test_count_window_judges_after_at_most_its_size() -> None:
    """A count window smaller than minimum_calls judges once it is full."""
    assert BreakerConfig(window_size=5, minimum_calls=10).judged_after == 5
    assert BreakerConfig(window="time", window_size=5, minimum_calls=10).judged_after == 10


def test_longest_key_prefix_picks_the_config() -> None:
    """image:, backend:, step:, template:, agent: have their own defaults; longest wins."""
    special = BreakerConfig(wait_open=1, max_wait_open=1)
    cfg = SupervisorConfig(prefixes={**DEFAULT_PREFIXES, "image:ghcr.io/": special})
    assert cfg.for_key("image:ghcr.io/x") is special
    assert cfg.for_key("image:alpine") is DEFAULT_PREFIXES["image:"]
    assert cfg.for_key("backend:dagger").window == "time"
    assert cfg.for_key("step:p/build") is DEFAULT_PREFIXES["step:"]
    assert cfg.for_key("operation:sync") is cfg.default
    with pytest.raises(ConfigError, match="prefixes"):
        SupervisorConfig(prefixes={"": special})
    with pytest.raises(ConfigError, match="dedup_depth"):
        SupervisorConfig(dedup_depth=0)


def test_yaml_file_overrides_defaults_and_names_bad_settings(tmp_path: Path) -> None:
    """TROUPE_BREAKERS_CONFIG loads a YAML file over the built-in defaults."""
    path = tmp_path / "breakers.yaml"
    path.write_text(
        "default: {window_size: 7, minimum_calls: 3}\n"
        "prefixes:\n  'image:': {wait_open: 5}\n  'step:': {record_classes: [timeout]}\n"
    )
    cfg = SupervisorConfig.from_env({"TROUPE_BREAKERS_CONFIG": str(path)})
    assert cfg.default.window_size == 7
    assert cfg.for_key("image:x").wait_open == 5
    assert cfg.for_key("image:x").wait_multiplier == 2.0
    assert cfg.for_key("step:x").record_classes == frozenset({"timeout"})
    assert cfg.for_key("step:x").window_size == 10  # from the built-in step: prefix
    assert cfg.for_key("operation:x").window_size == 7
    assert SupervisorConfig.from_env({}) == SupervisorConfig()
    path.write_text("prefixes:\n  'image:': {wait_open: -1}\n")
    with pytest.raises(ConfigError, match=r"prefixes\[image:\]\.wait_open"):
        SupervisorConfig.from_env({"TROUPE_BREAKERS_CONFIG": str(path)})
    path.write_text("default: {colour: red}\n")
    with pytest.raises(ConfigError, match=r"default\.colour"):
        SupervisorConfig.from_env({"TROUPE_BREAKERS_CONFIG": str(path)})
    path.write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        SupervisorConfig.from_env({"TROUPE_BREAKERS_CONFIG": str(path)})
    with pytest.raises(ConfigError, match="cannot read"):
        SupervisorConfig.from_env({"TROUPE_BREAKERS_CONFIG": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="colour"):
        SupervisorConfig.from_mapping({"colour": 1})


def test_group_commit_and_status_refresh_settings_are_validated_and_loaded() -> None:
    """snapshot_batch_s stays well below ack_wait_s; counters lag at most status_refresh_s."""
    default = SupervisorConfig()
    assert (default.snapshot_batch_s, default.snapshot_batch_max, default.status_refresh_s) == (
        0.05,
        64,
        1.0,
    )
    loaded = SupervisorConfig.from_mapping(
        {"snapshot_batch_s": 0, "snapshot_batch_max": 8, "status_refresh_s": 0.25}
    )
    assert (loaded.snapshot_batch_s, loaded.snapshot_batch_max, loaded.status_refresh_s) == (
        0.0,
        8,
        0.25,
    )
    with pytest.raises(ConfigError, match="snapshot_batch_s"):
        SupervisorConfig(snapshot_batch_s=2.0, ack_wait_s=5.0)
    with pytest.raises(ConfigError, match="snapshot_batch_s"):
        SupervisorConfig(snapshot_batch_s=-0.1)
    with pytest.raises(ConfigError, match="snapshot_batch_max"):
        SupervisorConfig(snapshot_batch_max=0)
    with pytest.raises(ConfigError, match="status_refresh_s"):
        SupervisorConfig(status_refresh_s=-1)

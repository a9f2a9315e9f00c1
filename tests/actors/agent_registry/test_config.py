"""Registry and dispatch settings: defaults, environment, validation."""

from __future__ import annotations

import pytest

from actors.agent_registry.config import DispatchConfig, RegistryConfig
from actors.runtime.errors import ConfigError


def test_registry_config_reads_the_environment() -> None:
    """``TROUPE_AGENTS_*`` variables override the defaults."""
    config = RegistryConfig.from_env(
        {"TROUPE_AGENTS_SWEEP_INTERVAL": "0.5", "TROUPE_AGENTS_EXPIRY_GRACE": ""}
    )
    assert config.sweep_interval_s == 0.5
    assert config.expiry_grace_s == RegistryConfig().expiry_grace_s


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"TROUPE_AGENTS_SWEEP_INTERVAL": "fast"}, "sweep_interval_s"),
        ({"TROUPE_AGENTS_SUSPECT_AFTER": "0"}, "suspect_after"),
        ({"TROUPE_AGENTS_EXPIRY_GRACE": "-1"}, "expiry_grace_s"),
    ],
)
def test_registry_config_names_the_bad_field(env: dict[str, str], field: str) -> None:
    """A bad value fails with the field's name."""
    with pytest.raises(ConfigError) as info:
        RegistryConfig.from_env(env)
    assert info.value.field == field


def test_dispatch_config_reads_and_validates_the_environment() -> None:
    """The deadline and poll interval come from ``TROUPE_AGENT_*``; bad values are refused."""
    config = DispatchConfig.from_env({"TROUPE_AGENT_DEADLINE": "5"})
    assert config.deadline_s == 5.0
    with pytest.raises(ConfigError, match="deadline_s"):
        DispatchConfig.from_env({"TROUPE_AGENT_DEADLINE": "soon"})
    with pytest.raises(ConfigError, match="poll_interval_s"):
        DispatchConfig(poll_interval_s=0)
    with pytest.raises(ConfigError, match="find_limit"):
        DispatchConfig(find_limit=0)

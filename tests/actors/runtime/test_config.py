"""ConnectionConfig: frozen, validated, read from TROUPE_* variables."""

from __future__ import annotations

import dataclasses

import pytest

from actors.runtime import DEFAULT_NATS_URL, ConfigError, ConnectionConfig


def test_defaults_point_at_the_local_troupe() -> None:
    """With nothing set, the config names troupe's default URL."""
    config = ConnectionConfig.from_env({})
    assert config.url == DEFAULT_NATS_URL
    assert config.servers == [DEFAULT_NATS_URL]


def test_environment_variables_are_read() -> None:
    """TROUPE_NATS_* variables fill the config."""
    config = ConnectionConfig.from_env(
        {
            "TROUPE_NATS_URL": "nats://a:1, nats://b:2",
            "TROUPE_NATS_USER": "u",
            "TROUPE_NATS_PASSWORD": "p",
            "TROUPE_NATS_CREDS": "/x.creds",
        }
    )
    assert config.servers == ["nats://a:1", "nats://b:2"]
    assert (config.user, config.password, config.creds) == ("u", "p", "/x.creds")


def test_overrides_win_over_environment() -> None:
    """A flag given explicitly beats the variable; None leaves the variable."""
    config = ConnectionConfig.from_env(
        {"TROUPE_NATS_URL": "nats://env:1"}, url="nats://flag:2", user=None
    )
    assert config.url == "nats://flag:2"


def test_secrets_stay_out_of_repr() -> None:
    """Passwords and tokens are not printed."""
    assert "hunter2" not in repr(ConnectionConfig(user="u", password="hunter2"))
    assert "tok" not in repr(ConnectionConfig(token="tok"))


def test_config_is_frozen() -> None:
    """A config cannot change after validation."""
    config = ConnectionConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.url = "nats://other:1"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"url": ""}, "url"),
        ({"url": " , "}, "url"),
        ({"url": "http://host:4222"}, "url"),
        ({"url": "nats://"}, "url"),
        ({"url": "nats://host:notaport"}, "url"),
        ({"url": "nats://host:99999"}, "url"),
        ({"token": "t", "user": "u", "password": "p"}, "token"),
        ({"user": "u"}, "password"),
        ({"password": "p"}, "password"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"connect_timeout": -1.5}, "connect_timeout"),
    ],
)
def test_bad_values_raise_config_error_naming_the_field(
    kwargs: dict[str, object], field: str
) -> None:
    """Each invalid value fails at construction with the field's name."""
    with pytest.raises(ConfigError) as caught:
        ConnectionConfig(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_config_error_is_a_value_error() -> None:
    """Callers catching ValueError also catch ConfigError."""
    assert issubclass(ConfigError, ValueError)


def test_connection_flags_win_over_the_environment() -> None:
    """add_connection_arguments + from_args: a flag beats its TROUPE_NATS_* variable."""
    import argparse

    from actors.runtime.config import add_connection_arguments

    parser = argparse.ArgumentParser()
    add_connection_arguments(parser)
    env = {
        "TROUPE_NATS_URL": "nats://env:1",
        "TROUPE_NATS_USER": "agent",
        "TROUPE_NATS_PASSWORD": "e",
    }
    args = parser.parse_args(["--password", "flag"])
    config = ConnectionConfig.from_args(args, env, name="x")
    assert (config.url, config.user, config.password, config.name) == (
        "nats://env:1",
        "agent",
        "flag",
        "x",
    )
    creds = ConnectionConfig.from_args(parser.parse_args(["--creds", "/a.creds"]), {})
    assert creds.creds == "/a.creds"

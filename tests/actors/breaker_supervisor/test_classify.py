"""Error classification of exit codes, signals, exceptions and engine errors."""

from __future__ import annotations

import asyncio
import errno
import subprocess

import nats.errors
import pytest

from actors.breaker_supervisor.classify import (
    DEFAULT_RULES,
    ClassifyRules,
    classify_exception,
    classify_exit,
    classify_message,
    rules_from_env,
)
from actors.runtime.errors import ConfigError, ConnectError, NotFound, RequestError, Unavailable


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (0, None),
        (1, "permanent"),
        (2, "permanent"),
        (75, "transient"),
        (69, "unavailable"),
        (124, "timeout"),
        (127, "permanent"),
        (137, "resource"),
        (143, "cancelled"),
        (-9, "transient"),
        (-15, "cancelled"),
        (-11, "permanent"),
        (-2, "cancelled"),
        (-64, "permanent"),
        (None, "unavailable"),
        (200, "permanent"),
    ],
)
def test_classify_exit_maps_codes_and_signals(code: int | None, expected: str | None) -> None:
    """Exit codes, negative signal codes and 128+signal codes map to their classes."""
    assert classify_exit(code) == expected


def test_classify_exit_timeout_and_oom_hints_win() -> None:
    """A timeout or an OOM hint decides the class whatever the exit code."""
    assert classify_exit(-9, timed_out=True) == "timeout"
    assert classify_exit(-9, oom=True) == "resource"
    assert classify_exit(0, oom=True) == "resource"


def test_exit_code_rules_are_configurable_in_code_and_environment() -> None:
    """Extra exit-code rules override the defaults."""
    rules = DEFAULT_RULES.with_exit_codes({3: "unavailable", 75: "permanent"})
    assert classify_exit(3, rules=rules) == "unavailable"
    assert classify_exit(75, rules=rules) == "permanent"
    env_rules = rules_from_env({"TROUPE_EXIT_CLASSES": "3=transient, 4=timeout"})
    assert classify_exit(3, rules=env_rules) == "transient"
    assert classify_exit(4, rules=env_rules) == "timeout"
    assert rules_from_env({}) is DEFAULT_RULES


@pytest.mark.parametrize("raw", ["3", "x=transient", "3=flaky"])
def test_malformed_exit_rules_name_the_variable(raw: str) -> None:
    """A bad TROUPE_EXIT_CLASSES fails with the variable's name."""
    with pytest.raises(ConfigError, match="TROUPE_EXIT_CLASSES"):
        rules_from_env({"TROUPE_EXIT_CLASSES": raw})


def test_rules_reject_unknown_classes_and_bad_patterns() -> None:
    """Rules validate on construction."""
    with pytest.raises(ConfigError, match=r"exit_codes\[1\]"):
        ClassifyRules(exit_codes={1: "flaky"})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match=r"patterns\[0\]"):
        ClassifyRules(patterns=(("(", "transient"),))
    with pytest.raises(ConfigError, match="default_exit"):
        ClassifyRules(default_exit="nope")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (asyncio.CancelledError(), "cancelled"),
        (KeyboardInterrupt(), "cancelled"),
        (TimeoutError(), "timeout"),
        (subprocess.TimeoutExpired("x", 1), "timeout"),
        (MemoryError(), "resource"),
        (subprocess.CalledProcessError(75, "x"), "transient"),
        (Unavailable("engine gone"), "unavailable"),
        (Unavailable("slow", code="timeout"), "timeout"),
        (RequestError("x", retryable=True), "transient"),
        (NotFound("x"), "permanent"),
        (ConnectError("down"), "unavailable"),
        (nats.errors.NoServersError(), "unavailable"),
        (nats.errors.TimeoutError(), "timeout"),
        (nats.errors.StaleConnectionError(), "transient"),
        (OSError(errno.ENOSPC, "full"), "resource"),
        (OSError(errno.EAGAIN, "again"), "transient"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "no"), "unavailable"),
        (ConnectionAbortedError(), "unavailable"),
        (FileNotFoundError(errno.ENOENT, "x"), "permanent"),
        (OSError("other"), "transient"),
        (ValueError("bug"), "permanent"),
    ],
)
def test_classify_exception_maps_python_nats_and_runtime_errors(
    exc: BaseException, expected: str
) -> None:
    """Each family of exception lands in its class; an unknown one is permanent."""
    assert classify_exception(exc) == expected


def _dagger_error(name: str, base: str = "DaggerError", **attrs: object) -> BaseException:
    """An exception shaped like dagger-io's (matched by name, like the real ones)."""
    root = type("DaggerError", (Exception,), {"__module__": "dagger._exceptions"})
    parent = root if base == "DaggerError" else type(base, (root,), {"__module__": "dagger"})
    cls = type(name, (parent,), {"__module__": "dagger._exceptions"})
    exc = cls(attrs.pop("message", name))
    for key, value in attrs.items():
        setattr(exc, key, value)
    return exc


def test_real_dagger_exceptions_are_classified() -> None:
    """dagger-io's own exception classes map to unavailable and permanent."""
    import dagger

    assert classify_exception(dagger.ClientConnectionError("x")) == "unavailable"
    assert classify_exception(dagger.TransportError("x")) == "unavailable"
    assert classify_exception(dagger.InvalidQueryError("x")) == "permanent"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_dagger_error("ExecError", "QueryError", exit_code=75, stderr=""), "transient"),
        (
            _dagger_error("ExecError", "QueryError", exit_code=1, stderr="Killed: out of memory"),
            "resource",
        ),
        (_dagger_error("ExecError", "QueryError", exit_code=0, stderr=""), "transient"),
        (_dagger_error("QueryError", message="pull access denied for nope"), "permanent"),
        (_dagger_error("QueryError", message="context deadline exceeded"), "timeout"),
        (_dagger_error("QueryError", message="429 Too Many Requests"), "transient"),
        (_dagger_error("QueryError", message="something odd"), "permanent"),
        (_dagger_error("SessionError"), "unavailable"),
    ],
)
def test_dagger_errors_are_classified_by_exit_code_and_message(
    exc: BaseException, expected: str
) -> None:
    """Dagger exec errors use the exit-code rules; query errors their message."""
    assert classify_exception(exc) == expected


def test_classify_message_falls_back_to_the_default() -> None:
    """Engine messages match the first pattern, else the default class."""
    assert classify_message("dial tcp: connection refused") == "unavailable"
    assert classify_message("no space left on device") == "resource"
    assert classify_message("operation was cancelled") == "cancelled"
    assert classify_message("???") == "permanent"

"""Breaker scopes: keys per step, what counts against infrastructure breakers, key checks."""

from __future__ import annotations

import pytest

from actors.breaker_supervisor.scopes import (
    breaker_ok,
    check_key,
    circuit_open_reason,
    key_kind,
    step_breaker_keys,
)


def test_a_step_is_guarded_by_its_backend_and_image_and_its_opt_in_breaker() -> None:
    """backend and image always; step: or template: only when the step opts in."""
    base = {"backend": "local", "image": "alpine:3", "pipeline": "p", "step": "s"}
    assert step_breaker_keys(**base) == ["backend:local", "image:alpine:3"]  # type: ignore[arg-type]
    assert step_breaker_keys(**base, scope="step")[-1] == "step:p/s"  # type: ignore[arg-type]
    assert step_breaker_keys(**base, scope="template")[-1] == "template:p"  # type: ignore[arg-type]
    assert step_breaker_keys(backend="local", image=None, pipeline="p", step="s") == [
        "backend:local"
    ]


@pytest.mark.parametrize(
    ("state", "exit_code", "error_class"),
    [
        ("failed", 75, "transient"),
        ("failed", 3, "permanent"),
        ("timed_out", None, "timeout"),
        ("failed", -9, "resource"),
    ],
)
def test_a_command_that_ran_counts_as_a_success_of_infrastructure_breakers(
    state: str, exit_code: int | None, error_class: str
) -> None:
    """Exit codes and a step's own time-out never count against backend:* or image:*."""
    for key in ("backend:local", "image:alpine:3"):
        assert breaker_ok(key, state=state, exit_code=exit_code, error_class=error_class) is True  # type: ignore[arg-type]
    for key in ("step:p/s", "template:p"):
        assert breaker_ok(key, state=state, exit_code=exit_code, error_class=error_class) is False  # type: ignore[arg-type]


def test_infrastructure_faults_count_against_every_breaker_and_stops_against_none() -> None:
    """A command that never ran is a failure; a cancelled or skipped step is not reported."""
    for key in ("backend:dagger", "image:x:1", "step:p/s"):
        assert breaker_ok(key, state="failed", exit_code=None, error_class="unavailable") is False
        assert breaker_ok(key, state="cancelled", exit_code=None, error_class="cancelled") is None
        assert breaker_ok(key, state="succeeded", exit_code=0, error_class=None) is True


def test_keys_must_name_a_known_kind() -> None:
    """KIND:NAME with a known kind passes; anything else names the kinds."""
    assert check_key("backend:local") == "backend"
    assert key_kind("image:python:3.12") == "image"
    for bad in ("nosuch:key", "backend", "backend:", ":x"):
        assert key_kind(bad) is None
        with pytest.raises(ValueError, match="backend, image, step, template"):
            check_key(bad)


def test_circuit_open_names_the_breaker_and_when_it_half_opens() -> None:
    """The refusal reason says which breaker and when it lets a probe through."""
    assert circuit_open_reason("backend:local", 0.0) == (
        "circuit_open: breaker backend:local is open; half-opens at 1970-01-01T00:00:00Z"
    )
    assert circuit_open_reason("image:a", None) == "circuit_open: breaker image:a is open"

"""Breaker scopes: which breakers guard a step, and which faults count against which.

Breaker keys are ``KIND:NAME``. Kinds and what counts against them:

==========  ===================================  ====================================
kind        guards                               counted as a failure
==========  ===================================  ====================================
backend     every step on a backend (``local``)  infrastructure faults only
image       every step using a container image   infrastructure faults only
step        one step of one pipeline (opt-in)    any failure of that step
template    every step of one pipeline (opt-in)  any failure of its steps
agent       one agent                            any failure of a call to it
operation   a named operation                    any failure
==========  ===================================  ====================================

An **infrastructure fault** is a step whose command never ran to an end: the
engine was unreachable, the process could not be spawned, the image could not
be pulled, the runner ran out of resources. A command that ran - whatever its
exit code, its own time-out or its output - proves the backend and the image
work, so it counts as a *success* of ``backend:*`` and ``image:*``: one user's
failing steps never lock everyone else out. Per-step and per-template breakers
(``breaker: step`` or ``breaker: template`` on a step) are there for users who
want their own failures to stop their own work.
"""

from __future__ import annotations

import time
from typing import Literal

from protocols.errors import ErrorClass
from protocols.pipelines import StepOutcome

__all__ = [
    "CIRCUIT_OPEN",
    "INFRASTRUCTURE_KINDS",
    "KEY_KINDS",
    "breaker_ok",
    "check_key",
    "circuit_open_reason",
    "key_kind",
    "step_breaker_keys",
]

KEY_KINDS: tuple[str, ...] = ("backend", "image", "step", "template", "agent", "operation")
"""Every kind of breaker key."""

INFRASTRUCTURE_KINDS = frozenset({"backend", "image"})
"""Kinds counting only infrastructure faults."""


def key_kind(key: str) -> str | None:
    """Return the kind of breaker ``key``, or ``None`` when it is not ``KIND:NAME``."""
    kind, sep, name = key.partition(":")
    return kind if sep and name and kind in KEY_KINDS else None


def check_key(key: str) -> str:
    """Return the kind of ``key``.

    Raises:
        ValueError: ``key`` is not ``KIND:NAME`` with a known kind (the message lists them).
    """
    kind = key_kind(key)
    if kind is None:
        raise ValueError(
            f"{key!r} is not a breaker key: expected KIND:NAME with KIND one of "
            + ", ".join(KEY_KINDS)
        )
    return kind


def step_breaker_keys(
    *,
    backend: str,
    image: str | None,
    pipeline: str,
    step: str,
    scope: Literal["step", "template"] | None = None,
) -> list[str]:
    """Return the breaker keys guarding one step.

    Args:
        backend: resolved backend name.
        image: container image, if any.
        pipeline: the pipeline's (template's) name.
        step: the step's name.
        scope: the step's opt-in breaker, if any.
    """
    keys = [f"backend:{backend}"]
    if image:
        keys.append(f"image:{image}")
    if scope == "step":
        keys.append(f"step:{pipeline}/{step}")
    elif scope == "template":
        keys.append(f"template:{pipeline}")
    return keys


def breaker_ok(
    key: str, *, state: StepOutcome, exit_code: int | None, error_class: ErrorClass | None
) -> bool | None:
    """Return how a finished step counts for breaker ``key``.

    Args:
        key: the breaker.
        state: the step's outcome.
        exit_code: its command's exit status (``None``: it never ran to an end).
        error_class: classification of a failure.

    Returns:
        ``True`` (a success), ``False`` (a failure) or ``None`` (not reported:
        the step was cancelled or skipped).
    """
    if state in ("cancelled", "skipped") or error_class == "cancelled":
        return None
    if state == "succeeded":
        return True
    if key_kind(key) in INFRASTRUCTURE_KINDS:
        return exit_code is not None or state == "timed_out"  # the command ran
    return False


CIRCUIT_OPEN = "circuit_open"
"""First word of the reason of a step an open breaker refused."""


def circuit_open_reason(key: str, until: float | None) -> str:
    """Return the reason of a step refused by breaker ``key``, naming when it half-opens.

    Args:
        key: the open breaker.
        until: when it half-opens (Unix time), if known.
    """
    when = "" if until is None else f"; half-opens at {_utc(until)}"
    return f"{CIRCUIT_OPEN}: breaker {key} is open{when}"


def _utc(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))

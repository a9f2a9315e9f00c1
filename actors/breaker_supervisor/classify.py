"""Error classification: the one place that turns a failure into an :data:`ErrorClass`.

Everything that fails in troupe - a step's exit code, a signal, an OOM kill, a
timeout, a Python exception, a Dagger engine error - is mapped here, so the
breaker supervisor, the retry policies and the status history agree on what
kind of failure it was:

============  ==========================================================
class         typical cause                                    retried?
============  ==========================================================
transient     ``EX_TEMPFAIL`` (75), connection reset, EAGAIN   yes
timeout       step timeout, exit 124, ``TimeoutError``         yes
unavailable   engine/agent/NATS unreachable, exit 69           yes
resource      OOM kill (exit 137 / SIGKILL under a memory
              limit), ``MemoryError``, ENOSPC                  no
permanent     any other non-zero exit, bad command, crash      no
cancelled     SIGTERM/SIGINT, ``CancelledError``               no
============  ==========================================================

Rules are data (:class:`ClassifyRules`): extra exit codes, signals and message
patterns can be given in code or through ``TROUPE_EXIT_CLASSES`` (for example
``"75=transient,3=unavailable"``).
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from actors.runtime.errors import ConfigError, ConnectError, RequestError
from protocols.errors import ERROR_CLASSES, ErrorClass

__all__ = [
    "DEFAULT_RULES",
    "ClassifyRules",
    "classify_exception",
    "classify_exit",
    "classify_message",
    "rules_from_env",
]

_OOM_EXIT = 128 + signal.SIGKILL


def _frozen(mapping: Mapping[int, ErrorClass]) -> Mapping[int, ErrorClass]:
    return MappingProxyType(dict(mapping))


_DEFAULT_EXIT_CODES: dict[int, ErrorClass] = {
    69: "unavailable",  # EX_UNAVAILABLE
    75: "transient",  # EX_TEMPFAIL: "try again later" by convention (sysexits.h)
    124: "timeout",  # timeout(1) killed the command
    126: "permanent",  # found but not executable
    127: "permanent",  # command not found
    _OOM_EXIT: "resource",  # 128+SIGKILL: in containers, almost always the OOM killer
}

_DEFAULT_SIGNALS: dict[int, ErrorClass] = {
    signal.SIGTERM: "cancelled",
    signal.SIGINT: "cancelled",
    signal.SIGHUP: "cancelled",
    signal.SIGKILL: "transient",  # killed from outside (eviction, operator); OOM has a hint
    signal.SIGPIPE: "transient",
    signal.SIGSEGV: "permanent",
    signal.SIGABRT: "permanent",
    signal.SIGBUS: "permanent",
    signal.SIGILL: "permanent",
    signal.SIGFPE: "permanent",
}

# Engine and registry messages, matched case-insensitively; first match wins.
_DEFAULT_PATTERNS: tuple[tuple[str, ErrorClass], ...] = (
    (r"out of memory|oom[- ]?kill|memory limit|cannot allocate memory", "resource"),
    (r"no space left on device|disk quota", "resource"),
    (r"deadline exceeded|timed? ?out", "timeout"),
    (r"too many requests|rate limit|\b429\b|\b503\b|temporar(y|ily)|try again", "transient"),
    (r"connection (refused|reset)|no route to host|unavailable|eof|broken pipe", "unavailable"),
    (r"manifest unknown|not found|pull access denied|unauthorized|denied|invalid", "permanent"),
    (r"cancel+ed", "cancelled"),
)


@dataclass(frozen=True, slots=True)
class ClassifyRules:
    """Configurable classification rules.

    Attributes:
        exit_codes: exit code -> class (codes above 128 that are not listed are
            read as ``128 + signal``, as shells report them).
        signals: signal number -> class, for negative exit codes.
        patterns: ``(regex, class)`` tried in order on engine error messages.
        default_exit: class of a non-zero exit code no rule names.
        default_message: class of an engine error no pattern matches.
    """

    exit_codes: Mapping[int, ErrorClass] = field(
        default_factory=lambda: _frozen(_DEFAULT_EXIT_CODES)
    )
    signals: Mapping[int, ErrorClass] = field(default_factory=lambda: _frozen(_DEFAULT_SIGNALS))
    patterns: tuple[tuple[str, ErrorClass], ...] = _DEFAULT_PATTERNS
    default_exit: ErrorClass = "permanent"
    default_message: ErrorClass = "permanent"
    _compiled: tuple[tuple[re.Pattern[str], ErrorClass], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for name, mapping in (("exit_codes", self.exit_codes), ("signals", self.signals)):
            for code, cls in mapping.items():
                _check_class(f"{name}[{code}]", cls)
        object.__setattr__(self, "exit_codes", _frozen(self.exit_codes))
        object.__setattr__(self, "signals", _frozen(self.signals))
        _check_class("default_exit", self.default_exit)
        _check_class("default_message", self.default_message)
        compiled = []
        for i, (pattern, cls) in enumerate(self.patterns):
            _check_class(f"patterns[{i}]", cls)
            try:
                compiled.append((re.compile(pattern, re.IGNORECASE), cls))
            except re.error as exc:
                raise ConfigError(f"patterns[{i}]", f"bad regex: {exc}") from None
        object.__setattr__(self, "_compiled", tuple(compiled))

    def with_exit_codes(self, extra: Mapping[int, ErrorClass]) -> ClassifyRules:
        """Return a copy whose exit-code rules are extended (and overridden) by ``extra``."""
        return ClassifyRules(
            exit_codes={**self.exit_codes, **extra},
            signals=self.signals,
            patterns=self.patterns,
            default_exit=self.default_exit,
            default_message=self.default_message,
        )

    def match_message(self, message: str) -> ErrorClass | None:
        """Return the class of the first pattern matching ``message``, if any."""
        for regex, cls in self._compiled:
            if regex.search(message):
                return cls
        return None


def _check_class(field_name: str, value: str) -> None:
    if value not in ERROR_CLASSES:
        raise ConfigError(field_name, f"{value!r} is not one of {', '.join(ERROR_CLASSES)}")


def rules_from_env(env: Mapping[str, str] | None = None) -> ClassifyRules:
    """Build rules from ``TROUPE_EXIT_CLASSES`` (``"CODE=CLASS,..."``) over the defaults.

    Raises:
        ConfigError: the variable is malformed (the message names it).
    """
    env = os.environ if env is None else env
    raw = env.get("TROUPE_EXIT_CLASSES", "").strip()
    if not raw:
        return DEFAULT_RULES
    extra: dict[int, ErrorClass] = {}
    for item in raw.split(","):
        code, sep, cls = item.strip().partition("=")
        if not sep or not code.strip().lstrip("-").isdigit():
            raise ConfigError("TROUPE_EXIT_CLASSES", f"{item.strip()!r} is not CODE=CLASS")
        _check_class("TROUPE_EXIT_CLASSES", cls.strip())
        extra[int(code)] = cls.strip()  # type: ignore[assignment]  # checked just above
    return DEFAULT_RULES.with_exit_codes(extra)


DEFAULT_RULES = ClassifyRules()
"""The built-in rules (see the module docstring)."""


def classify_exit(  # noqa: PLR0911 - one return per rule, in priority order
    exit_code: int | None,
    *,
    timed_out: bool = False,
    oom: bool = False,
    rules: ClassifyRules = DEFAULT_RULES,
) -> ErrorClass | None:
    """Classify how a process ended.

    Args:
        exit_code: the exit status; negative means killed by that signal
            (``subprocess`` convention); ``None`` if it never ran to an end.
        timed_out: the step's timeout killed it (wins over everything).
        oom: it was killed under a memory limit (SIGKILL + limit hint).
        rules: classification rules.

    Returns:
        The class, or ``None`` for a success (exit code 0, no timeout, no OOM).
    """
    if timed_out:
        return "timeout"
    if oom:
        return "resource"
    if exit_code is None:
        return "unavailable"
    if exit_code == 0:
        return None
    if exit_code in rules.exit_codes:
        return rules.exit_codes[exit_code]
    if exit_code < 0:
        return rules.signals.get(-exit_code, rules.default_exit)
    if 128 < exit_code < 128 + 65 and (exit_code - 128) in rules.signals:
        return rules.signals[exit_code - 128]
    return rules.default_exit


def classify_message(message: str, *, rules: ClassifyRules = DEFAULT_RULES) -> ErrorClass:
    """Classify an engine or registry error from its message text."""
    return rules.match_message(message) or rules.default_message


_ERRNO_CLASSES: dict[int, ErrorClass] = {
    errno.ENOMEM: "resource",
    errno.ENOSPC: "resource",
    errno.EMFILE: "resource",
    errno.ENFILE: "resource",
    errno.EDQUOT: "resource",
    errno.EAGAIN: "transient",
    errno.EINTR: "transient",
    errno.EBUSY: "transient",
    errno.ETIMEDOUT: "timeout",
    errno.ECONNREFUSED: "unavailable",
    errno.EHOSTUNREACH: "unavailable",
    errno.ENETUNREACH: "unavailable",
    errno.ECONNRESET: "transient",
    errno.EPIPE: "transient",
    errno.ENOENT: "permanent",
    errno.EACCES: "permanent",
    errno.EPERM: "permanent",
    errno.ENOEXEC: "permanent",
}

_DAGGER_UNREACHABLE = frozenset(
    {"ClientConnectionError", "TransportError", "ProvisionError", "SessionError"}
)


def _dagger_class(exc: BaseException, rules: ClassifyRules) -> ErrorClass | None:
    """Classify a ``dagger`` exception by name, without importing dagger."""
    names = {klass.__name__ for klass in type(exc).__mro__}
    if not type(exc).__module__.startswith("dagger") or "DaggerError" not in names:
        return None
    if "ExecError" in names:
        text = f"{getattr(exc, 'stderr', '')}\n{exc}"
        if rules.match_message(text) == "resource":
            return "resource"
        code = getattr(exc, "exit_code", None)
        return classify_exit(code if isinstance(code, int) else None, rules=rules) or "transient"
    if names & _DAGGER_UNREACHABLE:
        return "unavailable"
    if "InvalidQueryError" in names:
        return "permanent"
    return classify_message(str(exc), rules=rules)


def classify_exception(  # noqa: PLR0911, PLR0912 - one branch per rule, in priority order
    exc: BaseException, *, rules: ClassifyRules = DEFAULT_RULES
) -> ErrorClass:
    """Classify an exception raised while running a unit of work.

    Args:
        exc: the exception (Python, NATS, troupe runtime or Dagger).
        rules: classification rules (exit codes of Dagger exec errors, messages).

    Returns:
        Its class; an unknown exception is ``permanent`` (a bug is not retried).
    """
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
        return "cancelled"
    if isinstance(exc, TimeoutError | subprocess.TimeoutExpired):
        return "timeout"
    if isinstance(exc, MemoryError):
        return "resource"
    if isinstance(exc, subprocess.CalledProcessError):
        return classify_exit(exc.returncode, rules=rules) or "transient"
    dagger = _dagger_class(exc, rules)
    if dagger is not None:
        return dagger
    if isinstance(exc, RequestError):
        if exc.code == "timeout":
            return "timeout"
        if exc.code == "unavailable":
            return "unavailable"
        return "transient" if exc.retryable else "permanent"
    if isinstance(exc, ConnectError):
        return "unavailable"
    nats_class = _nats_class(exc)
    if nats_class is not None:
        return nats_class
    if isinstance(exc, OSError):
        if exc.errno is not None and exc.errno in _ERRNO_CLASSES:
            return _ERRNO_CLASSES[exc.errno]
        if isinstance(exc, ConnectionError):
            return "unavailable"
        return "transient"
    return "permanent"


def _nats_class(exc: BaseException) -> ErrorClass | None:
    """Classify a nats-py error by name (the module is optional at this layer)."""
    if not type(exc).__module__.startswith("nats"):
        return None
    name = type(exc).__name__
    if "Timeout" in name:
        return "timeout"
    if name in {
        "NoRespondersError",
        "NoServersError",
        "ConnectionClosedError",
        "ConnectionDrainingError",
        "ConnectionReconnectingError",
        "ServiceUnavailableError",
        "OutboundBufferLimitError",
    }:
        return "unavailable"
    return "transient"

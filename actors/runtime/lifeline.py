"""Tie a child process's life to its parent's: it gets a signal when the parent dies.

Linux's ``PR_SET_PDEATHSIG`` makes the kernel signal a child when the thread
that forked it exits, so a supervisor killed with SIGKILL does not leave
orphaned actors, servers or step processes behind. The request only covers a
parent that dies *after* it is made: a parent that died between ``fork`` and
the ``prctl`` call has already re-parented the child, so the child checks
its parent again afterwards and exits at once when it is no longer the one
that forked it. Elsewhere it is a no-op.

Use :func:`lifeline` in the parent to build the ``preexec_fn``: it captures
the parent's pid before the fork, so the child compares against the right one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable

__all__ = ["die_with_parent", "lifeline"]

_PR_SET_PDEATHSIG = 1


def _libc_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(name, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


# Resolved in the parent: the child between fork and exec must not load libraries.
_PRCTL = _libc_prctl()


def die_with_parent(sig: signal.Signals = signal.SIGTERM, *, parent: int | None = None) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies.

    Meant to run in a ``preexec_fn`` (between fork and exec); does nothing
    where ``prctl`` is unavailable. When ``parent`` is given and this process's
    parent is no longer that pid once the request is in place (the parent died
    before it), the process signals itself with ``sig`` and, should it survive
    that, exits with status 1: it never runs without its parent.

    Args:
        sig: signal delivered when the parent dies.
        parent: pid of the process that forked this one (see :func:`lifeline`).
    """
    if _PRCTL is None:
        return
    _PRCTL(_PR_SET_PDEATHSIG, int(sig))
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), sig)
        os._exit(1)


def lifeline(
    sig: signal.Signals = signal.SIGTERM, then: Callable[[], None] | None = None
) -> Callable[[], None]:
    """Return a ``preexec_fn`` that ties the child to this process (race-free).

    Call it in the parent right before starting the child: it records this
    process's pid, which the child checks after asking for the death signal.

    Args:
        sig: signal the child gets when this process dies.
        then: more set-up to run in the child afterwards (limits, umask).
    """
    parent = os.getpid()

    def setup() -> None:
        die_with_parent(sig, parent=parent)
        if then is not None:
            then()

    return setup

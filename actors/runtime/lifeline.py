"""Tie a child process's life to its parent's: it gets a signal when the parent dies.

Linux's ``PR_SET_PDEATHSIG`` makes the kernel signal a child when the thread
that forked it exits, so a supervisor killed with SIGKILL does not leave
orphaned actors, servers or step processes behind. Elsewhere it is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys
from collections.abc import Callable

__all__ = ["die_with_parent"]

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


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies.

    Meant to run in a ``preexec_fn`` (between fork and exec); does nothing
    where ``prctl`` is unavailable.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(sig))

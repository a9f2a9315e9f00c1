"""Starting a local step process cheaply, with its limits, user and lifeline in place.

A step must run in its own session, under ``setrlimit`` limits, as the step
user when the runner is root, and must die with its runner
(``PR_SET_PDEATHSIG``, checked race-free as in :mod:`actors.runtime.lifeline`).
Doing that set-up in a ``preexec_fn`` makes CPython ``fork`` the whole runner
and run Python in the child; so does asking ``subprocess`` to change user,
group or groups. Without those, CPython's ``_posixsubprocess`` uses ``vfork``
(``start_new_session``, ``cwd``, ``close_fds`` and pipes keep it), which costs
the runner a fraction of the CPU and latency.

So the set-up is done by two small programs the child execs on its way to the
step (the fast path):

1. ``setpriv`` (util-linux) changes user (``--reuid/--regid/--clear-groups``)
   when the runner is root, then sets the death signal (after the change of
   user, which would clear it), then execs
2. ``/bin/sh -c SCRIPT``, which checks that its parent is still the runner
   (``$PPID``, read after the death signal was set: a runner that died before
   that has already re-parented the child, which then ends itself), lowers
   the soft limits with ``ulimit -S`` and ``exec``\\ s the step with exactly
   the step's environment (the shell's own ``PWD`` is removed); a step that is
   a shell script (a string ``run``) runs in that shell right after the
   set-up, which saves an exec.

Every exec keeps the pid, so the step is the runner's direct child and the
death signal reaches it. ``vfork`` suspends only the calling thread: a runner
killed before ``setpriv`` set the signal is caught by the shell's check.

Why these programs: ``setpriv`` is the only one that sets the death signal
(it cannot be set from outside the process); util-linux is part of every
mainstream Linux base system (essential in Debian, whose ``python:*-slim``
images troupe's own image is built on). ``prlimit(2)`` from the runner on the
child's pid was rejected: it needs ``CAP_SYS_RESOURCE`` once the child has
changed user, which a root runner in a container usually lacks, and the child
would have to be held back until it is done. ``prlimit(1)`` in the chain is
byte-exact but costs one more exec (about 0.8 ms of CPU per step, as much as
the rest of the set-up). ``ulimit`` counts in units: ``-v`` (address space)
in KiB and ``-f`` (file size) in 512-byte blocks, so those two limits are
rounded down to whole units (at least one), never looser than configured.

As the shell, not ``subprocess``, finds the step's program, the program is
looked up first in the runner, the way ``subprocess`` does (the step's
``PATH``, relative to its working directory): a missing one fails the start
with the same error as before. Where ``setpriv`` is missing or too old to
know ``--pdeathsig`` (util-linux before 2.33), or the system is not Linux,
:func:`start` falls back to the ``preexec_fn`` (a full ``fork``).
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.pipeline_runner.config import Limits
from actors.runtime.lifeline import die_with_parent

__all__ = ["Shim", "StepUser", "child_setup", "find_shim", "resolve", "shim_argv", "start"]

_SH = "/bin/sh"
_NAME = "troupe-step"

# (Limits field, resource, ulimit flag, bytes per unit) of each limit.
_ULIMITS = (
    ("memory_bytes", resource.RLIMIT_AS, "-v", 1024),
    ("cpu_seconds", resource.RLIMIT_CPU, "-t", 1),
    ("open_files", resource.RLIMIT_NOFILE, "-n", 1),
    ("file_bytes", resource.RLIMIT_FSIZE, "-f", 512),
)


@dataclass(frozen=True, slots=True)
class StepUser:
    """The unprivileged account steps run as.

    Attributes:
        name: the account's name.
        uid: its user id.
        gid: its primary group id.
    """

    name: str
    uid: int
    gid: int


@dataclass(frozen=True, slots=True)
class Shim:
    """The programs of the fast path.

    Attributes:
        setpriv: path of util-linux ``setpriv``.
        sh: path of the POSIX shell.
    """

    setpriv: str
    sh: str = _SH


@functools.cache
def find_shim() -> Shim | None:
    """Return the fast path's programs, or ``None`` where it cannot be used (then fork).

    It needs Linux, ``/bin/sh`` and a ``setpriv`` that knows ``--pdeathsig``
    (util-linux 2.33 and later); the answer is kept for the process's life.
    """
    if not sys.platform.startswith("linux") or not os.access(_SH, os.X_OK):
        return None
    setpriv = shutil.which("setpriv", path="/usr/bin:/bin:/usr/sbin:/sbin")
    if setpriv is None:
        return None
    try:
        usage = subprocess.run(
            [setpriv, "--help"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return Shim(setpriv=setpriv) if "--pdeathsig" in usage else None


def _soft_limits(limits: Limits) -> list[tuple[int, str, int]]:
    """The (resource, flag, soft value in the flag's units) of each limit that is set.

    A limit above the runner's hard limit is lowered to it, as the child
    inherits the runner's hard limits and may not exceed them.
    """
    caps = []
    for field, which, flag, unit in _ULIMITS:
        value = getattr(limits, field)
        if not value:
            continue
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        caps.append((which, flag, max(1, value // unit)))
    return caps


def shim_argv(
    shim: Shim,
    argv: Sequence[str],
    *,
    limits: Limits,
    user: StepUser | None,
    runner: int,
    keep_pwd: bool = False,
) -> list[str]:
    """Return the command line that sets a step up in the child, then runs ``argv``.

    A step that is itself a script of the shim's shell (``/bin/sh -c RUN``,
    how a string ``run`` is started) runs in the shim's shell, after the
    set-up on the same line, so line numbers, ``$0`` and the arguments are
    unchanged and one exec is saved; any other command replaces the shell (``exec``).

    Args:
        shim: the programs to use.
        argv: the step's own command line.
        limits: resource limits of the step.
        user: the account to switch to, or ``None`` to stay this process's user.
        runner: pid of the process that will spawn it (its parent, checked).
        keep_pwd: keep the shell's ``PWD`` (the step's environment sets it).
    """
    setup = [f'[ "$PPID" = {int(runner)} ] || {{ kill -s KILL "$$"; exit 1; }}']
    setup += [f"ulimit -S {flag} {value} || exit 1" for _, flag, value in _soft_limits(limits)]
    if len(argv) >= 3 and argv[0] == shim.sh and argv[1] == "-c":
        command = ["; ".join([*setup, argv[2]]), *argv[3:]]
    else:
        if not keep_pwd:
            setup.append("unset PWD")
        command = ["; ".join([*setup, 'exec "$@"']), _NAME, *argv]
    identity = [f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups"] if user else []
    return [shim.setpriv, *identity, "--pdeathsig=KILL", "--", shim.sh, "-c", *command]


def resolve(program: str, env: Mapping[str, str], cwd: Path) -> str:
    """Return the path ``program`` would be executed from, as ``subprocess`` finds it.

    A name with a slash is taken relative to ``cwd``; a bare name is searched
    in the ``PATH`` of ``env`` (relative entries relative to ``cwd``).

    Raises:
        FileNotFoundError: no such program.
        PermissionError: it exists but is not executable.
    """
    if os.path.dirname(program):
        candidates = [program]
    else:
        candidates = [os.path.join(d, program) for d in os.get_exec_path(dict(env))]
    found = False
    for candidate in candidates:
        path = cwd / candidate
        if path.is_file():
            if os.access(path, os.X_OK):
                return candidate
            found = True
    code = errno.EACCES if found else errno.ENOENT
    error = PermissionError if found else FileNotFoundError
    raise error(code, os.strerror(code), program)


def child_setup(limits: Limits) -> Callable[[], None]:
    """Return the ``preexec_fn`` of the fork path: death signal, then limits, in the child.

    Called in the runner right before the fork: the child checks that the
    runner is still its parent once the death signal is set, so a step whose
    runner died during the fork does not run on orphaned.
    """
    runner = os.getpid()
    caps = [(which, getattr(limits, field)) for field, which, _, _ in _ULIMITS]

    def setup() -> None:
        die_with_parent(signal.SIGKILL, parent=runner)
        for which, value in caps:
            if value:
                _, hard = resource.getrlimit(which)
                soft = value if hard == resource.RLIM_INFINITY else min(value, hard)
                resource.setrlimit(which, (soft, hard))

    return setup


async def start(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    limits: Limits,
    user: StepUser | None,
    shim: Shim | None,
) -> asyncio.subprocess.Process:
    """Start a step: own session, piped output, no stdin, limits, user and lifeline.

    Args:
        argv: the step's command line.
        cwd: its working directory.
        env: its whole environment (nothing is inherited from this process).
        limits: its resource limits.
        user: the account it runs as, or ``None`` for this process's user.
        shim: the fast path's programs (:func:`find_shim`), or ``None`` to fork.

    Raises:
        OSError: the program cannot be started (missing, not executable).
    """
    options: dict[str, Any] = {}
    if shim is not None:
        resolve(argv[0], env, cwd)
        command = shim_argv(
            shim, argv, limits=limits, user=user, runner=os.getpid(), keep_pwd="PWD" in env
        )
    else:
        command = list(argv)
        # Runs after the change of user: the death signal survives it.
        options["preexec_fn"] = child_setup(limits)
        if user is not None:
            options.update(user=user.uid, group=user.gid, extra_groups=[])
    return await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        env=dict(env),  # exactly the step's environment, nothing inherited
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        **options,
    )

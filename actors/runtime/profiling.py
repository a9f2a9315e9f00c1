"""Optional CPU profile of an actor process, switched on by an environment variable.

With ``TROUPE_PROFILE_DIR`` set, :meth:`~actors.runtime.actor.Actor.serve`
runs under :mod:`cProfile` and, when it returns (SIGTERM included), writes
``<dir>/<actor>-<pid>.prof`` (CPU time of the event loop's thread); read it
with ``python -m pstats``. Every
process of a troupe inherits the variable, so one benchmark run under load
profiles each actor. Unset, nothing is imported or measured.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

__all__ = ["PROFILE_DIR_ENV", "profiled"]

log = logging.getLogger(__name__)

PROFILE_DIR_ENV = "TROUPE_PROFILE_DIR"
"""Directory to write a profile of each actor process into (unset: no profiling)."""


@contextmanager
def profiled(name: str, env: Mapping[str, str] | None = None) -> Iterator[Path | None]:
    """Profile the block if :data:`PROFILE_DIR_ENV` names a directory.

    Args:
        name: the actor's name, the start of the file name.
        env: variables to read (``os.environ`` by default).

    Yields:
        The path the profile will be written to, or ``None`` when not profiling.
    """
    directory = (os.environ if env is None else env).get(PROFILE_DIR_ENV, "")
    if not directory:
        yield None
        return
    import cProfile
    import time

    path = Path(directory) / f"{name}-{os.getpid()}.prof"
    # CPU time of this thread, not wall time: a send that wakes nats-server, or a
    # process that waits for a core on a busy machine, is not this actor's cost.
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    try:
        yield path
    finally:
        profiler.disable()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            profiler.dump_stats(path)
        except OSError as exc:
            log.warning("cannot write the profile %s: %s", path, exc)
        else:
            log.info("profile written to %s", path)

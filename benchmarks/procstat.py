"""Cost counters read from outside: CPU time of processes and JetStream writes.

* CPU from ``/proc/<pid>/stat``: user + system time of the process itself and,
  separately, of its reaped children (the steps a runner spawned and waited
  for), in milliseconds.
* JetStream writes: the sum over every stream of its last sequence number, so
  the difference between two readings is the number of messages stored in
  between (KV puts and deletes and object chunks included: every bucket is a
  stream).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from nats.js import JetStreamContext

__all__ = ["CpuTimes", "cpu_times", "snapshot", "stream_sequences", "stream_writes"]

_TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """CPU milliseconds of one process."""

    own: float
    """User + system time of the process itself."""
    children: float
    """User + system time of its children that it has waited for."""

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.own - other.own, self.children - other.children)


def cpu_times(pid: int) -> CpuTimes:
    """Read the CPU times of ``pid`` (zero if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            stat = f.read()
    except OSError:
        return CpuTimes(0.0, 0.0)
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return CpuTimes((utime + stime) * _TICK_MS, (cutime + cstime) * _TICK_MS)


def snapshot(pids: Mapping[str, int]) -> dict[str, CpuTimes]:
    """Read the CPU times of every named process."""
    return {name: cpu_times(pid) for name, pid in pids.items()}


async def stream_sequences(js: JetStreamContext) -> dict[str, int]:
    """The last sequence of every stream on the server, by stream name."""
    return {info.config.name or "": info.state.last_seq for info in await js.streams_info()}


async def stream_writes(js: JetStreamContext) -> int:
    """Sum of the last sequence of every stream on the server."""
    return sum((await stream_sequences(js)).values())

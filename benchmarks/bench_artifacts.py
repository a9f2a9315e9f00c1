"""Artifact throughput: 150 MB up and down through troupe's code, next to raw nats-py.

The embedded nats-server runs troupe's own ``nats.conf`` (roles and
permissions, ``sync_interval: always``, ``max_payload: 8MB``), its topology
created as ``admin`` as ``troupe init`` does. A file of random bytes is:

* uploaded as the pipeline runner uploads a step's output file
  (:meth:`RunStore.upload`, logged in as ``pipeline_runner``: hash, then stream
  the file in chunks);
* downloaded as ``troupe artifact -o FILE`` does (:func:`read_artifact_to`,
  logged in as ``client``: verified chunks into a temporary file, renamed);
* downloaded as the gateway's artifact route serves it (:func:`open_artifact`,
  logged in as ``gateway``: the chunks a streamed response sends).

Side by side on the same server, the raw nats-py floor does the same file to
file work with default options: ``ObjectStore.put`` from the open file
(128 KiB chunks) and ``ObjectStore.get(writeinto=file)``, as ``admin`` on a
bucket of its own. Each figure is the best of ``ROUNDS`` rounds (the machine
is shared); CPU seconds per 100 MB are the client's and the server's
(``/proc/<pid>/stat``) over all rounds.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from nats.js.object_store import ObjectStore

from actors.pipeline_runner.client import open_artifact, read_artifact_to
from actors.pipeline_runner.store import RunStore
from actors.runtime.bootstrap import apply_topology
from actors.runtime.bus import Bus
from actors.runtime.config import ConnectionConfig
from actors.runtime.server import NatsServer
from actors.runtime.testing import nats_server
from actors.topology import TROUPE
from benchmarks.procstat import cpu_times
from protocols.pipelines import ArtifactRef

Report = Callable[..., None]
T = TypeVar("T")

SIZE_MB = 150
SIZE = SIZE_MB * 1024 * 1024
ROUNDS = 3
TARGET_MB_S = 50.0
RAW_BUCKET = "bench-raw-objects"


async def _connect(server: NatsServer, role: str) -> Bus:
    password = server.passwords[f"TROUPE_{role.upper()}_PASSWORD"]
    return await Bus.connect(
        ConnectionConfig(url=server.url, user=role, password=password, connect_timeout=5.0)
    )


class _Meter:
    """Wall time, bytes and CPU (this process and the server) of one kind of transfer."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.best = float("inf")
        self.cpu_ms = 0.0
        self.moved = 0

    async def time(self, transfer: Awaitable[T]) -> T:
        """Await one transfer of :data:`SIZE` bytes, counting its time and CPU."""
        before = cpu_times(os.getpid()).own + cpu_times(self.server_pid).own
        started = time.perf_counter()
        result = await transfer
        self.best = min(self.best, time.perf_counter() - started)
        self.cpu_ms += cpu_times(os.getpid()).own + cpu_times(self.server_pid).own - before
        self.moved += SIZE
        return result

    @property
    def mb_s(self) -> float:
        return SIZE / 1e6 / self.best

    @property
    def cpu_s_per_100mb(self) -> float:
        return self.cpu_ms / 1000 / (self.moved / 100e6)


def _random_file(path: Path) -> Path:
    with path.open("wb") as f:
        for _ in range(SIZE_MB):
            f.write(os.urandom(1 << 20))
    return path


async def _raw_put(store: ObjectStore, name: str, source: Path) -> None:
    with source.open("rb") as f:
        await store.put(name, f)


async def _raw_get(store: ObjectStore, name: str, dest: Path) -> None:
    with dest.open("wb") as f:
        await store.get(name, writeinto=f)


async def _drain(bus: Bus, ref: ArtifactRef) -> None:
    async for _ in await open_artifact(bus, ref):
        pass


async def run(report: Report) -> None:
    """Measure troupe's artifact paths and the raw nats-py floor, side by side."""
    with nats_server(with_config=True) as server, tempfile.TemporaryDirectory() as tmp:
        assert server.proc is not None
        admin = await _connect(server, "admin")
        await apply_topology(admin.js, TROUPE)
        raw = await admin.js.create_object_store(RAW_BUCKET)
        runner, client, gateway = [
            await _connect(server, role) for role in ("pipeline_runner", "client", "gateway")
        ]
        try:
            store = await RunStore.open(runner)
            meters = {
                k: _Meter(server.proc.pid) for k in ("up", "down", "gateway", "raw up", "raw down")
            }
            for i in range(ROUNDS):
                # Fresh content each round, so every upload really stores it.
                source = _random_file(Path(tmp) / f"out-{i}.bin")
                dest = Path(tmp) / "copy.bin"
                ref = await meters["up"].time(store.upload("out.bin", source))
                await meters["down"].time(read_artifact_to(client, ref, dest))
                if dest.read_bytes() != source.read_bytes():
                    raise RuntimeError("downloaded artifact differs from the upload")
                await meters["gateway"].time(_drain(gateway, ref))
                await meters["raw up"].time(_raw_put(raw, f"raw-{i}", source))
                await meters["raw down"].time(_raw_get(raw, f"raw-{i}", dest))
                source.unlink()
        finally:
            for bus in (runner, client, gateway, admin):
                await bus.close()
    _report(report, meters)
    report("load average", os.getloadavg()[0], "", f"1-min, {os.cpu_count()} CPUs")


def _report(report: Report, meters: dict[str, _Meter]) -> None:
    target = f"target >= {TARGET_MB_S:.0f} MB/s"
    label = {
        "up": "runner upload (RunStore.upload)",
        "down": "troupe artifact -o FILE (read_artifact_to)",
        "gateway": "gateway stream (open_artifact)",
    }
    for key, raw_key in (("up", "raw up"), ("down", "raw down"), ("gateway", "raw down")):
        m, r = meters[key], meters[raw_key]
        report(f"{label[key]} {SIZE_MB} MB", m.mb_s, "MB/s", target)
        report(f"{label[key]} CPU per 100 MB", m.cpu_s_per_100mb, "s", "client + nats-server")
        report(f"{label[key]} / raw nats-py", m.mb_s / r.mb_s, "x", "side by side")
    for key, what in (("raw up", "put(file)"), ("raw down", "get(writeinto=file)")):
        m = meters[key]
        report(f"raw nats-py {what} {SIZE_MB} MB", m.mb_s, "MB/s", "default options")
        report(f"raw nats-py {what} CPU per 100 MB", m.cpu_s_per_100mb, "s", "client + nats-server")

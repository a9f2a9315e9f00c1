"""Test affordances shipped with the library.

* :func:`nats_server` - a real ``nats-server`` on a free loopback port.
* :func:`nats_cluster` - a loopback three-node JetStream cluster.
* :class:`ManualClock` - a settable :class:`~actors.runtime.clock.Clock`.
* :func:`capture_spans` - record finished spans in memory.
* :func:`eventually` - poll a condition with a bounded deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

from actors.runtime.server import NatsServer, find_server_binary, free_port, wait_for_port

__all__ = [
    "ManualClock",
    "capture_spans",
    "eventually",
    "nats_cluster",
    "nats_server",
]

T = TypeVar("T")


@contextlib.contextmanager
def nats_server(
    *, with_config: bool = False, state_dir: Path | None = None
) -> Iterator[NatsServer]:
    """Run a real JetStream ``nats-server`` on a free 127.0.0.1 port.

    Args:
        with_config: load troupe's ``nats.conf`` (roles, permissions); off by
            default, giving an open server.
        state_dir: where to keep its files (a temporary directory by default).
    """
    with contextlib.ExitStack() as stack:
        if state_dir is None:
            state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="troupe-")))
        server = NatsServer(state_dir, port=free_port(), use_config=with_config)
        server.start()
        stack.callback(server.stop)
        yield server


@contextlib.contextmanager
def nats_cluster(size: int = 3) -> Iterator[list[str]]:
    """Run a loopback JetStream cluster of ``size`` nodes; yield their client URLs."""
    import subprocess

    binary = find_server_binary()
    with tempfile.TemporaryDirectory(prefix="troupe-cluster-") as tmp:
        client_ports = [free_port() for _ in range(size)]
        cluster_ports = [free_port() for _ in range(size)]
        routes = ",".join(f"nats://127.0.0.1:{p}" for p in cluster_ports)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for i in range(size):
                procs.append(
                    subprocess.Popen(
                        [
                            binary,
                            "-js",
                            "-a",
                            "127.0.0.1",
                            "-p",
                            str(client_ports[i]),
                            "-n",
                            f"n{i}",
                            "--cluster_name",
                            "troupe",
                            "--cluster",
                            f"nats://127.0.0.1:{cluster_ports[i]}",
                            "--routes",
                            routes,
                            "-sd",
                            f"{tmp}/n{i}",
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            for i in range(size):
                wait_for_port(client_ports[i], 15.0, procs[i])
            yield [f"nats://127.0.0.1:{p}" for p in client_ports]
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()


class ManualClock:
    """A clock that moves only when told to.

    ``sleep`` returns as soon as :meth:`advance` has moved time past its deadline.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 0.0
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def time(self) -> float:
        """Current wall time."""
        return self._now

    def monotonic(self) -> float:
        """Current monotonic time."""
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move time forward and wake sleepers whose deadline passed."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds
        self._mono += seconds
        keep = []
        for deadline, fut in self._waiters:
            if deadline <= self._mono:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((deadline, fut))
        self._waiters = keep

    async def sleep(self, seconds: float) -> None:
        """Wait until :meth:`advance` moves past ``seconds`` from now."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._mono + seconds, fut))
        await fut


@contextlib.contextmanager
def capture_spans() -> Iterator[list[object]]:
    """Install an in-memory SDK tracer provider; yield the list of finished spans."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans: list[object] = []
    previous = trace._TRACER_PROVIDER
    trace._TRACER_PROVIDER = provider
    try:
        yield spans
    finally:
        spans.extend(exporter.get_finished_spans())
        trace._TRACER_PROVIDER = previous
        provider.shutdown()


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, timeout: float = 10.0, interval: float = 0.05
) -> T:
    """Poll ``check`` until it returns a truthy value; return it.

    Raises:
        TimeoutError: ``check`` stayed falsy for ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)

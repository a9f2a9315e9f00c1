"""Test affordances shipped with the library.

* :func:`nats_server` - a real ``nats-server`` on a free loopback port.
* :func:`nats_cluster` - a loopback three-node JetStream cluster.
* :class:`ManualClock` - a settable :class:`~actors.runtime.clock.Clock`.
* :func:`capture_spans` - record finished spans in memory.
* :func:`eventually` - poll a condition with a bounded deadline.
* :func:`consumer_idle`, :func:`consumer_acked` - wait until a durable consumer
  has demonstrably processed what was sent to it.

A negative check ("X did not happen") is only evidence once the code that could
have done X has run: wait for that first (:func:`consumer_idle` after sending,
:meth:`ManualClock.sleepers` after advancing time), then assert. Never let a
fixed sleep stand in for that evidence.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar, overload

from nats.aio.client import Client

from actors.runtime.bus import abandon
from actors.runtime.server import NatsServer, find_server_binary, free_port, wait_for_port

__all__ = [
    "ManualClock",
    "capture_spans",
    "connect_once",
    "consumer_acked",
    "consumer_idle",
    "eventually",
    "nats_cluster",
    "nats_server",
]

T = TypeVar("T")


async def connect_once(url: str, **options: Any) -> Client:
    """Connect to ``url`` with plain nats-py, once, without reconnecting.

    nats-py's ``connect(allow_reconnect=False)`` raises on a refused login but
    keeps the socket it opened; this closes it, so a failed attempt leaves
    nothing behind.

    Args:
        url: the server.
        options: further ``nats.connect`` options (``user``, ``password``, …).
    """
    nc = Client()
    try:
        await nc.connect(url, allow_reconnect=False, **options)
    except BaseException:
        await abandon(nc)
        raise
    return nc


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
    A sleep is registered when :meth:`sleep` is *called*, not when its coroutine
    first runs: code that reads the time and then calls ``clock.sleep(...)``
    without awaiting in between cannot miss an :meth:`advance` that happens
    before its task gets to run.
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
            elif not fut.done():
                keep.append((deadline, fut))
        self._waiters = keep

    def sleepers(self) -> list[float]:
        """Seconds left for each pending sleep, soonest first.

        The evidence that time-driven code has caught up with :meth:`advance`:
        after ``advance``, the code that woke is done with that moment once it
        sleeps again, e.g. ``await eventually(lambda: clock.sleepers() == [1.0])``.
        """
        return sorted(d - self._mono for d, fut in self._waiters if not fut.done())

    def sleep(self, seconds: float) -> Coroutine[Any, Any, None]:
        """Wait until :meth:`advance` moves past ``seconds`` from now.

        The deadline is taken, and the sleep registered, at the call.

        Raises:
            RuntimeError: called outside a running event loop.
        """
        if seconds <= 0:
            return asyncio.sleep(0)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._mono + seconds, fut))
        return _wait(fut)


async def _wait(fut: asyncio.Future[None]) -> None:
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


@overload
async def eventually(
    check: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = ...,
    interval: float = ...,
    what: str | None = ...,
    ignoring: tuple[type[BaseException], ...] = ...,
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T | None],
    *,
    timeout: float = ...,
    interval: float = ...,
    what: str | None = ...,
    ignoring: tuple[type[BaseException], ...] = ...,
) -> T: ...


async def eventually(
    check: Callable[[], Any],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str | None = None,
    ignoring: tuple[type[BaseException], ...] = (),
) -> Any:
    """Call ``check`` until it holds; return its value.

    ``check`` may be

    * a predicate, plain or async: it holds once it returns a truthy value,
      which is returned (``None``, ``False``, ``0``, empty: not yet);
    * assertion-style, plain or async, annotated ``-> None``: it holds once it
      returns without raising :class:`AssertionError`; ``None`` is returned.

    A predicate may assert too: an :class:`AssertionError` means "not yet".
    The wait returns as soon as the condition holds, so a generous ``timeout``
    costs nothing when all is well and keeps a loaded machine from failing.

    Args:
        check: the condition.
        timeout: seconds to keep trying.
        interval: seconds between two attempts.
        what: what is awaited, for the failure message (the check's name, or the
            source line of a lambda, if omitted).
        ignoring: further exception types that mean "not yet" (e.g. a not-found
            error while the thing is being created).

    Raises:
        TimeoutError: ``check`` did not hold within ``timeout``; the message
            names what was awaited and the last value or exception.
    """
    asserts = _is_assertion_style(check)
    retried: tuple[type[BaseException], ...] = (AssertionError, *ignoring)
    deadline = time.monotonic() + timeout
    attempts = 0
    last: object = None
    error: BaseException | None = None
    while True:
        attempts += 1
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
        except retried as exc:
            error = exc
        else:
            if asserts or value:
                return value
            error, last = None, value
        if time.monotonic() >= deadline:
            outcome = (
                f"last error: {type(error).__name__}: {error}"
                if error is not None
                else f"last value: {last!r}"
            )
            raise TimeoutError(
                f"{what or _describe(check)}: not met within {timeout}s "
                f"({attempts} attempts); {outcome}"
            ) from error
        await asyncio.sleep(interval)


def _is_assertion_style(check: Callable[[], object]) -> bool:
    """Whether ``check`` is annotated to return ``None`` (it asserts instead)."""
    try:
        annotation = inspect.signature(check).return_annotation
    except (TypeError, ValueError):
        return False
    return annotation is None or annotation == "None"


def _describe(check: Callable[[], object]) -> str:
    """A name for ``check`` in a failure message: its name, or a lambda's source."""
    name = getattr(check, "__qualname__", None) or repr(check)
    if name.rpartition(".")[2] != "<lambda>":
        return name
    try:
        source = inspect.getsource(check).strip()
    except (OSError, TypeError):
        return name
    return source if len(source) <= 160 else source[:157] + "..."


async def consumer_idle(
    js: Any, stream: str, durable: str, *, timeout: float = 30.0, settle: float = 0.1
) -> Any:
    """Wait until a durable consumer has nothing left to deliver or to be acknowledged.

    Idle means ``num_pending == 0`` and ``num_ack_pending == 0``, seen twice
    ``settle`` seconds apart with nothing delivered in between (a handler that
    publishes back into its own stream is not idle yet). Call it after the
    sender's publish was acknowledged by the stream; then every message sent
    has been handled and acked, negatively acked for good or dead-lettered, and
    a check that something did *not* happen means something.

    Args:
        js: a JetStream context (``bus.js``).
        stream: the stream name.
        durable: the consumer's durable name.
        timeout: seconds to keep trying.
        settle: seconds the consumer must stay idle.

    Returns:
        The consumer's last :class:`nats.js.api.ConsumerInfo`.

    Raises:
        TimeoutError: the consumer did not become idle within ``timeout``.
    """
    seen: list[int] = []

    async def idle() -> Any:
        info = await js.consumer_info(stream, durable)
        if info.num_pending or info.num_ack_pending:
            seen.clear()
            return None
        delivered = info.delivered.stream_seq if info.delivered is not None else 0
        if seen and seen[-1] == delivered:
            return info
        seen[:] = [delivered]
        return None

    return await eventually(
        idle,
        timeout=timeout,
        interval=settle,
        what=f"consumer {durable!r} of stream {stream!r} idle",
    )


async def consumer_acked(
    js: Any, stream: str, durable: str, seq: int, *, timeout: float = 30.0
) -> Any:
    """Wait until a durable consumer's ack floor reaches stream sequence ``seq``.

    Pass the ``seq`` of the publish acknowledgement of a message the consumer
    receives (one its filter matches): once the floor reaches it, that message
    and every one before it has been handled.

    Args:
        js: a JetStream context (``bus.js``).
        stream: the stream name.
        durable: the consumer's durable name.
        seq: a stream sequence.
        timeout: seconds to keep trying.

    Returns:
        The consumer's last :class:`nats.js.api.ConsumerInfo`.

    Raises:
        TimeoutError: the floor stayed below ``seq`` for ``timeout`` seconds.
    """

    async def acked() -> Any:
        info = await js.consumer_info(stream, durable)
        floor = info.ack_floor.stream_seq if info.ack_floor is not None else 0
        return info if floor >= seq else None

    return await eventually(
        acked,
        timeout=timeout,
        what=f"consumer {durable!r} of stream {stream!r} acked up to {seq}",
    )

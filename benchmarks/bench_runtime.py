"""Runtime costs: request/reply throughput against raw nats-py, idle memory, sync_interval.

* **Request/reply**: on one nats-server, a troupe actor endpoint answered through
  :meth:`Bus.request` against raw nats-py doing the same msgspec round trip
  (a subscription callback decoding with msgspec and answering; the client
  ``nc.request``), both without headers, as troupe sends MessagePack requests
  and answers. Each responder runs in its own process, the client in this one;
  the two are measured in turn, round after round in alternating order, at 1
  and 64 requests in flight, and the ratio is reported (target >= 0.9 at 64),
  with the load average during the run.
* **Idle memory**: resident set size of each actor started with
  ``python -m actors run NAME`` once it answers ``$SRV.PING`` (target <= 60 MB),
  and of a runtime-only actor process for reference.
* **sync_interval: always**: JetStream publish throughput with troupe's
  ``nats.conf`` against the same configuration without that line, side by side.

Responders: ``python -m benchmarks.bench_runtime serve troupe|raw URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import msgspec
import nats
import psutil

from actors.runtime import Actor, Bus, ConnectionConfig, RequestContext, endpoint
from actors.runtime.server import NatsServer, default_config_path, free_port
from protocols.base import Message

REPO = Path(__file__).resolve().parents[1]
TROUPE_SUBJECT = "bench.troupe"
RAW_SUBJECT = "bench.raw"
ROUND_SECONDS = 0.5
ROUNDS = 9
IN_FLIGHT = (1, 64)
Report = Callable[..., None]


class BenchRequest(Message, tag="troupe.bench.v1.request"):
    """A request shaped like a small status query."""

    id: int
    name: str
    values: list[float]


class BenchReply(Message, tag="troupe.bench.v1.reply"):
    """The answer."""

    id: int
    total: float


def _request(i: int) -> BenchRequest:
    return BenchRequest(id=i, name=f"workflow-{i}", values=[1.0, 2.5, 3.25, 4.0])


# -- responders (run in their own processes) ----------------------------------------------


class BenchActor(Actor):
    """A troupe actor with one endpoint doing the benchmark's round trip."""

    name = "bench"

    @endpoint(TROUPE_SUBJECT)
    async def answer(self, request: BenchRequest, ctx: RequestContext) -> BenchReply:
        """Sum the values."""
        return BenchReply(id=request.id, total=sum(request.values))


async def _serve_raw(url: str) -> None:
    decoder = msgspec.msgpack.Decoder(BenchRequest)
    encoder = msgspec.msgpack.Encoder()
    nc = await nats.connect(url)

    async def answer(msg: nats.aio.msg.Msg) -> None:
        request = decoder.decode(msg.data)
        await msg.respond(encoder.encode(BenchReply(id=request.id, total=sum(request.values))))

    await nc.subscribe(RAW_SUBJECT, queue="bench", cb=answer)
    await asyncio.Event().wait()


def _serve(kind: str, url: str) -> None:
    if kind == "raw":
        asyncio.run(_serve_raw(url))
    else:
        asyncio.run(BenchActor().serve(ConnectionConfig(url=url)))


# -- measuring -------------------------------------------------------------------------------


def _clean_env() -> dict[str, str]:
    """The environment without OTEL exporter settings: measure tracing's idle cost."""
    return {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}


@contextlib.contextmanager
def _processes(argvs: list[list[str]]) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = [
        subprocess.Popen(
            argv, cwd=REPO, env=_clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for argv in argvs
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


async def _until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready within {timeout}s")
        await asyncio.sleep(0.1)


class _Round(NamedTuple):
    """One round of one kind: its rate, and the CPU each side spent per request."""

    rate: float
    caller_us: float
    responder_us: float


def _median(rounds: list[_Round]) -> _Round:
    return _Round(*(statistics.median(values) for values in zip(*rounds, strict=True)))


def _cpu_s(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return float(times.user + times.system)


async def _throughput(
    call: Callable[[int], Awaitable[object]],
    in_flight: int,
    responder: psutil.Process | None = None,
) -> _Round:
    """Requests per second with ``in_flight`` concurrent callers for ROUND_SECONDS, and the
    CPU per request of this process (the caller) and of the responder (0 without one)."""
    done = 0
    stop_at = time.perf_counter() + ROUND_SECONDS

    async def caller(base: int) -> None:
        nonlocal done
        i = base
        while time.perf_counter() < stop_at:
            await call(i)
            i += in_flight
            done += 1

    started = time.perf_counter()
    caller_cpu, responder_cpu = time.process_time(), _cpu_s(responder)
    await asyncio.gather(*(caller(k) for k in range(in_flight)))
    elapsed = time.perf_counter() - started
    per_request = 1e6 / max(done, 1)
    return _Round(
        done / elapsed,
        (time.process_time() - caller_cpu) * per_request,
        (_cpu_s(responder) - responder_cpu) * per_request,
    )


async def _request_reply(url: str, report: Report) -> float | None:
    argv = [sys.executable, "-m", "benchmarks.bench_runtime", "serve"]
    kinds = [[*argv, "troupe", url], [*argv, "raw", url]]
    with _processes(kinds) as (troupe_proc, raw_proc):
        bus = await Bus.connect(ConnectionConfig(url=url), name="bench-troupe-client")
        raw = await nats.connect(url, name="bench-raw-client")
        encoder = msgspec.msgpack.Encoder()
        decoder = msgspec.msgpack.Decoder(BenchReply)

        async def troupe_call(i: int) -> object:
            return await bus.request(TROUPE_SUBJECT, _request(i), BenchReply)

        async def raw_call(i: int) -> object:
            reply = await raw.request(RAW_SUBJECT, encoder.encode(_request(i)), timeout=5.0)
            return decoder.decode(reply.data)

        async def answers(call: Callable[[int], Awaitable[object]]) -> bool:
            try:
                await asyncio.wait_for(call(0), 0.5)
            except Exception:
                return False
            return True

        calls = {"troupe": troupe_call, "raw": raw_call}
        responders = {
            "troupe": psutil.Process(troupe_proc.pid),
            "raw": psutil.Process(raw_proc.pid),
        }
        try:
            for kind, call in calls.items():
                await _until(lambda call=call: answers(call), 30.0, f"{kind} responder")
            idle_rss = responders["troupe"].memory_info().rss / 2**20
            ratio64: float | None = None
            for in_flight in IN_FLIGHT:
                loads = [os.getloadavg()[0]]
                for kind, call in calls.items():
                    await _throughput(call, in_flight, responders[kind])  # warm every path up
                rounds: dict[str, list[_Round]] = {kind: [] for kind in calls}
                order = list(calls)
                for r in range(ROUNDS):
                    for kind in order if r % 2 == 0 else order[::-1]:
                        rounds[kind].append(
                            await _throughput(calls[kind], in_flight, responders[kind])
                        )
                loads.append(os.getloadavg()[0])
                note = f"median of {ROUNDS}"
                median: dict[str, _Round] = {
                    kind: _Round(
                        *(statistics.median(values) for values in zip(*taken, strict=True))
                    )
                    for kind, taken in rounds.items()
                }
                for kind, label in (("raw", "raw nats-py"), ("troupe", "troupe")):
                    m = median[kind]
                    report(f"request/reply {label}, {in_flight} in flight", m.rate, "req/s", note)
                    report(
                        f"request/reply {label} CPU per request, {in_flight} in flight",
                        m.caller_us + m.responder_us,
                        "us",
                        f"caller {m.caller_us:.1f} + responder {m.responder_us:.1f}",
                    )
                target = " (target >= 0.9)" if in_flight == 64 else ""
                ratio = median["troupe"].rate / median["raw"].rate
                report(
                    f"request/reply troupe/raw ratio, {in_flight} in flight",
                    ratio,
                    "x",
                    f"side by side{target}",
                )
                report(
                    f"load average during request/reply, {in_flight} in flight",
                    max(loads),
                    "",
                    f"1-min, {os.cpu_count()} CPUs",
                )
                if in_flight == 64:
                    ratio64 = ratio
            report("idle RSS, runtime-only actor process", idle_rss, "MB", "one endpoint")
            return ratio64
        finally:
            await bus.close()
            await raw.close()


async def _idle_memory(url: str, report: Report) -> None:
    from actors.roster import ACTORS

    probe = await nats.connect(url)
    try:
        for name in sorted(ACTORS):
            argv = [sys.executable, "-m", "actors", "run", name, "--nats-url", url]
            with _processes([argv]) as (proc,):

                async def pings(name: str = name, proc: subprocess.Popen[bytes] = proc) -> bool:
                    if proc.poll() is not None:
                        return True
                    try:
                        await probe.request(f"$SRV.PING.{name}", b"", timeout=0.3)
                    except Exception:
                        return False
                    return True

                try:
                    await _until(pings, 30.0, name)
                except TimeoutError as exc:
                    print(f"   {name}: {exc}")
                    continue
                if proc.poll() is not None:
                    print(
                        f"   {name}: skipped, `python -m actors run {name}` exited "
                        f"with code {proc.returncode}"
                    )
                    continue
                await asyncio.sleep(1.0)  # let start-up garbage settle: this measures idle
                rss = psutil.Process(proc.pid).memory_info().rss / 2**20
                report(f"idle RSS, {name}", rss, "MB", "target <= 60 MB")
    finally:
        await probe.close()


async def _js_throughput(nc: nats.aio.client.Client, in_flight: int) -> float:
    js = nc.jetstream()
    payload = msgspec.msgpack.encode(_request(1))

    async def publish(i: int) -> object:
        return await js.publish("bench.sync", payload, timeout=10.0)

    return (await _throughput(publish, in_flight)).rate


async def _sync_cost(report: Report) -> None:
    with tempfile.TemporaryDirectory(
        prefix="troupe-bench-", dir=REPO / ".troupe" if (REPO / ".troupe").is_dir() else None
    ) as tmp:
        base = default_config_path()
        relaxed = Path(tmp) / "nats-nosync.conf"
        text, n = re.subn(r"^\s*sync_interval:\s*always\s*$", "", base.read_text(), flags=re.M)
        if n != 1:
            raise RuntimeError("nats.conf has no 'sync_interval: always' line")
        relaxed.write_text(text)
        servers = {
            "always": NatsServer(Path(tmp) / "always", port=free_port(), config=base),
            "default": NatsServer(Path(tmp) / "default", port=free_port(), config=relaxed),
        }
        clients: dict[str, nats.aio.client.Client] = {}
        try:
            for key, server in servers.items():
                server.start()
                nc = await nats.connect(
                    server.url, user="admin", password=server.passwords["TROUPE_ADMIN_PASSWORD"]
                )
                clients[key] = nc
                await nc.jetstream().add_stream(
                    name="BENCH_SYNC", subjects=["bench.sync"], storage="file"
                )
            for in_flight in IN_FLIGHT:
                rates: dict[str, list[float]] = {"always": [], "default": []}
                for r in range(ROUNDS):
                    order = ["always", "default"] if r % 2 == 0 else ["default", "always"]
                    for key in order:
                        rates[key].append(await _js_throughput(clients[key], in_flight))
                always = statistics.median(rates["always"])
                default = statistics.median(rates["default"])
                report(
                    f"JetStream publish, sync_interval: always, {in_flight} in flight",
                    always,
                    "msg/s",
                    "troupe's nats.conf",
                )
                report(
                    f"JetStream publish, default sync, {in_flight} in flight",
                    default,
                    "msg/s",
                    "same conf without sync_interval",
                )
                report(
                    f"sync_interval: always cost, {in_flight} in flight",
                    always / default,
                    "x",
                    "throughput kept (1.0 = free)",
                )
        finally:
            for nc in clients.values():
                await nc.close()
            for server in servers.values():
                server.stop()


async def run(report: Report) -> None:
    """Measure and report every figure of this module."""
    with tempfile.TemporaryDirectory(prefix="troupe-bench-") as tmp:
        server = NatsServer(Path(tmp), port=free_port(), use_config=False).start()
        try:
            await _request_reply(server.url, report)
            await _idle_memory(server.url, report)
        finally:
            server.stop()
    await _sync_cost(report)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        _serve(sys.argv[2], sys.argv[3])
    else:
        asyncio.run(run(print))

"""Breaker figures: the cost of a check in a runner, and how fast transitions spread.

* ``allows`` / ``admit`` on a runner's local :class:`BreakerView` holding 1,000
  breakers (ns/op), side by side with asking the supervisor over NATS (one
  request/reply round trip), which is what the local view saves;
* transition -> every runner's view: the supervisor runs as its own process
  (as in production); 3 views (3 NATS connections) watch the bucket; 100
  transitions (force open / reset, alternately) are timed from the moment the
  supervisor made them (``BreakerStatus.since``) to the moment each view
  received them; p50/p99 of the slowest view per transition.

Everything runs against a real embedded nats-server.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec

from actors.breaker_supervisor.view import BreakerView
from actors.runtime.bus import Bus
from actors.runtime.config import ConnectionConfig
from actors.runtime.testing import eventually, nats_server
from actors.topology import BREAKERS
from protocols.breakers import (
    CONTROL_SUBJECT,
    LIST_SUBJECT,
    BreakerControl,
    BreakerList,
    BreakerStatus,
    ListBreakers,
    breaker_kv_key,
)

Report = Callable[..., None]

BREAKERS_LOADED = 1_000
CHECKS = 1_000_000
TRANSITIONS = 100
VIEWS = 3


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _check_cost(bus: Bus, report: Report) -> None:
    kv = await bus.key_value(BREAKERS)
    now = time.time()
    for i in range(BREAKERS_LOADED):
        state = "open" if i % 10 == 0 else "closed"
        status = BreakerStatus(
            key=f"image:i{i}",
            state=state,
            since=now,  # type: ignore[arg-type]
            open_until=now + 3600 if state == "open" else None,
            half_open_permits=1,
        )
        await kv.put(breaker_kv_key(status.key), msgspec.msgpack.encode(status))
    async with BreakerView(bus) as view:
        assert len(view.statuses()) == BREAKERS_LOADED
        for label, key in (("closed", "image:i1"), ("open", "image:i0"), ("unknown", "image:none")):
            allows = view.allows
            started = time.perf_counter_ns()
            for _ in range(CHECKS):
                allows(key)
            per_op = (time.perf_counter_ns() - started) / CHECKS
            report(
                f"BreakerView.allows, {label} key",
                per_op,
                "ns/op",
                f"{BREAKERS_LOADED} breakers in the view",
            )
        started = time.perf_counter_ns()
        n = CHECKS // 10
        for _ in range(n):
            await view.admit("image:i1")
        report(
            "BreakerView.admit, closed key (no I/O)",
            (time.perf_counter_ns() - started) / n,
            "ns/op",
        )


async def _round_trip_cost(bus: Bus, report: Report) -> None:
    samples = []
    for _ in range(300):
        started = time.perf_counter_ns()
        await bus.request(LIST_SUBJECT, ListBreakers(prefix="image:i1"), BreakerList)
        samples.append(time.perf_counter_ns() - started)
    report(
        "ask the supervisor instead (request/reply), p50",
        statistics.median(samples),
        "ns/op",
        "what the local view avoids",
    )


async def _propagation(url: str, report: Report) -> None:
    views: list[BreakerView] = []
    buses: list[Bus] = []
    arrivals: list[dict[tuple[str, float], float]] = []
    for i in range(VIEWS):
        b = await Bus.connect(ConnectionConfig(url=url), name=f"bench-runner-{i}")
        seen: dict[tuple[str, float], float] = {}

        def on_status(status: BreakerStatus, _seen: dict[tuple[str, float], float] = seen) -> None:
            _seen.setdefault((status.state, status.since), time.time())

        view = BreakerView(b)
        view.add_listener(on_status)
        await view.start()
        views.append(view)
        buses.append(b)
        arrivals.append(seen)
    driver = buses[0]
    worst: list[float] = []
    per_view: list[list[float]] = [[] for _ in range(VIEWS)]
    try:
        for n in range(TRANSITIONS):
            action = "force_open" if n % 2 == 0 else "reset"
            answer = await driver.request(
                CONTROL_SUBJECT, BreakerControl(key="image:bench", action=action), BreakerList
            )
            status = answer.items[0]
            mark = (status.state, status.since)

            async def everywhere(m: tuple[str, float] = mark) -> bool:
                return all(m in seen for seen in arrivals)

            await eventually(everywhere, timeout=10.0, interval=0.001)
            delays = [seen[mark] - status.since for seen in arrivals]
            for i, d in enumerate(delays):
                per_view[i].append(d * 1e3)
            worst.append(max(delays) * 1e3)
    finally:
        for view in views:
            await view.stop()
        for b in buses:
            await b.close()
    note = f"{TRANSITIONS} transitions, slowest of {VIEWS} views"
    report("transition -> every runner's view, p50", statistics.median(worst), "ms", note)
    report("transition -> every runner's view, p99", _percentile(worst, 0.99), "ms", note)
    report(
        "transition -> one runner's view, p50",
        statistics.median([d for v in per_view for d in v]),
        "ms",
    )


def _spawn_supervisor(url: str) -> subprocess.Popen[bytes]:
    """Start the breaker supervisor as its own process, as a deployment does."""
    return subprocess.Popen(
        [sys.executable, "-m", "actors", "run", "breaker_supervisor", "--nats-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def run(report: Report) -> None:
    """Measure and report every figure."""
    with nats_server() as server:
        proc = _spawn_supervisor(server.url)
        try:
            bus = await Bus.connect(ConnectionConfig(url=server.url))
            try:
                await _check_cost(bus, report)

                async def supervisor_up() -> Any:
                    try:
                        return await bus.request(
                            LIST_SUBJECT, ListBreakers(), BreakerList, timeout=0.5
                        )
                    except Exception:
                        return None

                await eventually(supervisor_up, timeout=30.0, interval=0.1)
                await _round_trip_cost(bus, report)
            finally:
                await bus.close()
            await _propagation(server.url, report)
        finally:
            proc.terminate()
            proc.wait(10)

"""The dashboard: page times with 10,000 workflows stored, and the live list at 50 workflows/s.

A whole troupe runs as ``troupe up`` runs it (its gateway on a free port); the
bench signs in to the dashboard with the printed operator token.

* page load p50/p95: 10,000 workflow views are stored in the status tracker's
  bucket (as the admin, the way a long-lived troupe holds them); the list page,
  the list fragment the live page re-fetches, the detail page of a workflow
  that really ran, the performance page and the operations and docs pages are
  each fetched ``PAGE_N`` times, one at a time, on loopback (so the time is the
  server's; target p95 < 300 ms). The performance page's first load (the
  first request for it since the gateway started; later loads within 5 s
  reuse the views and figures) is reported on its own, and so is the slowest
  first load of each other range: the views come from the gateway's live copy
  of the newest 3,000 (a watch of the workflows bucket), so these cost the
  figures, not a read of thousands of views from the tracker.
* live list: a dashboard SSE stream is open while workflows arrive at 50 per
  second for ``LIVE_S`` seconds (each one's transitions published to the status
  stream, as the actors publish them); events delivered over SSE vs sent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import msgspec

from actors.cli.options import connection_config
from actors.runtime.bus import Bus
from actors.runtime.server import free_port
from protocols.status import (
    LIST_SUBJECT,
    WORKFLOWS_BUCKET,
    ListWorkflows,
    StepView,
    WorkflowList,
    WorkflowTransition,
    WorkflowView,
    event_subject,
)

STORED = 10_000
PAGE_N = 60
RATE = 50
LIVE_S = 10

Report = Callable[..., None]


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def _seed(admin: Bus) -> None:
    """Store ``STORED`` finished workflow views and wait until the tracker lists them."""
    kv = await admin.js.key_value(WORKFLOWS_BUCKET)
    enc = msgspec.msgpack.Encoder()
    now = time.time() - STORED
    states = ["succeeded", "succeeded", "failed", "succeeded", "cancelled"]
    for start in range(0, STORED, 500):
        views = []
        for j in range(start, min(start + 500, STORED)):
            created = now + j
            steps = [
                StepView(
                    name=n,
                    state="succeeded",
                    started_at=created + i,
                    finished_at=created + i + 0.5,
                    duration_s=0.5,
                    cache_hit=j % 3 == 0,
                )
                for i, n in enumerate(("fetch", "transform", "publish"))
            ]
            views.append(
                WorkflowView(
                    workflow_id=f"seed-{j:05d}",
                    state=states[j % len(states)],  # type: ignore[arg-type]
                    created_at=created,
                    updated_at=created + 2,
                    finished_at=created + 2,
                    template="seeded",
                    steps=steps,
                    plan=[s.name for s in steps],
                    progress=1.0,
                )
            )
        await asyncio.gather(*(kv.put(v.workflow_id, enc.encode(v)) for v in views))
    deadline = time.monotonic() + 120
    while True:
        page = await admin.request(
            LIST_SUBJECT, ListWorkflows(template="seeded", limit=1000), WorkflowList
        )
        if page.items and page.items[0].workflow_id == f"seed-{STORED - 1:05d}":
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the status tracker did not index the seeded workflows")
        await asyncio.sleep(0.2)


async def _times(http: httpx.AsyncClient, path: str, n: int = PAGE_N) -> list[float]:
    samples: list[float] = []
    for _ in range(n):
        began = time.perf_counter()
        answer = await http.get(path)
        samples.append((time.perf_counter() - began) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"{path} answered {answer.status_code}")
    return samples


async def _pages(http: httpx.AsyncClient, report: Report) -> None:
    submitted = await http.post(
        "/api/v1/workflows", json={"template": "hello", "labels": {"bench": "dashboard"}}
    )
    submitted.raise_for_status()
    workflow_id = submitted.json()["workflow_id"]
    deadline = time.monotonic() + 60
    while "succeeded" not in (await http.get(f"/api/v1/workflows/{workflow_id}")).text:
        if time.monotonic() > deadline:
            raise RuntimeError("the detail workflow did not finish")
        await asyncio.sleep(0.2)
    note = f"{STORED:,} workflows stored; target p95 < 300 ms"
    for name, path in (
        ("list page", "/"),
        ("list page, state filter", "/?state=failed"),
        ("list page, label filter", "/?label=bench=dashboard"),
        ("list fragment (live re-fetch)", "/ui/rows"),
        ("detail page", f"/workflows/{workflow_id}"),
        ("performance page (1h, views re-read every 5 s)", "/performance?range=1h"),
        ("agents page", "/agents"),
        ("breakers page", "/breakers"),
        ("executions page", "/executions"),
        ("docs search", "/docs/search?q=retry"),
    ):
        samples = await _times(http, path)
        report(f"{name} p50", _pct(samples, 50), "ms", note)
        report(f"{name} p95", _pct(samples, 95), "ms", note)
        if path.startswith("/performance"):
            report(f"{name}: first load", samples[0], "ms", f"load average {_load()}")
    firsts: list[float] = []
    for span in ("15m", "6h", "24h", "7d"):
        firsts += (await _times(http, f"/performance?range={span}", 1))[:1]
    report(
        "performance page, first load of 15m/6h/24h/7d (slowest)",
        max(firsts),
        "ms",
        f"load average {_load()}",
    )


def _load() -> str:
    return "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


async def _live(http: httpx.AsyncClient, admin: Bus, report: Report) -> None:
    received: set[tuple[str, str]] = set()
    connected = asyncio.Event()
    complete = asyncio.Event()
    expected = RATE * LIVE_S * 4

    async def listen() -> None:
        async with http.stream("GET", "/ui/events") as stream:
            stream.raise_for_status()
            connected.set()
            async for line in stream.aiter_lines():
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    if event["id"].startswith("live-"):
                        received.add((event["id"], event["state"]))
                        if len(received) >= expected:
                            complete.set()

    listener = asyncio.ensure_future(listen())
    await asyncio.wait_for(connected.wait(), 30)
    began = time.perf_counter()

    async def arrive(wid: str) -> int:
        """Publish one workflow's transitions in order; return how many."""
        at = time.time()
        for state in ("submitted", "queued", "running", "succeeded"):
            event = WorkflowTransition(
                workflow_id=wid,
                state=state,  # type: ignore[arg-type]
                at=at,
                source="bench",
            )
            await admin.js.publish(event_subject(wid), msgspec.msgpack.encode(event))
        return 4

    arrivals: list[asyncio.Task[int]] = []
    for tick in range(RATE * LIVE_S):
        arrivals.append(asyncio.ensure_future(arrive(f"live-{uuid.uuid4().hex[:12]}")))
        pause = began + (tick + 1) / RATE - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
    sent = sum(await asyncio.gather(*arrivals))
    rate = RATE * LIVE_S / (time.perf_counter() - began)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(complete.wait(), 30)
    listener.cancel()
    with contextlib.suppress(BaseException):
        await listener
    report("live list: workflows arriving", rate, "wf/s", f"target {RATE}/s for {LIVE_S}s")
    report("live list: events sent", float(sent), "events")
    report("live list: events delivered over SSE", float(len(received)), "events", "target = sent")


def _start(state_dir: Path) -> subprocess.Popen[str]:
    port = free_port()
    return subprocess.Popen(
        [sys.executable, "-m", "actors", "up", "--state-dir", str(state_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TROUPE_NATS_URL": "", "TROUPE_GATEWAY_PORT": "0"},
    )


async def run(report: Report) -> None:
    """Start a troupe, seed it, measure, stop it."""
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        state_dir = Path(tmp) / "state"
        proc = _start(state_dir)
        try:
            deadline = time.monotonic() + 120
            while not (state_dir / "gateway-token").exists():
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("troupe up did not start its gateway")
                await asyncio.sleep(0.1)
            url = (state_dir / "gateway-url").read_text().strip()
            token = (state_dir / "gateway-token").read_text().strip()
            nats_url = (state_dir / "troupe.pid").read_text().split()[1]
            args = argparse.Namespace(nats_url=nats_url, state_dir=state_dir, ca=None)
            admin = await Bus.connect(connection_config(args, role="admin"))
            try:
                await _seed(admin)
                async with httpx.AsyncClient(
                    base_url=url,
                    headers={"Origin": url, "Authorization": f"Bearer {token}"},
                    timeout=httpx.Timeout(120.0),
                ) as http:
                    signed_in = await http.post("/login", data={"token": token})
                    if signed_in.status_code != 303:
                        raise RuntimeError(f"dashboard sign-in answered {signed_in.status_code}")
                    await _pages(http, report)
                    await _live(http, admin, report)
            finally:
                await admin.close()
        finally:
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(60)
            if proc.poll() is None:
                proc.kill()


if __name__ == "__main__":
    asyncio.run(run(print))

"""Pipeline runner figures: overhead per step beyond the step's own process, cache hits.

* overhead of a one-step run: run wall time (as the runner records it) minus the
  step's subprocess time - status events, checkpoint, breaker check, cache
  lookup, result storage;
* amortized overhead per step of a 20-step sequential pipeline;
* cache-hit latency: in-process tier, shared KV tier, and a whole
  cached step inside a run.

Everything runs against a real embedded nats-server, the runner in-process.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
from nats.js.errors import KeyNotFoundError

from actors.pipeline_runner import PipelineRunner, RunnerConfig
from actors.pipeline_runner.cache import StepCache
from actors.runtime.bus import Bus
from actors.runtime.config import ConnectionConfig
from actors.runtime.kv import TypedBucket
from actors.runtime.testing import eventually, nats_server
from actors.topology import PIPELINES, RESULTS, STEP_CACHE
from protocols.pipelines import (
    RUN_SUBJECT,
    CachedStep,
    PipelineResult,
    PipelineRun,
    PipelineSpec,
    StepResult,
    StepSpec,
)

Report = Callable[..., None]

RUNS = 150
CHAIN = 20


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _run_and_wait(bus: Bus, workflow_id: str, steps: list[StepSpec]) -> PipelineResult:
    run = PipelineRun(
        workflow_id=workflow_id,
        pipeline=PipelineSpec(name="bench", steps=steps, backend="local"),
        order=[[s.name] for s in steps],
    )
    await bus.send(RUN_SUBJECT, run, msg_id=workflow_id)
    kv = await bus.key_value(RESULTS)

    async def stored() -> PipelineResult | None:
        try:
            entry = await kv.get(workflow_id)
        except KeyNotFoundError:
            return None
        return msgspec.msgpack.decode(entry.value or b"", type=PipelineResult)

    return await eventually(stored, timeout=60, interval=0.002)


def _overhead(result: PipelineResult) -> float:
    return (result.finished_at - result.started_at) - sum(s.duration_s for s in result.steps)


async def run(report: Report) -> None:
    """Measure and report the runner's figures."""
    with nats_server() as server, tempfile.TemporaryDirectory() as tmp:
        bus = await Bus.connect(ConnectionConfig(url=server.url, connect_timeout=5.0))
        await bus.ensure_stream(PIPELINES)
        config = RunnerConfig(workspace_root=Path(tmp) / "ws", backend="local")
        try:
            async with PipelineRunner(config=config).running(bus) as actor:
                assert isinstance(actor, PipelineRunner)
                single = []
                for i in range(RUNS):
                    step = StepSpec(name="s", run=["true"], cache=False)
                    single.append(_overhead(await _run_and_wait(bus, f"one-{i}", [step])))
                report(
                    "runner overhead, 1-step run, p50",
                    1000 * _pct(single, 0.5),
                    "ms",
                    f"{RUNS} runs; run wall time minus the step's subprocess",
                )
                report("runner overhead, 1-step run, p99", 1000 * _pct(single, 0.99), "ms")

                per_step = []
                for i in range(10):
                    steps = [
                        StepSpec(
                            name=f"s{j}",
                            run=["true"],
                            cache=False,
                            needs=[f"s{j - 1}"] if j else [],
                        )
                        for j in range(CHAIN)
                    ]
                    per_step.append(
                        _overhead(await _run_and_wait(bus, f"chain-{i}", steps)) / CHAIN
                    )
                report(
                    "runner overhead per step, 20-step chain, p50",
                    1000 * _pct(per_step, 0.5),
                    "ms",
                    "10 runs, amortized per step",
                )
                report(
                    "runner overhead per step, 20-step chain, p99",
                    1000 * _pct(per_step, 0.99),
                    "ms",
                )

                cached = StepSpec(name="s", run=["sh", "-c", "echo x > o"], outputs=["o"])
                await _run_and_wait(bus, "warm", [cached])
                hits = []
                for i in range(50):
                    result = await _run_and_wait(bus, f"hit-{i}", [cached])
                    assert result.steps[0].cache_hit
                    hits.append(result.finished_at - result.started_at)
                report(
                    "1-step run served from the step cache, p50",
                    1000 * _pct(hits, 0.5),
                    "ms",
                    "includes restoring the output from the artifact store",
                )

            store = await TypedBucket.bind(bus, STEP_CACHE, CachedStep)
            writer = StepCache(store)
            entry = StepResult(name="s", state="succeeded", exit_code=0)
            keys = [f"bench{i:04d}" for i in range(200)]
            stores = []
            for key in keys:
                t0 = time.perf_counter()
                await writer.put(key, entry)
                stores.append(time.perf_counter() - t0)
            report("cache store (one KV put), p50", 1e3 * _pct(stores, 0.5), "ms")
            reader = StepCache(store)
            shared, memory = [], []
            for key in keys:
                t0 = time.perf_counter()
                await reader.get(key)
                shared.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                await reader.get(key)
                memory.append(time.perf_counter() - t0)
            report("cache hit, shared KV tier, p50", 1e3 * _pct(shared, 0.5), "ms")
            report("cache hit, shared KV tier, p99", 1e3 * _pct(shared, 0.99), "ms")
            report("cache hit, in-process tier, p50", 1e6 * statistics.median(memory), "us")
        finally:
            await bus.close()

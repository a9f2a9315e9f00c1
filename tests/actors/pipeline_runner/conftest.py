"""Fixtures of the pipeline runner tests: a runner on the test's server, run builders."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import psutil
import pytest
from nats.js.errors import KeyNotFoundError

from actors.breaker_supervisor.actor import BreakerSupervisor
from actors.pipeline_runner import PipelineRunner, RunnerConfig
from actors.runtime.bus import Bus
from actors.runtime.kv import TypedBucket
from actors.runtime.testing import eventually
from actors.status_tracker import StatusTracker
from actors.topology import PIPELINES, RESULTS, STATUS_EVENTS, STEP_CACHE
from protocols.pipelines import (
    RUN_SUBJECT,
    CachedStep,
    PipelineResult,
    PipelineRun,
    PipelineSpec,
    RetryPolicySpec,
    StepSpec,
)
from protocols.status import StatusEvent


def make_run(
    workflow_id: str,
    steps: Sequence[StepSpec],
    *,
    backend: str = "local",
    deadline: float | None = None,
    attempt: int = 1,
    retry_policies: dict[str, RetryPolicySpec] | None = None,
) -> PipelineRun:
    """Build a run of ``steps`` (one stage per step, in the given order)."""
    spec = PipelineSpec(
        name="test",
        steps=list(steps),
        backend=backend,  # type: ignore[arg-type]
        retry_policies=retry_policies or {},
    )
    return PipelineRun(
        workflow_id=workflow_id,
        pipeline=spec,
        order=[[s.name] for s in steps],
        deadline=deadline,
        attempt=attempt,
    )


async def publish(bus: Bus, run: PipelineRun) -> None:
    """Publish a run as the task manager would (creating the stream if no runner did yet)."""
    await bus.ensure_stream(PIPELINES)
    await bus.send(RUN_SUBJECT, run, msg_id=f"{run.workflow_id}:{run.attempt}")


async def stored_result(bus: Bus, workflow_id: str) -> PipelineResult | None:
    """Return the result stored for ``workflow_id``, if any."""
    kv = await bus.key_value(RESULTS)
    try:
        entry = await kv.get(workflow_id)
    except KeyNotFoundError:
        return None
    return msgspec.msgpack.decode(entry.value or b"", type=PipelineResult)


async def wait_result(bus: Bus, workflow_id: str, timeout: float = 20.0) -> PipelineResult:
    """Wait until a result is stored for ``workflow_id``."""

    async def check() -> PipelineResult | None:
        return await stored_result(bus, workflow_id)

    return await eventually(check, timeout=timeout)


async def status_events(bus: Bus, workflow_id: str) -> list[Any]:
    """Return every status event of ``workflow_id`` in stream order."""
    await bus.ensure_stream(STATUS_EVENTS)
    sub = await bus.js.subscribe(
        f"troupe.status.events.{workflow_id}", ordered_consumer=True, stream=STATUS_EVENTS.name
    )
    decoder = msgspec.msgpack.Decoder(StatusEvent)
    events: list[Any] = []
    info = await bus.js.stream_info(
        STATUS_EVENTS.name, subjects_filter=f"troupe.status.events.{workflow_id}"
    )
    expected = (info.state.subjects or {}).get(f"troupe.status.events.{workflow_id}", 0)
    try:
        while len(events) < expected:
            msg = await sub.next_msg(timeout=2.0)
            events.append(decoder.decode(msg.data))
    finally:
        await sub.unsubscribe()
    return events


def processes_with(marker: str) -> list[psutil.Process]:
    """Return live processes whose command line contains ``marker``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if (
            marker in cmd
            and proc.info["status"] != psutil.STATUS_ZOMBIE
            and proc.pid != os.getpid()
        ):
            found.append(proc)
    return found


@pytest.fixture
def runner_config(tmp_path: Path) -> RunnerConfig:
    """A runner configuration with its workspaces in the test's temporary directory.

    Steps run as the test's own user (``step_user=""``): they write side-effect
    files into the test's private directory.
    """
    return RunnerConfig(
        workspace_root=tmp_path / "ws", backend="local", kill_grace=0.5, step_user="", lease_ttl=2
    )


@pytest.fixture
async def cache_bucket(bus: Bus) -> TypedBucket[CachedStep]:
    """The shared step cache's KV bucket on the test's server."""
    return await TypedBucket.bind(bus, STEP_CACHE, CachedStep)


@pytest.fixture
async def runner(bus: Bus, runner_config: RunnerConfig) -> AsyncIterator[PipelineRunner]:
    """A pipeline runner running in-process on the test's server."""
    actor = PipelineRunner(config=runner_config)
    async with actor.running(bus):
        yield actor


@pytest.fixture
async def workflow_actors(
    bus: Bus, runner_config: RunnerConfig
) -> AsyncIterator[tuple[PipelineRunner, StatusTracker, BreakerSupervisor]]:
    """A runner, a status tracker and a breaker supervisor running in-process."""
    runner = PipelineRunner(config=runner_config)
    tracker = StatusTracker()
    breakers = BreakerSupervisor()
    async with breakers.running(bus), tracker.running(bus), runner.running(bus):
        yield runner, tracker, breakers

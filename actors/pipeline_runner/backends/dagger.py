"""The Dagger backend: one container per step, built with the ``dagger-io`` SDK.

A step becomes ``container().from_(image)``, its environment variables, its
staged workspace mounted at :data:`WORKDIR`, and ``with_exec(argv)``; the
workspace is exported back afterwards, so declared outputs land where the
local backend would leave them. Dagger's own layer and exec cache applies.
The SDK's HTTP transport injects the current trace context into every request,
so the engine's spans join the workflow's trace (the runner wraps each step in
a span).

Engine reachability is probed without side effects: an active session
(``DAGGER_SESSION_PORT``) that accepts a connection, or a ``dagger`` CLI plus a
container runtime (or ``_EXPERIMENTAL_DAGGER_RUNNER_HOST``) to start one. The
SDK would otherwise download a CLI at first use; the runner never lets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from actors.breaker_supervisor.client import (
    DEFAULT_RULES,
    ClassifyRules,
    classify_exception,
)
from actors.pipeline_runner.backends.base import (
    BackendUnavailable,
    EventSink,
    StepExecution,
    StepRequest,
    StopSignal,
)
from actors.pipeline_runner.state import Tail, parse_line
from actors.runtime.clock import Clock, system_clock

__all__ = [
    "DEFAULT_IMAGE",
    "WORKDIR",
    "DaggerBackend",
    "EngineProbe",
    "build_container",
    "map_error",
    "probe_engine",
]

log = logging.getLogger(__name__)

WORKDIR = "/work"
"""Where a step's workspace is mounted inside its container."""

DEFAULT_IMAGE = "alpine:3.20"
"""Image of a step that names none."""

_RUNTIME_SOCKETS = (
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/podman/podman.sock",
    "/run/containerd/containerd.sock",
)


@dataclass(frozen=True, slots=True)
class EngineProbe:
    """Whether a Dagger engine can be used, and why (or why not)."""

    reachable: bool
    detail: str


def _runtime_detail(env: Mapping[str, str], cli: str) -> EngineProbe:
    """Whether the dagger CLI has something to start an engine on."""
    if env.get("_EXPERIMENTAL_DAGGER_RUNNER_HOST"):
        return EngineProbe(
            True, f"dagger CLI {cli} with runner host {env['_EXPERIMENTAL_DAGGER_RUNNER_HOST']}"
        )
    docker_host = env.get("DOCKER_HOST", "")
    sockets = [docker_host.removeprefix("unix://")] if docker_host.startswith("unix://") else []
    if docker_host.startswith("tcp://") or any(
        os.path.exists(s) for s in (*sockets, *_RUNTIME_SOCKETS)
    ):
        return EngineProbe(True, f"dagger CLI {cli} with a container runtime")
    return EngineProbe(
        False,
        f"dagger CLI {cli} found but no container runtime to start an engine "
        "(no docker/podman socket)",
    )


async def _session_probe(port: str, token: str, timeout: float) -> EngineProbe:
    if not token:
        return EngineProbe(False, "DAGGER_SESSION_PORT is set without DAGGER_SESSION_TOKEN")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", int(port)), timeout)
    except (TimeoutError, OSError, ValueError) as exc:
        return EngineProbe(False, f"Dagger session port {port} not reachable: {type(exc).__name__}")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return EngineProbe(True, f"Dagger session on port {port}")


async def probe_engine(env: Mapping[str, str] | None = None, timeout: float = 0.5) -> EngineProbe:
    """Find out, without provisioning anything, whether a Dagger engine is usable.

    Args:
        env: environment to read (``os.environ`` by default).
        timeout: seconds to wait for a session port to accept a connection.
    """
    env = os.environ if env is None else env
    port = env.get("DAGGER_SESSION_PORT", "").strip()
    if port:
        return await _session_probe(port, env.get("DAGGER_SESSION_TOKEN", ""), timeout)
    cli = env.get("_EXPERIMENTAL_DAGGER_CLI_BIN") or shutil.which("dagger", path=env.get("PATH"))
    if not cli:
        return EngineProbe(
            False,
            "no Dagger engine: no session (DAGGER_SESSION_PORT) and no dagger CLI on PATH",
        )
    return _runtime_detail(env, cli)


def build_container(client: Any, request: StepRequest, image: str, workdir: Any) -> Any:
    """Return the (lazy) container that runs ``request``; nothing is executed.

    Args:
        client: a ``dagger.Client``.
        request: the step execution.
        image: image to start from.
        workdir: a ``dagger.Directory`` with the staged inputs.
    """
    ctr = client.container().from_(image)
    for name, value in sorted(request.env.items()):
        ctr = ctr.with_env_variable(name, value)
    return ctr.with_directory(WORKDIR, workdir).with_workdir(WORKDIR).with_exec(request.argv)


def map_error(exc: BaseException, rules: ClassifyRules = DEFAULT_RULES) -> StepExecution:
    """Turn an exception from the SDK into a step outcome.

    ``ExecError`` carries the command's exit code and output: the step failed
    and is classified by its exit code (or an OOM hint in its stderr).
    Connection and transport errors mean the engine is unavailable; anything
    else is classified by :func:`~actors.breaker_supervisor.classify.classify_exception`.
    """
    import dagger

    if isinstance(exc, dagger.ExecError):
        return StepExecution(
            state="failed",
            exit_code=exc.exit_code,
            stdout_tail=exc.stdout[-8192:],
            stderr_tail=exc.stderr[-8192:],
            reason=f"exit code {exc.exit_code}",
            error_class=classify_exception(exc, rules=rules),
        )
    if isinstance(exc, dagger.ClientConnectionError | dagger.TransportError):
        return StepExecution(
            state="failed", reason=f"dagger engine unavailable: {exc}", error_class="unavailable"
        )
    return StepExecution(
        state="failed",
        reason=f"dagger error: {type(exc).__name__}: {exc}",
        error_class=classify_exception(exc, rules=rules),
    )


class DaggerBackend:
    """Runs steps as Dagger containers over one engine connection.

    Args:
        clock: time source of durations and timeouts.
        tail_lines: lines of each stream kept.
        rules: classification rules.
        env: environment read by the engine probe.
    """

    name = "dagger"

    def __init__(
        self,
        *,
        clock: Clock = system_clock,
        tail_lines: int = 40,
        rules: ClassifyRules = DEFAULT_RULES,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._clock = clock
        self._tail_lines = tail_lines
        self._rules = rules
        self._env = env
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def probe(self) -> EngineProbe:
        """Probe the engine (see :func:`probe_engine`)."""
        return await probe_engine(self._env)

    async def client(self) -> Any:
        """Return the connected ``dagger.Client``, connecting on first use.

        Raises:
            BackendUnavailable: no engine is reachable or the connection failed.
        """
        async with self._lock:
            if self._client is not None:
                return self._client
            probe = await self.probe()
            if not probe.reachable:
                raise BackendUnavailable(probe.detail)
            import dagger

            try:
                self._client = await self._stack.enter_async_context(
                    dagger.Connection(dagger.Config(log_output=None))
                )
            except (dagger.DaggerError, OSError) as exc:
                raise BackendUnavailable(f"cannot connect to the Dagger engine: {exc}") from exc
            return self._client

    async def execute(
        self, request: StepRequest, stop: StopSignal, events: EventSink
    ) -> StepExecution:
        """Run ``request`` in a container (see the module docstring).

        Raises:
            BackendUnavailable: no engine is reachable.
        """
        client = await self.client()
        started = self._clock.monotonic()
        image = request.step.image or DEFAULT_IMAGE
        ctr = build_container(client, request, image, client.host().directory(str(request.workdir)))
        work = asyncio.create_task(self._run(ctr, request))
        waits: dict[str, asyncio.Task[Any]] = {
            "done": work,
            "stop": asyncio.create_task(stop.wait()),
        }
        if request.timeout is not None:
            waits["timeout"] = asyncio.create_task(self._clock.sleep(request.timeout))
        try:
            done, _ = await asyncio.wait(waits.values(), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits.values():
                if not task.done():
                    task.cancel()
        duration = self._clock.monotonic() - started
        if work not in done:
            # Cancelling the request makes the engine cancel the exec.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
            if waits["stop"] in done:
                kind = stop.kind or "cancelled"
                return StepExecution(
                    state=kind,
                    reason=stop.reason,
                    duration_s=duration,
                    error_class="cancelled" if kind == "cancelled" else "timeout",
                )
            return StepExecution(
                state="timed_out",
                duration_s=duration,
                error_class="timeout",
                reason=f"step timed out after {request.timeout:g}s",
            )
        try:
            stdout, stderr = work.result()
            execution = StepExecution(state="succeeded", exit_code=0, produced_in=request.workdir)
        except Exception as exc:  # noqa: BLE001 - every SDK failure maps to an outcome
            execution = map_error(exc, self._rules)
            stdout, stderr = execution.stdout_tail, execution.stderr_tail
        out_tail, err_tail = Tail(self._tail_lines), Tail(self._tail_lines)
        for line in stdout.splitlines():
            out_tail.add(line)
            event = parse_line(line) if line.startswith("::") else None
            if event is not None:
                await events(event)
        for line in stderr.splitlines():
            err_tail.add(line)
        execution.stdout_tail, execution.stderr_tail = out_tail.text(), err_tail.text()
        execution.duration_s = duration
        return execution

    async def _run(self, ctr: Any, request: StepRequest) -> tuple[str, str]:
        stdout: str = await ctr.stdout()
        stderr: str = await ctr.stderr()
        if request.step.outputs:
            await ctr.directory(WORKDIR).export(str(request.workdir))
        return stdout, stderr

    async def close(self) -> None:
        """Close the engine connection."""
        self._client = None
        with contextlib.suppress(Exception):
            await self._stack.aclose()
        self._stack = contextlib.AsyncExitStack()

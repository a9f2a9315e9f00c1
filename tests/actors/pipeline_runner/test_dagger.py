"""The Dagger backend: the SDK's query for a step (offline), error mapping, engine probe."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from pathlib import Path
from typing import Any

import dagger
import gql
import graphql
import pytest
from dagger._exceptions import QueryErrorValue
from dagger.client._core import Context
from dagger.client.base import Type

from actors.pipeline_runner import PipelineRunner, RunnerConfig
from actors.pipeline_runner.backends import DaggerBackend, StepRequest, StopSignal
from actors.pipeline_runner.backends.dagger import build_container, map_error, probe_engine
from actors.pipeline_runner.state import LineEvent, command_argv
from actors.runtime.bus import Bus
from protocols.pipelines import StepSpec
from tests.actors.pipeline_runner.conftest import make_run, publish, wait_result

# The part of the engine's GraphQL schema a step uses (names and types as the engine has them):
# the SDK needs a schema to turn its selections into a document.
ENGINE_SCHEMA = """
scalar DirectoryID
scalar Platform
enum ReturnType { SUCCESS FAILURE ANY }
type Query { container(platform: Platform): Container! host: Host! }
type Host {
  directory(path: String!, exclude: [String!], include: [String!], noCache: Boolean,
            gitignore: Boolean): Directory!
}
type Directory { id: DirectoryID! export(path: String!, wipe: Boolean): String! }
type Container {
  from(address: String!): Container!
  withEnvVariable(name: String!, value: String!, expand: Boolean): Container!
  withDirectory(path: String!, source: DirectoryID!, exclude: [String!], include: [String!],
                owner: String, expand: Boolean, gitignore: Boolean): Container!
  withWorkdir(path: String!, expand: Boolean): Container!
  withExec(args: [String!]!, useEntrypoint: Boolean, stdin: String, expect: ReturnType,
           expand: Boolean, noInit: Boolean): Container!
  directory(path: String!, expand: Boolean): Directory!
  stdout: String!
  stderr: String!
}
"""


class OfflineSession:
    """Gives the SDK's query builder a schema; executes nothing."""

    async def get_schema(self) -> graphql.GraphQLSchema:
        return graphql.build_schema(ENGINE_SCHEMA)


class OfflineConnection:
    """A connection whose session only answers for the schema."""

    session = OfflineSession()


def step_request(tmp_path: Path) -> StepRequest:
    """A request for one containerized step."""
    step = StepSpec(name="build", run="make all", image="python:3.12-slim", env={"B": "2"})
    return StepRequest(
        workflow_id="wf",
        step=step,
        argv=command_argv(step.run),
        env={"B": "2", "A": "1"},
        workdir=tmp_path,
        timeout=None,
    )


async def test_step_becomes_the_query_the_sdk_sends(tmp_path: Path) -> None:
    """from_ -> env (sorted) -> workspace at /work -> workdir -> exec, built by the SDK."""
    client = dagger.Client(Context(conn=OfflineConnection()))  # type: ignore[arg-type]
    source = client.host().directory(str(tmp_path))
    ctr = build_container(client, step_request(tmp_path), "python:3.12-slim", source)
    ctx = ctr._select("stdout", [])  # what Container.stdout() executes
    for selection in ctx.selections:  # what resolve_ids does with an engine: objects -> ids
        for name, value in selection.args.items():
            if isinstance(value, Type):
                selection.args[name] = "directory-id"
    query = graphql.print_ast((await ctx.request()).document)
    # The SDK aliases every nested field to its own name.
    assert " ".join(query.split()) == (
        '{ container { from: from(address: "python:3.12-slim") { '
        'withEnvVariable: withEnvVariable(name: "A", value: "1") { '
        'withEnvVariable: withEnvVariable(name: "B", value: "2") { '
        'withDirectory: withDirectory(path: "/work", source: "directory-id") { '
        'withWorkdir: withWorkdir(path: "/work") { '
        'withExec: withExec(args: ["/bin/sh", "-c", "make all"]) { stdout: stdout } } } } } } } }'
    )


def query_error(extensions: dict[str, Any], message: str = "failed") -> dagger.QueryError:
    """A QueryError as the SDK raises it from an engine answer."""
    request = gql.gql("{ container { id } }")
    return dagger.QueryError([QueryErrorValue(message=message, extensions=extensions)], request)


@pytest.mark.parametrize(
    ("exit_code", "stderr", "expected"),
    [
        (75, "", "transient"),
        (1, "", "permanent"),
        (137, "Killed: out of memory", "resource"),
        (124, "", "timeout"),
    ],
)
def test_exec_errors_map_to_error_classes_by_exit_code(
    exit_code: int, stderr: str, expected: str
) -> None:
    """ExecError carries the exit code and output into the step result."""
    exc = query_error(
        {
            "_type": "EXEC_ERROR",
            "cmd": ["x"],
            "exitCode": exit_code,
            "stdout": "out",
            "stderr": stderr,
        }
    )
    assert isinstance(exc, dagger.ExecError)
    result = map_error(exc)
    assert (result.state, result.exit_code, result.error_class) == ("failed", exit_code, expected)
    assert result.stdout_tail == "out"


@pytest.mark.parametrize(
    "exc",
    [
        dagger.ClientConnectionError("engine gone"),
        dagger.TransportError("connection reset"),
    ],
)
def test_engine_and_connection_errors_are_unavailable(exc: Exception) -> None:
    """Losing the engine is an unavailable failure, not the step's fault."""
    result = map_error(exc)
    assert result.error_class == "unavailable"
    assert "unavailable" in result.reason


def test_other_query_errors_are_classified_by_message() -> None:
    """A pull that cannot be found is permanent."""
    result = map_error(query_error({}, "failed to resolve image: manifest unknown"))
    assert result.error_class == "permanent"


async def test_engine_probe_without_session_or_cli_is_unreachable(tmp_path: Path) -> None:
    """No session and no CLI: unreachable, saying why (nothing is downloaded)."""
    probe = await probe_engine({"PATH": str(tmp_path)})
    assert not probe.reachable
    assert "no dagger CLI" in probe.detail


async def test_engine_probe_checks_the_session_port() -> None:
    """A session port that accepts connections is reachable; a closed one is not."""
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        ok = await probe_engine({"DAGGER_SESSION_PORT": str(port), "DAGGER_SESSION_TOKEN": "t"})
    finally:
        server.close()
        await server.wait_closed()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    down = await probe_engine({"DAGGER_SESSION_PORT": str(closed), "DAGGER_SESSION_TOKEN": "t"})
    assert ok.reachable
    assert not down.reachable


async def test_cli_without_container_runtime_is_unreachable(tmp_path: Path) -> None:
    """A dagger CLI alone cannot start an engine."""
    cli = tmp_path / "dagger"
    cli.write_text("#!/bin/sh\n")
    cli.chmod(0o755)
    probe = await probe_engine({"PATH": str(tmp_path), "DOCKER_HOST": "unix:///nonexistent"})
    assert not probe.reachable
    assert "no container runtime" in probe.detail


needs_no_engine = pytest.mark.skipif(
    asyncio.run(probe_engine()).reachable, reason="a Dagger engine is reachable here"
)


@needs_no_engine
@pytest.mark.integration
async def test_without_engine_auto_falls_back_and_dagger_fails_unavailable(
    bus: Bus, runner_config: RunnerConfig
) -> None:
    """auto runs locally (the choice recorded), dagger fails with a clear unavailable reason."""
    step = StepSpec(name="s", run="echo ok", image="alpine:3.20", cache=False)
    actor = PipelineRunner(config=dataclasses.replace(runner_config, backend="auto"))
    async with actor.running(bus):
        await publish(bus, make_run("wf-auto", [step], backend="auto"))
        await publish(bus, make_run("wf-dagger", [step], backend="dagger"))
        auto = await wait_result(bus, "wf-auto")
        forced = await wait_result(bus, "wf-dagger")
    assert auto.state == "succeeded"
    assert auto.backend == "local"
    assert "no Dagger engine" in auto.backend_note
    assert forced.state == "failed"
    assert forced.error_class == "unavailable"
    assert "no Dagger engine" in forced.reason


@pytest.mark.engine
async def test_step_runs_in_a_container_on_a_real_engine(tmp_path: Path) -> None:
    """With an engine: a container step runs, reports progress and exports outputs."""
    probe = await probe_engine()
    if not probe.reachable:
        pytest.skip(f"no Dagger engine reachable: {probe.detail}")
    backend = DaggerBackend()
    seen: list[LineEvent] = []

    async def sink(event: LineEvent) -> None:
        seen.append(event)

    step = StepSpec(
        name="s",
        run="echo '::progress 50'; echo hi > out.txt",
        image="alpine:3.20",
        outputs=["out.txt"],
    )
    request = StepRequest(
        workflow_id="wf",
        step=step,
        argv=command_argv(step.run),
        env={},
        workdir=tmp_path,
        timeout=120,
    )
    try:
        result = await backend.execute(request, StopSignal(), sink)
    finally:
        await backend.close()
    assert result.state == "succeeded"
    assert (tmp_path / "out.txt").read_text() == "hi\n"
    assert seen == [LineEvent(percent=50.0)]

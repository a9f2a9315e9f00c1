"""The task commands: building tasks from names and files, and each command on a real server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from actors.cli import main
from actors.cli.tasks import build_task, parse_params
from actors.runtime.actor import Actor
from actors.runtime.bus import Bus
from actors.runtime.errors import NotFound
from actors.runtime.handlers import RequestContext, endpoint
from actors.task_manager.actor import TaskManager
from actors.task_manager.config import TaskManagerConfig
from actors.task_manager.errors import TaskRejected
from actors.topology import ARTIFACTS, STEP_CACHE
from protocols import pipelines
from protocols.pipelines import ArtifactRef, GetResult, PipelineResult, StepResult

REPO = Path(__file__).resolve().parents[3]
TYPED = """\
name = "typed"
timeout = "{{ limit }}"
[[params]]
name = "limit"
type = "int"
[[steps]]
name = "a"
run = "true"
"""


def test_parse_params_keeps_values_as_text_and_refuses_pairs_without_equals() -> None:
    """NAME=VALUE pairs become a dict; the value may itself contain '='."""
    assert parse_params(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_params(["novalue"])


def test_build_task_sends_a_template_name_for_the_task_manager_to_resolve() -> None:
    """A bare name becomes TaskSubmitted.template with the raw parameters."""
    task = build_task("hello", {"who": "x"}, task_id="k1")
    assert (task.task_id, task.template, task.pipeline, task.params) == (
        "k1",
        "hello",
        None,
        {"who": "x"},
    )


def test_build_task_sends_a_file_inline_unrendered() -> None:
    """A definition file goes inline with its parameters, for the task manager to render."""
    task = build_task(str(REPO / "examples" / "hello.toml"), {"who": "x"})
    assert task.template is None
    assert task.pipeline is not None
    assert task.pipeline.name == "hello"
    assert "{{ who }}" in task.pipeline.steps[0].env["WHO"]
    assert task.params == {"who": "x"}
    assert len(task.task_id) == 32


def test_build_task_renders_a_file_with_typed_placeholders_locally(tmp_path: Path) -> None:
    """Placeholders in numeric fields are rendered here; the result carries no parameters."""
    path = tmp_path / "typed.toml"
    path.write_text(TYPED)
    task = build_task(str(path), {"limit": "7"})
    assert task.pipeline is not None
    assert task.pipeline.timeout == 7.0
    assert (task.pipeline.params, task.params) == ([], {})
    with pytest.raises(TaskRejected, match="missing_parameter"):
        build_task(str(path), {})


def test_build_task_sends_a_template_from_templates_dir_inline(tmp_path: Path) -> None:
    """A name found in --templates is sent inline: the task manager may not see that directory."""
    (tmp_path / "typed.toml").write_text(TYPED)
    task = build_task("typed", {"limit": "3"}, template_dirs=[tmp_path])
    assert task.pipeline is not None
    assert task.pipeline.timeout == 3.0


def test_build_task_refuses_a_bad_id() -> None:
    """An id that cannot be a KV key or subject token is refused before sending."""
    with pytest.raises(ValueError, match="task_id"):
        build_task("hello", {}, task_id="a b")


def test_templates_lists_bundled_and_extra_templates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`troupe templates` shows each template with its parameters."""
    (tmp_path / "typed.toml").write_text(TYPED)
    assert main(["templates", "--templates", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for expected in (
        "hello",
        "data-pipeline",
        "fanout",
        "typed",
        "--param limit=<int>  (required)",
    ):
        assert expected in out


class ResultServer(Actor):
    """Stands in for the pipeline runner's result endpoint."""

    name = "result_server"
    object_stores = (ARTIFACTS,)

    def __init__(self, result: PipelineResult) -> None:
        super().__init__()
        self.result = result

    @endpoint(pipelines.RESULT_SUBJECT)
    async def get(self, request: GetResult, ctx: RequestContext) -> PipelineResult:
        if request.workflow_id != self.result.workflow_id:
            raise NotFound(f"no result for {request.workflow_id}")
        return self.result


def _run(*argv: str) -> asyncio.Future[int]:
    return asyncio.ensure_future(asyncio.to_thread(main, list(argv)))


@pytest.mark.integration
async def test_submit_cancel_result_and_artifact_against_a_troupe(
    bus: Bus, nats_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """submit prints the id (twice: one workflow), cancel answers, result and artifact fetch."""
    url = ["--nats-url", nats_url]
    manager = TaskManager(config=TaskManagerConfig())
    ref = ArtifactRef(name="report.md", object_name="sha256-abc", size=5, digest="sha256:abc")
    result = PipelineResult(
        workflow_id="wf-cli",
        state="succeeded",
        started_at=1.0,
        finished_at=3.5,
        steps=[
            StepResult(name="extract", state="succeeded", exit_code=0, duration_s=1.25),
            StepResult(
                name="report", state="succeeded", exit_code=0, artifacts=[ref], stdout_tail="done\n"
            ),
        ],
    )
    async with manager.running(bus), ResultServer(result).running(bus):
        store = await bus.object_store(ARTIFACTS)
        await store.put("sha256-abc", b"# hi\n")
        assert await _run("submit", "hello", "--id", "wf-cli", "-p", "who=cli", *url) == 0
        assert await _run("submit", "hello", "--id", "wf-cli", *url) == 0
        captured = capsys.readouterr()
        assert captured.out.split() == ["wf-cli", "wf-cli"]
        assert "already submitted" in captured.err
        assert await _run("cancel", "nobody", *url) == 1
        assert "no workflow 'nobody'" in capsys.readouterr().err

        assert await _run("result", "wf-cli", "--logs", *url) == 0
        out = capsys.readouterr().out
        assert "workflow wf-cli: succeeded" in out
        assert "extract" in out
        assert "report.md" in out
        assert "done" in out
        target = tmp_path / "report.md"
        assert await _run("artifact", "wf-cli", "report.md", "-o", str(target), *url) == 0
        assert target.read_bytes() == b"# hi\n"
        assert await _run("artifact", "wf-cli", "nope.txt", *url) == 1
        assert "artifacts: report.md" in capsys.readouterr().err
        assert await _run("result", "other", *url) == 1
    assert manager.counts["accepted"] == 1


@pytest.mark.integration
async def test_cache_clear_without_runners_empties_the_shared_store(
    bus: Bus, nats_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no runner to ask, `troupe cache clear` purges the shared object store itself."""
    store = await bus.object_store(STEP_CACHE)
    await store.put("k1", b"x")
    assert await _run("cache", "clear", "--nats-url", nats_url) == 0
    assert "step cache cleared" in capsys.readouterr().out
    info = await bus.js.stream_info(f"OBJ_{pipelines.CACHE_BUCKET}")
    assert info.state.messages == 0

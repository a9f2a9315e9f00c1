"""The task commands: building tasks from names and files, and each command on a real server."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from actors.cli import main
from actors.cli.tasks import build_task, parse_params
from actors.cli.validate import check_task
from actors.pipeline_runner.cache import StepCache
from actors.runtime.actor import Actor
from actors.runtime.bus import Bus
from actors.runtime.errors import NotFound
from actors.runtime.handlers import RequestContext, endpoint
from actors.runtime.kv import TypedBucket
from actors.runtime.testing import eventually
from actors.status_tracker import StatusTracker
from actors.status_tracker.client import get_workflow
from actors.task_manager.actor import TaskManager
from actors.task_manager.config import TaskManagerConfig
from actors.task_manager.errors import TaskRejected
from actors.topology import ARTIFACTS, STEP_CACHE
from protocols import pipelines
from protocols.pipelines import ArtifactRef, CachedStep, GetResult, PipelineResult, StepResult

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
    digest = "sha256:" + hashlib.sha256(b"# hi\n").hexdigest()
    ref = ArtifactRef(name="report.md", object_name="sha256-abc", size=5, digest=digest)
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
    tracker = StatusTracker()
    async with manager.running(bus), tracker.running(bus), ResultServer(result).running(bus):
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
async def test_cache_clear_without_a_runner_exits_69_and_leaves_the_store(
    bus: Bus, nats_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no runner to ask, `troupe cache clear` says to start one, exits 69, purges nothing."""
    store = await TypedBucket.bind(bus, STEP_CACHE, CachedStep)
    await StepCache(store).put("k1", StepResult(name="s", state="succeeded"))
    before = (await bus.js.stream_info(f"KV_{pipelines.CACHE_BUCKET}")).state.last_seq
    assert await _run("cache", "clear", "--nats-url", nats_url) == 69
    assert "no pipeline runner answers; start one" in capsys.readouterr().err
    info = await bus.js.stream_info(f"KV_{pipelines.CACHE_BUCKET}")
    assert info.state.last_seq == before > 0
    assert await store.keys() == ["k1"]


@pytest.mark.integration
async def test_submit_validates_first_and_waits_for_the_task_managers_answer(
    bus: Bus, nats_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cycle is refused before submission; an unknown template exits 5 once rejected."""
    url = ["--nats-url", nats_url]
    cyclic = tmp_path / "cyclic.toml"
    cyclic.write_text(
        'name = "c"\n[[steps]]\nname = "a"\nrun = "true"\nneeds = ["b"]\n'
        '[[steps]]\nname = "b"\nrun = "true"\nneeds = ["a"]\n'
    )
    manager = TaskManager(config=TaskManagerConfig())
    async with manager.running(bus), StatusTracker().running(bus):
        assert await _run("submit", str(cyclic), "--id", "wf-cycle", *url) == 5
        assert "rejected before submission: cycle: " in capsys.readouterr().err
        assert await _run("submit", "hellp", "--id", "wf-typo", *url) == 5
        assert "rejected: unknown_template" in capsys.readouterr().err
        assert await _run("submit", "hellp", "--id", "wf-typo-2", "--no-wait", *url) == 0
        with pytest.raises(NotFound):
            await get_workflow(bus, "wf-cycle")


def test_validate_prints_the_plan_or_the_rejection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """troupe validate renders locally: stages, retry policies, breakers; exit 5 if rejected."""
    assert main(["validate", "hello", "-p", "who=x"]) == 0
    out = capsys.readouterr().out
    assert "pipeline hello: 2 steps in 2 stages" in out
    assert "shout needs greet; no retry" in out
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "b"\n[[steps]]\nname = "a"\nrun = "true"\nretry = "aggressive"\n')
    assert main(["validate", str(bad)]) == 5
    assert "unknown_retry_policy: step 'a' names retry policy 'aggressive'" in (
        capsys.readouterr().err
    )


@pytest.mark.integration
async def test_labels_are_stored_shown_and_filterable(
    bus: Bus, nats_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--label team=qa reaches the workflow's view, status prints it, ls --label filters."""
    url = ["--nats-url", nats_url]
    async with TaskManager(config=TaskManagerConfig()).running(bus), StatusTracker().running(bus):
        submit = ("submit", "hello", "-p", "who=qa", "--label", "team=qa", "--no-wait")
        assert await _run(*submit, "--id", "wf-qa", *url) == 0
        assert await _run("submit", "hello", "--id", "wf-dev", "--label", "team=dev", *url) == 0
        capsys.readouterr()

        async def labelled() -> bool:
            view = await get_workflow(bus, "wf-qa")
            return view.labels == {"team": "qa"}

        await eventually(labelled)
        assert await _run("status", "wf-qa", *url) == 0
        assert "labels    team=qa" in capsys.readouterr().out
        assert await _run("ls", "--label", "team=qa", *url) == 0
        rows = capsys.readouterr().out.splitlines()[1:]
        assert [row.split()[0] for row in rows] == ["wf-qa"]


def test_an_agent_task_is_not_validated_as_a_pipeline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--requires: the target only labels the task, so no pipeline check refuses it."""
    cyclic = tmp_path / "cyclic.toml"
    cyclic.write_text(
        'name = "c"\n[[steps]]\nname = "a"\nrun = "true"\nneeds = ["b"]\n'
        '[[steps]]\nname = "b"\nrun = "true"\nneeds = ["a"]\n'
    )
    task = build_task(str(cyclic), {}, requires="text.stats")
    with pytest.raises(TaskRejected, match="cycle"):
        check_task(task, [])
    unreachable = ["--nats-url", "nats://127.0.0.1:1"]
    assert main(["submit", str(cyclic), "--requires", "text.stats", *unreachable]) == 69
    assert "rejected" not in capsys.readouterr().err

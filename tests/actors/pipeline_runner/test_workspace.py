"""Workspaces: step isolation, inputs from producers, outputs collected, paths contained."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.pipeline_runner.workspace import Workspace, WorkspaceError, safe_relative
from protocols.pipelines import StepSpec


def test_inputs_come_from_producers_and_outputs_are_collected(tmp_path: Path) -> None:
    """An output of one step is staged as the input of the next, with its digest."""
    ws = Workspace(tmp_path, "wf/1")
    producer = StepSpec(name="a", run="true", outputs=["out/data.txt", "dir"])
    work = ws.step_dir("a", fresh=True)
    (work / "out").mkdir()
    (work / "out" / "data.txt").write_text("hello")
    (work / "dir" / "sub").mkdir(parents=True)
    (work / "dir" / "sub" / "x").write_text("x")
    (work / "scratch").write_text("private")
    files = ws.collect_outputs(producer)
    assert sorted(name for name, _ in files) == ["dir/sub/x", "out/data.txt"]
    consumer = StepSpec(name="b", run="true", inputs=["out/data.txt"], needs=["a"])
    digests = ws.stage_inputs(consumer, ["a"])
    staged = ws.step_dir("b")
    assert (staged / "out" / "data.txt").read_text() == "hello"
    assert not (staged / "scratch").exists()
    assert digests["out/data.txt"].startswith("sha256:")
    assert ws.path.name == "wf_1"


def test_missing_inputs_and_outputs_are_workspace_errors(tmp_path: Path) -> None:
    """An input nobody produced, or an output not written, is an error naming the file."""
    ws = Workspace(tmp_path, "wf")
    with pytest.raises(WorkspaceError, match=r"missing\.txt"):
        ws.stage_inputs(StepSpec(name="b", run="true", inputs=["missing.txt"]), ["a"])
    ws.step_dir("a", fresh=True)
    with pytest.raises(WorkspaceError, match=r"never\.txt"):
        ws.collect_outputs(StepSpec(name="a", run="true", outputs=["never.txt"]))


@pytest.mark.parametrize("path", ["/etc/passwd", "../up", "a/../../b", ""])
def test_paths_that_escape_the_workspace_are_refused(path: str) -> None:
    """Absolute and climbing paths are refused."""
    with pytest.raises(WorkspaceError):
        safe_relative(path)


def test_a_step_without_outputs_makes_no_outputs_directory(tmp_path: Path) -> None:
    """Collecting a step that declares no outputs creates nothing, and clears a stale copy."""
    ws = Workspace(tmp_path, "wf")
    ws.step_dir("a", fresh=True)
    assert ws.collect_outputs(StepSpec(name="a", run="true")) == []
    assert not (ws.path / "outputs").exists()
    stale = ws.outputs_dir("b")
    stale.mkdir(parents=True)
    ws.collect_outputs(StepSpec(name="b", run="true"))
    assert not stale.exists()


async def test_removal_off_the_loop_deletes_the_whole_workspace(tmp_path: Path) -> None:
    """The workspace is gone once ``remove_off_loop`` returns."""
    ws = Workspace(tmp_path, "wf")
    (ws.step_dir("a", fresh=True) / "file").write_text("x")
    await ws.remove_off_loop()
    assert not ws.path.exists()
    assert list(tmp_path.iterdir()) == []

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

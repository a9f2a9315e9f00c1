"""Per-workflow workspaces on disk: a fresh directory per step, inputs in, outputs out.

Layout under the runner's workspace root::

    <workflow>/steps/<step>/      the step's working directory (fresh each execution)
    <workflow>/outputs/<step>/    the step's declared outputs, kept for later steps

A step sees only the inputs it declares, copied from the outputs of the steps
it (transitively) needs, so steps cannot read each other's scratch files.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

from protocols.pipelines import StepSpec

__all__ = ["Workspace", "WorkspaceError", "digest_file", "safe_relative"]

_SAFE_ID = re.compile(r"[^A-Za-z0-9_.=-]")


class WorkspaceError(Exception):
    """A declared input is missing, an output was not produced, or a path escapes."""


def safe_relative(path: str) -> PurePosixPath:
    """Return ``path`` as a relative path inside a workspace.

    Raises:
        WorkspaceError: the path is absolute, empty or climbs out with ``..``.
    """
    rel = PurePosixPath(path)
    if not path or rel.is_absolute() or ".." in rel.parts:
        raise WorkspaceError(f"path {path!r} must be relative and stay inside the workspace")
    return rel


def digest_file(path: Path) -> str:
    """Return ``sha256:<hex>`` of a file's content."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


class Workspace:
    """The directory tree of one workflow.

    Args:
        root: the runner's workspace root.
        workflow_id: workflow the workspace belongs to.
    """

    def __init__(self, root: Path, workflow_id: str) -> None:
        self.path = root / _SAFE_ID.sub("_", workflow_id)

    def step_dir(self, step: str, *, fresh: bool = False) -> Path:
        """Return the working directory of ``step``, emptied first when ``fresh``."""
        path = self.path / "steps" / step
        if fresh and path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def outputs_dir(self, step: str) -> Path:
        """Return the directory holding ``step``'s collected outputs."""
        return self.path / "outputs" / step

    def stage_inputs(self, step: StepSpec, producers: Sequence[str]) -> dict[str, str]:
        """Copy ``step``'s inputs into its working directory.

        Args:
            step: the step about to run.
            producers: steps whose outputs are searched, nearest first.

        Returns:
            Input path -> digest of the copied content.

        Raises:
            WorkspaceError: an input is produced by none of ``producers``.
        """
        target = self.step_dir(step.name, fresh=True)
        digests: dict[str, str] = {}
        for raw in step.inputs:
            rel = safe_relative(raw)
            source = next(
                (
                    self.outputs_dir(p) / rel
                    for p in producers
                    if (self.outputs_dir(p) / rel).exists()
                ),
                None,
            )
            if source is None:
                raise WorkspaceError(f"input {raw!r} is not an output of any step it needs")
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, dest, dirs_exist_ok=True)
                digests[raw] = _digest_tree(source)
            else:
                shutil.copy2(source, dest)
                digests[raw] = digest_file(dest)
        return digests

    def collect_outputs(
        self, step: StepSpec, produced_in: Path | None = None
    ) -> list[tuple[str, Path]]:
        """Move ``step``'s declared outputs to its outputs directory.

        Args:
            step: the finished step.
            produced_in: where the step wrote them (its working directory by default).

        Returns:
            (relative file name, stored path) for every output file, directories expanded.

        Raises:
            WorkspaceError: a declared output does not exist.
        """
        out_root = self.outputs_dir(step.name)
        if out_root.exists():
            shutil.rmtree(out_root)
        if not step.outputs:
            # Nothing to keep: no directory to make now and to remove with the workspace.
            return []
        source_root = produced_in or self.step_dir(step.name)
        out_root.mkdir(parents=True)
        files: list[tuple[str, Path]] = []
        for raw in step.outputs:
            rel = safe_relative(raw)
            source = source_root / rel
            if not source.exists():
                raise WorkspaceError(f"step {step.name} did not produce output {raw!r}")
            dest = out_root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, dest)
                files.extend((str(rel / p.relative_to(dest)), p) for p in _files(dest))
            else:
                shutil.copy2(source, dest)
                files.append((str(rel), dest))
        return files

    def remove(self) -> None:
        """Delete the whole workspace."""
        shutil.rmtree(self.path, ignore_errors=True)

    async def remove_off_loop(self) -> None:
        """Delete the whole workspace in a worker thread.

        Removing directories can block for milliseconds each (a journalling
        file system waits for its metadata), which would stall every other
        message of the runner; the event loop waits for it without blocking.
        """
        await asyncio.to_thread(self.remove)


def _files(root: Path) -> Iterator[Path]:
    return (p for p in sorted(root.rglob("*")) if p.is_file())


def _digest_tree(root: Path) -> str:
    h = hashlib.sha256()
    for p in _files(root):
        h.update(str(p.relative_to(root)).encode() + b"\0" + digest_file(p).encode() + b"\0")
    return f"sha256:{h.hexdigest()}"

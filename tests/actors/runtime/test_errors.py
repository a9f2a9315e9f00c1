"""The runtime's exception hierarchy: one module, drawn in its docstring."""

from __future__ import annotations

import inspect
import re

from actors.pipeline_runner import artifacts, client
from actors.runtime import errors


def test_every_runtime_exception_is_drawn_in_the_hierarchy() -> None:
    """Each exception class of actors.runtime.errors appears in its module docstring's tree."""
    doc = errors.__doc__ or ""
    classes = [
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value)
        and issubclass(value, Exception)
        and value.__module__ == errors.__name__
    ]
    assert classes
    assert [name for name in classes if not re.search(rf"(^ *|── ){name}\b", doc, re.M)] == []


def test_artifact_corrupt_is_a_runtime_request_error_importable_where_it_was() -> None:
    """ArtifactCorrupt lives in actors.runtime.errors; the runner's modules re-export it."""
    assert artifacts.ArtifactCorrupt is errors.ArtifactCorrupt
    assert client.ArtifactCorrupt is errors.ArtifactCorrupt
    assert "ArtifactCorrupt" in errors.__all__
    assert issubclass(errors.ArtifactCorrupt, errors.RequestError)
    assert errors.ArtifactCorrupt("digest mismatch").to_reply().code == "internal"

"""The pipeline runner: executes pipeline runs step by step, locally or with Dagger."""

from __future__ import annotations

from actors.pipeline_runner.actor import PipelineRunner
from actors.pipeline_runner.config import Limits, RunnerConfig

__all__ = ["Limits", "PipelineRunner", "RunnerConfig"]

"""The status tracker: workflow state machine, persistence, progress, ETA and queries."""

from __future__ import annotations

from actors.status_tracker.actor import StatusTracker
from actors.status_tracker.config import TrackerConfig
from actors.status_tracker.index import WorkflowIndex
from actors.status_tracker.state import Applied, Outcome, apply, fold

__all__ = ["Applied", "Outcome", "StatusTracker", "TrackerConfig", "WorkflowIndex", "apply", "fold"]

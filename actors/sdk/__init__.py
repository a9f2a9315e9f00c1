"""The agent SDK: join a troupe, offer capabilities, take tasks, talk to other agents."""

from __future__ import annotations

from actors.sdk.agent import Agent
from actors.sdk.messages import Incoming, MessageHandler, Task, TaskHandler

__all__ = ["Agent", "Incoming", "MessageHandler", "Task", "TaskHandler"]

"""The shared behaviour suite, run against each actor of the roster and an SDK agent.

An actor module that does not import fails these tests; it is never skipped.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from actors.roster import ACTORS, load_actor
from actors.runtime import Actor
from actors.sdk import Agent
from tests.actors.behaviour import ActorBehaviour

AGENT = "sdk-agent"
"""Parameter naming an SDK agent next to the roster's actors."""

SUBJECTS = sorted([*ACTORS, AGENT])


def actor_factory_of(name: str) -> Callable[[], Actor]:
    """Return a callable making a fresh actor ``name`` (the roster's, or an SDK agent)."""
    if name == AGENT:
        return lambda: Agent("behaviour-1", capabilities=["probe"], capacity=8, interval=0.5)
    return load_actor(name)


class TestEveryActorBehaviour(ActorBehaviour):
    """Each actor in actors.roster, and an SDK agent, passes the shared suite."""

    @pytest.fixture(params=SUBJECTS)
    def actor_factory(self, request: pytest.FixtureRequest) -> Callable[[], Actor]:
        """The roster's actor classes and an SDK agent, one per parameter."""
        return actor_factory_of(request.param)

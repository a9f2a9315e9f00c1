"""The shared behaviour suite, run against each of the five actors in the roster."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from actors.roster import ACTORS, load_actor
from actors.runtime import Actor
from tests.actors.behaviour import ActorBehaviour


def load_or_skip(name: str) -> type[Actor]:
    """Return the actor class ``name``, or skip the test while its module does not import."""
    try:
        return load_actor(name)
    except ImportError as exc:
        pytest.skip(f"actor {name} does not import yet: {exc}")


class TestEveryActorBehaviour(ActorBehaviour):
    """Each actor in actors.roster passes the shared suite."""

    @pytest.fixture(params=sorted(ACTORS))
    def actor_factory(self, request: pytest.FixtureRequest) -> Callable[[], Actor]:
        """The roster's actor classes, one per parameter."""
        return load_or_skip(request.param)

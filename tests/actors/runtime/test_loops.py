"""The loop an actor process runs on: uvloop where the actor asks for it, asyncio otherwise."""

from __future__ import annotations

import asyncio
import sys

import pytest

from actors.gateway.actor import Gateway
from actors.roster import ACTORS, resolve_actor
from actors.runtime import loops


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_an_actor_runs_on_the_standard_loop_unless_it_asks() -> None:
    """Without a kind, or with ``asyncio``, ``run`` uses the standard loop."""
    assert loops.run(_loop_module()).startswith("asyncio")
    assert loops.run(_loop_module(), loop="asyncio").startswith("asyncio")


def test_uvloop_runs_the_coroutine_on_uvloop() -> None:
    """Asked for uvloop, the coroutine runs on a uvloop loop."""
    pytest.importorskip("uvloop", reason="uvloop has no build for this platform")
    assert loops.run(_loop_module(), loop="uvloop").startswith("uvloop")


def test_without_uvloop_installed_the_standard_loop_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A platform without uvloop still runs the actor, on the standard loop."""
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    assert loops.loop_factory("uvloop") is None
    assert loops.run(_loop_module(), loop="uvloop").startswith("asyncio")


def test_every_built_in_actor_but_the_runner_asks_for_uvloop() -> None:
    """The pipeline runner starts steps as child processes: it keeps asyncio's subprocesses."""
    kinds = {name: resolve_actor(name).event_loop for name in ACTORS}
    assert kinds.pop("pipeline_runner") == "asyncio"
    assert Gateway.event_loop == "uvloop"
    assert set(kinds.values()) == {"uvloop"}

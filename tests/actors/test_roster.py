"""The roster: built-in actors by name, user actors by ``module:Class`` or ``file.py:Class``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from actors.roster import (
    ACTORS,
    ActorSpecError,
    build_roster,
    resolve_actor,
    user_actor_specs,
)
from actors.runtime.launcher import USER_ACTOR_ROLE, Member
from tests.actors.processes import REPO

NOTIFIER = "examples/actors/notifier.py:Notifier"


def test_builtin_names_resolve_to_their_classes() -> None:
    """``task_manager`` names the TaskManager class."""
    assert resolve_actor("task_manager").name == "task_manager"


def test_a_file_spec_resolves_to_the_actor_class(monkeypatch: pytest.MonkeyPatch) -> None:
    """``path/file.py:Class`` loads the file, relative to the current directory."""
    monkeypatch.chdir(REPO)
    assert resolve_actor(NOTIFIER).name == "notifier"


def test_a_module_spec_is_imported_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``package.module:Class`` is found in the current directory, like ``python -m``."""
    pkg = tmp_path / "myactors"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "hello.py").write_text(
        "from actors.runtime import Actor\n\nclass Hello(Actor):\n    name = 'hello'\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert resolve_actor("myactors.hello:Hello").name == "hello"


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("nonesuch", "not a built-in actor"),
        ("no_such_package.mod:Thing", "module 'no_such_package.mod' not found"),
        ("json:JSONDecoder", "not an actors.runtime.Actor subclass"),
        ("json:nothing_here", "has no attribute 'nothing_here'"),
        ("/no/such/file.py:Thing", "not found"),
        ("actors.runtime:Actor", "does not set the class attribute 'name'"),
    ],
)
def test_a_bad_spec_is_a_clear_error(spec: str, reason: str) -> None:
    """Each way a spec can be wrong is named in the error, with the spec."""
    with pytest.raises(ActorSpecError, match=reason) as caught:
        resolve_actor(spec)
    assert spec in str(caught.value)


def test_a_module_that_raises_on_import_is_a_clear_error(tmp_path: Path) -> None:
    """An exception while importing the user's module becomes an ActorSpecError."""
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ActorSpecError, match="RuntimeError: boom"):
        resolve_actor(f"{broken}:Anything")


def test_roster_adds_user_actors_with_the_actor_role(monkeypatch: pytest.MonkeyPatch) -> None:
    """The six, then each user actor under its name, an absolute spec and the actor role."""
    monkeypatch.chdir(REPO)
    members = build_roster([NOTIFIER])
    assert [m.name for m in members] == [*sorted(ACTORS), "notifier"]
    assert members[-1] == Member(
        name="notifier",
        spec=f"{REPO / 'examples/actors/notifier.py'}:Notifier",
        role=USER_ACTOR_ROLE,
    )


def test_two_actors_with_one_name_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A user actor may not take a name already in the troupe."""
    monkeypatch.chdir(REPO)
    with pytest.raises(ActorSpecError, match="already in the troupe"):
        build_roster([NOTIFIER, NOTIFIER])


def test_troupe_actors_lists_specs_separated_by_commas_or_spaces() -> None:
    """``TROUPE_ACTORS`` is the config form of ``--actor``."""
    env = {"TROUPE_ACTORS": "a.b:C, d.py:E  f:G"}
    assert user_actor_specs(env) == ["a.b:C", "d.py:E", "f:G"]
    assert user_actor_specs({}) == []


def test_troupe_run_with_a_bad_spec_exits_2_naming_it() -> None:
    """``troupe run`` accepts specs; a bad one fails at once with the reason."""
    run = subprocess.run(
        [sys.executable, "-m", "actors", "run", "json:JSONDecoder"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2
    assert "not an actors.runtime.Actor subclass" in run.stderr

"""Flag evaluation: rollout shares, stability, targeting (pure, property-tested)."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.feature_flags.state import applies, share, value
from protocols.flags import Flag

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=40)
percent = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)


def test_thirty_percent_routes_thirty_percent_of_a_thousand_workflows() -> None:
    """A 30 % rollout applies to 30 % +- 5 % of 1,000 workflow ids."""
    flag = Flag(name="runner.backend", rollout=30.0, on="dagger", off="local")
    chosen = [value(flag, f"wf-{i:04d}") for i in range(1000)]
    assert 250 <= chosen.count("dagger") <= 350
    assert chosen.count("dagger") + chosen.count("local") == 1000


def test_zero_is_the_rollback() -> None:
    """At 0 % no workflow gets the flag's value."""
    flag = Flag(name="runner.backend", rollout=0.0, on="dagger", off="local")
    assert {value(flag, f"wf-{i}") for i in range(1000)} == {"local"}


@given(ids, ids)
def test_share_is_stable_and_in_range(flag_name: str, workflow_id: str) -> None:
    """A workflow's position is the same on every call and lies in [0, 100)."""
    first = share(flag_name, workflow_id)
    assert first == share(flag_name, workflow_id)
    assert 0.0 <= first < 100.0


@given(ids, percent, percent)
def test_raising_the_rollout_only_adds_workflows(workflow_id: str, low: float, high: float) -> None:
    """A workflow that has the flag at p keeps it at any q >= p."""
    low, high = min(low, high), max(low, high)
    if applies(Flag(name="f", rollout=low), workflow_id):
        assert applies(Flag(name="f", rollout=high), workflow_id)


@given(ids, percent)
def test_a_disabled_flag_never_applies(workflow_id: str, rollout: float) -> None:
    """enabled=False gives the off value whatever the rollout."""
    flag = Flag(name="f", enabled=False, rollout=rollout, on="a", off="b")
    assert value(flag, workflow_id) == "b"


@given(ids)
def test_a_full_rollout_applies_to_every_workflow(workflow_id: str) -> None:
    """At 100 % every matching workflow gets the on value."""
    assert value(Flag(name="f", on="a", off="b"), workflow_id) == "a"


@given(ids)
def test_template_targeting_limits_the_flag_to_its_templates(workflow_id: str) -> None:
    """A flag targeted at templates applies only to workflows of those templates."""
    flag = Flag(name="f", templates=["build"])
    assert applies(flag, workflow_id, template="build")
    assert not applies(flag, workflow_id, template="deploy")
    assert not applies(flag, workflow_id)


@given(ids)
def test_label_targeting_needs_every_label(workflow_id: str) -> None:
    """A flag targeted at labels applies only where every label matches."""
    flag = Flag(name="f", labels={"team": "data", "tier": "1"})
    assert applies(flag, workflow_id, labels={"team": "data", "tier": "1", "x": "y"})
    assert not applies(flag, workflow_id, labels={"team": "data"})
    assert not applies(flag, workflow_id, labels={"team": "web", "tier": "1"})


def test_different_flags_split_workflows_independently() -> None:
    """Two flags at 50 % do not pick the same half."""
    a = {i for i in range(1000) if applies(Flag(name="a", rollout=50.0), f"wf-{i}")}
    b = {i for i in range(1000) if applies(Flag(name="b", rollout=50.0), f"wf-{i}")}
    assert 150 <= len(a & b) <= 350


@pytest.mark.parametrize("name", ["", "Upper", "has space", "x" * 65, ".starts-with-dot"])
def test_flag_names_are_checked(name: str) -> None:
    """A flag name must be a short lower-case key."""
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(
            msgspec.json.encode(Flag(name="ok")).replace(b'"ok"', msgspec.json.encode(name)),
            type=Flag,
        )

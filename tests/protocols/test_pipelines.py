"""Pipeline definitions survive TOML, YAML and JSON files, and the wire, unchanged."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.runtime.codec import Codec, encode
from actors.task_manager.definitions import (
    FORMATS,
    Format,
    dump_pipeline,
    parse_document,
    to_pipeline,
)
from protocols import headers as h
from protocols.pipelines import ParamSpec, PipelineRun, PipelineSpec, StepSpec

# Text a definition may hold: printable characters of several scripts, quotes,
# backslashes, newlines and tabs (the formats escape them differently).
_text = st.text(
    st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs"), include_characters="\n\t"),
    max_size=30,
)
_names = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,15}\Z")
_numbers = st.floats(min_value=0.001, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def _params(draw: st.DrawFn) -> ParamSpec:
    kind = draw(st.sampled_from(["str", "int", "float", "bool"]))
    default = draw(
        st.none()
        | {
            "str": _text,
            "int": st.integers(-(2**40), 2**40),
            "float": _numbers,
            "bool": st.booleans(),
        }[kind]
    )
    return ParamSpec(name=draw(_names), type=kind, default=default, description=draw(_text))


@st.composite
def _steps(draw: st.DrawFn) -> StepSpec:
    return StepSpec(
        name=draw(_names),
        run=draw(_text | st.lists(_text, min_size=1, max_size=4)),
        image=draw(st.none() | _text),
        env=draw(st.dictionaries(st.from_regex(r"\A[A-Z_][A-Z0-9_]{0,8}\Z"), _text, max_size=3)),
        needs=draw(st.lists(_names, max_size=3)),
        inputs=draw(st.lists(_text, max_size=2)),
        outputs=draw(st.lists(_text, max_size=2)),
        timeout=draw(st.none() | _numbers),
        retry=draw(st.none() | _names),
        backend=draw(st.none() | st.sampled_from(["auto", "local", "dagger"])),
    )


pipelines = st.builds(
    PipelineSpec,
    name=_names,
    steps=st.lists(_steps(), min_size=1, max_size=4),
    description=_text,
    params=st.lists(_params(), max_size=3),
    backend=st.sampled_from(["auto", "local", "dagger"]),
    timeout=st.none() | _numbers,
)


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=60, deadline=None)
@given(spec=pipelines)
def test_definition_round_trips_through_each_format(fmt: Format, spec: PipelineSpec) -> None:
    """dump then parse gives back an equal pipeline, in TOML, YAML and JSON."""
    assert to_pipeline(parse_document(dump_pipeline(spec, fmt), fmt)) == spec


@settings(max_examples=40, deadline=None)
@given(spec=pipelines, stages=st.lists(st.lists(_names, min_size=1), max_size=3))
def test_pipeline_run_round_trips_on_the_wire(spec: PipelineSpec, stages: list[list[str]]) -> None:
    """A PipelineRun decodes to itself from MessagePack and from JSON."""
    run = PipelineRun(workflow_id="wf-1", pipeline=spec, order=stages, template="t", deadline=12.5)
    for encoding in (h.MSGPACK, h.JSON):
        assert Codec.of(PipelineRun).decode(encode(run, encoding), encoding) == run


def test_step_spec_rejects_a_bad_name_and_unknown_fields() -> None:
    """Step names follow NAME_PATTERN and unknown keys are refused."""
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"name": "no spaces", "run": "x"}, StepSpec)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"name": "a", "run": "x", "command": "y"}, StepSpec)


def test_step_key_is_stable_per_workflow_and_step_and_distinct_from_the_run_lease() -> None:
    """Every attempt of a step shares one key; a run's lease key never collides with it."""
    from protocols.pipelines import run_lease_key, step_key

    assert step_key("wf-1", "build") == step_key("wf-1", "build") == "wf-1.build"
    assert step_key("wf-1", "build") != step_key("wf-1", "test")
    assert run_lease_key("wf-1") == "wf-1"
    assert "." not in run_lease_key("wf-1")


def test_step_lease_and_attempt_fields_round_trip() -> None:
    """A lease, and a result's attempt and its reason, survive the wire."""
    from protocols.pipelines import StepLease, StepResult

    lease = StepLease(workflow_id="wf", runner="r-1", token=7, step="s", attempt=2)
    assert msgspec.msgpack.decode(encode(lease), type=StepLease) == lease
    result = StepResult(name="s", state="succeeded", attempt=2, attempt_reason="runner_lost")
    assert msgspec.msgpack.decode(encode(result), type=StepResult) == result

"""Pure run logic: step-output lines, tails, cache keys, outcomes and scheduling."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from actors.pipeline_runner.state import (
    Schedule,
    Tail,
    cache_key,
    command_argv,
    parse_line,
)
from protocols.pipelines import PipelineSpec, StepSpec

names = st.text("abcdefgh", min_size=1, max_size=4)


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6))
def test_progress_lines_are_clamped_to_percent(value: float) -> None:
    """``::progress N`` reports N clamped to 0-100."""
    event = parse_line(f"::progress {value}")
    assert event is not None
    assert event.percent == min(100.0, max(0.0, value))


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=4))
def test_message_lines_carry_their_json_object(obj: dict[str, object]) -> None:
    """``::message <json object>`` carries the object."""
    event = parse_line("::message " + json.dumps(obj))
    assert event is not None
    assert event.message == obj


@given(st.text(max_size=30))
def test_ordinary_output_is_not_a_report(text: str) -> None:
    """Lines without the ``::`` prefixes report nothing; malformed ones neither."""
    if not text.strip().startswith("::"):
        assert parse_line(text) is None
    assert parse_line("::progress nope") is None
    assert parse_line("::message [1, 2]") is None
    assert parse_line("::progress nan") is None


@given(st.lists(st.text(alphabet="ab", max_size=3), max_size=20), st.integers(1, 5))
def test_tail_keeps_the_last_lines(lines: list[str], keep: int) -> None:
    """A tail holds the last ``keep`` lines."""
    tail = Tail(keep)
    for line in lines:
        tail.add(line)
    assert tail.text() == "\n".join(lines[-keep:])


@given(
    st.dictionaries(names, names, max_size=4),
    st.dictionaries(names, names, max_size=4),
)
def test_cache_key_ignores_mapping_order_but_not_content(
    env: dict[str, str], inputs: dict[str, str]
) -> None:
    """The key is a function of the content, not of dict order."""
    key = cache_key(backend="local", image=None, run="x", env=env, inputs=inputs, outputs=["o"])
    reordered = cache_key(
        backend="local",
        image=None,
        run="x",
        env=dict(reversed(env.items())),
        inputs=dict(reversed(inputs.items())),
        outputs=["o"],
    )
    assert key == reordered
    assert key != cache_key(
        backend="dagger", image=None, run="x", env=env, inputs=inputs, outputs=["o"]
    )
    assert key != cache_key(
        backend="local", image=None, run="y", env=env, inputs=inputs, outputs=["o"]
    )
    assert key != cache_key(
        backend="local", image=None, run="x", env={**env, "Z": "1"}, inputs=inputs, outputs=["o"]
    )


def test_shell_strings_run_through_sh_and_argv_lists_as_given() -> None:
    """A string command runs via /bin/sh -c; a list is the argv."""
    assert command_argv("echo hi") == ["/bin/sh", "-c", "echo hi"]
    assert command_argv(["echo", "hi"]) == ["echo", "hi"]


@st.composite
def dags(draw: st.DrawFn) -> PipelineSpec:
    """Random acyclic pipelines: each step may need earlier ones."""
    count = draw(st.integers(1, 7))
    steps = []
    for i in range(count):
        needs = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=3)) if i else []
        steps.append(StepSpec(name=f"s{i}", run="true", needs=[f"s{n}" for n in needs]))
    return PipelineSpec(name="p", steps=steps)


@given(dags(), st.data())
def test_schedule_never_starts_a_step_before_its_needs_succeed(
    spec: PipelineSpec, data: st.DataObject
) -> None:
    """Driving a schedule with random outcomes: needs respected, every step ends once."""
    schedule = Schedule(spec)
    order: list[str] = []
    while not schedule.complete():
        for name in schedule.blocked():
            schedule.finish(name, "skipped")
        ready = schedule.ready()
        if not ready:
            assert schedule.complete()
            break
        name = data.draw(st.sampled_from(ready))
        schedule.start(name)
        assert all(schedule.done.get(n) == "succeeded" for n in schedule.step(name).needs)
        outcome = data.draw(st.sampled_from(["succeeded", "succeeded", "failed"]))
        schedule.finish(name, outcome)
        order.append(name)
    assert len(schedule.done) == len(spec.steps)
    for step in spec.steps:
        if schedule.done[step.name] == "skipped":
            assert any(schedule.done[n] != "succeeded" for n in step.needs)


def test_schedule_offers_ready_steps_in_planned_order_and_finds_producers() -> None:
    """Stage order is kept and producers are the transitive needs, nearest first."""
    spec = PipelineSpec(
        name="p",
        steps=[
            StepSpec(name="c", run="true", needs=["b"]),
            StepSpec(name="b", run="true", needs=["a"]),
            StepSpec(name="a", run="true"),
            StepSpec(name="z", run="true"),
        ],
    )
    schedule = Schedule(spec, [["z", "a"], ["b"], ["c"]])
    assert schedule.ready() == ["z", "a"]
    assert schedule.producers("c") == ["b", "a"]
    assert schedule.pending() == ["z", "a", "b", "c"]


def test_message_lines_with_malformed_json_are_ordinary_output() -> None:
    """``::message`` followed by text that is not JSON reports nothing."""
    assert parse_line("::message {not json") is None


def test_producers_lists_a_shared_producer_once_and_skips_unknown_names() -> None:
    """In a diamond the common producer appears once; a need naming no step is ignored."""
    spec = PipelineSpec(
        name="p",
        steps=[
            StepSpec(name="a", run="true"),
            StepSpec(name="b", run="true", needs=["a"]),
            StepSpec(name="c", run="true", needs=["a", "ghost"]),
            StepSpec(name="d", run="true", needs=["b", "c"]),
        ],
    )
    schedule = Schedule(spec)
    assert schedule.producers("d") == ["b", "c", "a"]
    assert schedule.producers("c") == ["a"]

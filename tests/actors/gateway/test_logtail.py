"""The gateway's tails of running steps: bounded per step and in steps, latest attempt only."""

from __future__ import annotations

from typing import Literal

from actors.gateway.logtail import LogTails
from protocols.pipelines import StepOutput


def _line(
    line: str,
    *,
    workflow: str = "w",
    step: str = "s",
    attempt: int = 1,
    stream: Literal["stdout", "stderr"] = "stdout",
    dropped: int = 0,
) -> StepOutput:
    return StepOutput(
        workflow_id=workflow,
        step=step,
        attempt=attempt,
        stream=stream,
        line=line,
        seq=1,
        at=0.0,
        dropped=dropped,
    )


def test_a_tail_keeps_each_streams_last_lines_and_counts_the_rest() -> None:
    """Past the bound the oldest lines go; they and the runner's drops are counted."""
    tails = LogTails(lines=2)
    for n in range(4):
        tails.add(_line(f"out{n}"))
    tails.add(_line("err", stream="stderr", dropped=3))
    tail = tails.tail("w", "s")
    assert tail is not None
    assert (tail.text("stdout"), tail.text("stderr")) == ("out2\nout3\n", "err\n")
    assert tail.dropped == 2 + 3


def test_a_later_attempt_starts_afresh_and_an_earlier_ones_lines_are_ignored() -> None:
    """Lines of attempt 2 replace attempt 1's; a late line of attempt 1 is not mixed in."""
    tails = LogTails()
    tails.add(_line("one"))
    tails.add(_line("two", attempt=2))
    tails.add(_line("late", attempt=1))
    tail = tails.tail("w", "s")
    assert tail is not None
    assert (tail.attempt, tail.text("stdout")) == (2, "two\n")


def test_the_least_recently_written_steps_are_forgotten_first() -> None:
    """With room for two steps, a third forgets the one written longest ago."""
    tails = LogTails(steps=2)
    tails.add(_line("a", step="a"))
    tails.add(_line("b", step="b"))
    tails.add(_line("a again", step="a"))
    tails.add(_line("c", step="c"))
    assert tails.tail("w", "b") is None
    assert tails.tail("w", "a") is not None
    assert tails.tail("w", "c") is not None
    assert tails.tail("other", "a") is None

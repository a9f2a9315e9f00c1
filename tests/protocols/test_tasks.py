"""The task manager's wire contract: task ids, exclusive sources, records, rejection codes."""

from __future__ import annotations

import typing

import msgspec
import pytest

from actors.runtime.codec import Codec, encode
from protocols import headers as h
from protocols.pipelines import PipelineSpec, StepSpec
from protocols.tasks import (
    REJECTION_CODES,
    CancelAccepted,
    CancelTask,
    RejectionCode,
    TaskRecord,
    TaskSubmitted,
    submit_msg_id,
)


def test_rejection_codes_list_every_code_once() -> None:
    """REJECTION_CODES and the RejectionCode literal agree."""
    assert set(REJECTION_CODES) == set(typing.get_args(RejectionCode))
    assert len(set(REJECTION_CODES)) == len(REJECTION_CODES)


def test_a_submission_is_deduplicated_by_its_task_id() -> None:
    """The Nats-Msg-Id of a submission is its task id, so re-sends store it once."""
    assert submit_msg_id("wf-1") == "wf-1"


@pytest.mark.parametrize("task_id", ["", "a b", "a.b", "x" * 129, "a/b", "a*"])
def test_task_id_must_be_a_safe_key_and_subject_token(task_id: str) -> None:
    """Ids with dots, spaces, wildcards or over 128 characters are refused."""
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"type": "troupe.tasks.v1.submit", "task_id": task_id}, TaskSubmitted)


@pytest.mark.parametrize(
    "message",
    [
        TaskSubmitted(task_id="t-1", template="hello", params={"who": "x", "n": 3, "b": True}),
        TaskSubmitted(
            task_id="t_2",
            pipeline=PipelineSpec(name="p", steps=[StepSpec(name="a", run=["echo", "hi"])]),
            requires="text.stats",
            labels={"team": "data"},
            submitted_at=1.5,
        ),
        CancelTask(workflow_id="t-1"),
        CancelAccepted(workflow_id="t-1"),
        TaskRecord(task_id="t-1", state="queued", accepted_at=3.0, sequence=7, template="hello"),
    ],
)
def test_task_messages_round_trip_in_both_encodings(message: object) -> None:
    """Each message decodes to itself from MessagePack and JSON."""
    for encoding in (h.MSGPACK, h.JSON):
        assert Codec.of(type(message)).decode(encode(message, encoding), encoding) == message


def test_param_values_keep_their_types_on_the_wire() -> None:
    """Booleans, integers, floats and text stay distinct after decoding."""
    task = TaskSubmitted(task_id="t", template="x", params={"a": True, "b": 1, "c": 1.5, "d": "1"})
    decoded = Codec.of(TaskSubmitted).decode(encode(task, h.JSON), h.JSON)
    assert [type(v) for v in decoded.params.values()] == [bool, int, float, str]

"""The breakers wire contract: key encodings, probe keys, message round trips."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import breakers as b

KV_KEY_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=./")


@given(st.text(min_size=1, max_size=256))
def test_breaker_kv_key_round_trips_any_key_with_kv_safe_characters(key: str) -> None:
    """Any breaker key encodes to a valid KV key and decodes back."""
    encoded = b.breaker_kv_key(key)
    assert set(encoded) <= KV_KEY_CHARS
    assert b.breaker_key_from_kv(encoded) == key
    assert not b.is_probe_kv_key(encoded)


def test_probe_keys_are_distinct_per_epoch_and_slot_and_recognisable() -> None:
    """Probe claim keys never collide with status keys or with each other."""
    keys = {b.probe_kv_key("image:alpine", e, s) for e in range(3) for s in range(3)}
    assert len(keys) == 9
    assert all(b.is_probe_kv_key(k) for k in keys)
    assert b.probe_kv_key("x", 2, 1).endswith(".2.1")


def test_probe_keys_parse_back_to_breaker_epoch_and_slot() -> None:
    """parse_probe_kv_key inverts probe_kv_key and refuses other keys."""
    assert b.parse_probe_kv_key(b.probe_kv_key("image:alpine", 3, 1)) == (
        b.breaker_kv_key("image:alpine"),
        3,
        1,
    )
    with pytest.raises(ValueError, match="not a probe claim"):
        b.parse_probe_kv_key("other.a.1.2")
    with pytest.raises(ValueError, match="not a probe claim"):
        b.parse_probe_kv_key(b.breaker_kv_key("image:alpine"))


def test_event_subjects_fall_under_the_events_wildcard() -> None:
    """Every state's event subject matches EVENTS_SUBJECTS."""
    prefix = b.EVENTS_SUBJECTS.removesuffix(">")
    for state in ("closed", "open", "half_open", "forced_open", "disabled"):
        assert b.event_subject(state).startswith(prefix)  # type: ignore[arg-type]


def test_messages_round_trip_in_msgpack_and_json() -> None:
    """Every breaker message decodes to itself in both encodings."""
    status = b.BreakerStatus(
        key="k",
        state="open",
        since=1.0,
        open_until=2.0,
        calls=3,
        half_open_permits=2,
        opened_count=1,
        open_streak=1,
    )
    messages = [
        b.OutcomeReport(
            key="k", ok=False, duration_s=0.5, at=1.0, error_class="timeout", report_id="r1"
        ),
        status,
        b.BreakerTransitionEvent(key="k", from_state="closed", to_state="open", at=1.0),
        b.BreakerControl(key="k", action="force_open"),
        b.ListBreakers(prefix="image:"),
        b.BreakerList(items=[status]),
        b.BreakerSnapshot(
            status=status, window=[b.WindowEntry(at=1.0, failed=True, slow=False)], applied=[4, 5]
        ),
    ]
    for message in messages:
        kind = type(message)
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(message), type=kind) == message
        assert msgspec.json.decode(msgspec.json.encode(message), type=kind) == message


def test_outcome_report_rejects_negative_durations_and_empty_keys() -> None:
    """Validation happens at decode time."""
    for bad in (
        {"key": "", "ok": True, "duration_s": 0, "at": 0},
        {"key": "k", "ok": True, "duration_s": -1, "at": 0},
    ):
        raw = msgspec.json.encode({"type": "troupe.breakers.v1.outcome", **bad})
        try:
            msgspec.json.decode(raw, type=b.OutcomeReport)
        except msgspec.ValidationError:
            continue
        raise AssertionError(f"accepted {bad}")
    assert b.CONTROL_ACTIONS == ("force_open", "disable", "reset")


_report_ids = st.lists(
    st.text(min_size=1, max_size=12), min_size=1, max_size=b.MAX_BATCH_REPORTS, unique=True
)


def _report(report_id: str, key: str = "image:a") -> b.OutcomeReport:
    return b.OutcomeReport(key=key, ok=True, duration_s=0.1, at=1.0, report_id=report_id)


@given(_report_ids)
def test_outcomes_message_carries_every_report_in_order_under_an_id_of_its_reports(
    ids: list[str],
) -> None:
    """One report travels as itself under its id; several as one batch whose id they decide."""
    reports = [_report(i) for i in ids]
    message, msg_id = b.outcomes_message(reports)
    if len(reports) == 1:
        assert (message, msg_id) == (reports[0], ids[0])
    else:
        assert isinstance(message, b.OutcomeReports)
        assert message.reports == reports
        assert msg_id == b.outcomes_message([_report(i) for i in ids])[1]  # a re-send: same id
        assert msg_id not in ids
    for codec in (msgspec.msgpack, msgspec.json):
        assert codec.decode(codec.encode(message), type=b.Outcomes) == message


@given(_report_ids, _report_ids)
def test_batches_of_different_reports_get_different_ids(
    first: list[str], second: list[str]
) -> None:
    """Two batches share a de-duplication id only when they hold the same reports in order."""
    one = b.outcomes_message([_report(i) for i in first])[1]
    other = b.outcomes_message([_report(i) for i in second])[1]
    assert (one == other) == (first == second)


def test_outcomes_message_refuses_no_reports_and_more_than_a_batch_holds() -> None:
    """A message carries 1 to MAX_BATCH_REPORTS reports; the decoder enforces the same bounds."""
    with pytest.raises(ValueError, match="1 to 256"):
        b.outcomes_message([])
    too_many = [_report(str(i)) for i in range(b.MAX_BATCH_REPORTS + 1)]
    with pytest.raises(ValueError, match="257 reports"):
        b.outcomes_message(too_many)
    for reports in ([], too_many):
        raw = msgspec.msgpack.encode(
            {
                "type": "troupe.breakers.v1.outcomes",
                "reports": [msgspec.to_builtins(r) for r in reports],
            }
        )
        with pytest.raises(msgspec.ValidationError):
            msgspec.msgpack.decode(raw, type=b.Outcomes)

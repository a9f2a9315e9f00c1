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

"""The wire contract: every message round-trips, is versioned, and has one home."""

from __future__ import annotations

import re
from typing import Any, Union

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors import topology
from actors.cli.schema import schema_document
from actors.runtime.topology import BucketSpec, ObjectStoreSpec, StreamSpec
from protocols import agents, breakers, errors, flags, pipelines, schedules, status, tasks
from protocols import headers as h
from protocols.base import Message, type_id
from protocols.catalog import CATALOG
from tests.protocols.wire_strategies import messages

CONCERN_MODULES = (agents, breakers, errors, flags, pipelines, schedules, status, tasks)
MESSAGE_TYPES = sorted({route.message for route in CATALOG}, key=lambda m: m.__name__)
TAG = re.compile(
    r"^troupe\.(?P<concern>[a-z]+)\.v(?P<version>[1-9][0-9]*)\.(?P<name>[a-z][a-z_]*)$"
)


@pytest.mark.parametrize("message_type", MESSAGE_TYPES, ids=lambda m: m.__name__)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_message_round_trips_through_msgpack_and_json(
    message_type: type[Message], data: st.DataObject
) -> None:
    """encode -> decode gives back an equal message, in both encodings."""
    message = data.draw(messages(message_type))
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(message), type=message_type) == message
    assert msgspec.json.decode(msgspec.json.encode(message), type=message_type) == message


@pytest.mark.parametrize("message_type", MESSAGE_TYPES, ids=lambda m: m.__name__)
def test_every_message_has_a_versioned_tag_of_its_own_concern(message_type: type[Message]) -> None:
    """Tags read troupe.<concern>.v<N>.<name>, the concern being the defining module."""
    match = TAG.match(type_id(message_type))
    assert match, type_id(message_type)
    assert message_type.__module__ == f"protocols.{match['concern']}"


def test_message_tags_are_unique_so_any_message_decodes_from_one_union() -> None:
    """No two messages share a tag; a union of all of them is a valid decoder."""
    tags = [type_id(m) for m in MESSAGE_TYPES]
    assert len(tags) == len(set(tags))
    union: Any = Union[tuple(MESSAGE_TYPES)]  # noqa: UP007 - built at run time
    decoder = msgspec.msgpack.Decoder(union)
    sample = errors.ErrorReply(code="not_found", message="x")
    assert decoder.decode(msgspec.msgpack.encode(sample)) == sample


@pytest.mark.parametrize("message_type", MESSAGE_TYPES, ids=lambda m: m.__name__)
def test_every_message_is_frozen_and_keyword_only(message_type: type[Message]) -> None:
    """Messages are immutable values built by keyword."""
    config = message_type.__struct_config__
    assert config.frozen
    assert issubclass(message_type, Message)


def test_every_message_of_every_protocol_module_is_in_the_catalog() -> None:
    """No message type is left out of the catalog (and so out of troupe schema)."""
    declared = {
        obj
        for module in CONCERN_MODULES
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, Message)
        and obj is not Message
        and obj.__module__ == module.__name__
    }
    assert declared <= set(MESSAGE_TYPES), sorted(m.__name__ for m in declared - set(MESSAGE_TYPES))


def _names(suffixes: tuple[str, ...]) -> list[tuple[str, str]]:
    return [
        (f"{module.__name__}.{name}", value)
        for module in CONCERN_MODULES
        for name, value in vars(module).items()
        if name.endswith(suffixes) and isinstance(value, str)
    ]


def test_subjects_streams_and_buckets_are_each_defined_once() -> None:
    """No two protocol constants carry the same subject, stream or bucket name."""
    constants = _names(("_SUBJECT", "_SUBJECTS", "_STREAM", "_BUCKET"))
    values = [value for _, value in constants]
    duplicates = {v for v in values if values.count(v) > 1}
    assert not duplicates, [c for c in constants if c[1] in duplicates]


def _topology() -> list[StreamSpec | BucketSpec | ObjectStoreSpec]:
    return [
        v
        for v in vars(topology).values()
        if isinstance(v, StreamSpec | BucketSpec | ObjectStoreSpec)
    ]


def test_topology_declares_each_stream_and_bucket_once_under_its_protocol_name() -> None:
    """actors/topology.py uses the protocol names, each once, and streams never overlap."""
    entries = _topology()
    names = [e.name for e in entries]
    assert len(names) == len(set(names))
    protocol_names = {value for _, value in _names(("_STREAM", "_BUCKET"))}
    assert set(names) <= protocol_names
    subjects = [s for e in entries if isinstance(e, StreamSpec) for s in e.subjects]
    assert len(subjects) == len(set(subjects))


def _captures(pattern: str, subject: str) -> bool:
    """Whether the NATS subject ``pattern`` matches ``subject`` (itself maybe a pattern)."""
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(p) == len(s)


@pytest.mark.parametrize("route", [r for r in CATALOG if r.stream], ids=lambda r: r.subject)
def test_every_stream_route_is_captured_by_its_declared_stream(route: Any) -> None:
    """A catalog route on a stream names a stream in the topology capturing its subject."""
    (stream,) = [e for e in _topology() if isinstance(e, StreamSpec) and e.name == route.stream]
    assert any(_captures(pattern, route.subject) for pattern in stream.subjects)


def test_schema_lists_every_message_with_its_subject_and_json_schema() -> None:
    """troupe schema covers the whole catalog: type id, subject and schema of each."""
    document = schema_document()
    listed = {(m["type"], m["subject"]) for m in document["messages"]}
    assert listed == {(type_id(r.message), r.subject) for r in CATALOG}
    for entry in document["messages"]:
        assert "$defs" in entry["schema"] or "properties" in entry["schema"]


REQUEST_ROUTES = [r for r in CATALOG if r.pattern == "request"]


@pytest.mark.parametrize("route", REQUEST_ROUTES, ids=lambda r: r.subject)
def test_every_request_names_its_reply_type_and_routes_it(route: Any) -> None:
    """A request route names a reply type, listed as a reply on the same subject."""
    assert route.reply is not None
    assert any(
        r.pattern == "reply" and r.message is route.reply and r.subject == route.subject
        for r in CATALOG
    )


def test_schema_names_the_reply_of_every_request_subject() -> None:
    """troupe schema's ``requests`` covers every request subject, each with a reply type."""
    document = schema_document()
    listed = {entry["subject"]: entry["reply"] for entry in document["requests"]}
    assert set(listed) == {r.subject for r in REQUEST_ROUTES}
    assert all(listed.values())


def test_schema_documents_every_kv_bucket_with_key_format_and_encoding() -> None:
    """Each KV bucket of the topology has a stored value with a key format and encoding."""
    stored = {entry["bucket"]: entry for entry in schema_document()["stored"]}
    buckets = {e.name for e in _topology() if isinstance(e, BucketSpec)}
    assert buckets <= set(stored)
    for entry in stored.values():
        assert entry["key"]
        assert entry["encoding"] in {h.JSON, h.MSGPACK}


def _required(entry: dict[str, Any]) -> list[str]:
    schema = entry["schema"]
    top = schema["$ref"].rsplit("/", 1)[-1]
    required: list[str] = schema["$defs"][top].get("required", [])
    return required


def test_schema_requires_type_only_where_several_messages_share_a_subject() -> None:
    """``type`` is optional for a message travelling alone, required on shared subjects."""
    for entry in schema_document()["messages"]:
        assert ("type" in _required(entry)) == entry["type_required"], entry["name"]
    shared = {e["name"] for e in schema_document()["messages"] if e["type_required"]}
    assert shared == {
        "WorkflowTransition",
        "StepTransition",
        "StepProgress",
        "OutcomeReport",
        "OutcomeReports",
    }


def test_nested_messages_never_require_type() -> None:
    """An AgentInfo inside AgentJoined (or a view inside a list) needs no ``type``."""
    for entry in schema_document()["messages"]:
        top = entry["schema"]["$ref"].rsplit("/", 1)[-1]
        for name, definition in entry["schema"]["$defs"].items():
            if name != top:
                assert "type" not in definition.get("required", []), (entry["name"], name)


def _is_tag(key: str, value: Any) -> bool:
    """Whether ``key: value`` is a message's type tag (not a field named ``type``)."""
    return key == "type" and isinstance(value, str) and TAG.match(value) is not None


@pytest.mark.parametrize("message_type", MESSAGE_TYPES, ids=lambda m: m.__name__)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_message_without_its_type_decodes_where_the_schema_allows_it(
    message_type: type[Message], data: st.DataObject
) -> None:
    """What the schema marks optional, troupe accepts: ``type`` stripped at every level."""
    message = data.draw(messages(message_type))

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not _is_tag(k, v)}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    stripped = strip(msgspec.to_builtins(message))
    assert msgspec.json.decode(msgspec.json.encode(stripped), type=message_type) == message


def test_events_a_client_can_subscribe_to_are_published_as_json() -> None:
    """Workflow updates, agent and breaker events are JSON, so a JSON-only client can follow."""
    events = {r.subject: r.encoding for r in CATALOG if r.pattern == "event"}
    for subject in (
        status.UPDATES_SUBJECTS,
        agents.JOINED_SUBJECT,
        agents.LEFT_SUBJECT,
        breakers.EVENTS_SUBJECTS,
    ):
        assert events[subject] == h.JSON

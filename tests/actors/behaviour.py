"""Behaviour every actor must have, written once and reused by each actor's tests.

Subclass :class:`ActorBehaviour` as ``TestXxxBehaviour`` and define the
``actor_factory`` fixture (a callable returning a fresh actor)::

    class TestStatusTrackerBehaviour(ActorBehaviour):
        @pytest.fixture
        def actor_factory(self) -> Callable[[], Actor]:
            return StatusTracker

The suite runs the actor in-process on the ``bus`` fixture's real server and
checks: a malformed request gets a typed ``bad_request`` reply in the
request's own encoding; a malformed stream message is dead-lettered with a
reason; ``$SRV.PING``, ``$SRV.INFO`` and ``$SRV.STATS`` answer and list every
handler; a request handler continues the caller's trace; and junk on every
subject leaves the actor running. The suite reads the handlers from the
running actor, so handlers added at run time (``add_endpoint``,
``add_consumer``, ``add_listener``, ``add_watch``) are covered like declared
ones. The class-level subject helpers and junk generators are also used by
the fuzz test.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from actors.runtime import Actor, Bus, ConsumerSpec, EndpointSpec, ListenerSpec
from actors.runtime.consumer import ConsumerRuntime
from actors.runtime.handler_host import Runtime
from actors.runtime.handlers import handler_specs
from actors.runtime.subscriptions import EndpointRuntime, ListenerRuntime
from actors.runtime.testing import capture_spans, eventually
from actors.runtime.watch import WatchRuntime
from protocols import headers as h
from protocols.base import type_id
from protocols.catalog import CATALOG
from protocols.errors import DEAD_LETTER_STREAM, ErrorReply, dead_letter_subject

__all__ = [
    "ActorBehaviour",
    "concrete",
    "consumer_specs",
    "event_subjects",
    "junk_bytes",
    "live_consumers",
    "live_requests",
    "live_subjects",
    "ping",
    "request_subjects",
    "stream_subjects",
    "wrong_documents",
]

JSON_HEADERS = {h.CONTENT_TYPE: h.JSON}


# -- what an actor listens on ---------------------------------------------------------


def request_subjects(actor_class: type[Actor]) -> list[str]:
    """Subjects the actor answers requests on."""
    return [
        s.options.subject for s in handler_specs(actor_class) if isinstance(s.options, EndpointSpec)
    ]


def consumer_specs(actor_class: type[Actor]) -> list[ConsumerSpec]:
    """The actor's durable stream consumers."""
    return [s.options for s in handler_specs(actor_class) if isinstance(s.options, ConsumerSpec)]


def stream_subjects(actor_class: type[Actor]) -> list[str]:
    """Concrete subjects that reach the actor's stream consumers."""
    return [concrete(c.filter_subject or c.stream.subjects[0]) for c in consumer_specs(actor_class)]


def event_subjects(actor_class: type[Actor]) -> list[str]:
    """Concrete subjects of the actor's core-NATS listeners."""
    return [
        concrete(s.options.subject)
        for s in handler_specs(actor_class)
        if isinstance(s.options, ListenerSpec)
    ]


def live_requests(actor: Actor) -> list[str]:
    """Subjects a running actor answers requests on (declared or added)."""
    return [r.spec.subject for r in actor.handlers if isinstance(r, EndpointRuntime)]


def live_consumers(actor: Actor) -> list[ConsumerSpec]:
    """A running actor's durable stream consumers (declared or added)."""
    return [r.spec for r in actor.handlers if isinstance(r, ConsumerRuntime)]


def live_subjects(actor: Actor) -> list[str]:
    """Concrete subjects reaching each request, stream and event handler of a running actor."""
    subjects = live_requests(actor)
    subjects += [concrete(c.filter_subject or c.stream.subjects[0]) for c in live_consumers(actor)]
    subjects += [concrete(r.spec.subject) for r in actor.handlers if isinstance(r, ListenerRuntime)]
    return subjects


def _subject_of(runtime: Runtime) -> str:
    if isinstance(runtime, ConsumerRuntime | WatchRuntime):
        return runtime.subject
    return runtime.spec.subject


def concrete(subject: str) -> str:
    """A subject that ``subject`` (maybe a wildcard pattern) matches."""
    return subject.replace(">", "fuzz").replace("*", "fuzz")


# -- junk -----------------------------------------------------------------------------------


def junk_bytes(rng: random.Random, count: int) -> list[bytes]:
    """``count`` random byte strings, some starting like MessagePack or JSON documents."""
    starts = [b"", b"\x81", b"\x82\xa4type", b"\xde\xff\xff", b"{", b"[", b'{"type":']
    return [rng.choice(starts) + rng.randbytes(rng.randint(0, 200)) for _ in range(count)]


def _wrong_value(rng: random.Random, depth: int = 0) -> Any:
    choices: list[Callable[[], Any]] = [
        lambda: None,
        lambda: rng.choice([True, False]),
        lambda: rng.randint(-(2**63), 2**64 - 1),
        lambda: rng.random() * 10 ** rng.randint(-5, 300),
        lambda: "x" * rng.randint(0, 300),
        lambda: "\u0000\ud7ff\U0001f600"[: rng.randint(0, 3)],
        lambda: "../../etc/passwd",
        lambda: "troupe.*.>",
    ]
    if depth < 3:
        choices += [
            lambda: [_wrong_value(rng, depth + 1) for _ in range(rng.randint(0, 4))],
            lambda: {
                rng.choice(
                    ["type", "workflow_id", "task_id", "state", "steps", "x", ""]
                ): _wrong_value(rng, depth + 1)
                for _ in range(rng.randint(0, 4))
            },
        ]
    return rng.choice(choices)()


def wrong_documents(rng: random.Random, count: int) -> list[Any]:
    """``count`` well-formed documents of the wrong structure: wrong types, missing or
    extra fields, real type tags with nonsense bodies, scalars and arrays."""
    tags = [type_id(route.message) for route in CATALOG]
    docs: list[Any] = []
    for i in range(count):
        if i % 3 == 0:
            docs.append(_wrong_value(rng))
        else:
            doc = {
                k: _wrong_value(rng)
                for k in rng.sample(
                    [
                        "workflow_id",
                        "task_id",
                        "state",
                        "steps",
                        "pipeline",
                        "at",
                        "key",
                        "limit",
                        "capability",
                        "order",
                        "template",
                        "source",
                        "outcome",
                    ],
                    rng.randint(0, 5),
                )
            }
            doc["type"] = rng.choice(tags) if i % 3 == 1 else _wrong_value(rng)
            docs.append(doc)
    return docs


def encode_both(doc: Any) -> tuple[bytes, bytes]:
    """``doc`` as MessagePack and as JSON."""
    return msgspec.msgpack.encode(doc), json.dumps(doc, default=str).encode()


# -- probes ---------------------------------------------------------------------------------


async def ping(bus: Bus, name: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """Return the actor's ``$SRV.PING`` answer, or ``None`` if it does not answer."""
    try:
        reply = await bus.nc.request(f"$SRV.PING.{name}", b"", timeout=timeout)
    except Exception:
        return None
    answer: dict[str, Any] = json.loads(reply.data)
    return answer


async def _dead_letters(bus: Bus, stream: str) -> list[dict[str, str]]:
    try:
        info = await bus.js.stream_info(DEAD_LETTER_STREAM)
    except Exception:
        return []
    found = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await bus.js.get_msg(DEAD_LETTER_STREAM, seq)
        except Exception:
            continue
        if msg.subject == dead_letter_subject(stream):
            found.append(dict(msg.headers or {}))
    return found


class ActorBehaviour:
    """The shared suite; subclasses provide ``actor_factory``."""

    @pytest.fixture
    def actor_factory(self) -> Callable[[], Actor]:
        """Return a callable making a fresh actor (override in the subclass)."""
        raise NotImplementedError("define the actor_factory fixture")

    @pytest.mark.integration
    async def test_malformed_request_gets_a_typed_error_in_its_own_encoding(
        self, bus: Bus, actor_factory: Callable[[], Actor]
    ) -> None:
        """Undecodable bytes on a request subject get bad_request, in MessagePack or JSON."""
        actor = actor_factory()
        async with actor.running(bus):
            subjects = live_requests(actor)
            if not subjects:
                pytest.skip(f"{actor.name} serves no request subject")
            for subject in subjects:
                for data, headers in ((b"\xc1\xc1", None), (b"{oops", JSON_HEADERS)):
                    reply = await bus.nc.request(subject, data, timeout=5.0, headers=headers)
                    assert reply.headers is not None
                    assert reply.headers[h.ERROR_CODE] == "400", subject
                    if headers:
                        assert reply.headers[h.CONTENT_TYPE] == h.JSON
                        error = msgspec.json.decode(reply.data, type=ErrorReply)
                    else:
                        error = msgspec.msgpack.decode(reply.data, type=ErrorReply)
                    assert error.code == "bad_request"
            assert await ping(bus, actor.name)

    @pytest.mark.integration
    async def test_malformed_stream_message_is_dead_lettered_and_the_actor_runs_on(
        self, bus: Bus, actor_factory: Callable[[], Actor]
    ) -> None:
        """Junk on a consumed stream goes to troupe.dlq.<stream> with a reason."""
        actor = actor_factory()
        async with actor.running(bus):
            consumers = live_consumers(actor)
            if not consumers:
                pytest.skip(f"{actor.name} consumes no stream")
            for spec in consumers:
                subject = concrete(spec.filter_subject or spec.stream.subjects[0])
                await bus.js.publish(subject, b"\xc1 not a message", headers={"X-Probe": "1"})

                async def dead(stream: str = spec.stream.name) -> list[dict[str, str]]:
                    return [d for d in await _dead_letters(bus, stream) if d.get("X-Probe")]

                (letter,) = await eventually(dead, timeout=10.0)
                assert letter[h.DEAD_LETTER_REASON]
                assert letter[h.DEAD_LETTER_STREAM] == spec.stream.name
            assert await ping(bus, actor.name)

    @pytest.mark.integration
    async def test_micro_ping_info_and_stats_list_every_handler(
        self, bus: Bus, actor_factory: Callable[[], Actor]
    ) -> None:
        """$SRV.PING answers with the actor's name; INFO and STATS list every handler."""
        actor = actor_factory()
        async with actor.running(bus):
            answer = await ping(bus, actor.name)
            info = json.loads(
                (await bus.nc.request(f"$SRV.INFO.{actor.name}", b"", timeout=10.0)).data
            )
            stats = json.loads(
                (await bus.nc.request(f"$SRV.STATS.{actor.name}", b"", timeout=10.0)).data
            )
            running = {_subject_of(r) for r in actor.handlers}
        assert answer is not None
        assert answer["name"] == actor.name
        listed = {e["subject"] for e in info["endpoints"]}
        assert running <= listed
        assert running <= {e["subject"] for e in stats["endpoints"]}
        declared = set(request_subjects(type(actor)))
        declared |= {
            s.options.subject
            for s in handler_specs(type(actor))
            if isinstance(s.options, ListenerSpec)
        }
        declared |= {c.filter_subject or c.stream.subjects[0] for c in consumer_specs(type(actor))}
        assert declared <= listed

    @pytest.mark.integration
    async def test_request_handler_continues_the_callers_trace(
        self, bus: Bus, actor_factory: Callable[[], Actor]
    ) -> None:
        """Even a rejected request is handled in a span that is a child of the caller's."""
        actor = actor_factory()
        from actors.runtime import telemetry

        with capture_spans() as spans:
            async with actor.running(bus):
                subjects = live_requests(actor)
                if not subjects:
                    pytest.skip(f"{actor.name} serves no request subject")
                with telemetry.tracer().start_as_current_span("caller") as caller:
                    headers: dict[str, str] = {}
                    telemetry.inject_context(headers)
                    await bus.nc.request(subjects[0], b"\xc1", timeout=5.0, headers=headers)
        trace_id = caller.get_span_context().trace_id
        server = [s for s in spans if s.name == f"process {subjects[0]}"]  # type: ignore[attr-defined]
        assert server
        assert server[0].context.trace_id == trace_id  # type: ignore[attr-defined]
        assert server[0].parent.span_id == caller.get_span_context().span_id  # type: ignore[attr-defined]

    @pytest.mark.integration
    async def test_survives_junk_on_every_subject(
        self, bus: Bus, actor_factory: Callable[[], Actor]
    ) -> None:
        """A burst of random bytes and wrong documents on each subject leaves it answering."""
        actor = actor_factory()
        rng = random.Random(f"behaviour-{actor.name}")
        cls = type(actor)
        payloads = junk_bytes(rng, 20)
        for doc in wrong_documents(rng, 10):
            payloads.extend(encode_both(doc))
        async with actor.running(bus):
            subjects = {
                *request_subjects(cls),
                *stream_subjects(cls),
                *event_subjects(cls),
                *live_subjects(actor),
            }
            for subject in sorted(subjects):
                for i, data in enumerate(payloads):
                    await bus.nc.publish(subject, data, headers=JSON_HEADERS if i % 2 else None)
            await bus.nc.flush()
            assert await ping(bus, actor.name, timeout=5.0)

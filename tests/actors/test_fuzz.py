"""Fuzzing every actor subject: 1,000 random byte strings and 1,000 wrong documents each.

Each actor of the roster, and an SDK agent, runs in-process on a real server;
its subjects are read from the running actor, so handlers added at run time
(the agent's inbox, the task manager's agent results) are fuzzed too. Every request,
stream and event subject it listens on gets 1,000 random byte strings and
1,000 well-formed documents of the wrong structure (half MessagePack, half
JSON with ``Content-Type: application/json``). Afterwards the actor must
still answer ``$SRV.PING``, every request must have had a typed answer (never
``internal``), and every stream message must have been settled (handled or
dead-lettered), so nothing is stuck.
"""

from __future__ import annotations

import json
import random
from collections import Counter

import msgspec
import pytest

from actors.runtime import Bus
from actors.runtime.testing import eventually
from protocols import headers as h
from protocols.errors import ErrorReply
from tests.actors.behaviour import (
    concrete,
    event_subjects,
    junk_bytes,
    live_consumers,
    live_requests,
    ping,
    stream_subjects,
    wrong_documents,
)
from tests.actors.test_behaviour import SUBJECTS, actor_factory_of

pytestmark = pytest.mark.integration

PER_KIND = 1000
JSON_HEADERS = {h.CONTENT_TYPE: h.JSON}


def _payloads(seed: str) -> list[tuple[bytes, dict[str, str] | None]]:
    rng = random.Random(seed)
    out: list[tuple[bytes, dict[str, str] | None]] = [
        (data, JSON_HEADERS if i % 2 else None) for i, data in enumerate(junk_bytes(rng, PER_KIND))
    ]
    for i, doc in enumerate(wrong_documents(rng, PER_KIND)):
        if i % 2:
            out.append((json.dumps(doc, default=str).encode(), JSON_HEADERS))
        else:
            out.append((msgspec.msgpack.encode(doc), None))
    return out


def _reply_code(data: bytes, headers: dict[str, str] | None) -> str:
    """``ok`` for a normal answer, else the ErrorReply code (``untyped`` if not one)."""
    if not headers or h.ERROR_CODE not in headers:
        return "ok"
    try:
        if headers.get(h.CONTENT_TYPE) == h.JSON:
            return msgspec.json.decode(data, type=ErrorReply).code
        return msgspec.msgpack.decode(data, type=ErrorReply).code
    except msgspec.DecodeError:
        return "untyped"


KNOWN_FAILURES: dict[str, str] = {}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN_FAILURES[n], strict=True))
        if n in KNOWN_FAILURES
        else n
        for n in SUBJECTS
    ],
)
async def test_actor_survives_junk_on_every_subject(bus: Bus, name: str) -> None:
    """After 2,000 bad messages per subject the actor still answers and nothing is stuck."""
    actor = actor_factory_of(name)()
    cls = type(actor)
    payloads = _payloads(f"fuzz-{name}")
    codes: Counter[str] = Counter()

    async def on_reply(msg: object) -> None:
        codes[_reply_code(msg.data, msg.headers)] += 1  # type: ignore[attr-defined]

    await bus.nc.subscribe("_INBOX.fuzz.>", cb=on_reply)
    async with actor.running(bus):
        requests = live_requests(actor)
        consumers = live_consumers(actor)
        streams = {concrete(c.filter_subject or c.stream.subjects[0]) for c in consumers}
        for subject in requests:
            for i, (data, headers) in enumerate(payloads):
                await bus.nc.publish(subject, data, reply=f"_INBOX.fuzz.{i}", headers=headers)
                if i % 200 == 199:
                    await bus.nc.flush()
        for subject in sorted(streams | {*stream_subjects(cls), *event_subjects(cls)}):
            for i, (data, headers) in enumerate(payloads):
                await bus.nc.publish(subject, data, headers=headers)
                if i % 200 == 199:
                    await bus.nc.flush()
        await bus.nc.flush()

        async def all_answered() -> bool:
            return sum(codes.values()) >= len(requests) * len(payloads)

        await eventually(all_answered, timeout=60.0)
        for spec in consumers:

            async def settled(stream: str = spec.stream.name, durable: str = spec.durable) -> bool:
                info = await bus.js.consumer_info(stream, durable)
                return info.num_pending == 0 and info.num_ack_pending == 0

            await eventually(settled, timeout=60.0, interval=0.2)
        answer = await ping(bus, actor.name, timeout=5.0)
    assert answer is not None
    assert answer["name"] == actor.name
    assert sum(codes.values()) == len(requests) * len(payloads)
    assert set(codes) <= {"ok", "bad_request", "not_found", "conflict", "rejected"}, codes

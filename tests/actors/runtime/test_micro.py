"""Micro protocol: PING, INFO and STATS answers are valid against the official NATS schemas."""

from __future__ import annotations

import json
from typing import Any

import pytest

from actors.runtime import Bus
from actors.runtime.codec import encode
from tests.actors.runtime.micro_schemas import (
    INFO_RESPONSE,
    PING_RESPONSE,
    STATS_RESPONSE,
    violations,
)
from tests.actors.runtime.workers import ECHO_SUBJECT, Echo, Ping, make_worker

pytestmark = pytest.mark.integration

SCHEMAS = {"PING": PING_RESPONSE, "INFO": INFO_RESPONSE, "STATS": STATS_RESPONSE}


async def _answer(bus: Bus, verb: str, name: str) -> dict[str, Any]:
    reply = await bus.nc.request(f"$SRV.{verb}.{name}", b"", timeout=5)
    answer: dict[str, Any] = json.loads(reply.data)
    return answer


@pytest.mark.parametrize("verb", sorted(SCHEMAS))
@pytest.mark.parametrize("name", ["echo", "worker"])
async def test_micro_answers_validate_against_the_official_schema(
    bus: Bus, verb: str, name: str
) -> None:
    """Endpoints and consumers, idle or busy: every answer fits io.nats.micro.v1."""
    async with Echo().running(bus), make_worker().running(bus):
        await bus.nc.request(ECHO_SUBJECT, encode(Ping(n=1)), timeout=5)
        await bus.nc.request(ECHO_SUBJECT, encode(Ping(n=1, mode="missing")), timeout=5)
        answer = await _answer(bus, verb, name)
    assert violations(answer, SCHEMAS[verb]) == []


async def test_stats_data_is_an_object_even_without_extra_figures(bus: Bus) -> None:
    """An endpoint with nothing extra to report sends ``"data": {}``, never null."""
    async with Echo().running(bus):
        stats = await _answer(bus, "STATS", "echo")
    (endpoint,) = stats["endpoints"]
    assert endpoint["data"] == {}


def test_checker_rejects_what_the_official_schema_rejects() -> None:
    """The schema checker is not vacuous: null data, a bad name and a missing field fail."""
    good = {
        "type": "io.nats.micro.v1.stats_response",
        "name": "echo",
        "id": "x",
        "version": "1.0.0",
        "started": "2025-01-01T00:00:00Z",
        "endpoints": [
            {
                "name": "e",
                "subject": "s",
                "num_requests": 0,
                "num_errors": 0,
                "last_error": "",
                "processing_time": 0,
                "average_processing_time": 0,
                "data": {},
            }
        ],
    }
    assert violations(good, STATS_RESPONSE) == []
    bad = json.loads(json.dumps(good))
    bad["endpoints"][0]["data"] = None
    bad["name"] = "no spaces allowed"
    del bad["started"]
    assert len(violations(bad, STATS_RESPONSE)) == 3

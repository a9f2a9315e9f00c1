"""Stream publishes on a real server: the acknowledgements and errors nats-py gives."""

from __future__ import annotations

import nats.js.errors
import pytest

from actors.runtime import Bus, StreamSpec
from actors.runtime.stream_publish import publish_and_wait

pytestmark = pytest.mark.integration

STREAM = StreamSpec(name="PUBACK", subjects=("puback.>",))
HEADERS = {"Content-Type": "application/msgpack"}


async def test_the_acknowledgement_is_nats_pys(bus: Bus) -> None:
    """Stream, sequence and duplicate flag equal what JetStreamContext.publish returns."""
    await bus.ensure_stream(STREAM)
    theirs = await bus.js.publish("puback.a", b"1", headers={**HEADERS, "Nats-Msg-Id": "one"})
    ours = await publish_and_wait(
        bus.nc, "puback.a", b"2", headers={**HEADERS, "Nats-Msg-Id": "two"}, timeout=5.0
    )
    assert (ours.stream, ours.seq, ours.duplicate) == ("PUBACK", theirs.seq + 1, None)
    again = await publish_and_wait(
        bus.nc, "puback.a", b"2", headers={**HEADERS, "Nats-Msg-Id": "two"}, timeout=5.0
    )
    assert again == await bus.js.publish(
        "puback.a", b"2", headers={**HEADERS, "Nats-Msg-Id": "two"}
    )
    assert (again.seq, again.duplicate) == (ours.seq, True)


async def test_refusals_raise_what_nats_py_raises(bus: Bus) -> None:
    """No stream, the wrong stream, the wrong last sequence: nats-py's exceptions and codes."""
    await bus.ensure_stream(STREAM)
    with pytest.raises(nats.js.errors.NoStreamResponseError):
        await publish_and_wait(bus.nc, "nowhere.a", b"", headers=dict(HEADERS), timeout=5.0)
    with pytest.raises(nats.js.errors.APIError) as wrong_stream:
        await publish_and_wait(
            bus.nc, "puback.a", b"", headers=dict(HEADERS), timeout=5.0, stream="OTHER"
        )
    assert wrong_stream.value.err_code == 10060
    with pytest.raises(nats.js.errors.BadRequestError) as wrong_last:
        await publish_and_wait(
            bus.nc,
            "puback.a",
            b"",
            headers={**HEADERS, "Nats-Expected-Last-Subject-Sequence": "999"},
            timeout=5.0,
        )
    assert wrong_last.value.err_code == 10071

"""Resource subscriptions: the notifier reads workflow updates only while someone listens."""

from __future__ import annotations

import pytest
from mcp import Client
from mcp.shared.subscriptions import ResourceUpdated, ServerEvent

from actors.gateway.mcp import TroupeMcp
from actors.gateway.mcp.notify import ListenedBus
from actors.runtime.testing import eventually


async def test_the_listened_bus_counts_open_listen_streams() -> None:
    """Each subscription counts once; unsubscribing twice uncounts once; events still arrive."""
    bus = ListenedBus()
    got: list[ServerEvent] = []
    first = bus.subscribe(got.append)
    second = bus.subscribe(got.append)
    assert bus.listeners == 2
    await bus.publish(ResourceUpdated(uri="troupe://workflows"))
    first()
    first()
    assert bus.listeners == 1
    second()
    assert bus.listeners == 0
    assert len(got) == 2


@pytest.mark.integration
@pytest.mark.processes
async def test_the_notifier_listens_only_while_a_client_does(operator_mcp: TroupeMcp) -> None:
    """No listen stream: no subscription to the updates; during ``subscriptions/listen``, one."""
    notifier = operator_mcp.notifier
    before = (notifier.listening, notifier.reading)
    async with (
        Client(operator_mcp.server) as client,
        client.listen(resource_subscriptions=["troupe://workflows"]),
    ):
        during = notifier.listening
        await eventually(lambda: notifier.reading, what="the updates to be followed")
    await eventually(lambda: not notifier.listening, what="the listen stream to close")
    await eventually(lambda: not notifier.reading, what="the updates to be let go")
    assert (before, during) == ((False, False), True)

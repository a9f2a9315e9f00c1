"""Topology replicas: configuration, not code; applied on a real three-node cluster."""

from __future__ import annotations

import pytest

from actors.runtime.bootstrap import Topology, apply_topology
from actors.runtime.bus import Bus
from actors.runtime.config import ConnectionConfig
from actors.runtime.testing import eventually, nats_cluster
from actors.topology import AGENTS, SCHEDULES, STATUS_EVENTS, TASKS, TROUPE, WORKFLOWS


def test_with_replicas_copies_file_storage_and_keeps_memory_single() -> None:
    """Every file-stored stream, bucket and store gets N replicas; presence stays at one."""
    r3 = TROUPE.with_replicas(3)
    assert {s.replicas for s in r3.streams} == {3}
    files = [b for b in r3.buckets if b.storage == "file"]
    assert files
    assert {b.replicas for b in files} == {3}
    assert next(b for b in r3.buckets if b.name == AGENTS.name).replicas == 1
    assert {o.replicas for o in r3.object_stores} == {3}
    assert {c.stream.replicas for c in r3.consumers} == {3}
    assert TROUPE.with_replicas(1) == TROUPE


@pytest.mark.parametrize("bad", [0, 6, -1])
def test_with_replicas_refuses_impossible_counts(bad: int) -> None:
    """A count outside 1-5 is a configuration error."""
    with pytest.raises(ValueError, match="replicas"):
        TROUPE.with_replicas(bad)


@pytest.mark.cluster
async def test_troupe_topology_is_replicated_three_times_on_a_cluster() -> None:
    """On three loopback nodes the workflow streams and buckets have three current replicas."""
    with nats_cluster(3) as urls:
        bus = await Bus.connect(ConnectionConfig(url=",".join(urls), connect_timeout=10.0))
        try:
            part = Topology(streams=(TASKS, STATUS_EVENTS, SCHEDULES), buckets=(WORKFLOWS,))

            async def applied() -> bool:
                # The nodes elect a JetStream meta leader first: until then requests time out.
                await apply_topology(bus.js, part.with_replicas(3))
                return True

            await eventually(applied, timeout=60.0, interval=0.5, ignoring=(Exception,))

            async def replicated() -> bool | None:
                for name in (TASKS.name, STATUS_EVENTS.name, SCHEDULES.name, "KV_troupe-workflows"):
                    info = await bus.js.stream_info(name)
                    if info.config.num_replicas != 3 or info.cluster is None:
                        return None
                    peers = info.cluster.replicas or []
                    if len(peers) != 2 or not all(p.current for p in peers):
                        return None
                return True

            await eventually(replicated, timeout=30.0, interval=0.3, what="three current replicas")
        finally:
            await bus.close()

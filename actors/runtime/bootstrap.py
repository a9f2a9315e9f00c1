"""Creating a troupe's topology, once, as ``admin``: what ``troupe init`` and ``troupe up`` run.

A :class:`Topology` collects the streams, KV buckets, object stores and
durable consumers that actors declare (:meth:`actors.runtime.actor.Actor.topology`).
:func:`apply_topology` creates each one, or updates it in place to its declared
configuration, idempotently: running it again changes nothing. Actors never
create anything on a troupe's server; they bind and fail with
:class:`~actors.runtime.errors.TopologyMissing` when something is missing.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext

from actors.runtime.handlers import ConsumerSpec
from actors.runtime.topology import (
    BucketSpec,
    ObjectStoreSpec,
    StreamSpec,
    ensure_bucket,
    ensure_consumer,
    ensure_object_store,
    ensure_stream,
)

__all__ = ["Topology", "apply_topology"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Topology:
    """Streams, buckets, object stores and durable consumers, each named once.

    Attributes:
        streams: streams (a consumer's stream is added by :meth:`merge`).
        buckets: KV buckets.
        object_stores: object stores.
        consumers: durable pull consumers.
    """

    streams: tuple[StreamSpec, ...] = ()
    buckets: tuple[BucketSpec, ...] = ()
    object_stores: tuple[ObjectStoreSpec, ...] = ()
    consumers: tuple[ConsumerSpec, ...] = ()

    @classmethod
    def merge(cls, parts: Iterable[Topology]) -> Topology:
        """Return the union of ``parts``; the first declaration of a name wins."""
        streams: dict[str, StreamSpec] = {}
        buckets: dict[str, BucketSpec] = {}
        stores: dict[str, ObjectStoreSpec] = {}
        consumers: dict[tuple[str, str], ConsumerSpec] = {}
        for part in parts:
            for stream in (*part.streams, *(c.stream for c in part.consumers)):
                streams.setdefault(stream.name, stream)
            for bucket in part.buckets:
                buckets.setdefault(bucket.name, bucket)
            for store in part.object_stores:
                stores.setdefault(store.name, store)
            for consumer in part.consumers:
                consumers.setdefault((consumer.stream.name, consumer.durable), consumer)
        return cls(
            streams=tuple(streams.values()),
            buckets=tuple(buckets.values()),
            object_stores=tuple(stores.values()),
            consumers=tuple(consumers.values()),
        )

    def with_replicas(self, replicas: int) -> Topology:
        """Return this topology with ``replicas`` copies of everything kept in files.

        Workflow data (file storage) is replicated; memory storage (agent
        presence, rebuilt from heartbeats within seconds) stays single. Replica
        counts are configuration: ``troupe init --replicas`` / ``TROUPE_REPLICAS``.

        Raises:
            ValueError: ``replicas`` is not 1 to 5.
        """
        if not 1 <= replicas <= 5:
            raise ValueError(f"replicas must be 1 to 5, not {replicas}")

        def r(spec: Any) -> Any:
            if spec.storage != "file":
                return spec
            return dataclasses.replace(spec, replicas=replicas)

        streams = tuple(r(s) for s in self.streams)
        by_name = {s.name: s for s in streams}
        consumers = tuple(
            dataclasses.replace(c, stream=by_name.get(c.stream.name, r(c.stream)))
            for c in self.consumers
        )
        return Topology(
            streams=streams,
            buckets=tuple(r(b) for b in self.buckets),
            object_stores=tuple(r(o) for o in self.object_stores),
            consumers=consumers,
        )

    def describe(self) -> str:
        """Return a one-line count of what the topology holds."""
        return (
            f"{len(self.streams)} streams, {len(self.buckets)} KV buckets, "
            f"{len(self.object_stores)} object stores, {len(self.consumers)} consumers"
        )


async def apply_topology(js: JetStreamContext, topology: Topology) -> None:
    """Create or update everything in ``topology`` (needs ``admin``'s JetStream rights).

    Streams come first, so each consumer finds its stream.

    Raises:
        nats.js.errors.APIError: the server refused a change (e.g. a stream's
            retention cannot change in place).
    """
    merged = Topology.merge([topology])
    for stream in merged.streams:
        await ensure_stream(js, stream)
    for bucket in merged.buckets:
        await ensure_bucket(js, bucket)
    for store in merged.object_stores:
        await ensure_object_store(js, store)
    for consumer in merged.consumers:
        await ensure_consumer(js, consumer)
    log.info("topology ready: %s", merged.describe())

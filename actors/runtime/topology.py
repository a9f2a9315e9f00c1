"""Declarations of JetStream streams, KV buckets and object stores; creating and binding them.

Actors declare what they need as :class:`StreamSpec`, :class:`BucketSpec` and
:class:`ObjectStoreSpec` (and their durable consumers as
:class:`~actors.runtime.handlers.ConsumerSpec`). The ``ensure_*`` functions
create each, or update it in place when its configuration changed: only the
``admin`` user may, and only ``troupe up`` / ``troupe init`` call them (see
:mod:`actors.runtime.bootstrap`). Actors *bind* with the ``bind_*`` functions,
which only look up and raise :class:`~actors.runtime.errors.TopologyMissing`
naming what is missing and ``troupe init``.

The ``open_*`` functions are what the runtime calls: they bind on a server that
requires authentication, and ensure on one that does not (a development
``nats-server -js`` or a test server, where nothing is protected anyway).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from actors.runtime.errors import TopologyMissing

if TYPE_CHECKING:
    from actors.runtime.handlers import ConsumerSpec

__all__ = [
    "BucketSpec",
    "ObjectStoreSpec",
    "StreamSpec",
    "bind_bucket",
    "bind_consumer",
    "bind_object_store",
    "bind_stream",
    "consumer_config",
    "creates_topology",
    "ensure_bucket",
    "ensure_consumer",
    "ensure_object_store",
    "ensure_stream",
    "open_bucket",
    "open_consumer",
    "open_object_store",
    "open_stream",
]

log = logging.getLogger(__name__)

Storage = Literal["file", "memory"]
Retention = Literal["limits", "workqueue", "interest"]

_STREAM_NAME_IN_USE = 10058


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """A JetStream stream.

    Attributes:
        name: stream name.
        subjects: subjects it captures.
        retention: ``workqueue`` (each message consumed once), ``limits`` or ``interest``.
        storage: ``file`` (durable) or ``memory``.
        max_age: seconds a message is kept (0: forever).
        duplicate_window: seconds ``Nats-Msg-Id`` de-duplication lasts.
        max_msgs_per_subject: cap per subject (-1: none).
        max_bytes: cap of the whole stream (-1: none).
        replicas: copies in a cluster (R3 beyond one machine).
        description: shown by ``nats stream info``.
        allow_msg_schedules: the server fires ``Nats-Schedule`` messages stored here.
    """

    name: str
    subjects: tuple[str, ...]
    retention: Retention = "limits"
    storage: Storage = "file"
    max_age: float = 0.0
    duplicate_window: float = 120.0
    max_msgs_per_subject: int = -1
    max_bytes: int = -1
    replicas: int = 1
    description: str = ""
    allow_msg_schedules: bool = False

    def to_config(self) -> js_api.StreamConfig:
        """Return the nats-py stream configuration."""
        return js_api.StreamConfig(
            name=self.name,
            description=self.description or None,
            subjects=list(self.subjects),
            retention=js_api.RetentionPolicy(self.retention),
            storage=js_api.StorageType(self.storage),
            max_age=self.max_age or None,
            duplicate_window=self.duplicate_window,
            max_msgs_per_subject=self.max_msgs_per_subject,
            max_bytes=self.max_bytes,
            num_replicas=self.replicas,
            allow_direct=True,
            allow_msg_schedules=self.allow_msg_schedules or None,
        )


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """A JetStream KV bucket.

    Attributes:
        name: bucket name.
        history: revisions kept per key.
        ttl: seconds an entry lives (0: forever).
        storage: ``file`` or ``memory`` (presence data).
        marker_ttl: seconds a server-placed expiry marker lives, so watchers
            see expired keys as deletes (0: no markers).
        replicas: copies in a cluster.
        description: shown by ``nats kv info``.
    """

    name: str
    history: int = 1
    ttl: float = 0.0
    storage: Storage = "file"
    marker_ttl: float = 0.0
    replicas: int = 1
    description: str = ""

    def to_config(self) -> js_api.KeyValueConfig:
        """Return the nats-py bucket configuration."""
        return js_api.KeyValueConfig(
            bucket=self.name,
            description=self.description or None,
            history=self.history,
            ttl=self.ttl or None,
            storage=js_api.StorageType(self.storage),
            replicas=self.replicas,
            direct=True,
            limit_marker_ttl=self.marker_ttl or None,
        )


@dataclass(frozen=True, slots=True)
class ObjectStoreSpec:
    """A JetStream object store bucket.

    Attributes:
        name: bucket name.
        ttl: seconds an object lives (0: forever).
        storage: ``file`` or ``memory``.
        replicas: copies in a cluster.
        description: shown by ``nats object info``.
    """

    name: str
    ttl: float = 0.0
    storage: Storage = "file"
    replicas: int = 1
    description: str = field(default="")


async def ensure_stream(js: JetStreamContext, spec: StreamSpec) -> None:
    """Create ``spec``'s stream, or update it if its configuration changed."""
    config = spec.to_config()
    try:
        await js.add_stream(config)
    except BadRequestError as exc:
        if exc.err_code != _STREAM_NAME_IN_USE:
            raise
        log.info("updating stream %s to its declared configuration", spec.name)
        await js.update_stream(config)


async def ensure_bucket(js: JetStreamContext, spec: BucketSpec) -> KeyValue:
    """Create ``spec``'s KV bucket if needed and return it."""
    try:
        return await js.create_key_value(spec.to_config())
    except BadRequestError as exc:
        if exc.err_code != _STREAM_NAME_IN_USE:
            raise
        return await js.key_value(spec.name)


async def ensure_object_store(js: JetStreamContext, spec: ObjectStoreSpec) -> ObjectStore:
    """Create ``spec``'s object store if needed and return it."""
    config = js_api.ObjectStoreConfig(
        bucket=spec.name,
        description=spec.description or None,
        ttl=spec.ttl or None,
        storage=js_api.StorageType(spec.storage),
        replicas=spec.replicas,
    )
    try:
        return await js.create_object_store(spec.name, config=config)
    except BadRequestError as exc:
        if exc.err_code != _STREAM_NAME_IN_USE:
            raise
        return await js.object_store(spec.name)


def consumer_config(spec: ConsumerSpec) -> js_api.ConsumerConfig:
    """Return the nats-py configuration of ``spec``'s durable pull consumer."""
    return js_api.ConsumerConfig(
        durable_name=spec.durable,
        ack_policy=js_api.AckPolicy.EXPLICIT,
        ack_wait=spec.ack_wait,
        # One delivery beyond ours: a message that crashed the process on its last
        # allowed delivery still comes back once, to be dead-lettered unhandled.
        max_deliver=spec.max_deliver + 1,
        filter_subject=spec.filter_subject,
        max_ack_pending=spec.max_ack_pending,
        deliver_policy=js_api.DeliverPolicy.ALL,
    )


async def ensure_consumer(js: JetStreamContext, spec: ConsumerSpec) -> None:
    """Create ``spec``'s durable consumer, or update it to its declared configuration."""
    await js.add_consumer(spec.stream.name, consumer_config(spec))


def _missing(kind: str, name: str) -> TopologyMissing:
    return TopologyMissing(
        f"{kind} {name} does not exist: create the topology with 'troupe init' "
        "(or 'troupe up', which runs it) as admin"
    )


async def bind_stream(js: JetStreamContext, spec: StreamSpec) -> None:
    """Check that ``spec``'s stream exists.

    Raises:
        TopologyMissing: it does not.
    """
    try:
        await js.stream_info(spec.name)
    except NotFoundError:
        raise _missing("stream", spec.name) from None


async def bind_bucket(js: JetStreamContext, spec: BucketSpec) -> KeyValue:
    """Return ``spec``'s existing KV bucket.

    Raises:
        TopologyMissing: it does not exist.
    """
    try:
        return await js.key_value(spec.name)
    except (BucketNotFoundError, NotFoundError):
        raise _missing("KV bucket", spec.name) from None


async def bind_object_store(js: JetStreamContext, spec: ObjectStoreSpec) -> ObjectStore:
    """Return ``spec``'s existing object store.

    Raises:
        TopologyMissing: it does not exist.
    """
    try:
        return await js.object_store(spec.name)
    except (BucketNotFoundError, NotFoundError):
        raise _missing("object store", spec.name) from None


async def bind_consumer(js: JetStreamContext, spec: ConsumerSpec) -> None:
    """Check that ``spec``'s durable consumer exists (its configuration is ``troupe init``'s).

    Raises:
        TopologyMissing: it does not.
    """
    try:
        info = await js.consumer_info(spec.stream.name, spec.durable)
    except NotFoundError:
        raise _missing("consumer", f"{spec.stream.name}/{spec.durable}") from None
    if info.config.ack_wait != spec.ack_wait or info.config.max_deliver != spec.max_deliver + 1:
        log.warning(
            "consumer %s/%s differs from its declaration; 'troupe init' updates it",
            spec.stream.name,
            spec.durable,
        )


def creates_topology(nc: Client) -> bool:
    """Whether the runtime creates missing topology on ``nc``'s server.

    Only on a server that requires no authentication: there anyone may anyway.
    On an authenticating server (every troupe) actors only bind.
    """
    # nats-py keeps the server's INFO in a private attribute and exposes no getter.
    info: dict[str, object] = getattr(nc, "_server_info", {}) or {}
    return not info.get("auth_required", False)


async def open_stream(nc: Client, js: JetStreamContext, spec: StreamSpec) -> None:
    """Ensure (see :func:`creates_topology`) or bind ``spec``'s stream."""
    if creates_topology(nc):
        await ensure_stream(js, spec)
    else:
        await bind_stream(js, spec)


async def open_bucket(nc: Client, js: JetStreamContext, spec: BucketSpec) -> KeyValue:
    """Ensure (see :func:`creates_topology`) or bind ``spec``'s KV bucket."""
    if creates_topology(nc):
        return await ensure_bucket(js, spec)
    return await bind_bucket(js, spec)


async def open_object_store(nc: Client, js: JetStreamContext, spec: ObjectStoreSpec) -> ObjectStore:
    """Ensure (see :func:`creates_topology`) or bind ``spec``'s object store."""
    if creates_topology(nc):
        return await ensure_object_store(js, spec)
    return await bind_object_store(js, spec)


async def open_consumer(nc: Client, js: JetStreamContext, spec: ConsumerSpec) -> None:
    """Ensure (see :func:`creates_topology`) or bind ``spec``'s durable consumer."""
    if creates_topology(nc):
        await ensure_consumer(js, spec)
    else:
        await bind_consumer(js, spec)

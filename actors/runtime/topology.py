"""Declarations of JetStream streams, KV buckets and object stores, and their set-up.

Actors declare what they need as :class:`StreamSpec`, :class:`BucketSpec` and
:class:`ObjectStoreSpec`; the runtime creates each at start-up, or updates it
in place when its configuration changed, so any actor can start first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import BadRequestError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

__all__ = [
    "BucketSpec",
    "ObjectStoreSpec",
    "StreamSpec",
    "ensure_bucket",
    "ensure_object_store",
    "ensure_stream",
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

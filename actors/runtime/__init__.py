"""The troupe runtime: actors, the typed bus, the embedded server and supervision."""

from __future__ import annotations

from actors.runtime.actor import DEAD_LETTERS, Actor
from actors.runtime.bus import Bus
from actors.runtime.clock import Clock, SystemClock, system_clock
from actors.runtime.codec import Codec
from actors.runtime.config import DEFAULT_NATS_URL, ConnectionConfig
from actors.runtime.errors import (
    BadRequest,
    ConfigError,
    Conflict,
    ConnectError,
    DeadLetter,
    NotFound,
    Rejected,
    RequestError,
    RetryLater,
    ServerError,
    TroupeError,
    Unavailable,
)
from actors.runtime.handlers import (
    ConsumerSpec,
    EndpointSpec,
    ListenerSpec,
    MessageContext,
    RequestContext,
    WatchSpec,
    consumer,
    endpoint,
    listener,
)
from actors.runtime.kv import TypedBucket
from actors.runtime.topology import BucketSpec, ObjectStoreSpec, StreamSpec
from actors.runtime.watch import BucketWatch, Entry

__all__ = [
    "DEAD_LETTERS",
    "DEFAULT_NATS_URL",
    "Actor",
    "BadRequest",
    "BucketSpec",
    "BucketWatch",
    "Bus",
    "Clock",
    "Codec",
    "ConfigError",
    "Conflict",
    "ConnectError",
    "ConnectionConfig",
    "ConsumerSpec",
    "DeadLetter",
    "EndpointSpec",
    "Entry",
    "ListenerSpec",
    "MessageContext",
    "NotFound",
    "ObjectStoreSpec",
    "Rejected",
    "RequestContext",
    "RequestError",
    "RetryLater",
    "ServerError",
    "StreamSpec",
    "SystemClock",
    "TroupeError",
    "TypedBucket",
    "Unavailable",
    "WatchSpec",
    "consumer",
    "endpoint",
    "listener",
    "system_clock",
]

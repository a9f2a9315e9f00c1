"""troupe: an event-driven actor framework on NATS JetStream.

The public surface for writing actors and clients. The wire contract lives in
:mod:`protocols`; the five built-in actors in their own packages
(``actors.task_manager``, ``actors.pipeline_runner``, ``actors.status_tracker``,
``actors.breaker_supervisor``, ``actors.agent_registry``).
"""

from __future__ import annotations

from actors.runtime import (
    Actor,
    BadRequest,
    BucketSpec,
    Bus,
    Clock,
    ConfigError,
    Conflict,
    ConnectionConfig,
    DeadLetter,
    MessageContext,
    NotFound,
    ObjectStoreSpec,
    Rejected,
    RequestContext,
    RequestError,
    RetryLater,
    StreamSpec,
    TroupeError,
    Unavailable,
    consumer,
    endpoint,
    listener,
)

__all__ = [
    "Actor",
    "BadRequest",
    "BucketSpec",
    "Bus",
    "Clock",
    "ConfigError",
    "Conflict",
    "ConnectionConfig",
    "DeadLetter",
    "MessageContext",
    "NotFound",
    "ObjectStoreSpec",
    "Rejected",
    "RequestContext",
    "RequestError",
    "RetryLater",
    "StreamSpec",
    "TroupeError",
    "Unavailable",
    "__version__",
    "consumer",
    "endpoint",
    "listener",
]

__version__ = "0.1.0"

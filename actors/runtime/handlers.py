"""Handler declarations: the ``@endpoint``, ``@consumer`` and ``@listener`` decorators.

A decorator records a :class:`HandlerSpec` on the method; the message type is
read from the method's annotations, so it is written once::

    class Tracker(Actor):
        @endpoint(GET_SUBJECT)
        async def get(self, request: GetWorkflow, ctx: RequestContext) -> WorkflowView: ...

        @consumer(STATUS_STREAM_SPEC, durable="status-tracker")
        async def apply(self, event: StatusEvent, ctx: MessageContext) -> None: ...
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from nats.aio.msg import Msg

from actors.runtime.errors import ConfigError
from actors.runtime.topology import StreamSpec

__all__ = [
    "ConsumerSpec",
    "EndpointSpec",
    "HandlerSpec",
    "ListenerSpec",
    "MessageContext",
    "RequestContext",
    "consumer",
    "endpoint",
    "handler_specs",
    "listener",
]

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_SPEC_ATTR = "__troupe_handler__"
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a request handler knows about the request besides its body.

    Attributes:
        subject: subject the request arrived on.
        headers: request headers (trace context, content type).
        encoding: encoding the reply will use (that of the request).
    """

    subject: str
    headers: Mapping[str, str]
    encoding: str


@dataclass(slots=True)
class MessageContext:
    """What a stream handler knows about the message besides its body.

    Attributes:
        subject: subject the message was published on.
        headers: message headers.
        stream: stream it was consumed from.
        sequence: stream sequence number.
        num_delivered: delivery count (1 on the first delivery).
        msg: the raw nats-py message (for :meth:`in_progress`).
    """

    subject: str
    headers: Mapping[str, str]
    stream: str
    sequence: int
    num_delivered: int
    msg: Msg = field(repr=False)

    @property
    def redelivered(self) -> bool:
        """Whether this delivery is a redelivery."""
        return self.num_delivered > 1

    async def in_progress(self) -> None:
        """Tell the server the message is still being worked on (resets ack wait)."""
        await self.msg.in_progress()


def _check_name(field_name: str, value: str) -> None:
    if not value or set(value) - _NAME_OK:
        raise ConfigError(field_name, f"{value!r} must be letters, digits, '-' or '_'")


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """A request/reply endpoint (a NATS micro endpoint).

    Attributes:
        subject: subject served.
        name: endpoint name shown by ``$SRV.INFO``.
        queue_group: replicas in one queue group share requests.
        concurrency: requests handled at once by one process.
    """

    subject: str
    name: str
    queue_group: str = "troupe"
    concurrency: int = 32

    def __post_init__(self) -> None:
        _check_name("name", self.name)
        if self.concurrency < 1:
            raise ConfigError("concurrency", "must be at least 1")


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    """A JetStream durable pull consumer.

    Attributes:
        stream: the stream consumed (created if missing).
        durable: durable consumer name shared by every replica.
        filter_subject: only messages on this subject (default: all of the stream's).
        concurrency: messages handled at once by one process.
        ack_wait: seconds before an unacknowledged message is redelivered; a
            running handler keeps it alive with ``in_progress``.
        max_deliver: deliveries before a failing message is dead-lettered.
        backoff: nak delays (seconds) after the 1st, 2nd, ... failure; the last repeats.
        max_ack_pending: unacknowledged messages across all replicas.
    """

    stream: StreamSpec
    durable: str
    filter_subject: str | None = None
    concurrency: int = 8
    ack_wait: float = 30.0
    max_deliver: int = 5
    backoff: tuple[float, ...] = (0.2, 1.0, 5.0, 15.0, 30.0)
    max_ack_pending: int = 1000

    def __post_init__(self) -> None:
        _check_name("durable", self.durable)
        if self.concurrency < 1:
            raise ConfigError("concurrency", "must be at least 1")
        if self.ack_wait < 1:
            raise ConfigError("ack_wait", "must be at least 1 second")
        if self.max_deliver < 1:
            raise ConfigError("max_deliver", "must be at least 1")
        if not self.backoff or min(self.backoff) < 0:
            raise ConfigError("backoff", "needs at least one non-negative delay")

    def delay_after(self, failures: int) -> float:
        """Return the nak delay after ``failures`` failed deliveries."""
        return self.backoff[min(max(failures, 1), len(self.backoff)) - 1]


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    """A core-NATS subscription (fan-out events, no acknowledgement).

    Attributes:
        subject: subject (wildcards allowed).
        queue_group: share messages among replicas; ``None`` delivers to every one.
    """

    subject: str
    queue_group: str | None = None


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """A declared handler and the message types read from its annotations."""

    kind: Literal["endpoint", "consumer", "listener"]
    attr: str
    message_type: Any
    reply_type: Any
    options: EndpointSpec | ConsumerSpec | ListenerSpec


def _declare(options: EndpointSpec | ConsumerSpec | ListenerSpec) -> Callable[[F], F]:
    def mark(func: F) -> F:
        candidate: Any = func  # checked without narrowing F
        if not inspect.iscoroutinefunction(candidate):
            raise TypeError(f"{getattr(func, '__qualname__', func)!r} must be an async def")
        setattr(func, _SPEC_ATTR, options)
        return func

    return mark


def endpoint(
    subject: str,
    *,
    name: str | None = None,
    queue_group: str = "troupe",
    concurrency: int = 32,
) -> Callable[[F], F]:
    """Serve ``subject`` as a request/reply endpoint.

    The handler is ``async def h(self, request: Req, ctx: RequestContext) -> Reply``.
    """
    default_name = subject.replace(".", "-").replace("*", "any").replace(">", "all")
    return _declare(
        EndpointSpec(
            subject=subject,
            name=name or default_name,
            queue_group=queue_group,
            concurrency=concurrency,
        )
    )


def consumer(stream: StreamSpec, *, durable: str, **options: Any) -> Callable[[F], F]:
    """Consume ``stream`` through a durable pull consumer (see :class:`ConsumerSpec`).

    The handler is ``async def h(self, message: Msg, ctx: MessageContext) -> None``;
    returning acknowledges, raising naks with backoff.
    """
    return _declare(ConsumerSpec(stream=stream, durable=durable, **options))


def listener(subject: str, *, queue_group: str | None = None) -> Callable[[F], F]:
    """Subscribe to core-NATS ``subject``.

    The handler is ``async def h(self, message: Msg, ctx: RequestContext) -> None``.
    """
    return _declare(ListenerSpec(subject=subject, queue_group=queue_group))


def handler_specs(cls: type) -> list[HandlerSpec]:
    """Return the handlers declared on ``cls`` and its bases, in definition order.

    Raises:
        TypeError: a handler lacks the annotation of its message type.
    """
    specs: list[HandlerSpec] = []
    seen: set[str] = set()
    for klass in cls.__mro__:
        for attr, func in vars(klass).items():
            options = getattr(func, _SPEC_ATTR, None)
            if options is None or attr in seen:
                continue
            seen.add(attr)
            hints = typing.get_type_hints(func)
            params = [p for p in inspect.signature(func).parameters if p != "self"]
            if not params or params[0] not in hints:
                raise TypeError(f"{cls.__name__}.{attr}: annotate the message parameter")
            kind: Literal["endpoint", "consumer", "listener"]
            if isinstance(options, EndpointSpec):
                kind = "endpoint"
            elif isinstance(options, ConsumerSpec):
                kind = "consumer"
            else:
                kind = "listener"
            specs.append(
                HandlerSpec(
                    kind=kind,
                    attr=attr,
                    message_type=hints[params[0]],
                    reply_type=hints.get("return"),
                    options=options,
                )
            )
    return specs

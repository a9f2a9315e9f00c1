"""Handler declarations: the specs of every handler kind and the decorators.

The specs (:class:`EndpointSpec`, :class:`ConsumerSpec`, :class:`ListenerSpec`,
:class:`WatchSpec`) describe a handler; :meth:`actors.runtime.actor.Actor.add_endpoint`
and its siblings add one at run time. The ``@endpoint``, ``@consumer`` and
``@listener`` decorators are sugar: they record a spec on the method, and at
start the actor adds each declared handler. The message type is read from the
handler's annotations, so it is written once::

    class Tracker(Actor):
        @endpoint(GET_SUBJECT)
        async def get(self, request: GetWorkflow, ctx: RequestContext) -> WorkflowView: ...

        @consumer(STATUS_STREAM_SPEC, durable="status-tracker",
                  options=lambda self: {"concurrency": self.config.concurrency})
        async def apply(self, event: StatusEvent, ctx: MessageContext) -> None: ...

``options`` takes the actor instance and returns overrides of the declared
options, so each instance's configuration reaches its handlers.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import msgspec
from nats.aio.msg import Msg

from actors.runtime.errors import ConfigError
from actors.runtime.topology import BucketSpec, StreamSpec

__all__ = [
    "ConsumerSpec",
    "EndpointSpec",
    "HandlerSpec",
    "ListenerSpec",
    "MessageContext",
    "Options",
    "RequestContext",
    "WatchSpec",
    "consumer",
    "endpoint",
    "handler_specs",
    "listener",
    "message_type_of",
    "subject_name",
    "value_type_of",
]

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_SPEC_ATTR = "__troupe_handler__"
_OPTIONS_ATTR = "__troupe_options__"

Options = Callable[[Any], Mapping[str, Any]]
"""Per-instance options of a declared handler: takes the actor, returns overrides."""
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


class RequestContext(msgspec.Struct, frozen=True, kw_only=True):
    """What a request handler knows about the request besides its body.

    Immutable. A Struct rather than a dataclass because one is made for every
    request, and a Struct is built in C.

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
class WatchSpec:
    """A typed watch of a KV bucket (see :class:`~actors.runtime.watch.BucketWatch`).

    Attributes:
        bucket: the bucket watched (created if missing).
        keys: key pattern (``>`` for all keys).
        initial: start with the current value of every live key.
        name: name shown by ``$SRV.INFO`` (default ``watch-<bucket>``).
    """

    bucket: BucketSpec
    keys: str = ">"
    initial: bool = True
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", f"watch-{self.bucket.name}")
        _check_name("name", self.name)

    @property
    def subject(self) -> str:
        """The bucket subjects watched."""
        return f"$KV.{self.bucket.name}.{self.keys}"


HandlerOptions = EndpointSpec | ConsumerSpec | ListenerSpec


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """A declared handler, the message types read from its annotations, its options."""

    kind: Literal["endpoint", "consumer", "listener"]
    attr: str
    message_type: Any
    reply_type: Any
    options: HandlerOptions
    configure: Options | None = None

    def options_for(self, actor: object) -> HandlerOptions:
        """Return the options with ``actor``'s per-instance overrides applied.

        Raises:
            ConfigError: an override is invalid (names the field).
        """
        if self.configure is None:
            return self.options
        overrides = dict(self.configure(actor))
        try:
            return dataclasses.replace(self.options, **overrides)
        except TypeError as exc:
            raise ConfigError(self.attr, f"invalid options {sorted(overrides)}: {exc}") from None


def _declare(options: HandlerOptions, configure: Options | None = None) -> Callable[[F], F]:
    def mark(func: F) -> F:
        candidate: Any = func  # checked without narrowing F
        if not inspect.iscoroutinefunction(candidate):
            raise TypeError(f"{getattr(func, '__qualname__', func)!r} must be an async def")
        setattr(func, _SPEC_ATTR, options)
        setattr(func, _OPTIONS_ATTR, configure)
        return func

    return mark


def subject_name(subject: str) -> str:
    """Return the default endpoint name of ``subject`` (dots and wildcards replaced)."""
    return subject.replace(".", "-").replace("*", "any").replace(">", "all")


def endpoint(
    subject: str,
    *,
    name: str | None = None,
    queue_group: str = "troupe",
    concurrency: int = 32,
    options: Options | None = None,
) -> Callable[[F], F]:
    """Serve ``subject`` as a request/reply endpoint.

    The handler is ``async def h(self, request: Req, ctx: RequestContext) -> Reply``.

    Args:
        subject: subject served.
        name: endpoint name (default: the subject with dots and wildcards replaced).
        queue_group: queue group shared by replicas.
        concurrency: requests handled at once.
        options: per-instance overrides of these options (see :data:`Options`).
    """
    return _declare(
        EndpointSpec(
            subject=subject,
            name=name or subject_name(subject),
            queue_group=queue_group,
            concurrency=concurrency,
        ),
        options,
    )


def consumer(
    stream: StreamSpec, *, durable: str, options: Options | None = None, **settings: Any
) -> Callable[[F], F]:
    """Consume ``stream`` through a durable pull consumer (see :class:`ConsumerSpec`).

    The handler is ``async def h(self, message: Msg, ctx: MessageContext) -> None``;
    returning acknowledges, raising naks with backoff.

    Args:
        stream: the stream consumed.
        durable: durable consumer name.
        options: per-instance overrides, e.g.
            ``lambda self: {"concurrency": self.config.concurrency}``.
        settings: the other :class:`ConsumerSpec` fields.
    """
    return _declare(ConsumerSpec(stream=stream, durable=durable, **settings), options)


def listener(
    subject: str, *, queue_group: str | None = None, options: Options | None = None
) -> Callable[[F], F]:
    """Subscribe to core-NATS ``subject``.

    The handler is ``async def h(self, message: Msg, ctx: RequestContext) -> None``.

    Args:
        subject: subject (wildcards allowed).
        queue_group: share messages among replicas.
        options: per-instance overrides (see :data:`Options`).
    """
    return _declare(ListenerSpec(subject=subject, queue_group=queue_group), options)


def message_type_of(handler: Callable[..., Any], where: str = "") -> Any:
    """Return the annotated type of ``handler``'s message (first) parameter.

    Raises:
        TypeError: the parameter is not annotated.
    """
    hints = typing.get_type_hints(handler)
    params = [p for p in inspect.signature(handler).parameters if p != "self"]
    if not params or params[0] not in hints:
        name = where or getattr(handler, "__qualname__", repr(handler))
        raise TypeError(f"{name}: annotate the message parameter")
    return hints[params[0]]


def value_type_of(handler: Callable[..., Any]) -> Any:
    """Return ``T`` from a watch handler annotated ``(entry: Entry[T | None], ...)``.

    Raises:
        TypeError: the entry parameter is not annotated as an ``Entry[...]``.
    """
    entry_type = message_type_of(handler)
    args = typing.get_args(entry_type)
    if len(args) != 1:
        raise TypeError(f"{handler!r}: annotate the entry as Entry[ValueType | None]")
    options = [a for a in typing.get_args(args[0]) or (args[0],) if a is not type(None)]
    if len(options) == 1:
        return options[0]
    return typing.Union[tuple(options)]  # noqa: UP007 - built from a runtime tuple


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
            message_type = message_type_of(func, f"{cls.__name__}.{attr}")
            hints = typing.get_type_hints(func)
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
                    message_type=message_type,
                    reply_type=hints.get("return"),
                    options=options,
                    configure=getattr(func, _OPTIONS_ATTR, None),
                )
            )
    return specs

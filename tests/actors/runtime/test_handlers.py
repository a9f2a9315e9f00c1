"""Handler declarations: specs read from decorators and annotations, validated options."""

from __future__ import annotations

import pytest

from actors.runtime import (
    Actor,
    ConfigError,
    ConsumerSpec,
    EndpointSpec,
    ListenerSpec,
    MessageContext,
    RequestContext,
    consumer,
    endpoint,
    listener,
)
from actors.runtime.handlers import handler_specs
from tests.actors.runtime.workers import JOBS, Echo, Job, Ping, Pong


class Mixed(Echo):
    name = "mixed"

    @consumer(JOBS, durable="mixed", concurrency=2, ack_wait=5.0)
    async def work(self, job: Job, ctx: MessageContext) -> None:
        """Consume jobs."""

    @listener("test.events.>", queue_group="mixed")
    async def hear(self, event: Ping, ctx: RequestContext) -> None:
        """Hear events."""


def test_specs_come_in_definition_order_with_types_from_annotations() -> None:
    """handler_specs lists inherited and own handlers with their message types."""
    specs = {s.attr: s for s in handler_specs(Mixed)}
    assert set(specs) == {"echo", "work", "hear"}
    assert specs["echo"].kind == "endpoint"
    assert specs["echo"].message_type is Ping
    assert specs["echo"].reply_type is Pong
    assert specs["work"].kind == "consumer"
    assert specs["work"].message_type is Job
    assert specs["hear"].kind == "listener"
    assert isinstance(specs["hear"].options, ListenerSpec)
    assert specs["hear"].options.queue_group == "mixed"


def test_endpoint_name_defaults_to_subject_with_safe_characters() -> None:
    """An endpoint's micro name is derived from its subject."""
    (spec,) = handler_specs(Echo)
    assert isinstance(spec.options, EndpointSpec)
    assert spec.options.name == "test-echo"
    assert spec.options.queue_group == "troupe"


def test_consumer_options_are_kept() -> None:
    """Options given to @consumer reach the ConsumerSpec."""
    specs = {s.attr: s for s in handler_specs(Mixed)}
    options = specs["work"].options
    assert isinstance(options, ConsumerSpec)
    assert (options.durable, options.concurrency, options.ack_wait) == ("mixed", 2, 5.0)


def test_backoff_delay_follows_failures_and_repeats_the_last() -> None:
    """delay_after(n) is the n-th backoff delay, the last one repeating."""
    spec = ConsumerSpec(stream=JOBS, durable="d", backoff=(0.1, 1.0, 5.0))
    assert [spec.delay_after(n) for n in (0, 1, 2, 3, 4, 10)] == [0.1, 0.1, 1.0, 5.0, 5.0, 5.0]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"durable": "has space"}, "durable"),
        ({"durable": "a.b"}, "durable"),
        ({"durable": ""}, "durable"),
        ({"concurrency": 0}, "concurrency"),
        ({"ack_wait": 0.5}, "ack_wait"),
        ({"max_deliver": 0}, "max_deliver"),
        ({"backoff": ()}, "backoff"),
        ({"backoff": (1.0, -1.0)}, "backoff"),
    ],
)
def test_bad_consumer_options_raise_config_error_naming_the_field(
    kwargs: dict[str, object], field: str
) -> None:
    """A bad consumer option fails when the class is defined, naming the option."""
    options: dict[str, object] = {"stream": JOBS, "durable": "ok", **kwargs}
    with pytest.raises(ConfigError) as caught:
        ConsumerSpec(**options)  # type: ignore[arg-type]
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"name": "bad name"}, "name"), ({"name": "ok", "concurrency": 0}, "concurrency")],
)
def test_bad_endpoint_options_raise_config_error_naming_the_field(
    kwargs: dict[str, object], field: str
) -> None:
    """A bad endpoint option names its field."""
    with pytest.raises(ConfigError) as caught:
        EndpointSpec(subject="a.b", **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_handlers_must_be_async() -> None:
    """Decorating a plain function is refused."""
    with pytest.raises(TypeError, match="async def"):

        @endpoint("a.b")
        def sync(self: object, request: Ping, ctx: RequestContext) -> Pong:  # type: ignore[type-var]
            raise AssertionError


def test_handler_without_message_annotation_is_refused() -> None:
    """The message type must be annotated, since decoding depends on it."""

    class Unannotated(Actor):
        name = "unannotated"

        @endpoint("a.b")
        async def handle(self, request, ctx):  # type: ignore[no-untyped-def]
            return None

    with pytest.raises(TypeError, match="annotate"):
        handler_specs(Unannotated)


def test_actor_without_name_is_refused() -> None:
    """Every actor needs a name (its micro service name)."""

    class Nameless(Actor):
        pass

    with pytest.raises(TypeError, match="name"):
        Nameless()


def test_message_context_reports_redelivery() -> None:
    """redelivered is true from the second delivery on."""
    ctx = MessageContext(subject="s", headers={}, stream="S", sequence=1, num_delivered=2, msg=None)  # type: ignore[arg-type]
    assert ctx.redelivered

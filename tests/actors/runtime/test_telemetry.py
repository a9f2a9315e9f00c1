"""Tracing: W3C context in NATS headers, handler spans, set-up from OTEL_* variables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from actors.runtime import Bus, MessageContext, telemetry
from actors.runtime.testing import capture_spans, eventually
from tests.actors.runtime.workers import (
    ECHO_SUBJECT,
    JOBS_SUBJECT,
    Echo,
    Job,
    Ping,
    Pong,
    make_worker,
)

REPO = Path(__file__).resolve().parents[3]
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _by_name(spans: list[object], name: str) -> object:
    matches = [s for s in spans if s.name == name]  # type: ignore[attr-defined]
    assert len(matches) == 1, [s.name for s in spans]  # type: ignore[attr-defined]
    return matches[0]


def test_publish_span_injects_the_trace_context() -> None:
    """publish_span writes a traceparent naming its own span."""
    with capture_spans() as spans:
        headers: dict[str, str] = {}
        with telemetry.publish_span("a.b", headers) as span:
            context = span.get_span_context()
    assert headers["traceparent"].startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
    (recorded,) = spans
    assert recorded.kind is SpanKind.PRODUCER  # type: ignore[attr-defined]
    assert recorded.attributes["messaging.system"] == "nats"  # type: ignore[attr-defined]
    assert recorded.attributes["messaging.destination.name"] == "a.b"  # type: ignore[attr-defined]
    assert recorded.attributes["messaging.operation.type"] == "publish"  # type: ignore[attr-defined]


def test_span_name_of_a_workflow_subject_is_its_template() -> None:
    """A status event span is named by the subject template; the id goes in an attribute."""
    with capture_spans() as spans:
        headers: dict[str, str] = {}
        with telemetry.publish_span("troupe.status.events.wf-42", headers):
            pass
        with telemetry.process_span(
            "troupe.status.events.wf-42", headers, kind="consumer", actor="status_tracker"
        ):
            pass
    names = sorted(s.name for s in spans)  # type: ignore[attr-defined]
    assert names == [
        "process troupe.status.events.{workflow}",
        "publish troupe.status.events.{workflow}",
    ]
    for span in spans:
        attributes = span.attributes  # type: ignore[attr-defined]
        assert attributes["troupe.workflow.id"] == "wf-42"
        assert attributes["messaging.destination.name"] == "troupe.status.events.wf-42"
        assert attributes["messaging.destination.template"] == ("troupe.status.events.{workflow}")


@pytest.mark.parametrize(
    ("subject", "template", "ident"),
    [
        ("troupe.status.updates.wf-1", "troupe.status.updates.{workflow}", "wf-1"),
        ("troupe.agents.results.wf-1", "troupe.agents.results.{workflow}", "wf-1"),
        ("troupe.agents.inbox.agent-7", "troupe.agents.inbox.{agent}", "agent-7"),
        ("$KV.troupe_workflows.wf-1", "$KV.troupe_workflows.{key}", "wf-1"),
        ("_INBOX_gateway.abc.def", "_INBOX_gateway.{inbox}", "abc.def"),
        ("$SRV.PING.status_tracker.X1Y2", "$SRV.PING.status_tracker.{id}", "X1Y2"),
        ("troupe.tasks.submit", "troupe.tasks.submit", None),
        ("troupe.status.events.", "troupe.status.events.", None),
    ],
)
def test_destination_template_replaces_ids_with_placeholders(
    subject: str, template: str, ident: str | None
) -> None:
    """Subjects carrying ids map to one template each; fixed subjects are their own."""
    got_template, got_id, _ = telemetry.destination_template(subject)
    assert (got_template, got_id) == (template, ident)


def test_process_span_continues_the_incoming_trace() -> None:
    """process_span is a child of the span named in the headers."""
    with (
        capture_spans() as spans,
        telemetry.process_span("a.b", {"traceparent": TRACEPARENT}, kind="consumer", actor="x"),
    ):
        pass
    (span,) = spans
    assert format(span.context.trace_id, "032x") == TRACEPARENT[3:35]  # type: ignore[attr-defined]
    assert format(span.parent.span_id, "016x") == TRACEPARENT[36:52]  # type: ignore[attr-defined]
    assert span.kind is SpanKind.CONSUMER  # type: ignore[attr-defined]
    assert span.attributes["troupe.actor"] == "x"  # type: ignore[attr-defined]
    assert span.attributes["messaging.operation.type"] == "process"  # type: ignore[attr-defined]


def test_without_an_exporter_an_incoming_trace_is_forwarded_unchanged() -> None:
    """With no SDK installed nothing is recorded, but the trace id still travels on."""
    assert not telemetry.recording()
    outgoing: dict[str, str] = {}
    with telemetry.process_span("a.b", {"traceparent": TRACEPARENT}, kind="server", actor="x"):
        assert telemetry.current_trace_id() == TRACEPARENT[3:35]
        with telemetry.publish_span("c.d", outgoing):
            pass
    assert outgoing["traceparent"] == TRACEPARENT
    assert telemetry.current_trace_id() is None


def test_an_internal_span_without_an_exporter_makes_nothing_and_keeps_the_trace() -> None:
    """No SDK: the step span is no span at all, and what is published inside carries the
    incoming trace unchanged."""
    assert not telemetry.recording()
    outgoing: dict[str, str] = {}
    with telemetry.process_span("a.b", {"traceparent": TRACEPARENT}, kind="server", actor="x"):
        current = trace.get_current_span()
        with telemetry.internal_span("step s", {"troupe.step": "s"}) as span:
            assert span is trace.INVALID_SPAN
            assert trace.get_current_span() is current
            with telemetry.publish_span("c.d", outgoing):
                pass
    assert outgoing["traceparent"] == TRACEPARENT


def test_an_internal_span_is_recorded_as_a_child_when_spans_are_exported() -> None:
    """With an SDK the step span is recorded, with its attributes, in the incoming trace."""
    with (
        capture_spans() as spans,
        telemetry.process_span("a.b", {"traceparent": TRACEPARENT}, kind="server", actor="x"),
        telemetry.internal_span("step s", {"troupe.step": "s"}),
    ):
        pass
    step = next(s for s in spans if s.name == "step s")  # type: ignore[attr-defined]
    assert format(step.context.trace_id, "032x") == TRACEPARENT[3:35]  # type: ignore[attr-defined]
    assert step.attributes["troupe.step"] == "s"  # type: ignore[attr-defined]


def test_without_an_exporter_or_a_trace_no_header_is_added() -> None:
    """No trace in progress and no SDK: the headers stay empty (no wasted bytes)."""
    headers: dict[str, str] = {}
    with (
        telemetry.process_span("a.b", None, kind="server", actor="x"),
        telemetry.publish_span("c.d", headers),
    ):
        pass
    assert headers == {}


@pytest.mark.integration
async def test_request_handler_continues_the_callers_trace(bus: Bus) -> None:
    """A request's server span is the child of the requester's client span."""
    with capture_spans() as spans:
        async with Echo().running(bus):
            with telemetry.tracer().start_as_current_span("root"):
                assert await bus.request(ECHO_SUBJECT, Ping(n=1), Pong) == Pong(n=1)
    root = _by_name(spans, "root")
    client = _by_name(spans, f"send {ECHO_SUBJECT}")
    server = _by_name(spans, f"process {ECHO_SUBJECT}")
    trace_id = root.context.trace_id  # type: ignore[attr-defined]
    assert client.context.trace_id == server.context.trace_id == trace_id  # type: ignore[attr-defined]
    assert client.parent.span_id == root.context.span_id  # type: ignore[attr-defined]
    assert server.parent.span_id == client.context.span_id  # type: ignore[attr-defined]
    assert client.kind is SpanKind.CLIENT  # type: ignore[attr-defined]
    assert server.kind is SpanKind.SERVER  # type: ignore[attr-defined]
    assert server.attributes["messaging.system"] == "nats"  # type: ignore[attr-defined]
    assert server.attributes["messaging.destination.name"] == ECHO_SUBJECT  # type: ignore[attr-defined]
    assert server.attributes["troupe.actor"] == "echo"  # type: ignore[attr-defined]


@pytest.mark.integration
async def test_stream_handler_continues_the_publishers_trace(bus: Bus) -> None:
    """A consumer span is the child of the publish span, and the handler sees the trace."""
    seen: list[str | None] = []

    async def record(job: Job, ctx: MessageContext) -> None:
        seen.append(telemetry.current_trace_id())

    with capture_spans() as spans:
        async with make_worker(record).running(bus):
            with telemetry.tracer().start_as_current_span("root") as root:
                await bus.send(JOBS_SUBJECT, Job(id="t"))
            await eventually(lambda: _nonempty(seen))
    publish = _by_name(spans, f"publish {JOBS_SUBJECT}")
    process = _by_name(spans, f"process {JOBS_SUBJECT}")
    assert process.parent.span_id == publish.context.span_id  # type: ignore[attr-defined]
    assert process.kind is SpanKind.CONSUMER  # type: ignore[attr-defined]
    assert seen == [format(root.get_span_context().trace_id, "032x")]


async def _nonempty(items: list[str | None]) -> bool:
    return bool(items)


def test_tracing_stays_off_without_otel_variables() -> None:
    """No exporter variables: configure_tracing installs nothing."""
    assert telemetry.configure_tracing("troupe-x", {}) is False
    assert (
        telemetry.configure_tracing(
            "troupe-x", {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}
        )
        is False
    )
    assert (
        telemetry.configure_tracing(
            "troupe-x", {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}
        )
        is False
    )
    assert not isinstance(trace.get_tracer_provider(), _sdk_provider_type())


def _sdk_provider_type() -> type:
    from opentelemetry.sdk.trace import TracerProvider

    return TracerProvider


_PROBE = """
import json, sys
from opentelemetry import trace
from actors.runtime import telemetry
env = json.loads(sys.argv[1])
on = telemetry.configure_tracing("troupe-probe", env)
provider = trace.get_tracer_provider()
processors = getattr(getattr(provider, "_active_span_processor", None), "_span_processors", ())
exporters = [type(p.span_exporter).__module__ + "." + type(p.span_exporter).__name__
             for p in processors]
service = provider.resource.attributes.get("service.name") if on else None
print(json.dumps({"on": on, "service": service, "exporters": exporters}))
telemetry.shutdown_tracing()
"""


@pytest.mark.processes
@pytest.mark.parametrize(
    ("env", "service", "exporter"),
    [
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
            "troupe-probe",
            "opentelemetry.exporter.otlp.proto.http.trace_exporter.OTLPSpanExporter",
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_SERVICE_NAME": "custom",
            },
            "custom",
            "opentelemetry.exporter.otlp.proto.grpc.trace_exporter.OTLPSpanExporter",
        ),
        (
            {"OTEL_TRACES_EXPORTER": "console"},
            "troupe-probe",
            "opentelemetry.sdk.trace.export.ConsoleSpanExporter",
        ),
    ],
    ids=["otlp-http-default", "otlp-grpc-service-name", "console"],
)
def test_configure_tracing_honours_the_standard_variables(
    env: dict[str, str], service: str, exporter: str
) -> None:
    """OTEL_* variables choose the exporter, its protocol and the service name."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(env)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": "."},
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"on": True, "service": service, "exporters": [exporter]}


def test_a_fresh_context_is_valid_sampled_local_and_new_each_time() -> None:
    """The context a door makes current when no trace is: real ids, sampled, never repeated."""
    contexts = [telemetry.fresh_context() for _ in range(1000)]
    assert all(c.is_valid and c.trace_flags.sampled and not c.is_remote for c in contexts)
    assert len({c.trace_id for c in contexts}) == len(contexts)
    assert len({c.span_id for c in contexts}) == len(contexts)

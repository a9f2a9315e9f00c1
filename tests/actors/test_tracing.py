"""One workflow, one trace: actors as processes export to a real OTLP/HTTP receiver.

The receiver is a small ``http.server`` on 127.0.0.1 that decodes the real
protobuf (``ExportTraceServiceRequest`` and ``ExportMetricsServiceRequest``
from ``opentelemetry-proto``). Every actor exports metrics there too. The
client starts the trace itself (a W3C ``traceparent`` on the submitted task);
every actor span of the workflow must share its trace id and hang, parent to
child, off a span of the trace or the client's root.
"""

from __future__ import annotations

import gzip
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from actors.roster import ACTORS
from actors.runtime.testing import eventually
from tests.actors.processes import actor_processes, wait_for_ping

pytestmark = [pytest.mark.integration, pytest.mark.processes]

TOUCHING = ("task_manager", "pipeline_runner", "status_tracker")
"""Actors every workflow passes through."""


@dataclass(frozen=True)
class ReceivedSpan:
    """The parts of an exported span the test looks at."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str


class _Receiver(BaseHTTPRequestHandler):
    spans: list[ReceivedSpan]
    metrics: set[tuple[str, str]]
    lock: threading.Lock

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path.endswith("/v1/metrics"):
            self._metrics(body)
            return
        request = ExportTraceServiceRequest.FromString(body)
        received = []
        for resource_spans in request.resource_spans:
            attrs = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            service=attrs.get("service.name", ""),
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                        )
                    )
        with self.lock:
            self.spans.extend(received)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def _metrics(self, body: bytes) -> None:
        request = ExportMetricsServiceRequest.FromString(body)
        received = set()
        for resource_metrics in request.resource_metrics:
            attrs = {a.key: a.value.string_value for a in resource_metrics.resource.attributes}
            for scope_metrics in resource_metrics.scope_metrics:
                for m in scope_metrics.metrics:
                    received.add((attrs.get("service.name", ""), m.name))
        with self.lock:
            self.metrics.update(received)
        self._answer(ExportMetricsServiceResponse().SerializeToString())

    def _answer(self, answer: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


_METRICS: set[tuple[str, str]] = set()
"""(service, metric name) pairs the receiver got, reset by each use of the fixture."""


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, list[ReceivedSpan]]]:
    """An OTLP/HTTP trace receiver on a free loopback port; yields (endpoint, spans)."""
    spans: list[ReceivedSpan] = []
    handler = type(
        "Receiver",
        (_Receiver,),
        {"spans": spans, "metrics": _METRICS, "lock": threading.Lock()},
    )
    _METRICS.clear()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", spans
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


async def _submit_hello(nc: Client, task_id: str, **headers: str) -> None:
    """Submit the ``hello`` template as a plain JSON client does, with extra ``headers``."""
    await nc.jetstream().publish(
        "troupe.tasks.submit",
        json.dumps(
            {"type": "troupe.tasks.v1.submit", "task_id": task_id, "template": "hello"}
        ).encode(),
        headers={"Content-Type": "application/json", "Nats-Msg-Id": task_id, **headers},
    )


async def test_workflow_is_one_trace_across_every_actor_process(
    nats_url: str, tmp_path: Path, otlp_receiver: tuple[str, list[ReceivedSpan]]
) -> None:
    """Spans of every actor touching the workflow share its trace id and link up."""
    names = sorted(ACTORS)
    endpoint, spans = otlp_receiver
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    trace_id, root_id = secrets.token_hex(16), secrets.token_hex(8)
    logs = tmp_path / "logs"
    with actor_processes(names, nats_url, logs, env) as procs:
        await wait_for_ping(nats_url, procs, logs)
        nc = await nats.connect(nats_url)
        try:
            task_id = f"traced-{secrets.token_hex(6)}"
            await _submit_hello(nc, task_id, traceparent=f"00-{trace_id}-{root_id}-01")

            async def final_state() -> str | None:
                reply = await nc.request(
                    "troupe.status.get",
                    json.dumps({"workflow_id": task_id}).encode(),
                    headers={"Content-Type": "application/json"},
                    timeout=5,
                )
                state = json.loads(reply.data).get("state")
                done = state in {"succeeded", "failed", "rejected", "cancelled", "timed_out"}
                return state if done else None

            assert await eventually(final_state, timeout=60.0, interval=0.2) == "succeeded"
        finally:
            await nc.close()

        async def linked_trace() -> list[ReceivedSpan] | None:
            ours = [s for s in list(spans) if s.trace_id == trace_id]
            services = {s.service for s in ours}
            if not {f"troupe-{n}" for n in TOUCHING} <= services:
                return None
            known = {s.span_id for s in ours} | {root_id}
            return ours if all(s.parent_span_id in known for s in ours) else None

        ours = await eventually(linked_trace, timeout=20.0, interval=0.2)
    assert all(s.parent_span_id for s in ours), "a span started a trace of its own"
    roots = [s for s in ours if s.parent_span_id == root_id]
    assert [r.service for r in roots] == ["troupe-task_manager"]
    for name in TOUCHING:
        assert any(s.service == f"troupe-{name}" and s.name.startswith("process ") for s in ours)
    assert not [
        s
        for s in spans
        if s.trace_id != trace_id
        and s.service == "troupe-task_manager"
        and s.name == "process troupe.tasks.submit"
    ]


async def test_every_actor_exports_metrics_over_otlp(
    nats_url: str, tmp_path: Path, otlp_receiver: tuple[str, list[ReceivedSpan]]
) -> None:
    """With OTEL_* set, each actor exports its handler metrics; the gateway its workflow ones."""
    names = sorted(ACTORS)
    endpoint, _ = otlp_receiver
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRIC_EXPORT_INTERVAL": "300",
    }
    logs = tmp_path / "logs"
    with actor_processes(names, nats_url, logs, env) as procs:
        await wait_for_ping(nats_url, procs, logs)
        nc = await nats.connect(nats_url)
        try:
            task_id = f"metered-{secrets.token_hex(6)}"
            await _submit_hello(nc, task_id)
        finally:
            await nc.close()
        wanted = {(f"troupe-{name}", "troupe.messages.handled") for name in TOUCHING}
        wanted |= {(f"troupe-{name}", "troupe.handler.duration") for name in TOUCHING}
        wanted |= {
            ("troupe-gateway", "troupe.workflow.transitions"),
            ("troupe-gateway", "troupe.step.duration"),
        }

        async def exported() -> bool | None:
            return True if wanted <= set(_METRICS) else None

        await eventually(exported, timeout=60.0, interval=0.2, what=f"metrics {sorted(wanted)}")

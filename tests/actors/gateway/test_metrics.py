"""``GET /metrics`` on the session troupe: a Prometheus scrape with every gateway metric."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from actors.runtime.metrics import METRICS, prometheus_names
from tests.actors.gateway.conftest import Gateway

pytestmark = [pytest.mark.integration, pytest.mark.processes]

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out", "rejected"}

DATA_DEPENDENT = {
    "troupe.workflow.retries",
    "troupe.step.cache_hits",
    "troupe.breaker.state",
    "troupe.breaker.failure_rate",
    "troupe.breaker.slow_rate",
}
"""Gateway metrics with no series until a retry, a cache hit or a breaker happens."""


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def _run_hello(gateway: Gateway) -> str:
    with gateway.client(gateway.operator) as client:
        submitted = client.post("/api/v1/workflows", json={"template": "hello"}).json()
        workflow_id = str(submitted["workflow_id"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = client.get(f"/api/v1/workflows/{workflow_id}").json().get("state")
            if state in TERMINAL:
                return str(state)
            time.sleep(0.2)
    raise AssertionError("the workflow did not finish")


def test_metrics_scrape_parses_and_has_every_gateway_metric(
    gateway: Gateway, make_token: Callable[..., str]
) -> None:
    """After a workflow, the scrape parses and names every metric the gateway records."""
    assert _run_hello(gateway) == "succeeded"
    expected = {
        name
        for spec in METRICS
        if "gateway" in spec.source and spec.name not in DATA_DEPENDENT
        for name in prometheus_names(spec)
    }
    with gateway.client(make_token("viewer")) as client:
        deadline = time.monotonic() + 30
        while True:
            response = client.get("/metrics")
            assert response.status_code == 200, response.text
            samples = _samples(response.text)
            missing = expected - set(samples)
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert not missing, sorted(missing)
    succeeded = [
        value
        for labels, value in samples["troupe_workflow_transitions_total"]
        if labels == {"state": "succeeded", "template": "hello"}
    ]
    assert succeeded
    assert succeeded[0] >= 1
    streams = {labels["stream"] for labels, _ in samples["troupe_stream_messages"]}
    assert {"TROUPE_TASKS", "TROUPE_STATUS"} <= streams
    consumers = {labels["consumer"] for labels, _ in samples["troupe_consumer_pending"]}
    assert "status-tracker" in consumers


def test_metrics_scrape_needs_a_token(gateway: Gateway) -> None:
    """Without a bearer token the scrape is refused."""
    with gateway.client() as client:
        assert client.get("/metrics").status_code == 401

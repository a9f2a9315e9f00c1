"""Metrics catalog and set-up: Prometheus names, exporter choice from ``OTEL_*``."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from actors.runtime import metrics


def _observe(options: CallbackOptions) -> list[Observation]:
    return [Observation(1.0, {"k": "v"})]


def test_prometheus_names_match_what_the_exporter_writes() -> None:
    """Every catalog entry appears in a real scrape under exactly its predicted names."""
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(
        disable_target_info=True, scope_info_enabled=False, registry=registry
    )
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("test")
    for spec in metrics.METRICS:
        if spec.kind == "counter":
            meter.create_counter(spec.name, unit=spec.unit).add(1, {"k": "v"})
        elif spec.kind == "histogram":
            meter.create_histogram(spec.name, unit=spec.unit).record(0.5, {"k": "v"})
        else:
            meter.create_observable_gauge(spec.name, callbacks=[_observe], unit=spec.unit)
    text = generate_latest(registry).decode()
    provider.shutdown()
    scraped = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    predicted = {n for spec in metrics.METRICS for n in metrics.prometheus_names(spec)}
    assert scraped == predicted


def test_catalog_names_are_unique_and_troupe_scoped() -> None:
    """No metric is listed twice and every name starts with troupe."""
    names = [spec.name for spec in metrics.METRICS]
    assert len(names) == len(set(names))
    assert all(name.startswith("troupe.") for name in names)


def test_no_provider_without_an_exporter_or_reader() -> None:
    """Without OTEL_* asking for an exporter, nothing is built."""
    assert metrics.build_meter_provider("svc", {}) is None
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}
    assert (
        metrics.build_meter_provider("svc", {**endpoint, "OTEL_METRICS_EXPORTER": "none"}) is None
    )
    assert metrics.build_meter_provider("svc", {**endpoint, "OTEL_SDK_DISABLED": "true"}) is None


def test_an_otlp_endpoint_or_exporter_builds_a_provider() -> None:
    """An OTLP endpoint, or OTEL_METRICS_EXPORTER=console, builds an SDK provider."""
    for env in (
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"},
        {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://127.0.0.1:1/v1/metrics"},
        {"OTEL_METRICS_EXPORTER": "console"},
    ):
        provider = metrics.build_meter_provider("svc", env)
        assert isinstance(provider, MeterProvider)
        provider.shutdown()


def test_metric_looks_up_by_name() -> None:
    """metric() returns the catalog entry and raises KeyError for an unknown name."""
    assert metrics.metric("troupe.workflows").kind == "gauge"
    with pytest.raises(KeyError):
        metrics.metric("troupe.nothing")


def test_monitoring_guide_lists_every_metric() -> None:
    """docs/guides/monitoring.md names each metric and its Prometheus series."""
    guide = (Path(__file__).resolve().parents[3] / "docs" / "guides" / "monitoring.md").read_text()
    for spec in metrics.METRICS:
        assert f"`{spec.name}`" in guide, spec.name
        for name in metrics.prometheus_names(spec):
            assert f"`{name}`" in guide, name

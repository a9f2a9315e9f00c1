"""The Grafana dashboard and the alert rules use only metrics troupe exports.

Every PromQL expression is split into identifiers; each must be a series name
from :data:`actors.runtime.metrics.METRICS` (as a scrape shows it), a label of
those metrics, or PromQL's own vocabulary. ``promtool check rules`` runs too
when Prometheus is installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from actors.runtime.metrics import METRICS, prometheus_names

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "deploy" / "grafana" / "troupe.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"

SERIES = {name for spec in METRICS for name in prometheus_names(spec)}
"""Every series name a scrape of troupe can show."""

LABELS = {a.replace(".", "_") for spec in METRICS for a in spec.attributes} | {"le"}
"""Every label of those series (attribute keys with dots as underscores)."""

PROMQL = {
    # functions
    "abs", "clamp_min", "clamp_max", "delta", "deriv", "histogram_quantile", "increase",
    "irate", "max_over_time", "min_over_time", "avg_over_time", "rate", "time", "vector",
    # aggregations and keywords
    "sum", "min", "max", "avg", "count", "topk", "by", "without", "and", "or", "unless",
    "on", "ignoring", "group_left", "group_right", "bool", "offset",
}  # fmt: skip
"""PromQL words the expressions may use."""

ALERT_NAMES = {
    "TroupeWorkflowFailureRateHigh",
    "TroupeQueueGrowing",
    "TroupeBreakerOpenTooLong",
    "TroupeAgentLost",
    "TroupeNatsNodeDown",
    "TroupeDeadLettersArriving",
}
"""The alerts the monitoring guide promises."""

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_DURATION = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def identifiers(expr: str) -> set[str]:
    """Return the identifiers of a PromQL expression (strings, ranges and Grafana variables cut)."""
    expr = _DURATION.sub("", _STRING.sub("", expr.replace("$__range", "1h")))
    expr = re.sub(r"\d+(\.\d+)?(e-?\d+)?", "", expr)
    return set(_IDENT.findall(expr))


def _dashboard_targets() -> Iterator[tuple[str, str]]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def _rules() -> list[dict[str, Any]]:
    document: dict[str, Any] = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_identifiers_keep_names_and_drop_strings_and_ranges() -> None:
    """The splitter keeps series, labels and words, never label values or durations."""
    expr = 'sum by (le) (rate(troupe_step_duration_seconds_bucket{state="x_y"}[5m])) > 0.5'
    assert identifiers(expr) == {
        "sum",
        "by",
        "le",
        "rate",
        "state",
        "troupe_step_duration_seconds_bucket",
    }


def test_every_dashboard_panel_uses_only_exported_names() -> None:
    """Each panel query names at least one troupe series and nothing unknown."""
    targets = list(_dashboard_targets())
    assert len(targets) >= 20
    for title, expr in targets:
        words = identifiers(expr)
        assert words & SERIES, f"{title}: no troupe series in {expr}"
        unknown = words - SERIES - LABELS - PROMQL
        assert not unknown, f"{title}: {sorted(unknown)} in {expr}"


def test_dashboard_shows_every_exported_metric() -> None:
    """No exported metric is left off the dashboard."""
    used = set().union(*(identifiers(expr) for _, expr in _dashboard_targets()))
    for spec in METRICS:
        assert used & set(prometheus_names(spec)), spec.name


def test_every_alert_rule_uses_only_exported_names() -> None:
    """Each rule expression names a troupe series and nothing unknown; all promised alerts exist."""
    rules = _rules()
    assert {rule["alert"] for rule in rules} == ALERT_NAMES
    for rule in rules:
        words = identifiers(rule["expr"])
        assert words & SERIES, rule["alert"]
        unknown = words - SERIES - LABELS - PROMQL
        assert not unknown, f"{rule['alert']}: {sorted(unknown)}"
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]


def test_monitoring_guide_lists_every_alert() -> None:
    """docs/guides/monitoring.md documents each alert."""
    guide = (REPO / "docs" / "guides" / "monitoring.md").read_text()
    for name in ALERT_NAMES:
        assert f"`{name}`" in guide, name


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_alert_rules() -> None:
    """promtool check rules passes on deploy/prometheus/alerts.yml."""
    promtool = shutil.which("promtool")
    assert promtool is not None
    done = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr

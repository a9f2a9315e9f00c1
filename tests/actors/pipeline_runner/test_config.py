"""The runner's configuration: the outcome-report batch settings and their checks."""

from __future__ import annotations

import pytest

from actors.pipeline_runner.config import RunnerConfig
from actors.runtime.errors import ConfigError


def test_report_batch_settings_come_from_the_environment_and_default_to_batching() -> None:
    """256 reports per message and a 50 ms window unless TROUPE_RUNNER_REPORT_* say otherwise."""
    default = RunnerConfig.from_env({})
    assert (default.report_batch_max, default.report_batch_s) == (256, 0.05)
    single = RunnerConfig.from_env(
        {"TROUPE_RUNNER_REPORT_BATCH_MAX": "1", "TROUPE_RUNNER_REPORT_BATCH_S": "0"}
    )
    assert (single.report_batch_max, single.report_batch_s) == (1, 0.0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("report_batch_max", 0),
        ("report_batch_max", 257),
        ("report_batch_s", -0.01),
        ("report_batch_s", 1.5),
    ],
)
def test_report_batch_settings_out_of_range_fail_naming_the_field(field: str, value: float) -> None:
    """A batch of 1-256 reports, a window of 0-1 s; anything else fails at start-up."""
    with pytest.raises(ConfigError, match=field):
        RunnerConfig(**{field: value})  # type: ignore[arg-type]

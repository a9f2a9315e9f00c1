"""Breaker metrics: OpenTelemetry instruments and the ``$SRV.STATS`` data.

Instruments come from the OpenTelemetry API meter, a no-op unless an SDK meter
provider is installed (or one is passed in, as tests do):

* ``troupe.breaker.calls`` (counter; ``breaker.key``, ``outcome`` =
  success | failure | ignored, ``slow``),
* ``troupe.breaker.transitions`` (counter; ``breaker.key``, ``to_state``),
* ``troupe.breaker.state`` (gauge; 0 closed, 1 open, 2 half_open,
  3 forced_open, 4 disabled), ``troupe.breaker.failure_rate``,
  ``troupe.breaker.slow_rate`` and ``troupe.breaker.window_calls`` (gauges).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from protocols.breakers import BreakerState, BreakerStatus

__all__ = ["STATE_CODES", "BreakerMetrics"]

STATE_CODES: dict[BreakerState, int] = {
    "closed": 0,
    "open": 1,
    "half_open": 2,
    "forced_open": 3,
    "disabled": 4,
}
"""Numeric value of each state in the ``troupe.breaker.state`` gauge."""


class BreakerMetrics:
    """Counts what the supervisor does and reports it two ways.

    Args:
        statuses: returns the current status of every breaker (read by the gauges).
        meter_provider: where instruments come from (the global one by default).
    """

    def __init__(
        self,
        statuses: Callable[[], Iterable[BreakerStatus]],
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self._statuses = statuses
        provider = meter_provider or metrics.get_meter_provider()
        meter = provider.get_meter("troupe.breakers")
        self._calls = meter.create_counter(
            "troupe.breaker.calls", unit="{call}", description="Call outcomes reported"
        )
        self._transitions = meter.create_counter(
            "troupe.breaker.transitions", unit="{transition}", description="Breaker state changes"
        )
        meter.create_observable_gauge(
            "troupe.breaker.state",
            callbacks=[self._observe("state")],
            description="0 closed, 1 open, 2 half_open, 3 forced_open, 4 disabled",
        )
        meter.create_observable_gauge(
            "troupe.breaker.failure_rate",
            callbacks=[self._observe("failure_rate")],
            unit="1",
            description="Failure ratio of the current window",
        )
        meter.create_observable_gauge(
            "troupe.breaker.slow_rate",
            callbacks=[self._observe("slow_rate")],
            unit="1",
            description="Slow-call ratio of the current window",
        )
        meter.create_observable_gauge(
            "troupe.breaker.window_calls",
            callbacks=[self._observe("calls")],
            unit="{call}",
            description="Calls in the current window",
        )
        self.reports = 0
        self.failures = 0
        self.slow = 0
        self.ignored = 0
        self.transitions = 0

    def _observe(self, field: str) -> Callable[[CallbackOptions], Iterator[Observation]]:
        def callback(_: CallbackOptions) -> Iterator[Observation]:
            for status in self._statuses():
                value: float = (
                    STATE_CODES[status.state] if field == "state" else getattr(status, field)
                )
                yield Observation(value, {"breaker.key": status.key})

        return callback

    def call(self, key: str, *, outcome: str, slow: bool) -> None:
        """Count one reported call."""
        self.reports += 1
        self.failures += outcome == "failure"
        self.ignored += outcome == "ignored"
        self.slow += slow
        self._calls.add(1, {"breaker.key": key, "outcome": outcome, "slow": slow})

    def transition(self, key: str, to_state: BreakerState) -> None:
        """Count one transition."""
        self.transitions += 1
        self._transitions.add(1, {"breaker.key": key, "to_state": to_state})

    def stats(self) -> dict[str, Any]:
        """The ``$SRV.STATS`` data: totals and every breaker's state and rates."""
        statuses = list(self._statuses())
        by_state: dict[str, int] = dict.fromkeys(STATE_CODES, 0)
        for status in statuses:
            by_state[status.state] += 1
        return {
            "reports": self.reports,
            "failures": self.failures,
            "slow_calls": self.slow,
            "ignored": self.ignored,
            "transitions": self.transitions,
            "breakers": len(statuses),
            "by_state": by_state,
            "by_key": {
                s.key: {
                    "state": s.state,
                    "calls": s.calls,
                    "failure_rate": round(s.failure_rate, 4),
                    "slow_rate": round(s.slow_rate, 4),
                }
                for s in statuses
            },
        }

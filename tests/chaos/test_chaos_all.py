"""Kill everything at random while workflows run: nothing lost, failed or done twice at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.checker import BAD, Execution, Observed, classify, table
from tests.chaos.harness import ChaosConfig, run_chaos

pytestmark = [pytest.mark.integration, pytest.mark.processes, pytest.mark.chaos]


@pytest.mark.timeout(300)
async def test_random_sigkills_of_every_process_kind_lose_and_overlap_nothing(
    tmp_path: Path,
) -> None:
    """A small kill-everything run: every workflow ok or visibly re-executed."""
    config = ChaosConfig(workflows=24, kills=8, kill_interval=1.5, seed=7)
    run = await run_chaos(config, tmp_path)
    assert run.observed is not None
    counts, text = table(run.observed)
    bad = {v: n for v, n in counts.items() if v in BAD and n}
    assert not bad, f"{text}\nkills: {run.kills}"
    assert all(s < 5.0 for s in run.server_back_s), run.server_back_s


def test_checker_calls_overlapping_executions_concurrent_duplicates() -> None:
    """Two executions of one step whose spans intersect are a concurrent duplicate."""
    from protocols.pipelines import PipelineResult, StepResult

    seen = Observed(ids=["wf"])
    seen.results["wf"] = PipelineResult(
        workflow_id="wf",
        state="succeeded",
        steps=[StepResult(name="s", state="succeeded", attempt=2, attempt_reason="runner_lost")],
        started_at=0,
        finished_at=1,
    )
    seen.steps["wf"] = {"s": [Execution(1, 0.0, 2.0), Execution(2, 1.0, 3.0)]}
    assert classify("wf", seen) == "duplicated-concurrently"
    seen.steps["wf"] = {"s": [Execution(1, 0.0, 0.5), Execution(2, 1.0, 3.0)]}
    assert classify("wf", seen) == "unexpected", "no status view, no history"
    assert classify("other", seen) == "lost"

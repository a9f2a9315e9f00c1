"""End to end: the ``troupe`` CLI, run as a process, against a ``troupe up`` of actor processes."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from actors.runtime.testing import eventually
from tests.actors.conftest import RunningTroupe, session_state_env

pytestmark = [pytest.mark.integration, pytest.mark.processes]

ROOT = Path(__file__).resolve().parents[2]
DATA_PIPELINE = ROOT / "examples" / "data-pipeline.toml"
CLI_TIMEOUT = 60.0


@dataclass(frozen=True)
class Ran:
    """What one CLI invocation returned."""

    code: int
    out: str
    err: str


def _env(url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TROUPE_")}
    env.update(session_state_env())  # the CLI logs in with the troupe's client password
    if url is not None:
        env["TROUPE_NATS_URL"] = url
    return env


def _troupe_sync(*args: str, url: str | None) -> Ran:
    done = subprocess.run(
        [sys.executable, "-m", "actors", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        env=_env(url),
        cwd=ROOT,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


async def _troupe(*args: str, url: str | None, env: Mapping[str, str] | None = None) -> Ran:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "actors",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**_env(url), **(env or {})},
        cwd=ROOT,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


@dataclass(frozen=True)
class Submitted:
    """The data pipeline submitted once for the whole module."""

    workflow_id: str
    ran: Ran


@pytest.fixture(scope="module")
def data_pipeline(troupe_up: RunningTroupe) -> Submitted:
    """``troupe submit examples/data-pipeline.toml --wait`` with two parameters set."""
    workflow_id = f"cli-dp-{uuid.uuid4().hex[:10]}"
    ran = _troupe_sync(
        "submit",
        str(DATA_PIPELINE),
        "--param",
        "rows=120",
        "--param",
        "title=Quarterly units",
        "--id",
        workflow_id,
        "--wait",
        "--timeout",
        "45",
        url=troupe_up.url,
    )
    return Submitted(workflow_id, ran)


async def _troupe_into_closed_pipe(*args: str, url: str) -> Ran:
    """Run the CLI with its stdout a pipe nobody reads any more (as ``| head -1`` ends)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "actors",
            *args,
            stdout=write_end,
            stderr=asyncio.subprocess.PIPE,
            env=_env(url),
            cwd=ROOT,
        )
    finally:
        os.close(write_end)
    _, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT)
    assert proc.returncode is not None
    return Ran(proc.returncode, "", err.decode())


async def test_submit_data_pipeline_with_wait_exits_zero_and_prints_succeeded(
    data_pipeline: Submitted,
) -> None:
    """``submit FILE --wait`` prints the workflow id, exits 0 and reports ``succeeded``."""
    ran = data_pipeline.ran
    assert ran.code == 0, ran.err
    assert ran.out.strip() == data_pipeline.workflow_id
    assert f"workflow {data_pipeline.workflow_id} succeeded" in ran.err


async def test_submit_prints_the_trace_id_the_workflow_carries(
    troupe_up: RunningTroupe, data_pipeline: Submitted
) -> None:
    """``submit`` prints ``trace id: <hex>`` on stderr, the id the status tracker records."""
    printed = re.findall(r"^trace id: ([0-9a-f]{32})$", data_pipeline.ran.err, re.MULTILINE)
    assert len(printed) == 1, data_pipeline.ran.err
    status = await _troupe("status", data_pipeline.workflow_id, "--json", url=troupe_up.url)
    assert json.loads(status.out)["trace_id"] == printed[0]


async def test_watch_and_status_of_an_unknown_id_exit_2_at_once(
    troupe_up: RunningTroupe,
) -> None:
    """An id the status tracker does not know ends ``watch`` and ``status`` with exit 2."""
    unknown = f"never-{uuid.uuid4().hex[:8]}"
    watched, shown = await asyncio.gather(
        _troupe("watch", unknown, url=troupe_up.url),
        _troupe("status", unknown, url=troupe_up.url),
    )
    assert (watched.code, shown.code) == (2, 2), (watched, shown)
    assert f"troupe watch: no workflow {unknown}" in watched.err
    assert unknown in shown.err


async def test_output_into_a_closed_pipe_ends_quietly(
    troupe_up: RunningTroupe, data_pipeline: Submitted
) -> None:
    """``troupe status|result|ls|schema ... | head -1``: no traceback, exit 141 (SIGPIPE)."""
    wid = data_pipeline.workflow_id
    commands = [("status", wid), ("result", wid), ("ls",), ("schema",)]
    runs = await asyncio.gather(
        *(_troupe_into_closed_pipe(*command, url=troupe_up.url) for command in commands)
    )
    for command, ran in zip(commands, runs, strict=True):
        assert (ran.code, ran.err) == (141, ""), (command, ran)


async def test_result_lists_every_step_of_the_pipeline_file_as_succeeded(
    troupe_up: RunningTroupe, data_pipeline: Submitted
) -> None:
    """``troupe result ID`` shows each step named in the file with its state."""
    ran = await _troupe("result", data_pipeline.workflow_id, url=troupe_up.url)
    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()
    assert lines[0].startswith(f"workflow {data_pipeline.workflow_id}: succeeded")
    rows = {line.split()[0]: line.split()[1] for line in lines[2:] if line.strip()}
    assert rows == {"extract": "succeeded", "transform": "succeeded", "report": "succeeded"}


async def test_artifact_fetches_a_report_consistent_with_the_extracted_records(
    troupe_up: RunningTroupe, data_pipeline: Submitted, tmp_path: Path
) -> None:
    """``troupe artifact ID NAME`` returns files that agree with each other and the params."""
    wid = data_pipeline.workflow_id
    raw = await _troupe("artifact", wid, "raw.csv", url=troupe_up.url)
    assert raw.code == 0, raw.err
    records = list(csv.DictReader(io.StringIO(raw.out)))
    assert len(records) == 120
    expected: dict[str, float] = {}
    for row in records:
        revenue = int(row["units"]) * float(row["price"])
        expected[row["region"]] = round(expected.get(row["region"], 0.0) + revenue, 2)

    target = tmp_path / "report.md"
    report = await _troupe("artifact", wid, "report.md", "-o", str(target), url=troupe_up.url)
    assert report.code == 0, report.err
    text = target.read_text()
    assert text.startswith("# Quarterly units\n")
    for region, revenue in expected.items():
        assert f"| {region} | " in text
        assert f" | {revenue:.2f} |" in text
    total = sum(expected[region] for region in sorted(expected))
    assert f"Total revenue: {total:.2f}" in text

    missing = await _troupe("artifact", wid, "nope.txt", url=troupe_up.url)
    assert missing.code == 1
    assert "report.md" in missing.err


async def test_submit_wait_of_a_failing_inline_pipeline_exits_non_zero(
    troupe_up: RunningTroupe, tmp_path: Path
) -> None:
    """A definition file whose step exits 1 makes ``submit --wait`` exit 1 (failed)."""
    definition = tmp_path / "fails.toml"
    definition.write_text(
        'name = "fails"\nbackend = "local"\n\n'
        '[[steps]]\nname = "boom"\nrun = "echo going down; exit 1"\n'
    )
    ran = await _troupe("submit", str(definition), "--wait", "--timeout", "30", url=troupe_up.url)
    assert ran.code == 1, ran.err
    workflow_id = ran.out.strip()
    assert f"workflow {workflow_id} failed" in ran.err

    result = await _troupe("result", workflow_id, "--json", url=troupe_up.url)
    assert result.code == 0, result.err
    stored = json.loads(result.out)
    assert stored["state"] == "failed"
    assert [(s["name"], s["state"], s["exit_code"]) for s in stored["steps"]] == [
        ("boom", "failed", 1)
    ]


async def test_status_and_ls_show_the_submitted_workflows(
    troupe_up: RunningTroupe, data_pipeline: Submitted
) -> None:
    """``status ID`` shows the state and steps; ``ls`` lists the workflow; unknown ids exit 2."""
    wid = data_pipeline.workflow_id
    status = await _troupe("status", wid, "--nats-url", troupe_up.url, url=None)
    assert status.code == 0, status.err
    assert status.out.startswith(f"{wid} succeeded 3/3 steps 100%")
    for step in ("extract", "transform", "report"):
        assert f"step {step} succeeded" in status.out

    listing = await _troupe("ls", "--template", "data-pipeline", "--json", url=troupe_up.url)
    assert listing.code == 0, listing.err
    items = {v["workflow_id"]: v["state"] for v in json.loads(listing.out)["items"]}
    assert items[wid] == "succeeded"

    plain = await _troupe("ls", url=troupe_up.url)
    assert plain.code == 0, plain.err
    assert any(line.split()[:2] == [wid, "succeeded"] for line in plain.out.splitlines())

    unknown = await _troupe("status", f"never-{uuid.uuid4().hex[:8]}", url=troupe_up.url)
    assert unknown.code == 2


async def test_cancel_of_a_running_workflow_ends_cancelled_and_kills_its_step(
    troupe_up: RunningTroupe, tmp_path: Path
) -> None:
    """``troupe cancel`` stops a long step: the workflow ends ``cancelled``, no process left."""
    # A sleep with a unique argument, so its process can be found by command line.
    nap = f"{57 + uuid.uuid4().int % 1000 / 1000:.3f}"
    definition = tmp_path / "slow.toml"
    definition.write_text(
        'name = "slow"\nbackend = "local"\n\n'
        f'[[steps]]\nname = "nap"\nrun = ["sleep", "{nap}"]\ntimeout = 120\n'
    )
    submitted = await _troupe("submit", str(definition), url=troupe_up.url)
    assert submitted.code == 0, submitted.err
    workflow_id = submitted.out.strip()

    def sleeping() -> list[str]:
        ps = subprocess.run(
            ["pgrep", "-f", f"^sleep {nap}$"], capture_output=True, text=True, check=False
        )
        return ps.stdout.split()

    async def step_running() -> bool:
        ran = await _troupe("status", workflow_id, "--json", url=troupe_up.url)
        return ran.code == 0 and json.loads(ran.out)["state"] == "running" and bool(sleeping())

    await eventually(step_running, timeout=30, interval=0.2)

    cancel = await _troupe("cancel", workflow_id, "--reason", "e2e says stop", url=troupe_up.url)
    assert cancel.code == 0, cancel.err
    assert f"cancelling {workflow_id}" in cancel.out

    watched = await _troupe("watch", workflow_id, "--timeout", "30", url=troupe_up.url)
    assert watched.code == 3, watched.out + watched.err
    status = await _troupe("status", workflow_id, "--json", url=troupe_up.url)
    view = json.loads(status.out)
    assert view["state"] == "cancelled"
    assert view["reason"] == "e2e says stop"

    async def gone() -> bool:
        return not sleeping()

    await eventually(gone, timeout=10, interval=0.1)


async def test_templates_lists_the_bundled_examples(troupe_up: RunningTroupe) -> None:
    """``troupe templates`` asks the task manager: hello, data-pipeline and fanout are there."""
    ran = await _troupe("templates", url=troupe_up.url)
    assert ran.code == 0, ran.err
    names = {line.split()[0] for line in ran.out.splitlines() if line and not line[0].isspace()}
    assert {"hello", "data-pipeline", "fanout"} <= names

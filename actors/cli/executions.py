"""``troupe executions``: the steps running now on every pipeline runner, and stopping one.

* ``troupe executions`` (or ``troupe executions ls``) - workflow, step, attempt,
  backend, host, runner and how long each running step has run, read from
  the runners' step leases;
* ``troupe executions stop WORKFLOW STEP`` - ask the runner executing the step
  to kill it; its workflow then ends ``cancelled``.

Exit codes: 0 done, 1 the step is not executing (or another error), 2 bad
arguments, 69 NATS did not answer.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import msgspec

from actors.cli.columns import columns
from actors.cli.options import EXIT_USAGE, add_connection_options, run_client
from actors.pipeline_runner.client import list_executions, stop_execution
from actors.runtime.bus import Bus
from actors.runtime.errors import TroupeError
from protocols.pipelines import StepLease

__all__ = ["format_table", "register"]


def format_table(items: list[StepLease], now: float) -> str:
    """Render running steps as a plain-text table, oldest first."""
    if not items:
        return "no steps are running"
    rows = [("WORKFLOW", "STEP", "ATTEMPT", "BACKEND", "HOST", "RUNNER", "RUNNING")]
    for e in items:
        rows.append(
            (
                e.workflow_id,
                e.step,
                str(e.attempt),
                e.backend or "-",
                e.host or "-",
                e.runner,
                f"{max(0.0, now - e.acquired_at):.1f}s" if e.acquired_at else "-",
            )
        )
    return columns(rows)


def _run(args: argparse.Namespace) -> int:
    stopping = args.action == "stop"
    if stopping and not (args.workflow and args.step):
        print("troupe executions stop: WORKFLOW and STEP are required", file=sys.stderr)
        return EXIT_USAGE

    async def work(bus: Bus) -> list[StepLease]:
        if stopping:
            return [await stop_execution(bus, args.workflow, args.step, reason=args.reason)]
        return await list_executions(bus)

    try:
        # Stopping a step is an operator action; so is reading every runner's leases.
        found = run_client(args, work, name="troupe-cli-executions", role="operator")
    except TroupeError as exc:
        print(f"troupe executions: {exc}", file=sys.stderr)
        return 1
    if stopping:
        lease = found[0]
        print(
            f"asked runner {lease.runner} to stop step {lease.step} of workflow "
            f"{lease.workflow_id} (attempt {lease.attempt}); the workflow ends cancelled"
        )
    elif args.json:
        print(json.dumps(msgspec.to_builtins(found), indent=2))
    else:
        print(format_table(found, time.time()))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``executions``."""
    p = sub.add_parser(
        "executions",
        help="list the steps running now on every runner; stop one",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("action", nargs="?", choices=["ls", "stop"], help="what to do (default: ls)")
    p.add_argument("workflow", nargs="?", metavar="WORKFLOW", help="workflow id (for 'stop')")
    p.add_argument("step", nargs="?", metavar="STEP", help="step name (for 'stop')")
    p.add_argument(
        "--reason", default="stopped by an operator", help="why (recorded in the history)"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    add_connection_options(p)
    p.set_defaults(handler=_run)

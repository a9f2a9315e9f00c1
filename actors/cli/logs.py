"""``troupe logs ID [--step S] [--follow]``: a workflow's step output.

Without ``--follow`` it prints the last lines of each step's output kept in
the workflow's result (standard error on standard error). With ``--follow``
it prints each line as a running step prints it (``STEP | line`` unless
``--step`` is given; a step's standard error on standard error) until the
workflow ends; a workflow that already ended prints its stored lines.

Exit codes: 0 done; 1 no result yet (without ``--follow``), unknown workflow
or step; 69 NATS or no runner answered.
"""

from __future__ import annotations

import argparse
import sys

from actors.cli.options import add_connection_options, run_client
from actors.pipeline_runner.client import follow_logs, get_logs
from actors.runtime.bus import Bus
from actors.runtime.errors import NotFound, TroupeError
from protocols.pipelines import StepOutput, StepResult

__all__ = ["format_line", "register"]


def format_line(out: StepOutput, *, prefix: bool) -> str:
    """Render one live line (``STEP | line`` with ``prefix``), noting dropped lines first."""
    text = f"{out.step} | {out.line}" if prefix else out.line
    if out.dropped:
        text = f"[{out.dropped} lines dropped]\n{text}"
    return text


def _print_stored(steps: list[StepResult], *, prefix: bool) -> None:
    for step in steps:
        for stream, tail in ((sys.stdout, step.stdout_tail), (sys.stderr, step.stderr_tail)):
            for line in tail.splitlines():
                print(f"{step.name} | {line}" if prefix else line, file=stream)
    sys.stdout.flush()


async def _stored(bus: Bus, args: argparse.Namespace) -> int:
    try:
        steps = await get_logs(bus, args.workflow, args.step)
    except NotFound as exc:
        if "no result" in str(exc) and not args.follow:
            print(
                f"troupe logs: workflow {args.workflow} has no result yet "
                "(--follow prints its output live)",
                file=sys.stderr,
            )
            return 1
        if "no result" not in str(exc):
            raise
        return -1
    _print_stored(steps, prefix=args.step is None)
    return 0


async def _follow(bus: Bus, args: argparse.Namespace) -> int:
    prefix = args.step is None
    async for out in follow_logs(bus, args.workflow, step=args.step):
        stream = sys.stderr if out.stream == "stderr" else sys.stdout
        print(format_line(out, prefix=prefix), file=stream, flush=True)
    # Lines printed before following began are in the stored tails.
    return 0


def _run(args: argparse.Namespace) -> int:
    async def work(bus: Bus) -> int:
        code = await _stored(bus, args)
        if code >= 0:
            return code
        return await _follow(bus, args)

    try:
        return run_client(args, work, name="troupe-cli-logs")
    except TroupeError as exc:
        print(f"troupe logs: {exc}", file=sys.stderr)
        return 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``logs``."""
    p = sub.add_parser(
        "logs",
        help="a workflow's step output: stored tails, or live with --follow",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("workflow", metavar="ID", help="workflow id")
    p.add_argument("--step", help="only this step")
    p.add_argument(
        "-f", "--follow", action="store_true", help="print lines as they come until it ends"
    )
    add_connection_options(p)
    p.set_defaults(handler=_run)

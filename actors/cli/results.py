"""``troupe result``, ``artifact`` and ``cache``: what a workflow's steps left behind.

``result`` shows a finished workflow's stored result and ``artifact`` fetches a
file one of its steps produced, both asked of a pipeline runner; ``cache``
manages the step cache (:mod:`actors.cli.cache`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import msgspec

from actors.cli.cache import add_cache_commands
from actors.cli.columns import columns
from actors.cli.options import CLIENT_EXIT_CODES, Unreachable, add_connection_options, run_client
from actors.pipeline_runner.client import find_artifact, get_result, read_artifact_to
from actors.runtime.bus import Bus
from actors.runtime.errors import RequestError, TroupeError
from protocols.pipelines import PipelineResult

__all__ = ["register"]


def _fail(command: str, message: str, code: int = 1) -> int:
    print(f"troupe {command}: {message}", file=sys.stderr)
    return code


def _print_result(result: PipelineResult, *, logs: bool) -> None:
    took = max(0.0, result.finished_at - result.started_at)
    reason = f" - {result.reason}" if result.reason else ""
    print(
        f"workflow {result.workflow_id}: {result.state} "
        f"(backend {result.backend}, {took:.2f}s){reason}"
    )
    rows = [("STEP", "STATE", "EXIT", "TIME", "CACHE", "ARTIFACTS")]
    for step in result.steps:
        rows.append(
            (
                step.name,
                step.state,
                "-" if step.exit_code is None else str(step.exit_code),
                f"{step.duration_s:.2f}s",
                "hit" if step.cache_hit else "miss",
                ", ".join(a.name for a in step.artifacts) or "-",
            )
        )
    print(columns(rows))
    for step in result.steps:
        if step.agent_id:
            print(f"{step.name}: handled by agent {step.agent_id}")
        if step.output:
            print(f"{step.name} output: {json.dumps(step.output, sort_keys=True, default=str)}")
        if step.reason:
            print(f"{step.name}: {step.reason}")
        if logs:
            for label, tail in (("stdout", step.stdout_tail), ("stderr", step.stderr_tail)):
                if tail.strip():
                    print(f"--- {step.name} {label} ---")
                    print(tail.rstrip())


def _result(args: argparse.Namespace) -> int:
    async def work(bus: Bus) -> int:
        result = await get_result(bus, args.id)
        if args.json:
            print(msgspec.json.format(msgspec.json.encode(result)).decode())
        else:
            _print_result(result, logs=args.logs)
        return 0

    try:
        return run_client(args, work)
    except (RequestError, TroupeError) as exc:
        return _fail("result", str(exc))


def _artifact(args: argparse.Namespace) -> int:
    to_stdout = args.output in (None, "-")

    async def work(bus: Bus) -> int:
        result = await get_result(bus, args.id)
        ref = find_artifact(result, args.name, args.step)
        return await read_artifact_to(
            bus, ref, sys.stdout.buffer if to_stdout else Path(args.output)
        )

    try:
        written = run_client(args, work)
    except (RequestError, TroupeError) as exc:
        return _fail("artifact", str(exc))
    except Unreachable:
        raise
    except Exception as exc:  # noqa: BLE001 - nats-py object store errors have no common base
        return _fail("artifact", f"cannot fetch {args.name}: {type(exc).__name__}: {exc}")
    if not to_stdout:
        print(f"wrote {written} bytes to {args.output}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``result``, ``artifact`` and ``cache``."""
    p = sub.add_parser(
        "result",
        help="show a finished workflow's result, step by step",
        description="Show a finished workflow's stored result: each step's state, exit "
        "code, duration, cache use and artifacts (asks a pipeline runner).",
        epilog=f"Exit codes: 0 shown; 1 no result for ID; {CLIENT_EXIT_CODES}.",
    )
    p.add_argument("id", metavar="ID", help="workflow id")
    p.add_argument("--logs", action="store_true", help="also print each step's output tail")
    p.add_argument("--json", action="store_true", help="print the stored result as JSON")
    add_connection_options(p)
    p.set_defaults(handler=_result)

    p = sub.add_parser(
        "artifact",
        help="fetch a file a workflow's step produced",
        description="Fetch a file a workflow's step produced (see 'troupe result ID').",
        epilog=f"Exit codes: 0 written; 1 no such result or artifact; {CLIENT_EXIT_CODES}.",
    )
    p.add_argument("id", metavar="ID", help="workflow id")
    p.add_argument("name", metavar="NAME", help="artifact path, e.g. report.md")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    p.add_argument("--step", help="take it from this step (default: the last that wrote it)")
    add_connection_options(p)
    p.set_defaults(handler=_artifact)

    p = sub.add_parser("cache", help="manage the step cache")
    cache_sub = p.add_subparsers(dest="cache_command", metavar="ACTION")
    cache_sub.required = True
    add_cache_commands(cache_sub)

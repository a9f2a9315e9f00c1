"""``troupe submit``, ``templates``, ``cancel``, ``result``, ``artifact`` and ``cache clear``.

``submit`` takes a template name or a definition file. A template name is
resolved by the task manager (its bundled templates and ``TROUPE_TEMPLATES``)
unless ``--templates DIR`` holds a template of that name, in which case its
definition is sent inline. A file is sent inline as written, so the task
manager validates it and a bad one ends ``rejected``; only when placeholders
sit in typed fields (``timeout = "{{ t }}"``) is it rendered here first.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO, TypeVar

import msgspec

from actors.cli.options import add_connection_options, connection_config
from actors.runtime.bus import Bus
from actors.runtime.errors import NotFound, RequestError, TroupeError, Unavailable
from actors.task_manager.definitions import SUFFIXES, load_document, to_pipeline
from actors.task_manager.errors import TaskRejected
from actors.task_manager.templates import TemplateRegistry, render
from protocols import pipelines, tasks
from protocols.pipelines import ArtifactRef, ParamValue, PipelineResult
from protocols.status import GET_SUBJECT, TERMINAL_STATES, GetWorkflow, WorkflowView
from protocols.tasks import TaskSubmitted

__all__ = ["build_task", "parse_params", "register", "submit_task", "wait_for"]

T = TypeVar("T")


def parse_params(pairs: Sequence[str]) -> dict[str, ParamValue]:
    """Turn ``["k=v", ...]`` into a dict; values stay text (the task manager converts them).

    Raises:
        ValueError: a pair has no ``=`` or an empty name.
    """
    params: dict[str, ParamValue] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--param {pair!r}: expected NAME=VALUE")
        params[name.strip()] = value
    return params


def _looks_like_file(target: str) -> bool:
    return Path(target).suffix.lower() in SUFFIXES or "/" in target or Path(target).is_file()


def build_task(
    target: str,
    params: Mapping[str, ParamValue],
    *,
    task_id: str | None = None,
    template_dirs: Sequence[Path] = (),
    requires: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> TaskSubmitted:
    """Build the :class:`TaskSubmitted` for a template name or a definition file.

    Raises:
        TaskRejected: the file cannot be read or rendered.
        ValueError: the task id is not a valid id (see :data:`protocols.tasks.TASK_ID_PATTERN`).
    """
    inline = None
    template: str | None = None
    send_params = dict(params)
    source: Path | None = None
    if _looks_like_file(target):
        source = Path(target)
        document = load_document(source)
    else:
        document = {}
        if template_dirs:
            registry = TemplateRegistry(template_dirs)
            if target in registry:
                found = registry.get(target)
                source, document = found.path, dict(found.document)
    if source is None:
        template = target
    else:
        try:
            inline = to_pipeline(document, source=source.name)
        except TaskRejected:
            # Placeholders in typed fields: render here, and send the result without
            # its parameter declarations (their values are already in place).
            rendered = render(document, params, source=source.name)
            inline = msgspec.structs.replace(rendered, params=[])
            send_params = {}
    task_id = task_id or uuid.uuid4().hex
    if not re.match(tasks.TASK_ID_PATTERN, task_id):
        raise ValueError(f"--id {task_id!r}: task_id must be 1-128 letters, digits, '-' or '_'")
    return TaskSubmitted(
        task_id=task_id,
        template=template,
        pipeline=inline,
        params=send_params,
        requires=requires,
        labels=dict(labels or {}),
        submitted_at=time.time(),
    )


async def submit_task(bus: Bus, task: TaskSubmitted) -> bool:
    """Publish ``task`` with its id as ``Nats-Msg-Id``.

    Returns:
        ``False`` when the stream recognised it as a duplicate of an earlier submission.
    """
    ack = await bus.send(tasks.SUBMIT_SUBJECT, task, msg_id=task.task_id)
    return not ack.duplicate


async def wait_for(
    bus: Bus, workflow_id: str, *, out: TextIO | None = None, timeout: float | None = None
) -> WorkflowView:
    """Follow a workflow until it ends; return its final view.

    Uses ``actors.cli.status.follow`` when available, else polls the status tracker.

    Raises:
        TimeoutError: it did not end within ``timeout`` seconds.
    """
    try:
        status_cli = importlib.import_module("actors.cli.status")
    except ModuleNotFoundError:
        status_cli = None
    if status_cli is not None and hasattr(status_cli, "follow"):
        view: WorkflowView = await status_cli.follow(bus, workflow_id, out=out, timeout=timeout)
        return view
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    last_state = None
    while True:
        try:
            view = await bus.request(
                GET_SUBJECT, GetWorkflow(workflow_id=workflow_id), WorkflowView, timeout=2.0
            )
        except (NotFound, Unavailable):
            pass
        else:
            if view.state != last_state and out is not None:
                print(f"{workflow_id}: {view.state}", file=out)
                last_state = view.state
            if view.state in TERMINAL_STATES:
                return view
        if deadline is not None and loop.time() > deadline:
            raise TimeoutError(f"workflow {workflow_id} did not finish within {timeout}s")
        await asyncio.sleep(0.2)


def _exit_code(view: WorkflowView) -> int:
    """0 iff the workflow succeeded; otherwise the code ``troupe watch`` uses for its state."""
    if view.state == "succeeded":
        return 0
    try:
        status_cli = importlib.import_module("actors.cli.status")
        code = int(status_cli.exit_code(view))
    except (ModuleNotFoundError, AttributeError):
        return 1
    return code or 1


# -- command handlers -----------------------------------------------------------------


def _fail(command: str, message: str, code: int = 1) -> int:
    print(f"troupe {command}: {message}", file=sys.stderr)
    return code


def _with_bus(args: argparse.Namespace, work: Callable[[Bus], Awaitable[T]]) -> T:
    async def main() -> T:
        bus = await Bus.connect(connection_config(args))
        try:
            return await work(bus)
        finally:
            await bus.close()

    return asyncio.run(main())


def _submit(args: argparse.Namespace) -> int:
    try:
        params = parse_params(args.param)
        labels = {str(k): str(v) for k, v in parse_params(args.label).items()}
        task = build_task(
            args.target,
            params,
            task_id=args.id,
            template_dirs=[Path(d) for d in args.templates],
            requires=args.requires,
            labels=labels,
        )
    except (TaskRejected, ValueError) as exc:
        return _fail("submit", str(exc), 2)

    async def work(bus: Bus) -> int:
        fresh = await submit_task(bus, task)
        print(task.task_id)
        if not fresh:
            print(f"(already submitted: {task.task_id} is the existing workflow)", file=sys.stderr)
        if not args.wait:
            return 0
        view = await wait_for(bus, task.task_id, out=sys.stderr, timeout=args.timeout)
        detail = f": {view.reason}" if view.reason else ""
        print(f"workflow {task.task_id} {view.state}{detail}", file=sys.stderr)
        return _exit_code(view)

    try:
        return _with_bus(args, work)
    except TimeoutError as exc:
        return _fail("submit", str(exc), 124)
    except TroupeError as exc:
        return _fail("submit", str(exc))


def _templates(args: argparse.Namespace) -> int:
    registry = TemplateRegistry.default([Path(d) for d in args.templates])
    found = registry.templates()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": t.name,
                        "description": t.description,
                        "path": str(t.path),
                        "params": [msgspec.to_builtins(p) for p in t.params],
                    }
                    for t in found
                ],
                indent=2,
            )
        )
    else:
        width = max((len(t.name) for t in found), default=4)
        for t in found:
            print(f"{t.name:<{width}}  {t.description}")
            for p in t.params:
                default = "required" if p.default is None else f"default {p.default!r}"
                about = f"  {p.description}" if p.description else ""
                print(f"{'':<{width}}    --param {p.name}=<{p.type}>  ({default}){about}")
        if not found:
            print("no templates found")
    for path, problem in registry.errors.items():
        print(f"skipped {path}: {problem}", file=sys.stderr)
    return 0


def _cancel(args: argparse.Namespace) -> int:
    async def work(bus: Bus) -> int:
        accepted = await bus.request(
            tasks.CANCEL_SUBJECT,
            tasks.CancelTask(workflow_id=args.id, reason=args.reason),
            tasks.CancelAccepted,
        )
        print(f"cancelling {accepted.workflow_id}")
        return 0

    try:
        return _with_bus(args, work)
    except (RequestError, TroupeError) as exc:
        return _fail("cancel", str(exc))


async def _get_result(bus: Bus, workflow_id: str) -> PipelineResult:
    return await bus.request(
        pipelines.RESULT_SUBJECT, pipelines.GetResult(workflow_id=workflow_id), PipelineResult
    )


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
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for step in result.steps:
        if step.reason:
            print(f"{step.name}: {step.reason}")
        if logs:
            for label, tail in (("stdout", step.stdout_tail), ("stderr", step.stderr_tail)):
                if tail.strip():
                    print(f"--- {step.name} {label} ---")
                    print(tail.rstrip())


def _result(args: argparse.Namespace) -> int:
    async def work(bus: Bus) -> int:
        result = await _get_result(bus, args.id)
        if args.json:
            print(msgspec.json.format(msgspec.json.encode(result)).decode())
        else:
            _print_result(result, logs=args.logs)
        return 0

    try:
        return _with_bus(args, work)
    except (RequestError, TroupeError) as exc:
        return _fail("result", str(exc))


def _find_artifact(result: PipelineResult, name: str, step: str | None) -> ArtifactRef:
    matches = [
        (s.name, ref)
        for s in result.steps
        for ref in s.artifacts
        if ref.name == name and (step is None or s.name == step)
    ]
    if not matches:
        known = sorted({ref.name for s in result.steps for ref in s.artifacts})
        raise LookupError(
            f"workflow {result.workflow_id} has no artifact {name!r}"
            + (f" from step {step!r}" if step else "")
            + f" (artifacts: {', '.join(known) or 'none'})"
        )
    # Several steps may write the same path; the last one in execution order wins.
    return matches[-1][1]


def _artifact(args: argparse.Namespace) -> int:
    async def work(bus: Bus) -> bytes:
        result = await _get_result(bus, args.id)
        ref = _find_artifact(result, args.name, args.step)
        store = await bus.js.object_store(pipelines.ARTIFACTS_BUCKET)
        found = await store.get(ref.object_name)
        data: bytes = found.data or b""
        return data

    try:
        data = _with_bus(args, work)
    except LookupError as exc:
        return _fail("artifact", str(exc))
    except (RequestError, TroupeError) as exc:
        return _fail("artifact", str(exc))
    except Exception as exc:  # noqa: BLE001 - nats-py object store errors have no common base
        return _fail("artifact", f"cannot fetch {args.name}: {type(exc).__name__}: {exc}")
    if args.output in (None, "-"):
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        Path(args.output).write_bytes(data)
        print(f"wrote {len(data)} bytes to {args.output}", file=sys.stderr)
    return 0


def _cache_clear(args: argparse.Namespace) -> int:
    async def work(bus: Bus) -> int:
        try:
            cleared = await bus.request(
                pipelines.CACHE_CLEAR_SUBJECT,
                pipelines.ClearCache(),
                pipelines.CacheCleared,
                timeout=30.0,
            )
        except Unavailable:
            # No runner is up, so no runner holds an in-process tier: emptying the
            # shared object store is the whole job.
            stream = f"OBJ_{pipelines.CACHE_BUCKET}"
            try:
                info = await bus.js.stream_info(stream)
            except Exception:  # noqa: BLE001 - a missing store means an empty cache
                print("step cache is empty")
                return 0
            await bus.js.purge_stream(stream)
            print(f"step cache cleared ({info.state.messages} stored messages removed)")
            return 0
        print(f"step cache cleared ({cleared.removed} entries removed)")
        return 0

    try:
        return _with_bus(args, work)
    except (RequestError, TroupeError) as exc:
        return _fail("cache clear", str(exc))


# -- registration -----------------------------------------------------------------------


def _add_templates_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--templates",
        metavar="DIR",
        action="append",
        default=[],
        help="extra template directory (repeatable; also TROUPE_TEMPLATES)",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``submit``, ``templates``, ``cancel``, ``result``, ``artifact`` and ``cache``."""
    p = sub.add_parser(
        "submit",
        help="submit a task: a template name or a pipeline definition file",
        description="Submit a task. Prints the workflow id. With --wait, follows it and "
        "exits 0 only if it succeeded.",
    )
    p.add_argument(
        "target",
        metavar="TEMPLATE_OR_FILE",
        help="template name (see 'troupe templates') or a .toml/.yaml/.json file",
    )
    p.add_argument(
        "--param",
        "-p",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="template parameter (repeatable)",
    )
    p.add_argument(
        "--id",
        metavar="KEY",
        help="idempotency key, also the workflow id "
        "(default: random); submitting the same key again creates no new workflow",
    )
    p.add_argument(
        "--label",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="label recorded with the workflow (repeatable)",
    )
    p.add_argument(
        "--requires",
        metavar="CAPABILITY",
        help="route the task to a live agent with this capability",
    )
    p.add_argument(
        "--wait",
        action="store_true",
        help="follow the workflow until it ends; exit 0 only if it succeeded "
        "(else the exit code of 'troupe watch' for its state)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --wait: give up after this long (exit 1)",
    )
    _add_templates_option(p)
    add_connection_options(p)
    p.set_defaults(handler=_submit)

    p = sub.add_parser(
        "templates",
        help="list the available pipeline templates",
        description="List bundled templates, TROUPE_TEMPLATES and --templates.",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_templates_option(p)
    p.set_defaults(handler=_templates)

    p = sub.add_parser("cancel", help="cancel a workflow (running steps are killed)")
    p.add_argument("id", metavar="ID", help="workflow id")
    p.add_argument("--reason", default="cancelled by user", help="recorded in the history")
    add_connection_options(p)
    p.set_defaults(handler=_cancel)

    p = sub.add_parser("result", help="show a finished workflow's result, step by step")
    p.add_argument("id", metavar="ID", help="workflow id")
    p.add_argument("--logs", action="store_true", help="also print each step's output tail")
    p.add_argument("--json", action="store_true", help="print the stored result as JSON")
    add_connection_options(p)
    p.set_defaults(handler=_result)

    p = sub.add_parser("artifact", help="fetch a file a workflow's step produced")
    p.add_argument("id", metavar="ID", help="workflow id")
    p.add_argument("name", metavar="NAME", help="artifact path, e.g. report.md")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    p.add_argument("--step", help="take it from this step (default: the last that wrote it)")
    add_connection_options(p)
    p.set_defaults(handler=_artifact)

    p = sub.add_parser("cache", help="manage the step cache")
    cache_sub = p.add_subparsers(dest="cache_command", metavar="ACTION")
    cache_sub.required = True
    c = cache_sub.add_parser("clear", help="empty the shared step cache and every runner's")
    add_connection_options(c)
    c.set_defaults(handler=_cache_clear)

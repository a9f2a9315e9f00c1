"""``troupe submit`` and ``troupe cancel``: starting a workflow and stopping it; ``templates``.

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
import contextlib
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TextIO, TypeVar

import msgspec
from opentelemetry import trace

from actors.cli.follow import exit_code, follow
from actors.cli.options import (
    CLIENT_EXIT_CODES,
    add_connection_options,
    add_param_option,
    add_templates_option,
    run_client,
)
from actors.cli.templates import add_templates_command
from actors.cli.validate import EXIT_REJECTED, check_task
from actors.runtime import telemetry
from actors.runtime.bus import Bus
from actors.runtime.errors import NotFound, RequestError, TroupeError
from actors.status_tracker.client import get_workflow
from actors.task_manager.client import (
    SUFFIXES,
    TaskRejected,
    TemplateRegistry,
    cancel_task,
    load_document,
    render,
    submit_task,
    to_pipeline,
)
from protocols import tasks
from protocols.pipelines import ParamValue
from protocols.status import WorkflowView
from protocols.tasks import TaskSubmitted

__all__ = ["await_answer", "build_task", "parse_params", "register", "trace_root", "wait_for"]

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


async def await_answer(bus: Bus, workflow_id: str, *, timeout: float) -> WorkflowView:
    """Wait until the task manager accepted (queued or later) or rejected a task.

    Raises:
        TimeoutError: no answer within ``timeout`` seconds.
    """

    give_up = time.monotonic() + timeout
    while True:
        with contextlib.suppress(NotFound):  # the tracker has not seen it yet
            view = await get_workflow(bus, workflow_id)
            if view.state != "submitted":
                return view
        if time.monotonic() >= give_up:
            raise TimeoutError(f"no answer from the task manager within {timeout:g}s")
        await asyncio.sleep(0.02)


async def wait_for(
    bus: Bus, workflow_id: str, *, out: TextIO | None = None, timeout: float | None = None
) -> WorkflowView:
    """Follow a workflow just submitted until it ends; return its final view.

    Raises:
        TimeoutError: it did not end within ``timeout`` seconds.
        Unavailable: the status tracker did not answer.
    """
    return await follow(bus, workflow_id, out=out, timeout=timeout)


@contextlib.contextmanager
def trace_root(name: str) -> Iterator[str]:
    """Start the trace a new workflow makes, as the current span; yield its trace id.

    With the ``OTEL_*`` variables asking for an exporter, this is a real span
    that is exported. Otherwise it is a sampled context with fresh ids that
    is only propagated (nothing is installed process-wide), so the actors still
    share one trace id the user can look up.
    """
    if telemetry.configure_tracing("troupe-cli"):
        with telemetry.tracer().start_as_current_span(name) as span:
            yield format(span.get_span_context().trace_id, "032x")
        return
    context = telemetry.fresh_context()
    with trace.use_span(trace.NonRecordingSpan(context)):
        yield format(context.trace_id, "032x")


# -- command handlers -----------------------------------------------------------------


def _fail(command: str, message: str, code: int = 1) -> int:
    print(f"troupe {command}: {message}", file=sys.stderr)
    return code


def _with_bus(args: argparse.Namespace, work: Callable[[Bus], Awaitable[T]]) -> T:
    return run_client(args, work)


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
    try:
        if task.requires is None:  # an agent task is no pipeline: its agent judges it
            check_task(task, [Path(d) for d in args.templates])
    except TaskRejected as exc:
        return _fail("submit", f"rejected before submission: {exc.reason}", EXIT_REJECTED)

    async def work(bus: Bus) -> int:
        with trace_root("troupe submit") as trace_id:
            fresh = await submit_task(bus, task)
        print(task.task_id, flush=True)
        if fresh:
            print(f"trace id: {trace_id}", file=sys.stderr)
        else:
            print(f"(already submitted: {task.task_id} is the existing workflow)", file=sys.stderr)
        if not args.wait:
            if args.no_wait:
                return 0
            answer = await await_answer(bus, task.task_id, timeout=args.answer_timeout)
            if answer.state == "rejected":
                return _fail("submit", f"rejected: {answer.reason}", EXIT_REJECTED)
            return 0
        view = await wait_for(bus, task.task_id, out=sys.stderr, timeout=args.timeout)
        detail = f": {view.reason}" if view.reason else ""
        print(f"workflow {task.task_id} {view.state}{detail}", file=sys.stderr)
        if not fresh and view.trace_id:
            print(f"trace id: {view.trace_id}", file=sys.stderr)
        return exit_code(view)

    try:
        return _with_bus(args, work)
    except TimeoutError as exc:
        return _fail("submit", str(exc), 124)
    except TroupeError as exc:
        return _fail("submit", str(exc))


def _cancel(args: argparse.Namespace) -> int:
    async def work(bus: Bus) -> int:
        accepted = await cancel_task(bus, args.id, args.reason)
        print(f"cancelling {accepted.workflow_id}")
        return 0

    try:
        return _with_bus(args, work)
    except (RequestError, TroupeError) as exc:
        return _fail("cancel", str(exc))


# -- registration -----------------------------------------------------------------------


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``submit``, ``templates`` and ``cancel``."""
    p = sub.add_parser(
        "submit",
        help="submit a task: a template name or a pipeline definition file",
        description="Submit a task: the workflow id is printed on stdout, its trace id "
        "('trace id: ...') on stderr. With --wait, follow it until it ends.",
        epilog="The task is validated locally first, then (unless --no-wait) the command "
        "waits for the task manager's answer. Exit codes: 0 accepted (with --wait: "
        "succeeded); 5 rejected; with --wait 1 failed, "
        "3 cancelled, 4 timed out, 124 --timeout reached; "
        f"{CLIENT_EXIT_CODES}.",
    )
    p.add_argument(
        "target",
        metavar="TEMPLATE_OR_FILE",
        help="template name (see 'troupe templates') or a .toml/.yaml/.json file",
    )
    add_param_option(p)
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
        "--no-wait",
        action="store_true",
        help="do not wait for the task manager to accept or reject the task",
    )
    p.add_argument(
        "--answer-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for the accepted/rejected answer (default 10; exit 124)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --wait: give up after this long (exit 124)",
    )
    add_templates_option(p)
    add_connection_options(p)
    p.set_defaults(handler=_submit)

    add_templates_command(sub)

    p = sub.add_parser(
        "cancel",
        help="cancel a workflow (running steps are killed)",
        description="Cancel a workflow: it ends 'cancelled' and its running steps are killed.",
        epilog=f"Exit codes: 0 cancelling; 1 refused (unknown or finished workflow); "
        f"{CLIENT_EXIT_CODES}.",
    )
    p.add_argument("id", metavar="ID", help="workflow id")
    p.add_argument("--reason", default="cancelled by user", help="recorded in the history")
    add_connection_options(p)
    p.set_defaults(handler=_cancel)

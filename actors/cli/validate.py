"""``troupe validate``: run the task manager's validation locally and print the plan.

``troupe validate FILE|TEMPLATE -p NAME=VALUE ...`` renders the pipeline as the
task manager would (parameters, ``{{ placeholders }}``, step graph, inputs,
retry policies) without connecting to anything, then prints its stages, each
step's retry policy and its breakers. ``troupe submit`` runs the same check
before it publishes (:func:`check_task`).

Exit codes: 0 valid, 2 bad arguments or unreadable file, 5 rejected (the
reason starts with its rejection code, as the workflow's would).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import msgspec

from actors.breaker_supervisor.client import step_breaker_keys, with_pipeline_policies
from actors.cli.options import add_param_option, add_templates_option
from actors.task_manager.client import TaskRejected, TemplateRegistry, prepare
from protocols.pipelines import PipelineSpec
from protocols.tasks import TaskSubmitted

__all__ = ["EXIT_REJECTED", "check_task", "format_plan", "register"]

EXIT_REJECTED = 5
"""Exit status of a task the validation rejects (as ``troupe watch`` for ``rejected``)."""


def check_task(
    task: TaskSubmitted, template_dirs: list[Path]
) -> tuple[PipelineSpec, list[list[str]]] | None:
    """Validate ``task`` locally as the task manager will.

    Args:
        task: the task about to be submitted.
        template_dirs: extra template directories (the bundled ones and
            ``TROUPE_TEMPLATES`` are always searched).

    Returns:
        The rendered pipeline and its stages, or ``None`` when the task names a
        template this machine does not have (only the task manager can judge it).

    Raises:
        TaskRejected: the task is invalid.
    """
    registry = TemplateRegistry.default(template_dirs)
    try:
        return prepare(task, registry)
    except TaskRejected as exc:
        if exc.code == "unknown_template" and task.template is not None:
            return None
        raise


def format_plan(pipeline: PipelineSpec, stages: list[list[str]]) -> str:
    """Render a validated pipeline's plan: stages, steps, retry policies and breakers."""
    policies = with_pipeline_policies(pipeline.retry_policies)
    steps = {s.name: s for s in pipeline.steps}
    lines = [f"pipeline {pipeline.name}: {len(steps)} steps in {len(stages)} stages"]
    for number, stage in enumerate(stages, 1):
        lines.append(f"stage {number}:")
        for name in stage:
            step = steps[name]
            retry = "no retry"
            if step.retry is not None:
                policy = policies[step.retry]
                retry = f"retry {step.retry} ({policy.max_attempts} attempts)"
            needs = f" needs {', '.join(step.needs)}" if step.needs else ""
            backend = step.backend or pipeline.backend
            keys = step_breaker_keys(
                backend="local|dagger" if backend == "auto" else backend,
                image=step.image,
                pipeline=pipeline.name,
                step=name,
                scope=step.breaker,
            )
            lines.append(f"  {name}{needs}; {retry}; breakers {', '.join(keys)}")
    return "\n".join(lines)


def _validate(args: argparse.Namespace) -> int:
    # Imported here: the submit module imports this one.
    from actors.cli.tasks import build_task, parse_params

    dirs = [Path(d) for d in args.templates]
    try:
        task = build_task(args.target, parse_params(args.param), template_dirs=dirs)
        checked = check_task(task, dirs)
    except TaskRejected as exc:
        print(f"troupe validate: rejected: {exc.reason}", file=sys.stderr)
        return EXIT_REJECTED
    except ValueError as exc:
        print(f"troupe validate: {exc}", file=sys.stderr)
        return 2
    if checked is None:
        print(f"troupe validate: rejected: unknown_template: no template {args.target!r}")
        return EXIT_REJECTED
    pipeline, stages = checked
    if args.json:
        document = {"pipeline": msgspec.to_builtins(pipeline), "stages": stages}
        print(json.dumps(document, indent=2))
    else:
        print(format_plan(pipeline, stages))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``validate``."""
    p = sub.add_parser(
        "validate",
        help="check a template or pipeline file locally and print its plan",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "target", metavar="TEMPLATE_OR_FILE", help="template name or a .toml/.yaml/.json file"
    )
    add_param_option(p)
    add_templates_option(p)
    p.add_argument("--json", action="store_true", help="print the rendered pipeline and stages")
    p.set_defaults(handler=_validate)

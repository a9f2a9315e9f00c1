"""The pipeline runner's configuration: frozen, validated on construction, read from env."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from actors.runtime.errors import ConfigError
from protocols.breakers import MAX_BATCH_REPORTS

__all__ = ["Limits", "RunnerConfig"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits applied to every local step process (``setrlimit``).

    Attributes:
        memory_bytes: address-space cap (``RLIMIT_AS``); 0 for none.
        cpu_seconds: CPU time cap (``RLIMIT_CPU``); 0 for none.
        open_files: descriptor cap (``RLIMIT_NOFILE``); 0 for none.
        file_bytes: largest file a step may write (``RLIMIT_FSIZE``); 0 for none.
    """

    memory_bytes: int = 0
    cpu_seconds: int = 0
    open_files: int = 1024
    file_bytes: int = 1 << 30

    def __post_init__(self) -> None:
        for name in ("memory_bytes", "cpu_seconds", "open_files", "file_bytes"):
            if getattr(self, name) < 0:
                raise ConfigError(f"limits.{name}", "must not be negative")


def _default_root() -> Path:
    return Path(tempfile.gettempdir()) / "troupe-workspaces"


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    """How one pipeline runner process works.

    Attributes:
        workspace_root: directory holding one workspace per workflow.
        concurrent_runs: pipeline runs one process works on at once.
        parallel_steps: steps of one run executing at once.
        ack_wait: seconds before an unacknowledged run is redelivered (kept alive
            while it runs).
        max_deliver: deliveries of one run (crash redeliveries and retries) before
            it is dead-lettered.
        output_cap_bytes: stdout + stderr bytes a step may write before it is killed.
        tail_lines: lines of stdout/stderr kept in a step's result.
        kill_grace: seconds between SIGTERM and SIGKILL when stopping a step.
        default_step_timeout: seconds a step without its own timeout may run; 0 for none.
        cache_entries: capacity of the in-process step cache tier.
        cache_ttl: seconds a cached step result stays valid.
        keep_workspaces: leave finished workflows' workspaces on disk (debugging).
        limits: resource limits of local step processes.
        backend: default backend when neither the step nor the pipeline names one
            other than ``auto``.
        engine_probe_ttl: seconds an engine-reachability answer is reused.
        step_user: the unprivileged account local steps run as when the runner
            runs as root (``TROUPE_STEP_USER``; empty to run them as root).
        lease_ttl: whole seconds a run or step lease outlives its runner
            (``TROUPE_RUNNER_LEASE_TTL``): how soon a run whose runner died
            resumes elsewhere.
        report_batch_max: breaker outcome reports sent as one stream message
            (``TROUPE_RUNNER_REPORT_BATCH_MAX``, at most 256); ``1`` sends each
            report on its own, the format a breaker supervisor older than
            batches reads.
        report_batch_s: seconds a message of outcome reports waits for more
            (``TROUPE_RUNNER_REPORT_BATCH_S``, at most 1; ``0`` sends what is
            queued at once): fewer stream writes, reports reach the breakers
            that much later, and a runner killed meanwhile loses them as it
            loses any report still queued.
    """

    workspace_root: Path = field(default_factory=_default_root)
    concurrent_runs: int = 4
    parallel_steps: int = 4
    ack_wait: float = 30.0
    max_deliver: int = 20
    output_cap_bytes: int = 8 << 20
    tail_lines: int = 40
    kill_grace: float = 2.0
    default_step_timeout: float = 3600.0
    cache_entries: int = 1024
    cache_ttl: float = 7 * 24 * 3600.0
    keep_workspaces: bool = False
    limits: Limits = field(default_factory=Limits)
    backend: str = "auto"
    engine_probe_ttl: float = 30.0
    step_user: str = "nobody"
    lease_ttl: float = 10.0
    report_batch_max: int = MAX_BATCH_REPORTS
    report_batch_s: float = 0.05

    def __post_init__(self) -> None:
        positive_ints = (
            "concurrent_runs",
            "parallel_steps",
            "max_deliver",
            "tail_lines",
            "cache_entries",
            "output_cap_bytes",
        )
        for name in positive_ints:
            if getattr(self, name) < 1:
                raise ConfigError(name, "must be at least 1")
        if self.ack_wait < 1:
            raise ConfigError("ack_wait", "must be at least 1 second")
        if self.lease_ttl < 1:
            raise ConfigError("lease_ttl", "must be at least 1 second")
        for name in ("kill_grace", "default_step_timeout", "cache_ttl", "engine_probe_ttl"):
            if getattr(self, name) < 0:
                raise ConfigError(name, "must not be negative")
        if not 1 <= self.report_batch_max <= MAX_BATCH_REPORTS:
            raise ConfigError("report_batch_max", f"must be between 1 and {MAX_BATCH_REPORTS}")
        if not 0 <= self.report_batch_s <= 1:
            raise ConfigError("report_batch_s", "must be between 0 and 1 second")
        if self.backend not in ("auto", "local", "dagger"):
            raise ConfigError("backend", f"{self.backend!r} is not one of auto, local, dagger")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RunnerConfig:
        """Build the configuration from ``TROUPE_RUNNER_*`` variables.

        Recognised: ``TROUPE_WORKSPACES``, ``TROUPE_RUNNER_CONCURRENCY``,
        ``TROUPE_RUNNER_PARALLEL_STEPS``, ``TROUPE_RUNNER_ACK_WAIT``,
        ``TROUPE_RUNNER_MAX_DELIVER``,
        ``TROUPE_RUNNER_OUTPUT_CAP``, ``TROUPE_RUNNER_BACKEND``,
        ``TROUPE_RUNNER_MEMORY_LIMIT``, ``TROUPE_RUNNER_CPU_LIMIT``,
        ``TROUPE_RUNNER_CACHE_TTL``, ``TROUPE_RUNNER_KEEP_WORKSPACES``,
        ``TROUPE_STEP_USER``, ``TROUPE_RUNNER_LEASE_TTL``,
        ``TROUPE_RUNNER_REPORT_BATCH_MAX``, ``TROUPE_RUNNER_REPORT_BATCH_S``.

        Raises:
            ConfigError: a variable holds an invalid value (named in the message).
        """
        env = os.environ if env is None else env

        def number(var: str, default: float) -> float:
            raw = env.get(var, "").strip()
            if not raw:
                return default
            try:
                return float(raw)
            except ValueError:
                raise ConfigError(var, f"{raw!r} is not a number") from None

        base = cls()
        root = env.get("TROUPE_WORKSPACES", "").strip()
        return cls(
            workspace_root=Path(root) if root else base.workspace_root,
            concurrent_runs=int(number("TROUPE_RUNNER_CONCURRENCY", base.concurrent_runs)),
            parallel_steps=int(number("TROUPE_RUNNER_PARALLEL_STEPS", base.parallel_steps)),
            ack_wait=number("TROUPE_RUNNER_ACK_WAIT", base.ack_wait),
            max_deliver=int(number("TROUPE_RUNNER_MAX_DELIVER", base.max_deliver)),
            output_cap_bytes=int(number("TROUPE_RUNNER_OUTPUT_CAP", base.output_cap_bytes)),
            cache_ttl=number("TROUPE_RUNNER_CACHE_TTL", base.cache_ttl),
            backend=env.get("TROUPE_RUNNER_BACKEND", "").strip() or base.backend,
            keep_workspaces=env.get("TROUPE_RUNNER_KEEP_WORKSPACES", "") in ("1", "true"),
            step_user=env.get("TROUPE_STEP_USER", base.step_user).strip(),
            lease_ttl=number("TROUPE_RUNNER_LEASE_TTL", base.lease_ttl),
            report_batch_max=int(number("TROUPE_RUNNER_REPORT_BATCH_MAX", base.report_batch_max)),
            report_batch_s=number("TROUPE_RUNNER_REPORT_BATCH_S", base.report_batch_s),
            limits=Limits(
                memory_bytes=int(number("TROUPE_RUNNER_MEMORY_LIMIT", 0)),
                cpu_seconds=int(number("TROUPE_RUNNER_CPU_LIMIT", 0)),
            ),
        )

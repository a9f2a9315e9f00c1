"""Actors as real OS processes for end-to-end tests: ``python -m actors run NAME``."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import nats

__all__ = ["REPO", "actor_processes", "wait_for_ping"]

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def actor_processes(
    names: list[str], url: str, logs: Path, env: Mapping[str, str] | None = None
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Start each actor as ``python -m actors run NAME --nats-url URL``; SIGTERM them after.

    Output goes to ``logs/<name>.log`` (shown by the caller on failure).
    """
    logs.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    files = []
    try:
        for name in names:
            out = (logs / f"{name}.log").open("wb")
            files.append(out)
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "actors", "run", name, "--nats-url", url],
                cwd=REPO,
                env={**os.environ, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for out in files:
            out.close()


async def wait_for_ping(
    url: str, procs: Mapping[str, subprocess.Popen[bytes]], logs: Path, timeout: float = 30.0
) -> None:
    """Wait until every actor answers ``$SRV.PING.<name>``; fail with its log if one exits."""
    nc = await nats.connect(url)
    try:
        pending = set(procs)
        deadline = time.monotonic() + timeout
        while pending:
            for name in sorted(pending):
                if procs[name].poll() is not None:
                    log = (logs / f"{name}.log").read_text(errors="replace")[-3000:]
                    raise AssertionError(f"{name} exited with {procs[name].returncode}:\n{log}")
                try:
                    await nc.request(f"$SRV.PING.{name}", b"", timeout=0.5)
                except Exception:
                    continue
                pending.discard(name)
            if time.monotonic() > deadline:
                raise AssertionError(f"no $SRV.PING answer from {sorted(pending)}")
    finally:
        await nc.close()

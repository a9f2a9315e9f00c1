"""``make chaos``: the full kill-everything run, printing the verdict table.

Usage: ``python -m tests.chaos [--workflows N] [--kills N] [--interval S] [--seed N]``.
Exits 1 when any workflow is lost, failed, unexpected or duplicated concurrently.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from tests.chaos.checker import BAD, table
from tests.chaos.harness import ChaosConfig, run_chaos


def main() -> int:
    """Run the configured chaos and print its table."""
    parser = argparse.ArgumentParser(prog="python -m tests.chaos")
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.6, help="mean seconds between kills")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--rate", type=float, default=8.0, help="workflows submitted per second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--keep", metavar="DIR", help="keep state, logs and side effects here")
    args = parser.parse_args()
    config = ChaosConfig(
        workflows=args.workflows,
        steps=args.steps,
        kills=args.kills,
        kill_interval=args.interval,
        submit_rate=args.rate,
        seed=args.seed,
        timeout=args.timeout,
    )
    with tempfile.TemporaryDirectory(prefix="troupe-chaos-") as tmp:
        workdir = Path(args.keep) if args.keep else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        run = asyncio.run(run_chaos(config, workdir))
    assert run.observed is not None
    counts, text = table(run.observed)
    print(text)
    kills = ", ".join(f"{k} {n}" for k, n in sorted(run.kills.items()))
    print(f"kills: {sum(run.kills.values())} ({kills})")
    if run.server_back_s:
        print(f"nats-server back after each kill within {max(run.server_back_s):.2f}s")
    print(f"elapsed: {run.elapsed_s:.0f}s")
    return 1 if any(counts.get(v) for v in BAD) else 0


if __name__ == "__main__":
    sys.exit(main())

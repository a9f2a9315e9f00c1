"""A small troupe agent: text statistics (words, lines, characters, top words).

Run it next to a troupe (``troupe up``), logged in as the ``agent`` role, and
give it work::

    eval "$(troupe creds agent)"      # exports TROUPE_NATS_URL, _USER, _PASSWORD
    python examples/agents/textstats.py
    troupe agents find text.stats
    troupe submit --requires text.stats -p text="to be or not to be"

Tasks that require ``text.stats`` are routed to it by the task manager; other
agents can also ask it directly with ``agent.request("textstats-1", {...}, kind="stats")``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import re
from collections.abc import Mapping
from typing import Any

from actors.runtime.config import ConnectionConfig, add_connection_arguments
from actors.sdk import Agent, Incoming, Task

_WORD = re.compile(r"[\w']+")


def text_stats(text: str, top: int = 3) -> dict[str, Any]:
    """Return word, line and character counts and the most frequent words of ``text``."""
    words = [w.lower() for w in _WORD.findall(text)]
    common = collections.Counter(words).most_common(top)
    return {
        "words": len(words),
        "lines": len(text.splitlines()) or (1 if text else 0),
        "characters": len(text),
        "top": [[word, count] for word, count in common],
    }


class TextStats(Agent):
    """Counts words; ``delay_s`` makes each task take that long (to watch re-dispatch)."""

    capabilities = ("text.stats@1.2",)

    def __init__(self, agent_id: str | None = None, *, delay_s: float = 0.0, **kwargs: Any):
        super().__init__(agent_id, **kwargs)
        self.delay_s = delay_s

    async def handle_task(self, task: Task) -> Mapping[str, Any]:
        """Compute the statistics of ``params["text"]``."""
        delay = float(task.params.get("delay_s", self.delay_s))
        if delay > 0:
            await self.clock.sleep(delay)
        stats = text_stats(str(task.params.get("text", "")), int(task.params.get("top", 3)))
        return {**stats, "agent": self.agent_id}

    async def handle_message(self, message: Incoming) -> Mapping[str, Any] | None:
        """Answer ``stats`` requests from other agents; ignore other kinds."""
        if message.kind == "stats":
            return text_stats(str(message.body.get("text", "")))
        return None


def main() -> None:
    """Parse the command line and run the agent until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--id", default="textstats-1", help="agent id (keep it across restarts)")
    parser.add_argument("--interval", type=float, default=1.0, help="heartbeat interval (s)")
    parser.add_argument(
        "--ttl-multiple", type=float, default=3.0, help="heartbeat key TTL in intervals"
    )
    parser.add_argument("--capacity", type=int, default=4, help="tasks handled at once")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each task takes")
    parser.add_argument(
        "--count",
        type=int,
        default=1,
        help="run this many agents in this process (<id>-0, <id>-1, ...)",
    )
    add_connection_arguments(parser)  # --nats-url/--user/--password/--token/--creds
    args = parser.parse_args()
    config = ConnectionConfig.from_args(args, name=f"troupe-agent-{args.id}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    ids = [args.id] if args.count == 1 else [f"{args.id}-{i}" for i in range(args.count)]
    agents = [
        TextStats(
            i,
            delay_s=args.delay,
            interval=args.interval,
            ttl_multiple=args.ttl_multiple,
            capacity=args.capacity,
        )
        for i in ids
    ]
    asyncio.run(_serve(agents, config))


async def _serve(agents: list[TextStats], config: ConnectionConfig) -> None:
    stop = asyncio.Event()
    if len(agents) == 1:
        await agents[0].serve(config, stop=stop)
        return
    await Agent.serve_many(agents, config, stop=stop)


if __name__ == "__main__":
    main()

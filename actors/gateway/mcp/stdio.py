"""``troupe mcp``: the MCP server over stdio, as the local user, for clients that launch a command.

The process connects to NATS itself (with the state directory's credentials,
as the CLI does), builds the same services the gateway uses and serves MCP on
its standard input and output. Every MCP request runs as a local principal of
a built-in role (``operator`` by default); nothing is written to stdout but
MCP messages, logs go to stderr.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from actors.gateway.actor import SUBMISSIONS, TOKENS, schedule_store
from actors.gateway.auth import TokenVerifier
from actors.gateway.events import EventHub
from actors.gateway.logtail import LogTails
from actors.gateway.mcp.access import local_principal
from actors.gateway.mcp.server import build_server
from actors.gateway.services import Services
from actors.gateway.submissions import Submissions
from actors.gateway.tokenstore import TokenStore
from actors.runtime.bus import Bus
from actors.runtime.config import ConnectionConfig
from actors.runtime.kv import TypedBucket
from actors.runtime.topology import BucketSpec
from protocols import gateway as gw
from protocols import pipelines
from protocols.pipelines import StepLease
from protocols.tasks import TaskSubmitted

__all__ = ["local_services", "serve_stdio"]


@contextlib.asynccontextmanager
async def local_services(bus: Bus) -> AsyncIterator[Services]:
    """The gateway's services over ``bus``, outside the gateway process.

    Needs the NATS permissions of the ``gateway`` role (its buckets, the status
    stream); with fewer, the tools that need more answer an error.
    """
    tokens = TokenStore(await TypedBucket.bind(bus, TOKENS, gw.TokenRecord))
    hub = EventHub(bus.js)
    await hub.start()
    tails = LogTails()
    await tails.start(bus)
    leases: TypedBucket[StepLease] | None
    try:
        leases = await TypedBucket.bind(bus, BucketSpec(name=pipelines.LEASES_BUCKET), StepLease)
    except Exception:  # noqa: BLE001 - no runner topology: no executions to list
        leases = None
    try:
        yield Services(
            bus=bus,
            verifier=TokenVerifier(tokens.lookup),
            tokens=tokens,
            hub=hub,
            submissions=Submissions(bus, await TypedBucket.bind(bus, SUBMISSIONS, TaskSubmitted)),
            leases=leases,
            tails=tails,
            schedules=await schedule_store(bus),
        )
    finally:
        await tails.stop()
        await hub.stop()


async def serve_stdio(
    config: ConnectionConfig,
    *,
    role: str = "operator",
    gateway_url: str | None = None,
) -> None:
    """Serve MCP on stdin/stdout until the client closes it.

    Args:
        config: how to reach NATS.
        role: the built-in role every request runs as.
        gateway_url: the gateway's HTTP base URL for artifact links
            (default: asked from a running gateway).

    Raises:
        ConnectError: NATS is not reachable.
        ValueError: ``role`` is not a built-in role.
    """
    principal = local_principal(role)
    bus = await Bus.connect(config)
    try:
        async with local_services(bus) as services:
            mcp = build_server(services, local=principal, gateway_url=gateway_url)
            async with mcp.running():
                await mcp.server.run_stdio_async()
    finally:
        await bus.close()

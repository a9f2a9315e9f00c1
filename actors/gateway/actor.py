"""The gateway actor: serves the HTTP API (and MCP) from inside its event loop, issues tokens.

It holds no workflow state: every answer comes from another actor over NATS.
It is the only writer of the tokens bucket, answers ``troupe token`` requests
(:data:`~protocols.gateway.TOKEN_SUBJECTS`), watches the bucket so revocations
take effect at once, and runs uvicorn as one of its managed tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import uvicorn
from starlette.routing import BaseRoute

from actors.feature_flags.client import FlagStore
from actors.gateway.app import Lifespan, build_app
from actors.gateway.auth import TokenVerifier
from actors.gateway.config import GatewayConfig
from actors.gateway.dashboard.perfwatch import PerfWatch
from actors.gateway.events import EventHub
from actors.gateway.flags import flag_routes
from actors.gateway.logtail import LogTails
from actors.gateway.metrics import GatewayMetrics, metrics_route
from actors.gateway.services import Services
from actors.gateway.submissions import Submissions
from actors.gateway.tokenstore import TokenStore
from actors.runtime.actor import Actor
from actors.runtime.bus import Bus
from actors.runtime.cancellation import cancel_and_wait
from actors.runtime.errors import ConfigError
from actors.runtime.handlers import RequestContext
from actors.runtime.kv import TypedBucket
from actors.runtime.loops import EventLoop
from actors.runtime.topology import BucketSpec, StreamSpec
from actors.runtime.watch import Entry
from actors.schedules.client import ScheduleStore
from actors.topology import STATUS_EVENTS, WORKFLOWS
from protocols import gateway as gw
from protocols import pipelines
from protocols.pipelines import StepLease
from protocols.status import UPDATES_SUBJECTS, WorkflowView
from protocols.tasks import TaskSubmitted

__all__ = [
    "AUDIT",
    "BACKLOG",
    "SHUTDOWN_S",
    "SUBMISSIONS",
    "TOKENS",
    "Extension",
    "Gateway",
    "listen",
    "schedule_store",
]

log = logging.getLogger(__name__)

TOKENS = BucketSpec(
    name=gw.TOKENS_BUCKET, history=5, description="API tokens by id: SHA-256 hashes only"
)
"""The tokens bucket."""

SUBMISSIONS = BucketSpec(
    name=gw.SUBMISSIONS_BUCKET,
    ttl=30 * 86400.0,
    description="Inputs of the workflows submitted through the gateway (for re-runs)",
)
"""Copies of gateway submissions, kept 30 days; no longer written (the task manager's
records hold every submission), read for workflows submitted before."""

AUDIT = StreamSpec(
    name=gw.AUDIT_STREAM,
    subjects=(gw.AUDIT_SUBJECTS,),
    retention="limits",
    max_age=90 * 86400.0,
    description="Each use of an API token for an operator or admin action",
)
"""The audit stream."""

SHUTDOWN_S = 3.0
"""Seconds open HTTP connections get to close when the gateway stops."""

BACKLOG = 2048
"""Connections the HTTP port queues before the gateway accepts them (uvicorn's default)."""

Extension = Callable[[Services], tuple[Sequence[BaseRoute], Sequence[Lifespan]]]
"""Adds routes (and their lifespans) to the app, e.g. the MCP server at ``/mcp``."""


def _extensions() -> list[Extension]:
    """The MCP server, when its package is present."""
    try:
        from actors.gateway.mcp import http_extension
    except ImportError:
        return []
    return [http_extension]


def listen(host: str, port: int) -> socket.socket:
    """Bind the gateway's HTTP socket.

    Raises:
        ConfigError: the port is in use, or the address cannot be bound; the
            message says how to choose another port.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Named TCP (not protocol 0): asyncio sets TCP_NODELAY only on accepted sockets
    # whose protocol says TCP, and without it small responses wait for delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        return sock
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            problem = f"port {port} in use, set --http-port / TROUPE_GATEWAY_PORT"
        else:
            problem = f"cannot listen on {host}:{port} ({exc.strerror or exc})"
        raise ConfigError("gateway", problem) from None


async def schedule_store(bus: Bus) -> ScheduleStore | None:
    """The schedules, or ``None`` (logged) when their bucket is not there."""
    try:
        return await ScheduleStore.bind(bus)
    except Exception as exc:  # noqa: BLE001 - no schedules bucket: the routes answer unavailable
        log.warning("gateway: schedules unavailable: %s", exc)
        return None


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the actor owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Gateway(Actor):
    """HTTP API, SSE and WebSocket (and MCP) for people and tools, with bearer tokens.

    Args:
        config: where to listen and the limits (default: from ``TROUPE_GATEWAY_*``).
        extensions: what to mount besides the API (default: the MCP server).
    """

    name: ClassVar[str] = "gateway"
    description: ClassVar[str] = "HTTP API, SSE, WebSocket and MCP; API tokens"
    event_loop: ClassVar[EventLoop] = "uvloop"
    """HTTP parsing and stream callbacks are most of a request's cost: uvloop does them in C."""
    # The status stream is only read: the event hub follows it for SSE and WebSocket.
    streams = (AUDIT, STATUS_EVENTS)
    buckets = (TOKENS, SUBMISSIONS)

    def __init__(
        self,
        config: GatewayConfig | None = None,
        *,
        extensions: Sequence[Extension] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.config = config or GatewayConfig.from_env()
        self._extensions = list(_extensions() if extensions is None else extensions)
        self.services: Services | None = None
        self.url: str | None = None
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._serving: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self.metrics: GatewayMetrics | None = None

    async def on_start(self) -> None:
        """Bind the HTTP port, the buckets, start the event hub and the token endpoints, serve.

        Raises:
            ConfigError: the HTTP port is in use (a restart would not help).
        """
        self._socket = listen(self.config.host, self.config.port)
        tokens = TokenStore(await TypedBucket.bind(self.bus, TOKENS, gw.TokenRecord))
        verifier = TokenVerifier(
            tokens.lookup, self._audit, clock=self.clock, cache_ttl=self.config.token_cache_s
        )
        hub = EventHub(self.bus.js)
        await hub.start()
        tails = LogTails()
        await tails.start(self.bus)
        leases: TypedBucket[StepLease] | None
        try:
            leases = await TypedBucket.bind(
                self.bus, BucketSpec(name=pipelines.LEASES_BUCKET), StepLease
            )
        except Exception:  # noqa: BLE001 - no runner topology: no executions to list
            leases = None
        # The dashboard's performance page reads the newest views from here, not the
        # tracker, while it is read: the watch starts on a read and stops when idle.
        recent = PerfWatch(self, WORKFLOWS, clock=self.clock, idle_s=self.config.perf_idle_s)
        self.services = Services(
            bus=self.bus,
            verifier=verifier,
            tokens=tokens,
            hub=hub,
            submissions=Submissions(
                self.bus, await TypedBucket.bind(self.bus, SUBMISSIONS, TaskSubmitted)
            ),
            leases=leases,
            tails=tails,
            schedules=await schedule_store(self.bus),
            recent=recent,
        )
        await self.add_watch(TOKENS, self._on_token, initial=False, name="watch-tokens")
        await self.add_endpoint(gw.TOKEN_CREATE_SUBJECT, self._create)
        await self.add_endpoint(gw.TOKEN_LIST_SUBJECT, self._list)
        await self.add_endpoint(gw.TOKEN_REVOKE_SUBJECT, self._revoke)
        await self.add_endpoint(gw.TOKEN_ROTATE_SUBJECT, self._rotate)
        await self.add_endpoint(gw.INFO_SUBJECT, self._info)
        self.metrics = GatewayMetrics(self.bus)
        await self.add_listener(UPDATES_SUBJECTS, self.metrics.on_update, message_type=WorkflowView)
        routes: list[BaseRoute] = [metrics_route(self.services, self.metrics)]
        try:
            flag_store: FlagStore | None = await FlagStore.bind(self.bus)
        except Exception as exc:  # noqa: BLE001 - no flags bucket: no flag routes
            log.warning("gateway: feature flags unavailable: %s", exc)
            flag_store = None
        if flag_store is not None:
            routes += flag_routes(self.services, flag_store, max_body=self.config.max_body)
        lifespans: list[Lifespan] = []
        for extension in self._extensions:
            more_routes, more_lifespans = extension(self.services)
            routes += more_routes
            lifespans += more_lifespans
        app = build_app(self.services, config=self.config, mounts=routes, lifespans=lifespans)
        server = _Server(
            uvicorn.Config(
                app,
                host=self.config.host,
                port=self.config.port,
                log_level="warning",
                lifespan="on",
                access_log=False,
                ws="websockets-sansio",
                timeout_graceful_shutdown=int(SHUTDOWN_S),
            )
        )
        self._server = server
        # The server is stopped gracefully by on_stop (should_exit, then awaited), not
        # cancelled with the background tasks; a watcher reports it if it ends on its own.
        self._serving = asyncio.create_task(self._serve(server, self._socket), name="gateway:http")
        self.spawn(self._watch(self._serving), name="http")
        await self._wait_listening(server)

    async def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            self._listening.set()
        if not server.started:
            raise RuntimeError(f"gateway could not listen on {self.config.host}:{self.config.port}")

    async def _watch(self, serving: asyncio.Task[None]) -> None:
        """Fail (and so report) if the HTTP server ends while the actor runs."""
        await asyncio.shield(serving)
        if self._server is not None and not self._server.should_exit:
            raise RuntimeError("gateway HTTP server stopped on its own")

    async def _wait_listening(self, server: uvicorn.Server) -> None:
        for _ in range(400):
            if server.started or self._listening.is_set():
                break
            await asyncio.sleep(0.025)
        if not server.started:
            raise RuntimeError(f"gateway could not listen on {self.config.host}:{self.config.port}")
        sockets = [s for srv in server.servers for s in (srv.sockets or ())]
        host, port = sockets[0].getsockname()[:2] if sockets else (self.config.host, 0)
        self.url = f"http://{host}:{port}"
        log.info("gateway serving on %s", self.url)

    async def on_stop(self) -> None:
        """End the event streams, then stop serving HTTP gracefully and close the socket.

        uvicorn stops listening, lets open requests finish (at most
        :data:`SHUTDOWN_S` seconds, then cancels them) and runs the app's
        shutdown (the MCP session manager's); a server still running after
        that is cancelled.
        """
        if self._server is not None:
            self._server.should_exit = True
        if self.services is not None:
            await self.services.hub.stop()
            if self.services.tails is not None:
                await self.services.tails.stop()
        serving, self._serving = self._serving, None
        if serving is not None:
            await asyncio.wait({serving}, timeout=2 * SHUTDOWN_S)
            if not serving.done():
                log.warning("gateway: HTTP server did not stop in %.0fs", 2 * SHUTDOWN_S)
            await cancel_and_wait(serving, SHUTDOWN_S)  # retrieves its outcome too
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self.metrics is not None:
            self.metrics.close()

    def service_metadata(self) -> dict[str, str]:
        """Show the URL in ``$SRV.INFO``."""
        return {"url": self.url} if self.url else {}

    # -- tokens over NATS --------------------------------------------------------------

    async def _audit(self, event: gw.AuditEvent) -> None:
        await self.bus.publish(gw.audit_subject(event.scope), event)

    async def _on_token(self, entry: Entry[gw.TokenRecord | None]) -> None:
        if self.services is not None:
            self.services.verifier.remember(entry.value, entry.key)

    def _tokens(self) -> TokenStore:
        assert self.services is not None
        return self.services.tokens

    async def _create(self, request: gw.CreateToken, ctx: RequestContext) -> gw.TokenIssued:
        issued = await self._tokens().create(
            request.name,
            request.role,
            request.scopes,
            ttl_s=request.ttl_s,
            created_by=request.created_by or "nats",
        )
        await self._audit_nats("tokens:manage", "token create", issued.info.token_id)
        return issued

    async def _list(self, request: gw.ListTokens, ctx: RequestContext) -> gw.TokenList:
        return gw.TokenList(
            items=await self._tokens().list(include_revoked=request.include_revoked)
        )

    async def _revoke(self, request: gw.RevokeToken, ctx: RequestContext) -> gw.TokenInfo:
        info = await self._tokens().revoke(request.token_id)
        await self._audit_nats("tokens:manage", "token revoke", request.token_id)
        return info

    async def _rotate(self, request: gw.RotateToken, ctx: RequestContext) -> gw.TokenIssued:
        issued = await self._tokens().rotate(request.token_id, ttl_s=request.ttl_s)
        await self._audit_nats("tokens:manage", "token rotate", request.token_id)
        return issued

    async def _info(self, request: gw.GetGatewayInfo, ctx: RequestContext) -> gw.GatewayInfo:
        return gw.GatewayInfo(url=self.url or "")

    async def _audit_nats(self, scope: str, action: str, target: str) -> None:
        with contextlib.suppress(Exception):
            await self._audit(
                gw.AuditEvent(
                    token_id="",
                    name="nats",
                    role="operator",
                    scope=scope,
                    action=action,
                    at=self.clock.time(),
                    target=target,
                    via="nats",
                )
            )

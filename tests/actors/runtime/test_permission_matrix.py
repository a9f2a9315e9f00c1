"""The permission matrix: every identity against every foreign action, on a real troupe server.

The server runs the configuration generated from the role table
(:mod:`actors.runtime.access`), with two issued agents and the whole topology
created by ``admin``. Each identity — no credentials, a wrong password, client,
operator, every actor role, the user-actor role and an agent — tries every
action that is not its job: JetStream administration of every stream, bucket
and object store, the republish trick, fetching from and acknowledging other
roles' consumers, forged messages on every troupe subject, other buckets' keys
(another agent's heartbeat among them), ``$SRV`` impersonation and
eavesdropping on ``>``, ``troupe.>`` and other roles' inboxes. Each must be
refused by the server: the connection is refused, or the server reports a
permission violation naming the subject (read from nats-py's error callback,
with a bounded wait). Which actions are foreign comes from what each role is
declared to do (its subjects, consumers and buckets), not from the generated
allow lists, so a too-wide allow list fails here.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client

from actors.cli.init import admin_config, apply_to, troupe_topology
from actors.pipeline_runner.cache import StepCache
from actors.pipeline_runner.client import list_cache
from actors.roster import build_roster
from actors.runtime.access import ACTOR_ROLES, ROLES, Role, agent_role, agent_user, inbox_prefix
from actors.runtime.agent_logins import issue_agent
from actors.runtime.bootstrap import Topology
from actors.runtime.bus import Bus
from actors.runtime.config import ConnectionConfig
from actors.runtime.credentials import read_passwords
from actors.runtime.kv import TypedBucket
from actors.runtime.server import NatsServer
from actors.runtime.testing import eventually
from actors.topology import STEP_CACHE
from protocols import agents, breakers, pipelines, status, tasks
from protocols.errors import DEAD_LETTER_STREAM, dead_letter_subject
from protocols.pipelines import CacheCleared, CachedStep, ClearCache, StepResult

pytestmark = pytest.mark.integration

AGENT, OTHER_AGENT = "alpha", "beta"

TROUPE_SUBJECTS = (
    tasks.SUBMIT_SUBJECT,
    tasks.CANCEL_SUBJECT,
    pipelines.RUN_SUBJECT,
    pipelines.CANCEL_SUBJECT,
    pipelines.RESULT_SUBJECT,
    pipelines.CACHE_CLEAR_SUBJECT,
    pipelines.CACHE_CLEARED_SUBJECT,
    "troupe.status.events.wf-1",
    "troupe.status.updates.wf-1",
    status.GET_SUBJECT,
    status.LIST_SUBJECT,
    breakers.REPORT_SUBJECT,
    breakers.CONTROL_SUBJECT,
    breakers.LIST_SUBJECT,
    "troupe.breakers.policy",
    "troupe.breakers.events.open",
    agents.FIND_SUBJECT,
    agents.LIST_SUBJECT,
    agents.JOINED_SUBJECT,
    agents.LEFT_SUBJECT,
    agents.inbox_subject(OTHER_AGENT),
    "troupe.agents.results.wf-1",
    "troupe.ext.anything",
    "troupe.gateway.tokens.create",
    "troupe.gateway.info",
    "troupe.audit.operator",
)
"""One concrete subject of every troupe subject (space)."""


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a final ``>`` one or more."""
    pat, sub = pattern.split("."), subject.split(".")
    for i, token in enumerate(pat):
        if token == ">":
            return len(sub) > i
        if i >= len(sub) or (token != "*" and token != sub[i]):
            return False
    return len(pat) == len(sub)


@dataclass(frozen=True, slots=True)
class Action:
    """One foreign action: publish on, or subscribe to, ``subject``."""

    category: str
    verb: str  # "pub" or "sub"
    subject: str


@dataclass(frozen=True, slots=True)
class Identity:
    """Who tries: a role (``None`` for no or wrong credentials) and how it logs in."""

    label: str
    role: Role | None
    user: str | None
    password: str | None


def _streams(topology: Topology) -> list[str]:
    return [
        *(s.name for s in topology.streams),
        *(f"KV_{b.name}" for b in topology.buckets),
        *(f"OBJ_{o.name}" for o in topology.object_stores),
    ]


def foreign_actions(role: Role | None, topology: Topology) -> list[Action]:
    """Every action of the catalogue that ``role`` is not declared to do."""
    out: list[Action] = []
    own_consumers: set[tuple[str, str]] = set(role.consumers) if role else set()
    writes = set(role.writes) if role else set()
    reads = writes | set(role.reads) if role else set()
    stores = set(role.object_stores) if role else set()
    for stream in _streams(topology):
        for op in ("CREATE", "UPDATE", "DELETE"):
            out.append(Action("stream admin", "pub", f"$JS.API.STREAM.{op}.{stream}"))
        if not (stream.startswith("OBJ_") and stream[4:] in stores):
            out.append(Action("stream admin", "pub", f"$JS.API.STREAM.PURGE.{stream}"))
        out.append(
            Action("consumer admin", "pub", f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.evil")
        )
        out.append(Action("consumer admin", "pub", f"$JS.API.CONSUMER.CREATE.{stream}.evil"))
        out.append(Action("consumer admin", "pub", f"$JS.API.CONSUMER.DELETE.{stream}.evil"))
    out.append(Action("republish trick", "pub", "$JS.API.STREAM.CREATE.EVIL"))
    for consumer in topology.consumers:
        key = (consumer.stream.name, consumer.durable)
        where = f"{consumer.stream.name}.{consumer.durable}"
        out.append(Action("consumer admin", "pub", f"$JS.API.CONSUMER.DELETE.{where}"))
        if key not in own_consumers:
            out.append(Action("other consumer", "pub", f"$JS.API.CONSUMER.MSG.NEXT.{where}"))
            out.append(Action("other consumer", "pub", f"$JS.ACK.{where}.1.1.1.1.1"))
    publish = role.publish if role else ()
    subscribe = role.subscribe if role else ()
    for subject in TROUPE_SUBJECTS:
        if not any(matches(p, subject) for p in publish):
            out.append(Action("forged message", "pub", subject))
        if not any(matches(p, subject) for p in subscribe):
            out.append(Action("eavesdrop", "sub", subject))
    for stream in (s.name for s in topology.streams):
        subject = dead_letter_subject(stream)
        if not any(matches(p, subject) for p in publish):
            out.append(Action("forged message", "pub", subject))
    keys = role.keys if role and role.keys is not None else None
    for bucket in (b.name for b in topology.buckets):
        if bucket not in writes or (keys is not None and OTHER_AGENT not in keys):
            out.append(Action("foreign key", "pub", f"$KV.{bucket}.{OTHER_AGENT}"))
        if bucket not in reads:
            get = f"$JS.API.DIRECT.GET.KV_{bucket}.$KV.{bucket}.{OTHER_AGENT}"
            out.append(Action("foreign key", "pub", get))
    for store in (o.name for o in topology.object_stores):
        if store not in stores:
            out.append(Action("foreign key", "pub", f"$O.{store}.C.evil"))
    services = [r.service for r in ROLES if r.service not in (None, "*")]
    for service in [*services, "agent"]:
        if role is None or role.service != service:
            out.append(Action("$SRV impersonation", "sub", f"$SRV.PING.{service}"))
            out.append(Action("$SRV impersonation", "sub", f"$SRV.INFO.{service}.>"))
    for subject in (">", "troupe.>", "_INBOX.>", "$KV.>", "$JS.ACK.>", "$SRV.>"):
        if role and role.service == "*" and subject == "$SRV.>":
            continue  # a user actor may take any service name but a built-in's (denied above)
        if role and role.shared_inbox and subject == "_INBOX.>":
            continue  # the client's default inboxes: only the client's own replies go there
        out.append(Action("eavesdrop", "sub", subject))
    users = [r.name for r in ROLES] + [agent_user(AGENT), agent_user(OTHER_AGENT)]
    for user in users:
        if role is None or user != role.name:
            out.append(Action("other inbox", "sub", f"{inbox_prefix(user)}.>"))
            out.append(Action("other inbox", "pub", f"{inbox_prefix(user)}.x"))
    return out


@pytest.fixture(scope="module")
def troupe_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A troupe server with two issued agents and the whole topology."""
    state_dir = tmp_path_factory.mktemp("matrix")
    issue_agent(state_dir, AGENT)
    issue_agent(state_dir, OTHER_AGENT)
    with NatsServer(state_dir, port=0) as server:
        yield server


@pytest.fixture(scope="module")
def topology(troupe_server: NatsServer) -> Topology:
    """The troupe's topology, created as admin."""
    topo = troupe_topology(build_roster(), troupe_server.state_dir)
    asyncio.run(apply_to(admin_config(troupe_server.url, troupe_server.state_dir), topo))
    return topo


def identities(state_dir: Path) -> list[Identity]:
    """Every identity of the matrix but admin."""
    users = [r.name for r in ROLES if r.name != "admin"] + [agent_user(AGENT)]
    passwords = read_passwords(state_dir, users)
    out = [
        Identity("none", None, None, None),
        Identity("wrong password", None, "client", "not-the-password"),
    ]
    for role in [*ROLES, agent_role(AGENT)]:
        if role.name != "admin":
            out.append(Identity(role.name, role, role.name, passwords[role.name]))
    return out


class Probe:
    """A connection that records the server's permission violations."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.violations: list[str] = []
        self.nc = Client()

    async def _on_error(self, exc: Exception) -> None:
        self.violations.append(str(exc).lower())

    async def connect(self, url: str) -> bool:
        """Connect; ``False`` if the server refused the login."""
        user = self.identity.user
        try:
            await self.nc.connect(
                servers=[url],
                user=user,
                password=self.identity.password,
                inbox_prefix=inbox_prefix(user) if user else "_INBOX",
                error_cb=self._on_error,
                allow_reconnect=False,
                max_reconnect_attempts=1,
                connect_timeout=2,
            )
        except (nats.errors.Error, OSError, TimeoutError):
            await self.nc.close()
            return False
        return True

    def denied(self, action: Action) -> bool:
        """Whether the server reported a violation for ``action``."""
        kind = "publish" if action.verb == "pub" else "subscription"
        needle = f'permissions violation for {kind} to "{action.subject.lower()}"'
        return any(needle in v for v in self.violations)

    async def attempt(self, action: Action) -> None:
        """Try ``action`` once."""
        if action.verb == "pub":
            await self.nc.publish(action.subject, json.dumps({"config": {}}).encode())
        else:
            await self.nc.subscribe(action.subject)


def _all_denied(probe: Probe, actions: list[Action]) -> bool:
    return all(probe.denied(a) for a in actions)


async def _run_matrix(url: str, state_dir: Path, topology: Topology) -> dict[str, tuple[int, int]]:
    results: dict[str, tuple[int, int]] = {}
    for identity in identities(state_dir):
        actions = foreign_actions(identity.role, topology)
        probe = Probe(identity)
        if not await probe.connect(url):
            assert identity.role is None, f"{identity.label} could not log in"
            results[identity.label] = (len(actions), len(actions))
            continue
        assert identity.role is not None, f"{identity.label} was let in"
        try:
            for action in actions:
                await probe.attempt(action)
            await probe.nc.flush()
            await eventually(
                functools.partial(_all_denied, probe, actions),
                timeout=20.0,
                what=f"every foreign action of {identity.label} denied",
            )
        except AssertionError:
            allowed = [a for a in actions if not probe.denied(a)]
            raise AssertionError(f"{identity.label} was allowed: {allowed[:20]}") from None
        finally:
            await probe.nc.close()
        results[identity.label] = (sum(probe.denied(a) for a in actions), len(actions))
    return results


def test_every_identity_is_denied_every_foreign_action(
    troupe_server: NatsServer, topology: Topology, capsys: pytest.CaptureFixture[str]
) -> None:
    """None, wrong password, client, operator, each actor, actor and an agent: 100 % denied."""
    results = asyncio.run(_run_matrix(troupe_server.url, troupe_server.state_dir, topology))
    with capsys.disabled():
        print("\npermission matrix: identity -> foreign actions denied")
        for label, (denied, total) in results.items():
            print(f"  {label:<20} {denied:>4}/{total:<4} denied")
        denied = sum(d for d, _ in results.values())
        total = sum(t for _, t in results.values())
        print(f"  {'all':<20} {denied:>4}/{total:<4} denied ({100 * denied / total:.0f} %)")
    assert denied == total
    assert set(results) >= {"none", "wrong password", "client", "operator", "actor", *ACTOR_ROLES}


@pytest.fixture
async def connect(troupe_server: NatsServer) -> AsyncIterator[object]:
    """Log in as a user of the matrix server (closed at the end)."""
    opened: list[Client] = []

    async def login(user: str) -> Client:
        password = read_passwords(troupe_server.state_dir, [user])[user]
        nc = await nats.connect(
            troupe_server.url, user=user, password=password, inbox_prefix=inbox_prefix(user)
        )
        opened.append(nc)
        return nc

    yield login
    for nc in opened:
        await nc.close()


async def test_a_client_submits_and_reads_workflows(connect, topology: Topology) -> None:  # type: ignore[no-untyped-def]
    """The client's own job works: a submission is acknowledged, a workflow key is read."""
    nc = await connect("client")
    ack = await nc.jetstream().publish(tasks.SUBMIT_SUBJECT, b"{}", headers={"Nats-Msg-Id": "m1"})
    assert ack.stream == tasks.TASKS_STREAM
    kv = await nc.jetstream().key_value(status.WORKFLOWS_BUCKET)
    with pytest.raises(nats.js.errors.KeyNotFoundError):
        await kv.get("wf-unknown")


async def test_an_agent_writes_its_own_heartbeat_only(connect, topology: Topology) -> None:  # type: ignore[no-untyped-def]
    """An issued agent puts its own heartbeat key (its neighbour's is in the matrix)."""
    nc = await connect(agent_user(AGENT))
    ack = await nc.jetstream().publish(f"$KV.{agents.AGENTS_BUCKET}.{AGENT}", b"{}")
    assert ack.stream == f"KV_{agents.AGENTS_BUCKET}"


async def test_an_actor_role_fetches_from_its_own_consumer(connect, topology: Topology) -> None:  # type: ignore[no-untyped-def]
    """The status tracker binds and fetches from its own durable without a violation."""
    nc = await connect("status_tracker")
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    nc._error_cb = on_error  # record violations of an already open connection
    sub = await nc.jetstream().pull_subscribe_bind("status-tracker", stream=status.STATUS_STREAM)
    with pytest.raises(nats.errors.TimeoutError):
        await sub.fetch(1, timeout=0.5)
    await nc.flush()
    assert errors == []


async def test_admin_alone_holds_the_republish_trick(connect, topology: Topology) -> None:  # type: ignore[no-untyped-def]
    """Creating a stream that republishes works for admin only (denied to all in the matrix)."""
    nc = await connect("admin")
    info = await nc.jetstream().add_stream(name="ADMIN_ONLY", subjects=["admin.only.>"])
    assert info.config.name == "ADMIN_ONLY"
    await nc.jetstream().delete_stream("ADMIN_ONLY")
    assert DEAD_LETTER_STREAM in [s.name for s in topology.streams]


async def test_a_runner_stores_and_deletes_step_cache_entries_and_an_operator_lists_them(
    troupe_server: NatsServer, topology: Topology
) -> None:
    """The step cache's KV bucket: the runner's put, get and delete and the operator's listing
    (``troupe cache ls``) all work under their roles' permissions."""
    users = ["pipeline_runner", "operator"]
    passwords = read_passwords(troupe_server.state_dir, users)
    runner, operator = (
        ConnectionConfig(url=troupe_server.url, user=u, password=passwords[u], connect_timeout=5)
        for u in users
    )
    result = StepResult(name="s", state="succeeded", exit_code=0)
    async with await Bus.connect(runner) as bus:
        bucket = await TypedBucket.bind(bus, STEP_CACHE, CachedStep)
        cache = StepCache(bucket)
        await cache.put("k-kept", result)
        await cache.put("k-gone", result)
        cleared = await cache.clear_for(ClearCache(key="k-gone"))
        assert cleared == CacheCleared(removed=1, keys=["k-gone"])
        other = StepCache(bucket)
        assert await other.get("k-kept") == result
        assert (cache.stats.errors, other.stats.errors) == (0, 0)
    async with await Bus.connect(operator) as bus:
        assert [(e.key, e.step) for e in await list_cache(bus)] == [("k-kept", "s")]

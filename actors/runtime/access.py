"""Who may do what on the bus: the one role table, and the server configuration made from it.

Every NATS user of a troupe is a :class:`Role`. A role names the troupe subjects
it publishes and subscribes to, and the JetStream objects it *uses* — its
durable consumers, the buckets it reads or writes, the object stores it uses,
the streams it binds to. :func:`permissions` turns a role into the exact NATS
allow lists: fetch (``$JS.API.CONSUMER.MSG.NEXT``) and acknowledge
(``$JS.ACK``) of its own durables only, direct gets and key writes of its own
buckets only, its own micro service name under ``$SRV``, and a private inbox
prefix (``_INBOX_<user>``). No role but ``admin`` may create, update, delete or
purge a stream or a consumer: the topology is created by ``troupe up`` /
``troupe init`` as ``admin`` (see :mod:`actors.runtime.topology`).

:func:`render_config` writes the ``nats.conf`` the embedded server runs; the
permission-matrix tests read the same table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from protocols import agents, breakers, flags, gateway, pipelines, schedules, status, tasks
from protocols.errors import DEAD_LETTER_STREAM, dead_letter_subject

__all__ = [
    "ACTOR_ROLES",
    "ADMIN",
    "AGENT_NAME_PATTERN",
    "ROLES",
    "Role",
    "agent_role",
    "agent_user",
    "inbox_prefix",
    "permissions",
    "render_config",
    "role_of",
]

AGENT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
"""Names ``troupe agents add`` accepts: a KV key, a subject token and a user name."""

_AGENT_NAME = re.compile(AGENT_NAME_PATTERN)

ADMIN = "admin"
"""The one user that may change the topology (and do anything else)."""


@dataclass(frozen=True, slots=True)
class Role:
    """What one NATS user may do.

    Attributes:
        name: user name (also its inbox prefix ``_INBOX_<name>``).
        summary: one line for ``troupe creds``.
        publish: troupe subjects it may publish on (requests, events, stream subjects).
        subscribe: troupe subjects it may subscribe to.
        service: its micro service name under ``$SRV`` (``None``: serves none).
        discovers: may send ``$SRV`` PING/INFO/STATS requests.
        consumers: ``(stream, durable)`` pairs it fetches from and acknowledges.
        streams: streams it binds to (``STREAM.INFO``).
        reads_streams: streams it reads with ephemeral ordered consumers (histories).
        reads: buckets it reads (direct gets, watches and key listing).
        writes: buckets it writes (key puts, deletes); implies reading.
        keys: when set, the only keys it may write in :attr:`writes` buckets.
        object_stores: object stores it reads and writes.
        reads_objects: object stores it only reads.
        extra: JetStream API subjects it needs beyond the above (e.g. a janitor's
            message delete), each justified where the role is declared.
        responds: may answer requests (``allow_responses``).
        shared_inbox: may also use nats-py's default ``_INBOX`` prefix, so a stock
            client works unchanged (only the one ``client`` user: nobody else's
            replies travel there).
    """

    name: str
    summary: str
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    service: str | None = None
    discovers: bool = True
    consumers: tuple[tuple[str, str], ...] = ()
    streams: tuple[str, ...] = ()
    reads_streams: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    keys: tuple[str, ...] | None = None
    object_stores: tuple[str, ...] = ()
    reads_objects: tuple[str, ...] = ()
    extra: tuple[str, ...] = field(default=())
    responds: bool = True
    shared_inbox: bool = False

    @property
    def is_admin(self) -> bool:
        """Whether this is the all-powerful ``admin`` user."""
        return self.name == ADMIN


def inbox_prefix(user: str) -> str:
    """Return the private inbox prefix of ``user`` (``_INBOX_<user>``)."""
    return f"_INBOX_{user}"


def _dlq(*streams: str) -> tuple[str, ...]:
    return tuple(dead_letter_subject(s) for s in streams)


_CLIENT_PUBLISH = (
    tasks.SUBMIT_SUBJECT,
    tasks.CANCEL_SUBJECT,
    status.GET_SUBJECT,
    status.LIST_SUBJECT,
    pipelines.RESULT_SUBJECT,
    agents.FIND_SUBJECT,
    agents.LIST_SUBJECT,
    breakers.LIST_SUBJECT,
    "troupe.ext.>",
    gateway.INFO_SUBJECT,
    # The task manager answers task records (re-runs) and its templates.
    tasks.GET_SUBJECT,
    tasks.TEMPLATES_SUBJECTS,
    tasks.VALIDATE_SUBJECT,
)
_CLIENT_SUBSCRIBE = (
    status.UPDATES_SUBJECTS,
    pipelines.LOGS_SUBJECTS,
    agents.JOINED_SUBJECT,
    agents.LEFT_SUBJECT,
    breakers.EVENTS_SUBJECTS,
    "troupe.ext.>",
)
_CLIENT_STREAMS = (tasks.TASKS_STREAM,)
_CLIENT_READS = (
    status.WORKFLOWS_BUCKET,
    agents.AGENTS_BUCKET,
    breakers.BREAKERS_BUCKET,
    flags.FLAGS_BUCKET,
    schedules.SCHEDULES_BUCKET,
)

ROLES: tuple[Role, ...] = (
    Role(
        name="task_manager",
        summary="the task manager actor",
        publish=(
            pipelines.RUN_SUBJECT,
            pipelines.CANCEL_SUBJECT,
            status.EVENTS_SUBJECTS,
            agents.INBOX_SUBJECTS,
            agents.FIND_SUBJECT,
            agents.LIST_SUBJECT,
            status.GET_SUBJECT,
            # Each schedule firing is submitted as a task.
            tasks.SUBMIT_SUBJECT,
            *_dlq(
                tasks.TASKS_STREAM,
                agents.RESULTS_STREAM,
                schedules.SCHEDULES_STREAM,
                DEAD_LETTER_STREAM,
            ),
        ),
        subscribe=(
            tasks.CANCEL_SUBJECT,
            tasks.GET_SUBJECT,
            tasks.TEMPLATES_SUBJECTS,
            tasks.VALIDATE_SUBJECT,
            agents.JOINED_SUBJECT,
            agents.LEFT_SUBJECT,
        ),
        service="task_manager",
        consumers=(
            (tasks.TASKS_STREAM, "task-manager"),
            (agents.RESULTS_STREAM, "task-manager-agent-results"),
            (schedules.SCHEDULES_STREAM, "task-manager-schedules"),
        ),
        streams=(
            DEAD_LETTER_STREAM,
            tasks.TASKS_STREAM,
            schedules.SCHEDULES_STREAM,
            pipelines.PIPELINES_STREAM,
            status.STATUS_STREAM,
            agents.INBOX_STREAM,
            agents.RESULTS_STREAM,
        ),
        reads=(agents.AGENTS_BUCKET,),
        # The results bucket: an agent-routed workflow's result, stored like a pipeline's.
        writes=(tasks.TASKS_BUCKET, agents.ASSIGNMENTS_BUCKET, pipelines.RESULTS_BUCKET),
    ),
    Role(
        name="pipeline_runner",
        summary="the pipeline runner actor",
        publish=(
            status.EVENTS_SUBJECTS,
            breakers.REPORT_SUBJECT,
            pipelines.CACHE_CLEARED_SUBJECT,
            pipelines.LOGS_SUBJECTS,
            *_dlq(pipelines.PIPELINES_STREAM, DEAD_LETTER_STREAM),
        ),
        subscribe=(
            pipelines.CANCEL_SUBJECT,
            pipelines.EXECUTION_STOP_SUBJECT,
            pipelines.RESULT_SUBJECT,
            pipelines.CACHE_CLEAR_SUBJECT,
            pipelines.CACHE_CLEARED_SUBJECT,
            breakers.EVENTS_SUBJECTS,
        ),
        service="pipeline_runner",
        consumers=((pipelines.PIPELINES_STREAM, "pipeline-runner"),),
        streams=(
            DEAD_LETTER_STREAM,
            pipelines.PIPELINES_STREAM,
            status.STATUS_STREAM,
            breakers.REPORTS_STREAM,
        ),
        reads=(status.WORKFLOWS_BUCKET, flags.FLAGS_BUCKET),
        # The breakers bucket: a runner claims a half-open breaker's probe with a create.
        writes=(
            pipelines.RESULTS_BUCKET,
            pipelines.CHECKPOINTS_BUCKET,
            pipelines.LEASES_BUCKET,
            breakers.BREAKERS_BUCKET,
            pipelines.CACHE_BUCKET,
        ),
        object_stores=(pipelines.ARTIFACTS_BUCKET,),
    ),
    Role(
        name="status_tracker",
        summary="the status tracker actor",
        publish=(
            status.EVENTS_SUBJECTS,
            status.UPDATES_SUBJECTS,
            *_dlq(status.STATUS_STREAM, DEAD_LETTER_STREAM),
        ),
        subscribe=(status.GET_SUBJECT, status.LIST_SUBJECT),
        service="status_tracker",
        consumers=((status.STATUS_STREAM, "status-tracker"),),
        streams=(DEAD_LETTER_STREAM, status.STATUS_STREAM),
        writes=(status.WORKFLOWS_BUCKET, status.DURATIONS_BUCKET),
    ),
    Role(
        name="breaker_supervisor",
        summary="the breaker supervisor actor",
        publish=(
            breakers.EVENTS_SUBJECTS,
            status.EVENTS_SUBJECTS,
            *_dlq(breakers.REPORTS_STREAM, DEAD_LETTER_STREAM),
        ),
        subscribe=(
            breakers.CONTROL_SUBJECT,
            breakers.LIST_SUBJECT,
            "troupe.breakers.policy",
        ),
        service="breaker_supervisor",
        consumers=((breakers.REPORTS_STREAM, "breaker-supervisor"),),
        streams=(DEAD_LETTER_STREAM, breakers.REPORTS_STREAM, status.STATUS_STREAM),
        writes=(breakers.BREAKERS_BUCKET, breakers.SNAPSHOTS_BUCKET),
    ),
    Role(
        name="agent_registry",
        summary="the agent registry actor",
        publish=(
            agents.JOINED_SUBJECT,
            agents.LEFT_SUBJECT,
            *_dlq(agents.INBOX_STREAM, DEAD_LETTER_STREAM),
        ),
        subscribe=(agents.FIND_SUBJECT, agents.LIST_SUBJECT),
        service="agent_registry",
        streams=(DEAD_LETTER_STREAM, agents.INBOX_STREAM),
        reads=(agents.AGENTS_BUCKET,),
        # The inbox janitor reads old inbox messages, checks each agent's ack floor
        # and deletes what it dead-lettered (a message delete, never a purge).
        extra=(
            f"$JS.API.STREAM.MSG.GET.{agents.INBOX_STREAM}",
            f"$JS.API.DIRECT.GET.{agents.INBOX_STREAM}",
            f"$JS.API.DIRECT.GET.{agents.INBOX_STREAM}.>",
            f"$JS.API.STREAM.MSG.DELETE.{agents.INBOX_STREAM}",
            f"$JS.API.CONSUMER.INFO.{agents.INBOX_STREAM}.*",
        ),
    ),
    Role(
        name="gateway",
        summary="the gateway actor: HTTP API and MCP for token holders; issues API tokens",
        publish=(
            *_CLIENT_PUBLISH,
            breakers.CONTROL_SUBJECT,
            pipelines.EXECUTION_STOP_SUBJECT,
            gateway.AUDIT_SUBJECTS,
            *_dlq(DEAD_LETTER_STREAM),
            # /api/v1/schedules and the schedule tools arm and disarm schedules.
            schedules.DEFINITION_SUBJECTS,
        ),
        subscribe=(*_CLIENT_SUBSCRIBE, gateway.TOKEN_SUBJECTS, gateway.INFO_SUBJECT),
        service="gateway",
        streams=(
            *_CLIENT_STREAMS,
            DEAD_LETTER_STREAM,
            gateway.AUDIT_STREAM,
            schedules.SCHEDULES_STREAM,
        ),
        # The status stream is read (histories, live events) with ordered consumers.
        reads_streams=(status.STATUS_STREAM,),
        reads=(*_CLIENT_READS, pipelines.LEASES_BUCKET),
        writes=(
            gateway.TOKENS_BUCKET,
            gateway.SUBMISSIONS_BUCKET,
            flags.FLAGS_BUCKET,
            schedules.SCHEDULES_BUCKET,
        ),
        reads_objects=(pipelines.ARTIFACTS_BUCKET,),
        # GET /metrics reads JetStream's accounting of every stream and consumer; the
        # dashboard's queue depth reads the pipelines stream's info (info only).
        extra=(
            "$JS.API.STREAM.LIST",
            "$JS.API.CONSUMER.LIST.*",
            f"$JS.API.STREAM.INFO.{pipelines.PIPELINES_STREAM}",
        ),
    ),
    Role(
        name="actor",
        summary="user actors (troupe up --actor): troupe.ext.>, client requests and events",
        publish=("troupe.ext.>", *_dlq(DEAD_LETTER_STREAM), *_CLIENT_PUBLISH[2:8]),
        subscribe=(
            "troupe.ext.>",
            status.UPDATES_SUBJECTS,
            agents.JOINED_SUBJECT,
            agents.LEFT_SUBJECT,
            breakers.EVENTS_SUBJECTS,
        ),
        # Any service name but a built-in one (see permissions()).
        service="*",
        streams=(DEAD_LETTER_STREAM,),
    ),
    Role(
        name="client",
        summary="submit, cancel, query and follow workflows (the CLI's default)",
        publish=_CLIENT_PUBLISH,
        subscribe=_CLIENT_SUBSCRIBE,
        streams=_CLIENT_STREAMS,
        reads=_CLIENT_READS,
        reads_objects=(pipelines.ARTIFACTS_BUCKET,),
        responds=False,
        shared_inbox=True,
    ),
    Role(
        name="operator",
        summary="a client that may also control breakers, clear the step cache, manage API tokens",
        publish=(
            *_CLIENT_PUBLISH,
            breakers.CONTROL_SUBJECT,
            pipelines.CACHE_CLEAR_SUBJECT,
            pipelines.EXECUTION_STOP_SUBJECT,
            gateway.TOKEN_SUBJECTS,
            gateway.INFO_SUBJECT,
            flags.flag_audit_subject("*"),
            schedules.DEFINITION_SUBJECTS,
        ),
        subscribe=(*_CLIENT_SUBSCRIBE, pipelines.CACHE_CLEARED_SUBJECT),
        streams=(*_CLIENT_STREAMS, schedules.SCHEDULES_STREAM),
        # troupe executions ls reads the step leases; troupe cache ls|stats the step cache.
        reads=(*_CLIENT_READS, pipelines.LEASES_BUCKET, pipelines.CACHE_BUCKET),
        writes=(flags.FLAGS_BUCKET, schedules.SCHEDULES_BUCKET),
        # troupe cluster status reads the replica health of every stream.
        extra=("$JS.API.STREAM.LIST",),
        reads_objects=(pipelines.ARTIFACTS_BUCKET,),
        responds=False,
    ),
    Role(name=ADMIN, summary="creates the topology, issues agents; may do anything"),
)
"""The fixed roles; agents get one role each from :func:`agent_role`."""

ACTOR_ROLES = (
    "task_manager",
    "pipeline_runner",
    "status_tracker",
    "breaker_supervisor",
    "agent_registry",
    "gateway",
)
"""Roles of the built-in actors (each logs in as the role of its name)."""


def agent_user(name: str) -> str:
    """Return the NATS user of the agent ``name`` (``agent-<name>``)."""
    return f"agent-{name}"


def agent_role(name: str) -> Role:
    """Return the role of the agent ``name``, issued by ``troupe agents add``.

    It heartbeats under its own key only, fetches from its own inbox durable
    only, sends to other agents' inboxes and reports task results.

    Raises:
        ValueError: ``name`` does not match :data:`AGENT_NAME_PATTERN`.
    """
    if not _AGENT_NAME.match(name):
        raise ValueError(f"agent name {name!r} must match {AGENT_NAME_PATTERN}")
    return Role(
        name=agent_user(name),
        summary=f"the agent {name}",
        publish=(
            agents.INBOX_SUBJECTS,
            agents.RESULTS_SUBJECTS,
            agents.FIND_SUBJECT,
            agents.LIST_SUBJECT,
            *_dlq(agents.INBOX_STREAM, DEAD_LETTER_STREAM),
        ),
        subscribe=(agents.JOINED_SUBJECT, agents.LEFT_SUBJECT),
        service="agent",
        consumers=((agents.INBOX_STREAM, agents.inbox_durable(name)),),
        streams=(DEAD_LETTER_STREAM, agents.INBOX_STREAM, agents.RESULTS_STREAM),
        writes=(agents.AGENTS_BUCKET,),
        keys=(agents.heartbeat_key(name),),
    )


def role_of(user: str, agent_names: Iterable[str] = ()) -> Role:
    """Return the role of ``user`` among :data:`ROLES` and the issued agents.

    Raises:
        KeyError: no such user.
    """
    for role in ROLES:
        if role.name == user:
            return role
    for name in agent_names:
        if agent_user(name) == user:
            return agent_role(name)
    raise KeyError(user)


_BUILTIN_SERVICES = (*(r.service for r in ROLES if r.service not in (None, "*")), "agent")


def _service_subjects(service: str) -> list[str]:
    if service == "*":
        return ["$SRV.>"]
    return ["$SRV.PING", "$SRV.INFO", "$SRV.STATS", f"$SRV.*.{service}", f"$SRV.*.{service}.>"]


def _kv_stream(bucket: str) -> str:
    return f"KV_{bucket}"


def _obj_stream(store: str) -> str:
    return f"OBJ_{store}"


def _read_stream(stream: str) -> list[str]:
    """Bind, get messages and run ephemeral ordered consumers (watches) on ``stream``.

    An ordered consumer only reads, and the server delivers its messages only to a
    subject its creator may publish to, so it is no publish bypass (both tested).
    """
    return [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
        # Ephemeral only: the server refuses a durable name on this subject.
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.INFO.{stream}.*",
        f"$JS.FC.{stream}.>",
    ]


def _jetstream(role: Role) -> list[str]:
    """The JetStream API, acknowledgement and KV/object subjects ``role`` may publish on."""
    pub: list[str] = []
    for stream, durable in role.consumers:
        pub += [
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
            f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
            f"$JS.ACK.{stream}.{durable}.>",
        ]
    pub += [f"$JS.API.STREAM.INFO.{stream}" for stream in role.streams]
    for stream in role.reads_streams:
        pub += _read_stream(stream)
    for bucket in dict.fromkeys((*role.reads, *role.writes)):
        pub += _read_stream(_kv_stream(bucket))
    for bucket in role.writes:
        pub += [f"$KV.{bucket}.{key}" for key in role.keys or (">",)]
    for store in role.object_stores:
        pub += [*_read_stream(_obj_stream(store)), f"$O.{store}.>"]
        # Deleting or replacing an object purges its chunks (a filtered purge).
        pub.append(f"$JS.API.STREAM.PURGE.{_obj_stream(store)}")
    for store in role.reads_objects:
        pub += _read_stream(_obj_stream(store))
    if role.object_stores or role.reads_objects:
        # Reading an object subscribes to its chunks without naming the stream.
        pub.append("$JS.API.STREAM.NAMES")
    return [*pub, *role.extra]


def _discovery(role: Role) -> tuple[list[str], list[str], list[str]]:
    """``$SRV`` subjects of ``role``: (publish, subscribe, subscribe deny)."""
    pub = ["$SRV.PING", "$SRV.PING.>", "$SRV.INFO", "$SRV.INFO.>", "$SRV.STATS", "$SRV.STATS.>"]
    sub: list[str] = []
    deny: list[str] = []
    if role.service == "*":
        sub = ["$SRV.>"]
        for name in _BUILTIN_SERVICES:
            deny += [f"$SRV.*.{name}", f"$SRV.*.{name}.>"]
    elif role.service is not None:
        sub = ["$SRV.PING", "$SRV.INFO", "$SRV.STATS"]
        sub += [f"$SRV.*.{role.service}", f"$SRV.*.{role.service}.>"]
    return (pub if role.discovers else []), sub, deny


def permissions(role: Role) -> dict[str, object]:
    """Return the NATS ``permissions`` block of ``role``.

    Returns:
        ``{"publish": {...}, "subscribe": {...}}`` plus ``allow_responses`` for repliers.
    """
    if role.is_admin:
        return {"publish": {"allow": [">"]}, "subscribe": {"allow": [">"]}}
    srv_pub, srv_sub, srv_deny = _discovery(role)
    pub = [*role.publish, *srv_pub, *_jetstream(role)]
    inboxes = [f"{inbox_prefix(role.name)}.>", *(["_INBOX.>"] if role.shared_inbox else [])]
    sub = [*inboxes, *role.subscribe, *srv_sub]
    subscribe: dict[str, list[str]] = {"allow": list(dict.fromkeys(sub))}
    if srv_deny:
        subscribe["deny"] = srv_deny
    block: dict[str, object] = {
        "publish": {"allow": list(dict.fromkeys(pub))},
        "subscribe": subscribe,
    }
    if role.responds:
        block["allow_responses"] = True
    return block


def password_var(user: str) -> str:
    """Return the configuration variable holding ``user``'s password hash."""
    return f"TROUPE_{user.upper()}_PASSWORD"


def _user_entry(role: Role, password: str) -> str:
    perms = json.dumps(permissions(role), indent=2).replace("\n", "\n        ")
    return (
        f"      {{\n        user: {json.dumps(role.name)}\n        password: {password}\n"
        f"        permissions: {perms}\n      }}"
    )


def render_config(
    *,
    agent_hashes: Mapping[str, str] | None = None,
    anonymous: bool = False,
) -> str:
    """Return troupe's ``nats.conf``: one user per role of the table.

    The fixed roles' passwords are the variables ``$TROUPE_<ROLE>_PASSWORD``,
    defined (as bcrypt hashes) by a file the server configuration includes first;
    agents issued with ``troupe agents add`` carry their hash inline.

    Args:
        agent_hashes: agent name -> bcrypt hash of its password.
        anonymous: let a connection without credentials in as ``client`` (off by default).

    Returns:
        The configuration text.
    """
    entries = [_user_entry(role, f"${password_var(role.name)}") for role in ROLES]
    for name, hashed in sorted((agent_hashes or {}).items()):
        entries.append(_user_entry(agent_role(name), json.dumps(hashed)))
    head = """# troupe's NATS server configuration, generated from the role table in
# actors/runtime/access.py (python -m actors.runtime.access > actors/runtime/nats.conf).
# Do not edit: change the table. `troupe up` runs it with the password hashes of
# <state-dir>/secrets/ included first and the agents issued by `troupe agents add`
# added; the deploy/ cluster configs include it.

server_name: troupe
listen: 127.0.0.1:4222
max_payload: 8MB

jetstream {
  # Flush every JetStream write to disk before acknowledging it: without this a
  # power loss can drop writes the server already acknowledged.
  sync_interval: always
  max_memory_store: 512MB
  max_file_store: 20GB
}

# No role but admin may create, update, delete or purge a stream or consumer;
# each role fetches and acknowledges its own durables, reads and writes its own
# buckets, answers under its own $SRV name and uses its own inbox prefix.
accounts {
  TROUPE {
    jetstream: enabled
    users: [
"""
    tail = "\n    ]\n  }\n}\n"
    text = head + "\n".join(entries) + tail
    if anonymous:
        text += "\n# Connections without credentials are clients.\nno_auth_user: client\n"
    return text


if __name__ == "__main__":
    print(render_config(), end="")

"""Flags over NATS: the bucket's typed store (audited writes) and a live local view.

:class:`FlagStore` is what the CLI and the gateway use; :class:`LiveFlags` is
what actors keep: fed by a watch of the bucket (``Actor.add_watch``), it
answers from memory, so a change reaches every actor within one watch
delivery and evaluation costs no round trip.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import msgspec

from actors.feature_flags.state import value
from actors.runtime.bus import Bus
from actors.runtime.kv import TypedBucket
from actors.runtime.watch import Entry
from actors.topology import FLAGS
from protocols.flags import Flag, flag_audit_subject
from protocols.gateway import AuditEvent

__all__ = ["FlagStore", "LiveFlags"]

log = logging.getLogger(__name__)


class FlagStore:
    """Read and write flags; each write is published as an audit event.

    Build it with :meth:`bind`.

    Args:
        bus: the connection (audit events are published on it).
        bucket: the flags bucket.
    """

    def __init__(self, bus: Bus, bucket: TypedBucket[Flag]) -> None:
        self._bus = bus
        self._bucket = bucket

    @classmethod
    async def bind(cls, bus: Bus) -> FlagStore:
        """Bind to the flags bucket (created by ``troupe init``)."""
        return cls(bus, await TypedBucket.bind(bus, FLAGS, Flag))

    async def list(self) -> list[Flag]:
        """Return every flag, sorted by name."""
        flags = []
        for key in sorted(await self._bucket.keys()):
            entry = await self._bucket.get_or_none(key)
            if entry is not None:
                flags.append(entry.value)
        return flags

    async def get(self, name: str) -> Flag | None:
        """Return the flag named ``name``, or ``None``."""
        entry = await self._bucket.get_or_none(name)
        return None if entry is None else entry.value

    async def set(self, flag: Flag, *, by: str, at: float, via: str = "nats") -> Flag:
        """Store ``flag`` (stamped with ``by`` and ``at``) and publish the audit event.

        Returns:
            The stored version.
        """
        stored = msgspec.structs.replace(flag, updated_by=by, updated_at=at)
        await self._bucket.put(flag.name, stored)
        await self._audit("set", stored.name, by, at, via)
        return stored

    async def remove(self, name: str, *, by: str, at: float, via: str = "nats") -> bool:
        """Delete the flag named ``name``; return whether it existed."""
        if await self._bucket.get_or_none(name) is None:
            return False
        await self._bucket.delete(name)
        await self._audit("rm", name, by, at, via)
        return True

    async def _audit(self, action: str, name: str, by: str, at: float, via: str) -> None:
        event = AuditEvent(
            token_id="",
            name=by,
            role="",
            scope="flags:write",
            action=f"flags {action}",
            at=at,
            target=name,
            via="http" if via == "http" else "nats",
        )
        await self._bus.publish(flag_audit_subject(action), event)


class LiveFlags:
    """The flags as last seen by a watch of the bucket; evaluated from memory.

    Feed it with ``actor.add_watch(FLAGS, live.on_entry, value_type=Flag)``.
    """

    def __init__(self) -> None:
        self._flags: dict[str, Flag] = {}

    async def on_entry(self, entry: Entry[Any]) -> None:
        """Apply one watched revision (a put or a delete)."""
        if isinstance(entry.value, Flag):
            self._flags[entry.key] = entry.value
        else:
            self._flags.pop(entry.key, None)
        log.info("flags: %s %s", entry.key, "set" if entry.value is not None else "removed")

    def get(self, name: str) -> Flag | None:
        """Return the flag named ``name`` as last seen, or ``None``."""
        return self._flags.get(name)

    def value(
        self,
        name: str,
        workflow_id: str,
        *,
        template: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> str | None:
        """Return the flag's value for the workflow, or ``None`` when there is no such flag."""
        flag = self._flags.get(name)
        if flag is None:
            return None
        return value(flag, workflow_id, template=template, labels=labels)

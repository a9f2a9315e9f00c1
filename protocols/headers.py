"""NATS header names and values that are part of the wire contract."""

from __future__ import annotations

__all__ = [
    "CONTENT_TYPE",
    "DEAD_LETTER_DELIVERIES",
    "DEAD_LETTER_REASON",
    "DEAD_LETTER_STREAM",
    "DEAD_LETTER_SUBJECT",
    "ERROR_CODE",
    "ERROR_DESCRIPTION",
    "EVENT_ENCODING",
    "JSON",
    "MSGPACK",
    "MSG_ID",
]

CONTENT_TYPE = "Content-Type"
"""Header naming the payload encoding. troupe sets it on everything it publishes or
stores and on JSON and error answers; a MessagePack request or answer goes without
it, since a message without it is read as MessagePack (a stored value
without it whose first byte is ``{`` as JSON)."""

JSON = "application/json"
"""Content type of JSON payloads (accepted and answered in kind)."""

MSGPACK = "application/msgpack"
"""Content type of MessagePack payloads, the default between actors."""

EVENT_ENCODING = JSON
"""Encoding of the core-NATS events any client may subscribe to (workflow view
updates, agent joined/left, breaker transitions): JSON, so a client that speaks
only JSON can follow a workflow live. Readers decode by ``Content-Type``."""

MSG_ID = "Nats-Msg-Id"
"""JetStream de-duplication id; troupe sets it to the message's idempotency key."""

ERROR_CODE = "Nats-Service-Error-Code"
"""NATS micro error-code header, set on every error reply."""

ERROR_DESCRIPTION = "Nats-Service-Error"
"""NATS micro error-description header, set on every error reply."""

DEAD_LETTER_REASON = "Troupe-Dead-Letter-Reason"
"""Why a stream message was dead-lettered."""

DEAD_LETTER_SUBJECT = "Troupe-Original-Subject"
"""Subject the dead-lettered message was first published on."""

DEAD_LETTER_STREAM = "Troupe-Original-Stream"
"""Stream the dead-lettered message was consumed from."""

DEAD_LETTER_DELIVERIES = "Troupe-Deliveries"
"""How many times the message had been delivered when it was dead-lettered."""

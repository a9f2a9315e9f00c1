"""The NATS connection troupe uses: nats-py's client with memoised header blocks.

Every troupe message carries headers (``Content-Type`` at least), and most
carry exactly the same block: ``Content-Type: application/msgpack`` and
nothing else. nats-py parses every received block line by line and encodes
every sent dict key by key, which costs more than decoding the message
itself. :class:`Connection` remembers the last few blocks in both
directions: a received block seen before is answered with a fresh copy of
its parsed dict, a header dict sent before reuses its encoded bytes. What
comes out is exactly what nats-py would produce (both results are memoised
from nats-py's own code, keyed by the exact input), so a block that varies
per message (a trace context, a de-duplication id) simply misses and takes
nats-py's path.

Replies to requests skip one hop: nats-py queues each reply for the task of its
reply subscription, which then resolves the request's future; the reply is
handed to that future as it is read instead (what nats-py does for its old-style
requests).

A request waits for its reply on the reply's future alone, with a timer to fail
it at its timeout; nats-py wraps that future in ``asyncio.wait_for``, which adds a
second future and one more turn of the event loop to every request (JetStream
API calls and acknowledged publishes included).

A subscription can be served directly (:meth:`Connection.serve_directly`, what
troupe's endpoints and listeners do): while its queue is empty, each message is
handed to its handler as it is read instead of being queued for the
subscription's task, which would take it one hop later. The handler may decline
a message (all its places are taken), which then takes nats-py's path, as does
every message while earlier ones wait in the queue, so none overtakes another.

A request the server refuses to let this login publish (``-ERR 'Permissions
Violation for Publish to "SUBJECT"'``) fails at once with
:class:`~actors.runtime.errors.Forbidden` instead of waiting out its timeout
for a reply that cannot come.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping
from secrets import token_hex
from typing import Any

from nats import errors as nats_errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.protocol import command as prot_command

from actors.runtime.errors import Forbidden
from actors.runtime.tls import StrictTlsClient

__all__ = ["Connection", "encode_header_block"]

log = logging.getLogger(__name__)

Take = Callable[[Msg], bool]
"""A directly served subscription's handler: ``True`` once it has the message, ``False``
to leave it to the subscription's own task."""

_CACHE_SIZE = 64
"""Blocks remembered per direction; when full the memo starts again from empty."""

_MAX_BLOCK = 512
"""Longest received header block that is memoised, in bytes."""

_REQUESTS_KEPT = 4096
"""Subjects of requests remembered for refusals; when full the memo starts again."""

_PUBLISH_REFUSED = re.compile(r'permissions violation for publish to "([^"]+)"')

# nats-py's own rules for header names and values (nats.aio.client).
_HEADER_KEY = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE_NEWLINES = str.maketrans({"\r": " ", "\n": " "})


class Connection(StrictTlsClient):
    """A nats-py client (``tls://`` kept strict) that memoises repeated header blocks and
    hands replies to their requests directly."""

    def __init__(self) -> None:
        super().__init__()
        self._parsed_blocks: dict[bytes, dict[str, str]] = {}
        self._encoded_blocks: dict[tuple[tuple[str, Any], ...], bytes] = {}
        self._sent_once: set[tuple[tuple[str, Any], ...]] = set()
        self._reply_sid = 0
        """Subscription id of the replies to requests (0 until the first request)."""
        self._reply_token_at = 0
        """Where the request's token starts in a reply's subject."""
        self._reply_prefix = ""
        self._request_subjects: dict[str, str] = {}
        """Request token -> the subject it was published on."""
        self._direct: dict[int, Take] = {}
        """Subscription id -> the handler its messages are handed to as they are read."""

    async def _request_new_style(
        self,
        subject: str,
        payload: bytes,
        timeout: float = 1,
        headers: dict[str, Any] | None = None,
    ) -> Msg:
        # nats-py's request, waiting on the reply's future itself (see the module docstring).
        if self.is_draining_pubs:
            raise nats_errors.ConnectionDrainingError
        if not self._resp_sub_prefix:
            await self._init_request_sub()
        prefix = self._resp_sub_prefix
        if prefix is None:  # pragma: no cover - set by _init_request_sub
            raise nats_errors.Error("no reply subscription")
        token = self._nuid.next()
        token.extend(token_hex(2).encode())
        key = token.decode()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Msg] = loop.create_future()
        self._resp_map[key] = future
        expiry = loop.call_later(timeout, _expire, future)
        try:
            await self.publish(subject, payload, reply=(prefix + token).decode(), headers=headers)
            return await future
        finally:
            expiry.cancel()
            self._resp_map.pop(key, None)

    def serve_directly(self, sid: int, take: Take) -> None:
        """Hand the messages of subscription ``sid`` to ``take`` as they are read, while
        none waits in the subscription's queue (see the module docstring)."""
        self._direct[sid] = take

    def stop_serving_directly(self, sid: int) -> None:
        """Let subscription ``sid``'s messages take nats-py's path again."""
        self._direct.pop(sid, None)

    async def _init_request_sub(self) -> None:
        await super()._init_request_sub()
        prefix = bytes(self._resp_sub_prefix or b"")
        mux = prefix.decode() + "*"
        self._reply_prefix = prefix.decode()
        self._reply_token_at = len(prefix)
        self._reply_sid = next((sid for sid, sub in self._subs.items() if sub.subject == mux), 0)

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes
    ) -> None:
        if sid != self._reply_sid or not sid:
            take = self._direct.get(sid)
            if (
                take is not None
                and (sub := self._subs.get(sid)) is not None
                and sub._pending_queue.empty()
            ):
                hdrs = await self._process_headers(headers)
                if self._hand_over(take, sub, self._build_message(sid, subject, reply, data, hdrs)):
                    return
            await super()._process_msg(sid, subject, reply, data, headers)
            return
        # A reply to a request: what nats-py's path does for it, without queueing it for
        # the reply subscription's task to hand to the waiting future one hop later.
        self.stats["in_msgs"] += 1
        self.stats["in_bytes"] += len(data)
        sub = self._subs.get(sid)
        if sub is None:
            return
        sub._received += 1
        msg = self._build_message(sid, subject, reply, data, await self._process_headers(headers))
        if not msg:
            return
        future = self._resp_map.get(msg.subject[self._reply_token_at :])
        if future is not None and not future.done():
            future.set_result(msg)

    def _hand_over(self, take: Take, sub: Subscription, msg: Msg) -> bool:
        try:
            if not take(msg):
                return False
        except Exception:
            # Never into the read loop, which would take it for a connection error.
            log.exception("handler of %s failed", msg.subject)
        self.stats["in_msgs"] += 1
        self.stats["in_bytes"] += len(msg.data)
        sub._received += 1
        return True

    async def _process_headers(self, headers: bytes | None) -> dict[str, str] | None:
        if not headers:
            return None
        memo = self._parsed_blocks
        parsed = memo.get(headers)
        if parsed is not None:
            return parsed.copy()  # readers may change their message's headers
        result: dict[str, str] | None = await super()._process_headers(headers)
        if result and len(headers) <= _MAX_BLOCK:
            if len(memo) >= _CACHE_SIZE:
                memo.clear()
            memo[headers] = result.copy()
        return result

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        """nats-py's parsing of a block's header lines, without a generator per name.

        A block that varies per message (a de-duplication id, a stream sequence in a
        direct get's answer) misses the memo; nats-py tests each name for whitespace
        one character at a time. ``str.split`` applies the same rule (``str.isspace``)
        in C: a name without whitespace splits into itself alone.
        """
        out: dict[str, str] = {}
        for line in raw.split(b"\r\n"):
            if not line:
                continue
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            try:
                key = name.strip().decode("ascii")
            except UnicodeDecodeError:
                continue  # not a token: nats-py drops it as well
            if key and key.split() != [key]:
                continue  # whitespace inside the name
            out[key] = value.strip().decode("utf-8", "replace")
        return out

    async def _process_err(self, err_msg: str) -> None:
        refused = _PUBLISH_REFUSED.search(err_msg)
        if refused is not None:
            self._refuse_requests(refused.group(1))
        await super()._process_err(err_msg)

    def _refuse_requests(self, subject: str) -> None:
        """Fail the pending requests published on ``subject`` (as the server spelt it)."""
        for token, sent_to in list(self._request_subjects.items()):
            if sent_to.lower() != subject.lower():
                continue
            del self._request_subjects[token]
            future = self._resp_map.get(token)
            if future is not None and not future.done():
                user = self.options.get("user")
                login = f"user {user}" if user else "this login"
                future.set_exception(Forbidden(f"NATS does not let {login} publish on {sent_to}"))

    async def _send_publish(
        self,
        subject: str,
        reply: str,
        payload: bytes,
        payload_size: int,
        headers: dict[str, Any] | None,
    ) -> None:
        if reply and self._reply_prefix and reply.startswith(self._reply_prefix):
            requests = self._request_subjects
            if len(requests) >= _REQUESTS_KEPT:
                requests.clear()
            requests[reply[self._reply_token_at :]] = subject
        block = None
        if headers is not None and subject:
            try:
                key = tuple(headers.items())
                block = self._encoded_blocks.get(key)
            except TypeError:  # an unhashable value: nats-py's path decides
                key = None
        if block is None:
            await super()._send_publish(subject, reply, payload, payload_size, headers)
            if headers is not None and key is not None:
                # nats-py accepted these headers; remember their encoding.
                self._remember_block(key, headers)
            return
        # The rest of nats-py's _send_publish, with the block already encoded.
        self.stats["out_msgs"] += 1
        self.stats["out_bytes"] += payload_size
        await self._send_command(prot_command.hpub_cmd(subject, reply, block, payload))
        if self._flush_queue is not None and self._flush_queue.empty():
            await self._flush_pending()

    def _remember_block(self, key: tuple[tuple[str, Any], ...], headers: dict[str, Any]) -> None:
        # Encoded on the second sighting: a block unique to one message (a trace
        # context, a de-duplication id) never costs a second encoding.
        seen = self._sent_once
        if key not in seen:
            if len(seen) >= _CACHE_SIZE:
                seen.clear()
            seen.add(key)
            return
        block = encode_header_block(headers)
        if block is None:
            return
        memo = self._encoded_blocks
        if len(memo) >= _CACHE_SIZE:
            memo.clear()
        memo[key] = block


def encode_header_block(headers: Mapping[str, Any]) -> bytes | None:
    """Encode ``headers`` exactly as nats-py's publish does, or ``None`` when it cannot.

    Args:
        headers: header names and values.

    Returns:
        The ``NATS/1.0`` block, or ``None`` when a value is not a string or a
        name is not a valid token (nats-py's own path then decides).
    """
    out = bytearray(b"NATS/1.0\r\n")
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            return None
        key = name.strip()
        if not key:
            continue
        if not _HEADER_KEY.fullmatch(key):
            return None
        out += key.encode()
        out += b": "
        out += value.strip().translate(_VALUE_NEWLINES).encode()
        out += b"\r\n"
    out += b"\r\n"
    return bytes(out)


def _expire(future: asyncio.Future[Msg]) -> None:
    if not future.done():
        future.set_exception(nats_errors.TimeoutError())
